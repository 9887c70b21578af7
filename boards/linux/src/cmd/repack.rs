//! `edgelm repack IN.gguf -o OUT.gguf --layout TARGET`.

use crate::load::peak_rss_bytes;
use anyhow::Result;
use edgelm_converter::{repack, RepackOptions};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `edgelm repack`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF file to read.
    input: PathBuf,
    /// GGUF file to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// none (plain GGUF, as llama.cpp reads it), or rows interleaved for x86-avx2, x86-avx512,
    /// arm-neon, arm-dotprod, arm-i8mm.
    #[arg(long)]
    layout: String,
    /// Overwrite the output if it exists.
    #[arg(short = 'f', long)]
    force: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> Result<()> {
    let start = Instant::now();
    let target = repack::target(&a.layout)?;
    let r = repack(&RepackOptions {
        input: a.input,
        output: a.output,
        target,
        force: a.force,
    })?;
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        let j = json!({
            "output": r.output, "layout": target.name(), "file_bytes": r.file_bytes,
            "tensors": r.tensors, "changed": r.changed, "types": r.types, "seconds": secs,
            "peak_rss_bytes": peak_rss_bytes(),
        });
        println!("{j}");
    } else {
        let types: Vec<String> = r.types.iter().map(|(t, n)| format!("{t}×{n}")).collect();
        println!(
            "wrote {} (layout {}): {} tensors, {} rewritten [{}], {:.1} MiB, {:.1} s",
            r.output.display(),
            target,
            r.tensors,
            r.changed,
            types.join(" "),
            r.file_bytes as f64 / (1 << 20) as f64,
            secs
        );
    }
    Ok(())
}
