//! `edgelm run`: stream a continuation of a prompt (llama.cpp-style flags).

use crate::load::{peak_rss_bytes, AdapterFiles, LoraArgs, ModelFile};
use anyhow::{Context, Result};
use edgelm::kv::KvType;
use edgelm::model::ModelVec;
use edgelm::sampler::SamplerParams;
use edgelm::session::{GenOptions, Generator, Session};
use edgelm::tokenizer::Tokenizer;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Sampling flags shared by `run` and `chat`.
#[derive(clap::Args, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8, value_parser = crate::load::parse_finite)]
    pub temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95, value_parser = crate::load::parse_finite)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05, value_parser = crate::load::parse_finite)]
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0, value_parser = crate::load::parse_finite)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (default: from the clock).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampler settings, with the seed chosen.
    pub fn params(&self) -> SamplerParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplerParams {
            temp: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        }
    }
}

/// Arguments of `edgelm run`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    model: PathBuf,
    /// Prompt text.
    #[arg(short = 'p', long)]
    prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    prompt_file: Option<PathBuf>,
    /// Tokens to generate (-1 = until end of text or full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    n_predict: i64,
    /// Context size (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// Prompt tokens evaluated per batch (weights × a matrix of tokens; 1 = one at a time).
    #[arg(short = 'b', long = "batch-size", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// KV cache element type: f16 (llama.cpp's default), f32 (attention in f32, closest to
    /// exact arithmetic; twice the cache memory) or q8_0 (0.53x the memory of f16).
    #[arg(long = "kv-type", default_value = "f16", value_parser = crate::load::parse_kv_type)]
    kv_type: KvType,
    /// Threads for the matrix-vector products (default 1: measured fastest here for now).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Stop when this text is generated (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Add, per generated token, the top K candidates with log-probabilities (JSON only).
    #[arg(long, default_value_t = 0)]
    logprobs: usize,
    /// Check every tensor against the file's checksums before running; refuse a mismatch.
    #[arg(long)]
    verify: bool,
    /// Print one JSON object at the end instead of streaming.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
}

pub fn main(a: Args) -> Result<()> {
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            let bytes = std::fs::read(f)
                .with_context(|| format!("cannot read prompt file {}", f.display()))?;
            String::from_utf8(bytes)
                .with_context(|| format!("prompt file {} is not UTF-8", f.display()))?
        }
        (None, None) => anyhow::bail!("give a prompt with -p TEXT or -f FILE"),
    };
    crate::load::set_threads(a.threads);
    let t0 = Instant::now();
    let file = ModelFile::open(&a.model)?;
    let g = file.gguf()?;
    let adapters = AdapterFiles::open(&a.lora)?;
    if a.verify {
        crate::cmd::verify::before_running(&file, &g, a.json)?;
        adapters.verify(a.json)?;
    }
    let mut table = Vec::new();
    let mut model =
        ModelVec::load(&g).with_context(|| format!("cannot load {}", a.model.display()))?;
    let lora = adapters.apply(&mut model, &a.model, &mut table)?;
    if !a.json {
        crate::load::report_adapters(&lora);
    }
    let tok = Tokenizer::from_gguf(&g)
        .with_context(|| format!("cannot read the tokenizer of {}", a.model.display()))?;
    file.release_header(&g);
    let n_ctx = a.ctx.unwrap_or(model.config.n_ctx_train.min(4096));
    let plan = edgelm::plan::plan_batch(&model.config, n_ctx, a.kv_type, a.batch_size as usize)?;
    let mut mem = crate::load::session_memory(&plan, "-c")?;
    let mut session =
        Session::with_batch(&model, &mut mem, n_ctx, a.kv_type, a.batch_size as usize)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    let prompt_ids = tok.encode(&prompt, true, true);
    if prompt_ids.len() > n_ctx {
        anyhow::bail!(
            "the prompt has {} tokens, more than the context size {n_ctx} (raise -c)",
            prompt_ids.len()
        );
    }
    let params = a.sampling.params();
    let opts = GenOptions {
        max_tokens: usize::try_from(a.n_predict).ok(),
        stop: a.stop.clone(),
        logprobs: a.logprobs,
    };
    let mut gen = Generator::new(&mut session, &tok, params, opts);
    let t1 = Instant::now();
    gen.prompt(&prompt_ids)?;
    let prompt_s = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut logprobs = Vec::new();
    let mut out = std::io::stdout().lock();
    while let Some(step) = gen.next_token()? {
        tokens.extend(step.id);
        text.push_str(&step.text);
        if a.logprobs > 0 {
            logprobs.push(
                step.logprobs
                    .iter()
                    .map(|c| json!({"id": c.id, "logprob": c.logit}))
                    .collect::<Vec<_>>(),
            );
        }
        if !a.json {
            out.write_all(step.text.as_bytes())?;
            out.flush()?;
        }
    }
    let gen_s = t2.elapsed().as_secs_f64();
    let stop = gen.stop_reason();
    let prompt_tok_s = prompt_ids.len() as f64 / prompt_s.max(1e-9);
    let gen_tok_s = tokens.len() as f64 / gen_s.max(1e-9);
    let rss = peak_rss_bytes();
    if a.json {
        let mut o = json!({
            "prompt_tokens": prompt_ids, "tokens": tokens, "text": text,
            "timings": {"load_ms": load_ms, "prompt_tok_s": prompt_tok_s, "gen_tok_s": gen_tok_s},
            "peak_rss_bytes": rss, "seed": params.seed, "n_ctx": n_ctx,
            "stop": stop.map(|s| format!("{s:?}")),
            "lora": lora,
        });
        o["kv_type"] = json!(a.kv_type.name());
        if a.logprobs > 0 {
            o["logprobs"] = json!(logprobs);
        }
        println!("{o}");
    } else {
        writeln!(out)?;
        eprintln!(
            "\nload {load_ms:.0} ms | prompt {} tok, {prompt_tok_s:.1} tok/s | generation {} tok, {gen_tok_s:.1} tok/s | peak RSS {:.1} MiB | seed {} | stop: {:?}",
            prompt_ids.len(),
            tokens.len(),
            rss as f64 / (1 << 20) as f64,
            params.seed,
            stop
        );
    }
    Ok(())
}
