//! `edgelm perplexity`: llama-perplexity's method — the text cut into non-overlapping windows of
//! `n_ctx` tokens (BOS replacing each window's first token when the model adds BOS), scoring only
//! the second half of each window so every scored token has at least `n_ctx/2` tokens of context.

use crate::load::ModelFile;
use anyhow::{bail, Context, Result};
use edgelm::kv::KvType;
use edgelm::model::ModelVec;
use edgelm::sampler::logprob;
use edgelm::session::Session;
use edgelm::tokenizer::Tokenizer;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `edgelm perplexity`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    model: PathBuf,
    /// UTF-8 text file to score.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Threads for the matrix-vector products (default 1: measured fastest here for now).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Window (context) size.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Prompt tokens evaluated per batch (weights × a matrix of tokens; 1 = one at a time).
    #[arg(short = 'b', long = "batch-size", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// KV cache element type: f16 (llama.cpp's default), f32 (attention in f32, closest to
    /// exact arithmetic; twice the cache memory) or q8_0 (0.53x the memory of f16).
    #[arg(long = "kv-type", default_value = "f16", value_parser = crate::load::parse_kv_type)]
    kv_type: KvType,
    /// Score at most this many windows (default: all).
    #[arg(long)]
    chunks: Option<usize>,
    /// Print `{"ppl":..,"tokens":..}`.
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> Result<()> {
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", a.file.display()))?;
    crate::load::set_threads(a.threads);
    let file = ModelFile::open(&a.model)?;
    let g = file.gguf()?;
    let model = ModelVec::load(&g).with_context(|| format!("cannot load {}", a.model.display()))?;
    let tok = Tokenizer::from_gguf(&g).context("cannot read the tokenizer")?;
    let n_ctx = a.ctx;
    if n_ctx < 4 {
        bail!("context size {n_ctx} is too small for perplexity (need at least 4)");
    }
    let tokens = tok.encode(&text, true, false);
    let mut n_chunk = tokens.len() / n_ctx;
    if let Some(c) = a.chunks {
        n_chunk = n_chunk.min(c);
    }
    if n_chunk == 0 {
        bail!(
            "the text has {} tokens; perplexity with -c {n_ctx} needs at least {n_ctx}",
            tokens.len()
        );
    }
    let plan = edgelm::plan::plan_batch(&model.config, n_ctx, a.kv_type, a.batch_size as usize)?;
    let mut mem = crate::load::session_memory(&plan, "-c")?;
    let mut s = Session::with_batch(&model, &mut mem, n_ctx, a.kv_type, a.batch_size as usize)?;
    let add_bos = tok.add_bos();
    let first = n_ctx / 2;
    let (mut nll, mut count) = (0f64, 0usize);
    let t0 = Instant::now();
    for c in 0..n_chunk {
        let win = &tokens[c * n_ctx..(c + 1) * n_ctx];
        s.truncate(0);
        let mut ids = win.to_vec();
        if let (true, Some(bos)) = (add_bos, tok.bos()) {
            ids[0] = bos;
        }
        // Logits after tokens first..n_ctx-1 score the next token of the window.
        s.eval_batch(&ids[..n_ctx - 1], first, |j, logits| {
            nll -= logprob(logits, win[j + 1]);
            count += 1;
        })?;
        if !a.json {
            eprint!("[{}]{:.4} ", c + 1, (nll / count as f64).exp());
        }
    }
    let ppl = (nll / count as f64).exp();
    if a.json {
        println!(
            "{}",
            json!({"ppl": ppl, "tokens": count, "chunks": n_chunk, "n_ctx": n_ctx, "kv_type": a.kv_type.name()})
        );
    } else {
        eprintln!();
        println!(
            "perplexity {ppl:.4} over {count} scored tokens ({n_chunk} windows of {n_ctx}), {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
