//! `edgelm inspect FILE [-c CTX] [--json]`.

use crate::load::ModelFile;
use anyhow::Result;
use edgelm::gguf::Value;
use edgelm::kv::KvType;
use edgelm::model::Config;
use edgelm::plan::plan_with;
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `edgelm inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF file.
    file: PathBuf,
    /// Context length for the memory plan (default: the model's training context, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// KV cache element type for the memory plan: f16 (default), f32 or q8_0.
    #[arg(long = "kv-type", default_value = "f16", value_parser = crate::load::parse_kv_type)]
    kv_type: KvType,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn value_json(v: &Value<'_>) -> serde_json::Value {
    match *v {
        Value::Str(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::F32(f) => json!(f),
        Value::F64(f) => json!(f),
        Value::Array(a) => json!({"type": format!("{:?}", a.elem_type()), "len": a.len()}),
        _ => v
            .as_i64()
            .map(|i| json!(i))
            .unwrap_or(serde_json::Value::Null),
    }
}

pub fn main(a: Args) -> Result<()> {
    let f = ModelFile::open(&a.file)?;
    let g = f.gguf()?;
    let mut meta = Map::new();
    for (k, v) in g.metadata() {
        // Huge values (vocabularies, templates) are summarized; the rest printed as is.
        let j = match v {
            Value::Str(s) if s.len() > 200 => json!(format!("<{} bytes>", s.len())),
            _ => value_json(&v),
        };
        meta.insert(k.to_string(), j);
    }
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut tensors = Vec::new();
    for t in g.tensors() {
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.data.len() as u64;
        tensors.push(
            json!({"name": t.name, "type": t.ty.name(), "shape": t.shape(), "bytes": t.data.len()}),
        );
    }
    let config = Config::from_gguf(&g);
    let (hparams, memory) = match &config {
        Ok(c) => {
            let ctx = a.ctx.unwrap_or(c.n_ctx_train.min(4096));
            let p = plan_with(c, ctx, a.kv_type)?;
            (
                json!({
                    "arch": c.arch.name(), "n_vocab": c.n_vocab, "n_embd": c.n_embd, "n_layer": c.n_layer,
                    "n_head": c.n_head, "n_head_kv": c.n_head_kv, "head_dim": c.head_dim, "n_ff": c.n_ff,
                    "n_ctx_train": c.n_ctx_train, "norm_eps": c.norm_eps, "rope_base": c.rope_base,
                    "rope_dim": c.rope_dim, "rope_kind": format!("{:?}", c.rope_kind),
                    "sliding_window": c.sliding_window, "swa_pattern": c.swa_pattern,
                    "n_swa_layers": c.n_swa_layers(), "rope_base_swa": c.rope_base_swa,
                    "logit_softcap": c.logit_softcap,
                }),
                json!({
                    "n_ctx": ctx, "kv_bytes": p.kv_bytes, "kv_ring_bytes": p.kv_ring_bytes,
                    "scratch_bytes": p.scratch_bytes,
                    "sampler_bytes": p.sampler_bytes, "total_bytes": p.total_bytes,
                    "weights_bytes": f.len(), "kv_type": p.kv_type.name(),
                }),
            )
        }
        Err(e) => (json!({"error": e.to_string()}), serde_json::Value::Null),
    };
    let tokenizer = json!({
        "model": g.get_str("tokenizer.ggml.model"),
        "pre": g.get_str("tokenizer.ggml.pre"),
        "n_tokens": g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len()),
        "n_merges": g.get("tokenizer.ggml.merges").and_then(|v| v.as_array()).map(|a| a.len()),
        "bos": g.get_u32("tokenizer.ggml.bos_token_id"),
        "eos": g.get_u32("tokenizer.ggml.eos_token_id"),
        "add_bos": g.get("tokenizer.ggml.add_bos_token").and_then(|v| v.as_bool()),
        "chat_template": g.get_str("tokenizer.chat_template").is_some(),
    });
    let types: Map<String, serde_json::Value> = by_type
        .iter()
        .map(|(k, (n, b))| (k.to_string(), json!({"tensors": n, "bytes": b})))
        .collect();
    if a.json {
        let out = json!({
            "file": a.file, "version": g.version(), "alignment": g.alignment(), "file_bytes": f.len(),
            "architecture": g.architecture(), "hparams": hparams, "tokenizer": tokenizer,
            "types": types, "memory": memory, "metadata": meta, "tensors": tensors,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "file:         {} ({} bytes, GGUF v{})",
        a.file.display(),
        f.len(),
        g.version()
    );
    println!("architecture: {}", g.architecture().unwrap_or("?"));
    if let Err(e) = &config {
        println!("  (cannot run: {e})");
    }
    println!("hparams:      {hparams}");
    println!("tokenizer:    {tokenizer}");
    println!("memory:       {memory}");
    println!("types:");
    for (k, (n, b)) in &by_type {
        println!("  {k:6} {n:5} tensors {b:12} bytes");
    }
    println!("tensors ({}):", g.n_tensors());
    for t in g.tensors() {
        println!("  {:40} {:6} {:?}", t.name, t.ty.name(), t.shape());
    }
    Ok(())
}
