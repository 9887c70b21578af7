//! `edgelm convert HF_DIR -o OUT.gguf --quant TYPE [--lora DIR [--lora-scale S]]` and
//! `edgelm convert-lora ADAPTER_DIR --base BASE.gguf -o OUT.gguf`.

use crate::load::peak_rss_bytes;
use anyhow::Result;
use edgelm_converter::{ConvertLoraOptions, ConvertOptions, Quant, Report};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `edgelm convert`.
#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model folder (config.json, *.safetensors, tokenizer files).
    input: PathBuf,
    /// GGUF file to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// f32, f16, bf16, q8_0, q4_0, q4_k, q6_k, or the mixed recipe q4_k_m.
    #[arg(short = 'q', long = "quant", default_value = "q8_0")]
    quant: String,
    /// PEFT LoRA adapter folder to merge into the weights before quantizing.
    #[arg(long)]
    lora: Option<PathBuf>,
    /// Multiplies the adapter's alpha/r.
    #[arg(long = "lora-scale", default_value_t = 1.0, requires = "lora")]
    lora_scale: f32,
    /// Tensor layout: none (plain GGUF), or rows interleaved for x86-avx2, x86-avx512, arm-neon,
    /// arm-dotprod, arm-i8mm (see `edgelm repack`).
    #[arg(long, default_value = "none")]
    layout: String,
    /// Overwrite the output if it exists.
    #[arg(short = 'f', long)]
    force: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Arguments of `edgelm convert-lora`.
#[derive(clap::Args)]
pub struct LoraArgs {
    /// PEFT adapter folder (adapter_config.json, adapter_model.safetensors).
    adapter: PathBuf,
    /// The converted base model the adapter is for.
    #[arg(long)]
    base: PathBuf,
    /// Adapter GGUF to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Type of the adapter tensors: f32, f16, bf16 or q8_0.
    #[arg(short = 'q', long = "quant", default_value = "f32")]
    quant: String,
    /// Overwrite the output if it exists.
    #[arg(short = 'f', long)]
    force: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

/// A bar on a terminal; nothing when stderr is redirected or `--json` is on.
fn bar(json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tensors {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn finish(r: &Report, quant: Quant, start: Instant, json_out: bool, what: &str) {
    let secs = start.elapsed().as_secs_f64();
    let bpw = r.file_bytes as f64 * 8.0 / r.params.max(1) as f64;
    if json_out {
        let j = json!({
            "output": r.output, "arch": r.arch, "quant": quant.name(), "file_bytes": r.file_bytes,
            "tensors": r.tensors, "params": r.params, "bits_per_weight": bpw, "types": r.types,
            "lora_tensors": r.lora_tensors, "ignored": r.ignored, "seconds": secs,
            "peak_rss_bytes": peak_rss_bytes(),
        });
        println!("{j}");
    } else {
        let types: Vec<String> = r.types.iter().map(|(t, n)| format!("{t}×{n}")).collect();
        println!(
            "{what} {} ({}, {}): {} tensors [{}], {:.1} MiB, {:.2} bits/weight, {:.1} s",
            r.output.display(),
            r.arch,
            quant.name(),
            r.tensors,
            types.join(" "),
            r.file_bytes as f64 / (1 << 20) as f64,
            bpw,
            secs
        );
        if r.lora_tensors > 0 {
            println!("LoRA: {} weights", r.lora_tensors);
        }
    }
}

pub fn main(a: Args) -> Result<()> {
    let start = Instant::now();
    let quant = Quant::parse(&a.quant)?;
    let layout = edgelm_converter::repack::target(&a.layout)?;
    let pb = bar(a.json);
    let progress = |done: usize, total: usize, name: &str| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        pb.set_message(name.to_string());
    };
    let r = edgelm_converter::convert(
        &ConvertOptions {
            input: a.input,
            output: a.output,
            quant,
            lora: a.lora,
            lora_scale: a.lora_scale,
            layout,
            force: a.force,
        },
        &progress,
    );
    pb.finish_and_clear();
    finish(&r?, quant, start, a.json, "wrote");
    Ok(())
}

pub fn main_lora(a: LoraArgs) -> Result<()> {
    let start = Instant::now();
    let quant = Quant::parse(&a.quant)?;
    let pb = bar(a.json);
    let progress = |done: usize, total: usize, name: &str| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        pb.set_message(name.to_string());
    };
    let r = edgelm_converter::convert_lora(
        &ConvertLoraOptions {
            adapter: a.adapter,
            base: a.base,
            output: a.output,
            quant,
            force: a.force,
        },
        &progress,
    );
    pb.finish_and_clear();
    finish(&r?, quant, start, a.json, "wrote adapter");
    Ok(())
}
