//! Shared by the end-to-end converter tests: synthetic Hugging Face checkpoints, GGUF tensor reads,
//! byte-level tokenizer.json files, and an f64 forward of Llama/Qwen2 written from the Hugging Face
//! modelling code (half-split RoPE on unpermuted weights), independent of the converter and runtime.
#![allow(dead_code)]

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::quant::dequantize_row;
use edgelm_converter::{ConvertOptions, Quant};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A deterministic pseudo-random f32 in [-1, 1).
pub fn rnd(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// Name → (PyTorch shape, f32 values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Adds a random tensor, uniform in ±`scale`.
pub fn tensor(t: &mut Tensors, seed: &mut u64, name: &str, shape: &[usize], scale: f32) {
    let n = shape.iter().product();
    let v = (0..n).map(|_| rnd(seed) * scale).collect();
    t.insert(name.to_string(), (shape.to_vec(), v));
}

/// Adds a norm weight near 1.
pub fn norm(t: &mut Tensors, seed: &mut u64, name: &str, n: usize) {
    let v = (0..n).map(|_| 1.0 + 0.1 * rnd(seed)).collect();
    t.insert(name.to_string(), (vec![n], v));
}

/// A non-f32 tensor (buffers) as raw bytes.
pub struct Raw {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Writes `t` (as F32) and `raw` into one safetensors file.
pub fn write_safetensors(path: &Path, t: &Tensors, raw: &BTreeMap<String, Raw>) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .iter()
        .map(|(n, (s, v))| {
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let mut views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    for (n, r) in raw {
        views.push((
            n.clone(),
            TensorView::new(r.dtype, r.shape.clone(), &r.bytes).unwrap(),
        ));
    }
    safetensors::tensor::serialize_to_file(views, None, path).unwrap();
}

/// Writes a checkpoint folder: config.json, model.safetensors and the given extra JSON files.
pub fn write_checkpoint(
    dir: &Path,
    config: &Value,
    t: &Tensors,
    raw: &BTreeMap<String, Raw>,
    files: &[(&str, &Value)],
) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    for (name, v) in files {
        std::fs::write(dir.join(name), v.to_string()).unwrap();
    }
    write_safetensors(&dir.join("model.safetensors"), t, raw);
}

/// Conversion options with defaults.
pub fn opts(input: PathBuf, output: PathBuf, quant: Quant) -> ConvertOptions {
    ConvertOptions {
        input,
        output,
        quant,
        lora: None,
        lora_scale: 1.0,
        layout: edgelm::quant::layout::Target::None,
        force: false,
    }
}

/// A progress callback that does nothing.
pub fn none(_: usize, _: usize, _: &str) {}

/// Tensor `name` of a GGUF file as (dims innermost first, f32 values).
pub fn rows(g: &Gguf<'_>, name: &str) -> (Vec<u64>, Vec<f32>) {
    let t = g.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    let shape = t.shape().to_vec();
    let n = t.n_elements() as usize;
    let mut out = vec![0f32; n];
    let cols = shape[0] as usize;
    let rb = t.data.len() / (n / cols);
    for (r, o) in out.chunks_mut(cols).enumerate() {
        dequantize_row(t.ty, &t.data[r * rb..(r + 1) * rb], o).unwrap();
    }
    (shape, out)
}

/// `$EDGELM_MODELS`, else `~/.cache/edgelm/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EDGELM_MODELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").expect("HOME is set (or set EDGELM_MODELS)");
    PathBuf::from(home).join(".cache/edgelm/models")
}

/// The bytes of a model file; fails (never skips) when it is missing.
pub fn load(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nrun scripts/fetch-models (it installs the test files into $EDGELM_MODELS, default ~/.cache/edgelm/models)",
            path.display()
        )
    })
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`).
pub fn byte_chars() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut n = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            }
        })
        .collect()
}

/// Merges of the byte-level test tokenizers (each result becomes a token, in order).
pub const MERGES: [(&str, &str); 10] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "a"),
    ("e", "r"),
    ("o", "n"),
    ("Ġ", "w"),
    ("o", "r"),
    ("Ġw", "or"),
];

/// A byte-level BPE tokenizer.json: 256 byte tokens, the merged tokens of [`MERGES`], then
/// `specials` (control tokens), with the given pre-tokenizer.
pub fn byte_level_tokenizer(pre_tokenizer: Value, specials: &[&str]) -> Value {
    let mut vocab = serde_json::Map::new();
    for (i, c) in byte_chars().into_iter().enumerate() {
        vocab.insert(c.to_string(), json!(i));
    }
    for (a, b) in MERGES {
        let n = vocab.len();
        vocab.insert(format!("{a}{b}"), json!(n));
    }
    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": vocab.len() + i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false,
                  "fuse_unk": false, "vocab": vocab,
                  "merges": MERGES.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()},
    })
}

/// The number of tokens of [`byte_level_tokenizer`] before its specials.
pub const BYTE_LEVEL_BASE: usize = 256 + MERGES.len();

/// Hyper-parameters of the f64 reference forward.
#[derive(Clone)]
pub struct RefCfg {
    pub d: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    pub ff: usize,
    pub vocab: usize,
    pub eps: f64,
    /// Per pair of head dimensions: the rotation frequency (Hugging Face's `inv_freq`).
    pub inv_freq: Vec<f64>,
    /// Q/K/V biases (Qwen2).
    pub qkv_bias: bool,
}

/// `theta^(-2i/head_dim)` for i in 0..head_dim/2.
pub fn default_inv_freq(theta: f64, head_dim: usize) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
        .collect()
}

fn matvec(w: &[f32], x: &[f64], rows: usize) -> Vec<f64> {
    let cols = x.len();
    (0..rows)
        .map(|r| {
            w[r * cols..(r + 1) * cols]
                .iter()
                .zip(x)
                .map(|(&a, &b)| a as f64 * b)
                .sum()
        })
        .collect()
}

fn rms_norm(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, &g)| v * s * g as f64).collect()
}

/// Hugging Face's `apply_rotary_pos_emb` with `rotate_half`: dimension i pairs with i + half.
fn rope_half(x: &mut [f64], n_heads: usize, hd: usize, pos: usize, inv_freq: &[f64]) {
    let half = hd / 2;
    for h in 0..n_heads {
        let v = &mut x[h * hd..(h + 1) * hd];
        for i in 0..half {
            let (s, c) = (pos as f64 * inv_freq[i]).sin_cos();
            let (a, b) = (v[i], v[i + half]);
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }
}

/// Logits at every position of `tokens` for a `LlamaForCausalLM` / `Qwen2ForCausalLM` checkpoint
/// (Hugging Face names and layout), in f64.
pub fn reference_forward(t: &Tensors, c: &RefCfg, tokens: &[u32]) -> Vec<Vec<f64>> {
    let w = |n: &str| -> &[f32] { &t.get(n).unwrap_or_else(|| panic!("{n} missing")).1 };
    let (d, hd) = (c.d, c.head_dim);
    let (qd, kvd) = (c.n_head * hd, c.n_kv * hd);
    let emb = w("model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tok| {
            emb[tok as usize * d..(tok as usize + 1) * d]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    for l in 0..c.n_layer {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        let mut qs = Vec::new();
        for (pos, x) in xs.iter().enumerate() {
            let h = rms_norm(x, w(&p("input_layernorm.weight")), c.eps);
            let proj = |m: &str, rows: usize| {
                let mut y = matvec(w(&p(&format!("self_attn.{m}.weight"))), &h, rows);
                if c.qkv_bias {
                    for (v, &b) in y.iter_mut().zip(w(&p(&format!("self_attn.{m}.bias")))) {
                        *v += b as f64;
                    }
                }
                y
            };
            let (mut q, mut k, v) = (proj("q_proj", qd), proj("k_proj", kvd), proj("v_proj", kvd));
            rope_half(&mut q, c.n_head, hd, pos, &c.inv_freq);
            rope_half(&mut k, c.n_kv, hd, pos, &c.inv_freq);
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        let group = c.n_head / c.n_kv;
        for (pos, x) in xs.iter_mut().enumerate() {
            let mut att = vec![0f64; qd];
            for h in 0..c.n_head {
                let kh = h / group;
                let q = &qs[pos][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|j| {
                        let k = &ks[j][kh * hd..(kh + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    let v = &vs[j][kh * hd..(kh + 1) * hd];
                    for (o, vv) in att[h * hd..(h + 1) * hd].iter_mut().zip(v) {
                        *o += ej / z * vv;
                    }
                }
            }
            let o = matvec(w(&p("self_attn.o_proj.weight")), &att, d);
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
            let h = rms_norm(x, w(&p("post_attention_layernorm.weight")), c.eps);
            let g = matvec(w(&p("mlp.gate_proj.weight")), &h, c.ff);
            let u = matvec(w(&p("mlp.up_proj.weight")), &h, c.ff);
            let a: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = matvec(w(&p("mlp.down_proj.weight")), &a, d);
            for (a, b) in x.iter_mut().zip(&down) {
                *a += b;
            }
        }
    }
    let head = t
        .get("lm_head.weight")
        .map(|h| &h.1)
        .unwrap_or(&t["model.embed_tokens.weight"].1);
    xs.iter()
        .map(|x| matvec(head, &rms_norm(x, w("model.norm.weight"), c.eps), c.vocab))
        .collect()
}

/// The runtime's logits at every position of `tokens`, one token at a time.
pub fn runtime_logits(model: &ModelVec<'_>, tokens: &[u32]) -> Vec<Vec<f32>> {
    let p = edgelm::plan::plan(&model.config, tokens.len()).unwrap();
    let mut mem = edgelm::session::alloc_memory(&p);
    let mut s = edgelm::session::Session::new(model, &mut mem, tokens.len()).unwrap();
    tokens
        .iter()
        .map(|&t| s.eval(t).unwrap().to_vec())
        .collect()
}

/// max |ours − ref| / max |ref| over one position's logits.
pub fn rel_err(ours: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    diff / scale
}
