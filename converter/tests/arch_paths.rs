//! Converter paths with no downloadable checkpoint, end to end on tiny random ones: Qwen2 (Q/K/V
//! biases, no permutation, tied head, Qwen2 pre-tokenizer), Llama 3.1 `rope_scaling` (rope_freqs
//! factors checked against Meta's `apply_scaling`), and GPT-2 in the original OpenAI layout (no
//! `transformer.` prefix, `attn.bias`/`attn.masked_bias` buffers). The runtime's logits on the
//! converted files are compared with an f64 forward of the Hugging Face checkpoint (tests/util).

mod util;

use edgelm::gguf::Gguf;
use edgelm::model::{ModelVec, RopeKind};
use edgelm::tokenizer::Tokenizer;
use edgelm_converter::{convert, Quant};
use safetensors::Dtype;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use util::{
    byte_level_tokenizer, none, norm, opts, reference_forward, rel_err, rnd, rows, runtime_logits,
    tensor, write_checkpoint, Raw, RefCfg, Tensors, BYTE_LEVEL_BASE,
};

/// Qwen2's pre-tokenizer regex as its tokenizer.json spells it.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split_then_byte_level(regex: &str) -> Value {
    json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
    ]})
}

/// Random Llama/Qwen2 block weights in Hugging Face layout.
fn llama_blocks(t: &mut Tensors, s: &mut u64, c: &RefCfg) {
    let (d, q, kv) = (c.d, c.n_head * c.head_dim, c.n_kv * c.head_dim);
    let wscale = 1.0 / (d as f32).sqrt();
    for l in 0..c.n_layer {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        norm(t, s, &p("input_layernorm.weight"), d);
        norm(t, s, &p("post_attention_layernorm.weight"), d);
        for (m, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            tensor(
                t,
                s,
                &p(&format!("self_attn.{m}.weight")),
                &[rows, d],
                2.0 * wscale,
            );
            if c.qkv_bias {
                tensor(t, s, &p(&format!("self_attn.{m}.bias")), &[rows], 0.5);
            }
        }
        tensor(t, s, &p("self_attn.o_proj.weight"), &[d, q], wscale);
        tensor(t, s, &p("mlp.gate_proj.weight"), &[c.ff, d], wscale);
        tensor(t, s, &p("mlp.up_proj.weight"), &[c.ff, d], wscale);
        tensor(t, s, &p("mlp.down_proj.weight"), &[d, c.ff], wscale);
    }
}

fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let s = &mut { seed };
    (0..n)
        .map(|_| ((rnd(s) * 0.5 + 0.5) * vocab as f32) as u32 % vocab as u32)
        .collect()
}

/// The f64 reference logits at every position, and the runtime's largest relative error against
/// them (max |Δ| / max |logit| per position), which must stay below `tol`.
///
/// The runtime follows ggml's numerics: queries, keys, values and the attention accumulator are
/// rounded to f16 (2^-11 relative), which costs several 1e-4 on short sequences and grows slowly
/// with their length.
fn compare_with_reference(
    model: &ModelVec<'_>,
    t: &Tensors,
    c: &RefCfg,
    tokens: &[u32],
    tol: f64,
) -> (Vec<Vec<f64>>, f64) {
    let got = runtime_logits(model, tokens);
    let all: Vec<usize> = (0..tokens.len()).collect();
    let want = reference_forward(t, c, tokens);
    let err = worst(&got, &want, &all);
    assert!(
        err < tol,
        "max relative logit error {err:.2e} vs the f64 reference"
    );
    let short = worst(&got, &want, &all[..all.len().min(40)]);
    assert!(
        short < 1e-3,
        "max relative logit error {short:.2e} vs the f64 reference over the first 40 positions"
    );
    (want, err)
}

/// Largest relative logit error of the runtime vs the reference over `positions`.
fn worst(ours: &[Vec<f32>], reference: &[Vec<f64>], positions: &[usize]) -> f64 {
    positions
        .iter()
        .map(|&p| rel_err(&ours[p], &reference[p]))
        .fold(0.0, f64::max)
}

#[test]
fn qwen2_keeps_biases_and_row_order_and_matches_reference() {
    let c = RefCfg {
        d: 64,
        n_layer: 2,
        n_head: 4,
        n_kv: 2,
        head_dim: 16,
        ff: 96,
        // The tokenizer has 269 tokens; like Qwen2's real checkpoints, the embedding is padded.
        vocab: 288,
        eps: 1e-6,
        inv_freq: util::default_inv_freq(1e6, 16),
        qkv_bias: true,
    };
    let mut t = Tensors::new();
    let s = &mut 2u64;
    tensor(&mut t, s, "model.embed_tokens.weight", &[c.vocab, c.d], 1.0);
    norm(&mut t, s, "model.norm.weight", c.d);
    llama_blocks(&mut t, s, &c);
    // A tied checkpoint that still carries the head (some saves do): it must be dropped, not written.
    let emb = t["model.embed_tokens.weight"].clone();
    t.insert("lm_head.weight".into(), emb);
    let config = json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": c.d,
        "intermediate_size": c.ff, "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv, "vocab_size": c.vocab, "rms_norm_eps": c.eps,
        "rope_theta": 1000000.0, "tie_word_embeddings": true, "max_position_embeddings": 256,
        "bos_token_id": BYTE_LEVEL_BASE, "eos_token_id": BYTE_LEVEL_BASE + 2,
        "use_sliding_window": false, "hidden_act": "silu",
    });
    let tok = byte_level_tokenizer(
        split_then_byte_level(QWEN2_SPLIT),
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    );
    let tok_config = json!({
        "bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "add_prefix_space": false, "model_max_length": 32768,
    });
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("qwen2-tiny");
    write_checkpoint(
        &ck,
        &config,
        &t,
        &BTreeMap::new(),
        &[
            ("tokenizer.json", &tok),
            ("tokenizer_config.json", &tok_config),
        ],
    );
    let out = tmp.path().join("q.gguf");
    let r = convert(&opts(ck, out.clone(), Quant::F32), &none).unwrap();
    assert_eq!(r.arch, "qwen2");
    assert_eq!(r.ignored, ["lm_head.weight"]);
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_str("general.architecture"), Some("qwen2"));
    assert!(g.tensor("output.weight").is_none(), "tied head not written");
    assert_eq!(g.get_f32("qwen2.rope.freq_base"), Some(1e6));
    assert!(g.tensor("rope_freqs.weight").is_none());

    for l in 0..c.n_layer {
        for (m, gg) in [
            ("q_proj", "attn_q"),
            ("k_proj", "attn_k"),
            ("v_proj", "attn_v"),
        ] {
            let hf = |p: &str| &t[&format!("model.layers.{l}.self_attn.{m}.{p}")].1;
            let (shape, b) = rows(&g, &format!("blk.{l}.{gg}.bias"));
            assert_eq!(shape, [hf("bias").len() as u64]);
            assert_eq!(&b, hf("bias"), "blk.{l}.{gg}.bias");
            // Qwen2 keeps Hugging Face's half-split row order: no permutation, Q and K included.
            assert_eq!(&rows(&g, &format!("blk.{l}.{gg}.weight")).1, hf("weight"));
        }
        assert!(g.tensor(&format!("blk.{l}.attn_output.bias")).is_none());
    }

    // Tokenizer: byte-level BPE with Qwen2's pre-tokenizer, padded to the embedding's rows.
    assert_eq!(g.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(g.get_str("tokenizer.ggml.pre"), Some("qwen2"));
    let arr = |k: &str| g.get(k).unwrap().as_array().unwrap();
    assert_eq!(arr("tokenizer.ggml.tokens").len(), c.vocab);
    assert_eq!(arr("tokenizer.ggml.merges").len(), util::MERGES.len());
    let types: Vec<i64> = arr("tokenizer.ggml.token_type")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(types[..BYTE_LEVEL_BASE].iter().all(|&t| t == 1));
    assert_eq!(types[BYTE_LEVEL_BASE..BYTE_LEVEL_BASE + 3], [3, 3, 3]);
    assert!(types[BYTE_LEVEL_BASE + 3..].iter().all(|&t| t == 5));
    let special = |k: &str| g.get_u32(&format!("tokenizer.ggml.{k}_token_id"));
    let base = BYTE_LEVEL_BASE as u32;
    assert_eq!(special("bos"), Some(base));
    assert_eq!(special("eos"), Some(base + 2));
    assert_eq!(special("padding"), Some(base));
    assert_eq!(
        g.get("tokenizer.ggml.add_bos_token").unwrap().as_bool(),
        Some(false)
    );
    let tk = Tokenizer::from_gguf(&g).unwrap();
    // Byte b is token b. " the" = Ġ t h e → Ġt, he → Ġthe (258); " world" → Ġw, or → Ġwor (265),
    // l, d; the space before digits stands alone and Qwen2 splits digits one by one.
    let b = |c: char| c as u32;
    assert_eq!(
        tk.encode(" the world 42", false, false),
        [258, 265, b('l'), b('d'), b(' '), b('4'), b('2')]
    );
    let text = "Hello, 世界! It's <|im_end|> 2024.";
    assert_eq!(tk.decode(&tk.encode(text, false, false), false), text);

    // The runtime on the converted file vs the f64 forward of the checkpoint.
    let model = ModelVec::load(&g).unwrap();
    assert_eq!(model.config.rope_kind, RopeKind::Neox);
    for l in model.layers() {
        assert!(l.bq.is_some() && l.bk.is_some() && l.bv.is_some());
    }
    let tokens = random_tokens(40, 269, 17);
    let (want, err) = compare_with_reference(&model, &t, &c, &tokens, 1e-3);
    eprintln!("qwen2 tiny: runtime vs f64 reference, max relative logit error {err:.2e}");
    let all: Vec<usize> = (0..tokens.len()).collect();
    // Negative control: adjacent-pair RoPE on the same file must be visibly wrong.
    let mut normal = model.clone();
    normal.config.rope_kind = RopeKind::Normal;
    let bad = worst(&runtime_logits(&normal, &tokens), &want, &all);
    eprintln!("qwen2 tiny with adjacent-pair RoPE: {bad:.2e}");
    assert!(bad > 1e-2, "{bad}");
}

/// Meta's `apply_scaling` (llama-models, Llama 3.1 `model.py`) on the RoPE frequencies.
fn meta_apply_scaling(freqs: &[f64], factor: f64, low: f64, high: f64, old_ctx: f64) -> Vec<f64> {
    let low_freq_wavelen = old_ctx / low;
    let high_freq_wavelen = old_ctx / high;
    freqs
        .iter()
        .map(|&freq| {
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_freq_wavelen {
                freq
            } else if wavelen > low_freq_wavelen {
                freq / factor
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                (1.0 - smooth) * freq / factor + smooth * freq
            }
        })
        .collect()
}

#[test]
fn llama31_rope_scaling_becomes_rope_freqs() {
    let (theta, head_dim) = (500000.0, 64);
    let base = util::default_inv_freq(theta, head_dim);
    let scaled = meta_apply_scaling(&base, 8.0, 1.0, 4.0, 8192.0);
    let c = RefCfg {
        d: 128,
        n_layer: 2,
        n_head: 2,
        n_kv: 1,
        head_dim,
        ff: 96,
        vocab: 269,
        eps: 1e-5,
        inv_freq: scaled.clone(),
        qkv_bias: false,
    };
    let mut t = Tensors::new();
    let s = &mut 31u64;
    tensor(&mut t, s, "model.embed_tokens.weight", &[c.vocab, c.d], 1.0);
    tensor(&mut t, s, "lm_head.weight", &[c.vocab, c.d], 0.1);
    norm(&mut t, s, "model.norm.weight", c.d);
    llama_blocks(&mut t, s, &c);
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": c.d,
        "intermediate_size": c.ff, "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv, "vocab_size": c.vocab, "rms_norm_eps": c.eps,
        "rope_theta": theta, "tie_word_embeddings": false, "max_position_embeddings": 131072,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "bos_token_id": BYTE_LEVEL_BASE, "eos_token_id": [BYTE_LEVEL_BASE + 1, BYTE_LEVEL_BASE + 2],
        "attention_bias": false, "mlp_bias": false, "hidden_act": "silu",
    });
    let mut tok = byte_level_tokenizer(
        split_then_byte_level(LLAMA3_SPLIT),
        &["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
    );
    // Llama 3's tokenizer adds BOS through its post-processor, not tokenizer_config.json.
    tok["post_processor"] = json!({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {}});
    let tok_config = json!({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"});
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("llama31-tiny");
    write_checkpoint(
        &ck,
        &config,
        &t,
        &BTreeMap::new(),
        &[
            ("tokenizer.json", &tok),
            ("tokenizer_config.json", &tok_config),
        ],
    );
    let out = tmp.path().join("l.gguf");
    convert(&opts(ck, out.clone(), Quant::F32), &none).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_u32("llama.context_length"), Some(131072));
    assert_eq!(g.get_f32("llama.rope.freq_base"), Some(theta as f32));
    assert_eq!(g.get_str("tokenizer.ggml.pre"), Some("llama-bpe"));
    assert_eq!(
        g.get("tokenizer.ggml.add_bos_token").unwrap().as_bool(),
        Some(true)
    );
    assert_eq!(
        g.get_u32("tokenizer.ggml.eos_token_id"),
        Some(BYTE_LEVEL_BASE as u32 + 2)
    );

    // llama.cpp divides each angle by its factor: factor = unscaled / scaled frequency.
    let (shape, f) = rows(&g, "rope_freqs.weight");
    assert_eq!(shape, [head_dim as u64 / 2]);
    let want: Vec<f64> = base.iter().zip(&scaled).map(|(b, s)| b / s).collect();
    for (i, (&got, &w)) in f.iter().zip(&want).enumerate() {
        assert!(
            (got as f64 - w).abs() <= 1e-6 * w,
            "rope_freqs[{i}] = {got}, Meta's apply_scaling gives {w}"
        );
    }
    // The three regimes all occur: kept (1), fully scaled (8), and smoothly in between.
    let kept = want.iter().filter(|&&w| w == 1.0).count();
    let full = want.iter().filter(|&&w| (w - 8.0).abs() < 1e-12).count();
    let mid = want.len() - kept - full;
    eprintln!("rope_freqs: {kept} kept, {mid} smoothed, {full} scaled by 8; {f:?}");
    assert!(kept > 0 && full > 0 && mid >= 2);

    // The runtime applies them (and the converter's Q/K permutation matches its adjacent-pair
    // RoPE): its logits follow the f64 forward with Hugging Face's scaled inv_freq on the
    // unpermuted checkpoint over 256 positions, and visibly miss it without the factors.
    let model = ModelVec::load(&g).unwrap();
    assert!(model.rope_freqs.is_some());
    assert_eq!(model.config.rope_kind, RopeKind::Normal);
    let tokens = random_tokens(256, c.vocab, 5);
    let (want, err) = compare_with_reference(&model, &t, &c, &tokens, 2e-3);
    eprintln!(
        "llama 3.1 tiny: runtime vs f64 reference over 256 positions, max relative logit error {err:.2e}"
    );
    let mut plain = model.clone();
    plain.rope_freqs = None;
    let late: Vec<usize> = (128..tokens.len()).collect();
    let bad = worst(&runtime_logits(&plain, &tokens), &want, &late);
    eprintln!("llama 3.1 tiny without rope_freqs, positions 128..256: {bad:.2e}");
    assert!(bad > 10.0 * err, "without rope_freqs: {bad:.2e}");
}

/// GPT-2 as OpenAI's upload has it: no `transformer.` prefix, no lm_head, `attn.bias` (causal mask)
/// and `attn.masked_bias` buffers in every block, some as F32 and some as BOOL.
#[test]
fn gpt2_original_layout_with_buffers_converts_like_the_prefixed_one() {
    let (d, n_layer, n_pos, vocab) = (32, 2, 16, BYTE_LEVEL_BASE + 1);
    let mut t = Tensors::new();
    let s = &mut 13u64;
    tensor(&mut t, s, "wte.weight", &[vocab, d], 0.1);
    tensor(&mut t, s, "wpe.weight", &[n_pos, d], 0.02);
    norm(&mut t, s, "ln_f.weight", d);
    tensor(&mut t, s, "ln_f.bias", &[d], 0.1);
    for l in 0..n_layer {
        for (n, shape) in [
            ("ln_1.bias", vec![d]),
            ("ln_2.bias", vec![d]),
            ("attn.c_attn.weight", vec![d, 3 * d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("mlp.c_fc.weight", vec![d, 4 * d]),
            ("mlp.c_fc.bias", vec![4 * d]),
            ("mlp.c_proj.weight", vec![4 * d, d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            tensor(&mut t, s, &format!("h.{l}.{n}"), &shape, 0.2);
        }
        norm(&mut t, s, &format!("h.{l}.ln_1.weight"), d);
        norm(&mut t, s, &format!("h.{l}.ln_2.weight"), d);
    }
    let tril: Vec<bool> = (0..n_pos * n_pos).map(|i| i % n_pos <= i / n_pos).collect();
    let mut raw = BTreeMap::new();
    raw.insert(
        "h.0.attn.bias".to_string(),
        Raw {
            dtype: Dtype::F32,
            shape: vec![1, 1, n_pos, n_pos],
            bytes: tril
                .iter()
                .flat_map(|&b| (b as u8 as f32).to_le_bytes())
                .collect(),
        },
    );
    raw.insert(
        "h.1.attn.bias".to_string(),
        Raw {
            dtype: Dtype::BOOL,
            shape: vec![1, 1, n_pos, n_pos],
            bytes: tril.iter().map(|&b| b as u8).collect(),
        },
    );
    for l in 0..n_layer {
        raw.insert(
            format!("h.{l}.attn.masked_bias"),
            Raw {
                dtype: Dtype::F32,
                shape: vec![],
                bytes: (-1e4f32).to_le_bytes().to_vec(),
            },
        );
    }
    let config = json!({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": d, "n_layer": n_layer,
        "n_head": 4, "n_positions": n_pos, "n_ctx": n_pos, "vocab_size": vocab,
        "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
        "bos_token_id": vocab - 1, "eos_token_id": vocab - 1,
    });
    // GPT-2's tokenizer files: vocab.json + merges.txt, `<|endoftext|>` last.
    let tok = byte_level_tokenizer(json!(null), &["<|endoftext|>"]);
    let mut vocab_json = tok["model"]["vocab"].clone();
    vocab_json["<|endoftext|>"] = json!(vocab - 1);
    let merges: String = std::iter::once("#version: 0.2".to_string())
        .chain(util::MERGES.iter().map(|(a, b)| format!("{a} {b}")))
        .map(|l| l + "\n")
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    let openai = tmp.path().join("gpt2-openai");
    write_checkpoint(&openai, &config, &t, &raw, &[("vocab.json", &vocab_json)]);
    std::fs::write(openai.join("merges.txt"), &merges).unwrap();
    // The same weights as a Hugging Face save writes them: prefixed, no buffers.
    let prefixed: Tensors = t
        .iter()
        .map(|(n, v)| (format!("transformer.{n}"), v.clone()))
        .collect();
    let hf = tmp.path().join("gpt2-hf");
    write_checkpoint(
        &hf,
        &config,
        &prefixed,
        &BTreeMap::new(),
        &[("vocab.json", &vocab_json)],
    );
    std::fs::write(hf.join("merges.txt"), &merges).unwrap();

    let (o1, o2) = (tmp.path().join("a.gguf"), tmp.path().join("b.gguf"));
    let r = convert(&opts(openai, o1.clone(), Quant::Q8_0), &none).unwrap();
    assert_eq!(
        r.ignored,
        [
            "h.0.attn.bias",
            "h.0.attn.masked_bias",
            "h.1.attn.bias",
            "h.1.attn.masked_bias"
        ]
    );
    let r2 = convert(&opts(hf, o2.clone(), Quant::Q8_0), &none).unwrap();
    assert!(r2.ignored.is_empty());
    assert_eq!((r.tensors, r.params), (r2.tensors, r2.params));
    let (b1, b2) = (std::fs::read(&o1).unwrap(), std::fs::read(&o2).unwrap());
    let (g1, g2) = (Gguf::parse(&b1).unwrap(), Gguf::parse(&b2).unwrap());
    let names: Vec<&str> = g1.tensors().map(|t| t.name).collect();
    assert_eq!(names, g2.tensors().map(|t| t.name).collect::<Vec<_>>());
    for (a, b) in g1.tensors().zip(g2.tensors()) {
        assert_eq!((a.ty, a.shape()), (b.ty, b.shape()), "{}", a.name);
        assert_eq!(a.data, b.data, "{}", a.name);
    }
    assert!(g1.tensor("output.weight").is_none());
    assert_eq!(g1.get_u32("gpt2.block_count"), Some(n_layer as u32));
    assert_eq!(
        rows(&g1, "blk.1.attn_qkv.bias").1,
        t["h.1.attn.c_attn.bias"].1
    );
    assert_eq!(g1.get_str("tokenizer.ggml.pre"), Some("gpt-2"));
    assert_eq!(
        g1.get_u32("tokenizer.ggml.eos_token_id"),
        Some(vocab as u32 - 1)
    );
    // Runs: same logits from both files.
    let m1 = ModelVec::load(&g1).unwrap();
    let tokens = random_tokens(8, vocab, 3);
    let l1 = runtime_logits(&m1, &tokens);
    assert_eq!(l1, runtime_logits(&ModelVec::load(&g2).unwrap(), &tokens));
    assert!(l1.iter().flatten().all(|x| x.is_finite()));
}
