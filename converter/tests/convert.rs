//! The converter on tiny synthetic checkpoints: layout round trips (permutation, Conv1D transpose,
//! LoRA merge, adapter export, checksums) and every bad-input case the converter must refuse clearly.

use edgelm::gguf::Gguf;
use edgelm::quant::{dequantize_row, GgmlType};
use edgelm_converter::{convert, convert_lora, ConvertLoraOptions, ConvertOptions, Quant};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const VOCAB: usize = 40;

/// A deterministic pseudo-random f32 in [-1, 1).
fn rnd(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn tensor(t: &mut Tensors, seed: &mut u64, name: &str, shape: &[usize]) {
    let n = shape.iter().product();
    let v = (0..n).map(|_| rnd(seed) * 0.5).collect();
    t.insert(name.to_string(), (shape.to_vec(), v));
}

fn write_safetensors(path: &Path, t: &Tensors) {
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
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize_to_file(views, None, path).unwrap();
}

/// A GPT-2 byte-level tokenizer.json over the first VOCAB printable bytes.
fn tokenizer_json() -> Value {
    let vocab: serde_json::Map<String, Value> = (0..VOCAB - 1)
        .map(|i| {
            (
                ((b'a' + (i % 26) as u8) as char).to_string() + &"x".repeat(i / 26),
                json!(i),
            )
        })
        .collect();
    json!({
        "model": {"type": "BPE", "vocab": vocab, "merges": ["a x"]},
        "added_tokens": [{"id": VOCAB - 1, "content": "<|endoftext|>", "special": true}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    })
}

struct Tiny {
    dir: tempfile::TempDir,
    tensors: Tensors,
}

impl Tiny {
    fn path(&self) -> PathBuf {
        self.dir.path().join("model")
    }

    fn write(&self, config: &Value) {
        let m = self.path();
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("config.json"), config.to_string()).unwrap();
        std::fs::write(m.join("tokenizer.json"), tokenizer_json().to_string()).unwrap();
        write_safetensors(&m.join("model.safetensors"), &self.tensors);
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

const D: usize = 64;
const FF: usize = 96;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;

fn llama_config() -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": D, "intermediate_size": FF,
        "num_hidden_layers": 2, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 128,
    })
}

fn tiny_llama() -> Tiny {
    let mut t = Tensors::new();
    let s = &mut 7u64;
    let kv = D / HEADS * KV_HEADS;
    tensor(&mut t, s, "model.embed_tokens.weight", &[VOCAB, D]);
    tensor(&mut t, s, "model.norm.weight", &[D]);
    for l in 0..2 {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        for (n, shape) in [
            ("input_layernorm.weight", vec![D]),
            ("post_attention_layernorm.weight", vec![D]),
            ("self_attn.q_proj.weight", vec![D, D]),
            ("self_attn.k_proj.weight", vec![kv, D]),
            ("self_attn.v_proj.weight", vec![kv, D]),
            ("self_attn.o_proj.weight", vec![D, D]),
            ("mlp.gate_proj.weight", vec![FF, D]),
            ("mlp.up_proj.weight", vec![FF, D]),
            ("mlp.down_proj.weight", vec![D, FF]),
        ] {
            tensor(&mut t, s, &p(n), &shape);
        }
    }
    let tiny = Tiny {
        dir: tempfile::tempdir().unwrap(),
        tensors: t,
    };
    tiny.write(&llama_config());
    tiny
}

fn gpt2_config() -> Value {
    json!({
        "architectures": ["GPT2LMHeadModel"], "n_embd": D, "n_layer": 1, "n_head": HEADS,
        "n_positions": 32, "vocab_size": VOCAB, "layer_norm_epsilon": 1e-5, "activation_function": "gelu",
    })
}

fn tiny_gpt2() -> Tiny {
    let mut t = Tensors::new();
    let s = &mut 11u64;
    tensor(&mut t, s, "transformer.wte.weight", &[VOCAB, D]);
    tensor(&mut t, s, "transformer.wpe.weight", &[32, D]);
    tensor(&mut t, s, "transformer.ln_f.weight", &[D]);
    tensor(&mut t, s, "transformer.ln_f.bias", &[D]);
    for (n, shape) in [
        ("ln_1.weight", vec![D]),
        ("ln_1.bias", vec![D]),
        ("ln_2.weight", vec![D]),
        ("ln_2.bias", vec![D]),
        ("attn.c_attn.weight", vec![D, 3 * D]),
        ("attn.c_attn.bias", vec![3 * D]),
        ("attn.c_proj.weight", vec![D, D]),
        ("attn.c_proj.bias", vec![D]),
        ("mlp.c_fc.weight", vec![D, 4 * D]),
        ("mlp.c_fc.bias", vec![4 * D]),
        ("mlp.c_proj.weight", vec![4 * D, D]),
        ("mlp.c_proj.bias", vec![D]),
        ("attn.bias", vec![1, 1, 32, 32]),
    ] {
        tensor(&mut t, s, &format!("transformer.h.0.{n}"), &shape);
    }
    let tiny = Tiny {
        dir: tempfile::tempdir().unwrap(),
        tensors: t,
    };
    tiny.write(&gpt2_config());
    tiny
}

fn opts(input: PathBuf, output: PathBuf, quant: Quant) -> ConvertOptions {
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

fn none(_: usize, _: usize, _: &str) {}

/// Tensor `name` of a GGUF file as f32 rows.
fn rows(g: &Gguf<'_>, name: &str) -> (Vec<u64>, Vec<f32>) {
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

#[test]
fn llama_round_trip_permutes_q_and_k_only() {
    let tiny = tiny_llama();
    let out = tiny.out("t.gguf");
    let r = convert(&opts(tiny.path(), out.clone(), Quant::F32), &none).unwrap();
    assert_eq!(r.arch, "llama");
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_u32("llama.block_count"), Some(2));
    assert_eq!(
        g.get_u32("llama.attention.head_count_kv"),
        Some(KV_HEADS as u32)
    );
    assert_eq!(g.get_str("tokenizer.ggml.pre"), Some("gpt-2"));
    // Byte-level BPE with no named specials: `<|endoftext|>` is BOS and EOS, as in GPT-2.
    assert_eq!(
        g.get_u32("tokenizer.ggml.eos_token_id"),
        Some(VOCAB as u32 - 1)
    );
    assert!(
        g.tensor("output.weight").is_none(),
        "tied head is not duplicated"
    );

    let (shape, emb) = rows(&g, "token_embd.weight");
    assert_eq!(shape, [D as u64, VOCAB as u64]);
    assert_eq!(emb, tiny.tensors["model.embed_tokens.weight"].1);
    let (_, v) = rows(&g, "blk.1.attn_v.weight");
    assert_eq!(v, tiny.tensors["model.layers.1.self_attn.v_proj.weight"].1);
    // llama.cpp's permute: within each head, rows [0..half) and [half..2·half) interleave.
    let hd = D / HEADS;
    for (name, hf, heads) in [
        (
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
            HEADS,
        ),
        (
            "blk.0.attn_k.weight",
            "model.layers.0.self_attn.k_proj.weight",
            KV_HEADS,
        ),
    ] {
        let (_, got) = rows(&g, name);
        let src = &tiny.tensors[hf].1;
        for h in 0..heads {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    let dst = h * hd + 2 * i + j;
                    let from = h * hd + j * hd / 2 + i;
                    assert_eq!(
                        got[dst * D..(dst + 1) * D],
                        src[from * D..(from + 1) * D],
                        "{name} row {dst}"
                    );
                }
            }
        }
    }
}

#[test]
fn checksums_cover_every_tensor() {
    let tiny = tiny_llama();
    let out = tiny.out("t.gguf");
    convert(&opts(tiny.path(), out.clone(), Quant::Q8_0), &none).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_str("edgelm.checksum.algorithm"), Some("xxh3_64"));
    let sums = g
        .get("edgelm.checksum.tensors")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(sums.len(), g.n_tensors());
    for (t, s) in g.tensors().zip(sums.iter()) {
        assert_eq!(
            s.as_u64(),
            Some(xxhash_rust::xxh3::xxh3_64(t.data)),
            "{}",
            t.name
        );
    }
    assert_eq!(g.get_str("edgelm.quant"), Some("q8_0"));
    assert_eq!(
        g.tensor("blk.0.ffn_down.weight").unwrap().ty,
        GgmlType::Q8_0
    );
    assert_eq!(
        g.tensor("blk.0.attn_norm.weight").unwrap().ty,
        GgmlType::F32
    );
}

#[test]
fn gpt2_conv1d_weights_are_transposed() {
    let tiny = tiny_gpt2();
    let out = tiny.out("g.gguf");
    let r = convert(&opts(tiny.path(), out.clone(), Quant::F32), &none).unwrap();
    assert_eq!(r.ignored, ["transformer.h.0.attn.bias"]);
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_str("edgelm.activation_function"), Some("gelu"));
    assert_eq!(g.get_u32("gpt2.context_length"), Some(32));
    let (shape, qkv) = rows(&g, "blk.0.attn_qkv.weight");
    assert_eq!(shape, [D as u64, 3 * D as u64]);
    let src = &tiny.tensors["transformer.h.0.attn.c_attn.weight"].1;
    for r in 0..3 * D {
        for c in 0..D {
            assert_eq!(qkv[r * D + c], src[c * 3 * D + r]);
        }
    }
    let (shape, down) = rows(&g, "blk.0.ffn_down.weight");
    assert_eq!(shape, [4 * D as u64, D as u64]);
    assert_eq!(
        down[1],
        tiny.tensors["transformer.h.0.mlp.c_proj.weight"].1[D]
    );
    assert!(g.tensor("position_embd.weight").is_some());
    assert_eq!(
        rows(&g, "output_norm.bias").1,
        tiny.tensors["transformer.ln_f.bias"].1
    );
}

/// A PEFT adapter for the tiny llama on q_proj and down_proj.
fn tiny_adapter(tiny: &Tiny, target_layers: usize) -> (PathBuf, Tensors) {
    let dir = tiny.dir.path().join("adapter");
    std::fs::create_dir_all(&dir).unwrap();
    let r = 4;
    let mut t = Tensors::new();
    let s = &mut 99u64;
    for l in 0..target_layers {
        let p = |m: &str, w: &str| format!("base_model.model.model.layers.{l}.{m}.{w}.weight");
        tensor(&mut t, s, &p("self_attn.q_proj", "lora_A"), &[r, D]);
        tensor(&mut t, s, &p("self_attn.q_proj", "lora_B"), &[D, r]);
        tensor(&mut t, s, &p("mlp.down_proj", "lora_A"), &[r, FF]);
        tensor(&mut t, s, &p("mlp.down_proj", "lora_B"), &[D, r]);
    }
    write_safetensors(&dir.join("adapter_model.safetensors"), &t);
    let cfg = json!({"peft_type": "LORA", "r": r, "lora_alpha": 8, "target_modules": ["q_proj", "down_proj"]});
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
    (dir, t)
}

/// W + scale·(alpha/r)·B·A for an `[out, in]` weight.
fn merged(
    w: &[f32],
    a: &[f32],
    b: &[f32],
    out: usize,
    inp: usize,
    r: usize,
    scale: f32,
) -> Vec<f32> {
    let mut m = w.to_vec();
    for o in 0..out {
        for i in 0..inp {
            let mut s = 0f32;
            for k in 0..r {
                s += b[o * r + k] * a[k * inp + i];
            }
            m[o * inp + i] += scale * s;
        }
    }
    m
}

#[test]
fn lora_merge_adds_scaled_low_rank_product() {
    let tiny = tiny_llama();
    let (adapter, at) = tiny_adapter(&tiny, 2);
    let out = tiny.out("m.gguf");
    let mut o = opts(tiny.path(), out.clone(), Quant::F32);
    o.lora = Some(adapter);
    o.lora_scale = 0.5;
    let r = convert(&o, &none).unwrap();
    assert_eq!(r.lora_tensors, 4);
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let key = |m: &str, w: &str| format!("base_model.model.model.layers.1.{m}.{w}.weight");
    let (_, down) = rows(&g, "blk.1.ffn_down.weight");
    let want = merged(
        &tiny.tensors["model.layers.1.mlp.down_proj.weight"].1,
        &at[&key("mlp.down_proj", "lora_A")].1,
        &at[&key("mlp.down_proj", "lora_B")].1,
        D,
        FF,
        4,
        0.5 * 8.0 / 4.0,
    );
    for (x, y) in down.iter().zip(&want) {
        assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
    }
    // Q is merged before the permutation: the permuted rows of the merged weight.
    let (_, q) = rows(&g, "blk.1.attn_q.weight");
    let want = merged(
        &tiny.tensors["model.layers.1.self_attn.q_proj.weight"].1,
        &at[&key("self_attn.q_proj", "lora_A")].1,
        &at[&key("self_attn.q_proj", "lora_B")].1,
        D,
        D,
        4,
        0.5 * 8.0 / 4.0,
    );
    let hd = D / HEADS;
    let from = hd / 2; // row 1 of head 0 comes from row hd/2
    for c in 0..D {
        assert!((q[D + c] - want[from * D + c]).abs() <= 1e-5);
    }
    assert_eq!(g.get_str("edgelm.lora.source"), Some("adapter"));
}

#[test]
fn convert_lora_writes_llama_cpp_adapter_with_permuted_b() {
    let tiny = tiny_llama();
    let (adapter, at) = tiny_adapter(&tiny, 2);
    let base = tiny.out("base.gguf");
    convert(&opts(tiny.path(), base.clone(), Quant::Q8_0), &none).unwrap();
    let out = tiny.out("lora.gguf");
    let r = convert_lora(
        &ConvertLoraOptions {
            adapter,
            base,
            output: out.clone(),
            quant: Quant::F32,
            force: false,
        },
        &none,
    )
    .unwrap();
    assert_eq!(r.lora_tensors, 4);
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_str("general.type"), Some("adapter"));
    assert_eq!(g.get_str("adapter.type"), Some("lora"));
    assert_eq!(g.get_str("general.architecture"), Some("llama"));
    assert_eq!(g.get_f32("adapter.lora.alpha"), Some(8.0));
    let (shape, a) = rows(&g, "blk.0.attn_q.weight.lora_a");
    assert_eq!(shape, [D as u64, 4]);
    let key = |w: &str| format!("base_model.model.model.layers.0.self_attn.q_proj.{w}.weight");
    assert_eq!(a, at[&key("lora_A")].1);
    let (shape, b) = rows(&g, "blk.0.attn_q.weight.lora_b");
    assert_eq!(shape, [4, D as u64]);
    let hd = D / HEADS;
    let src = &at[&key("lora_B")].1;
    assert_eq!(
        b[4..8],
        src[hd / 2 * 4..hd / 2 * 4 + 4],
        "B rows follow Q's permutation"
    );
    let (_, down_b) = rows(&g, "blk.0.ffn_down.weight.lora_b");
    assert_eq!(
        down_b,
        at["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].1
    );
}

fn err(o: &ConvertOptions) -> String {
    let e = convert(o, &none).expect_err("must fail").to_string();
    assert!(!o.output.exists(), "no output after a failure: {e}");
    let leftovers: Vec<_> = std::fs::read_dir(o.output.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    e
}

#[test]
fn bad_inputs_give_errors_naming_file_and_tensor() {
    let tiny = tiny_llama();
    let out = tiny.out("x.gguf");

    let e = err(&opts(tiny.dir.path().join("nope"), out.clone(), Quant::F32));
    assert!(e.contains("nope") && e.contains("missing"), "{e}");

    // Shape disagreeing with config.json.
    let mut cfg = llama_config();
    cfg["intermediate_size"] = json!(FF + 32);
    std::fs::write(tiny.path().join("config.json"), cfg.to_string()).unwrap();
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(
        e.contains("model.layers.0.mlp.gate_proj.weight") && e.contains("model.safetensors"),
        "{e}"
    );

    // Unknown architecture lists the supported ones.
    cfg = llama_config();
    cfg["architectures"] = json!(["MambaForCausalLM"]);
    std::fs::write(tiny.path().join("config.json"), cfg.to_string()).unwrap();
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(
        e.contains("MambaForCausalLM") && e.contains("LlamaForCausalLM"),
        "{e}"
    );
    std::fs::write(tiny.path().join("config.json"), llama_config().to_string()).unwrap();

    // Unsupported rope scaling is refused rather than ignored.
    cfg = llama_config();
    cfg["rope_scaling"] = json!({"type": "yarn", "factor": 4.0});
    std::fs::write(tiny.path().join("config.json"), cfg.to_string()).unwrap();
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(e.contains("yarn"), "{e}");
    std::fs::write(tiny.path().join("config.json"), llama_config().to_string()).unwrap();

    // NaN in the last tensor written: the run fails midway and leaves nothing behind.
    let mut t = tiny.tensors.clone();
    t.get_mut("model.norm.weight").unwrap().1[3] = f32::NAN;
    write_safetensors(&tiny.path().join("model.safetensors"), &t);
    let e = err(&opts(tiny.path(), out.clone(), Quant::Q8_0));
    assert!(
        e.contains("model.norm.weight") && e.contains("NaN") && e.contains("element 3"),
        "{e}"
    );

    // Unsupported dtype.
    let i32s: Vec<u8> = vec![0; D * 4];
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tiny
        .tensors
        .iter()
        .filter(|(n, _)| n.as_str() != "model.norm.weight")
        .map(|(n, (s, v))| {
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    for (n, s, b) in &bytes {
        views.push((
            n.clone(),
            TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
        ));
    }
    views.push((
        "model.norm.weight".into(),
        TensorView::new(Dtype::I32, vec![D], &i32s).unwrap(),
    ));
    safetensors::tensor::serialize_to_file(views, None, &tiny.path().join("model.safetensors"))
        .unwrap();
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(e.contains("model.norm.weight") && e.contains("I32"), "{e}");

    // Missing tensor.
    let mut t = tiny.tensors.clone();
    t.remove("model.layers.1.mlp.up_proj.weight");
    write_safetensors(&tiny.path().join("model.safetensors"), &t);
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(
        e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("not found"),
        "{e}"
    );

    // A tensor that belongs to no llama block means config.json is wrong.
    let mut t = tiny.tensors.clone();
    t.insert(
        "model.layers.2.mlp.up_proj.weight".into(),
        (vec![2], vec![0.0; 2]),
    );
    write_safetensors(&tiny.path().join("model.safetensors"), &t);
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(e.contains("model.layers.2.mlp.up_proj.weight"), "{e}");

    // Truncated safetensors.
    write_safetensors(&tiny.path().join("model.safetensors"), &tiny.tensors);
    let full = std::fs::read(tiny.path().join("model.safetensors")).unwrap();
    std::fs::write(
        tiny.path().join("model.safetensors"),
        &full[..full.len() / 2],
    )
    .unwrap();
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(
        e.contains("model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );
    std::fs::write(tiny.path().join("model.safetensors"), &full).unwrap();

    // Missing tokenizer.
    std::fs::rename(
        tiny.path().join("tokenizer.json"),
        tiny.path().join("tok.bak"),
    )
    .unwrap();
    let e = err(&opts(tiny.path(), out.clone(), Quant::F32));
    assert!(e.contains("tokenizer"), "{e}");
    std::fs::rename(
        tiny.path().join("tok.bak"),
        tiny.path().join("tokenizer.json"),
    )
    .unwrap();

    // Unknown quant name.
    let e = Quant::parse("q3_xl").unwrap_err().to_string();
    assert!(e.contains("q4_k_m"), "{e}");

    // An existing output needs --force.
    std::fs::write(&out, b"keep me").unwrap();
    let e = convert(&opts(tiny.path(), out.clone(), Quant::F32), &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let mut o = opts(tiny.path(), out.clone(), Quant::F32);
    o.force = true;
    convert(&o, &none).unwrap();
    assert!(Gguf::parse(&std::fs::read(&out).unwrap()).is_ok());
}

#[test]
fn adapters_for_another_model_are_refused() {
    let tiny = tiny_llama();
    let out = tiny.out("x.gguf");
    // Layer 2 does not exist in a 2-block model.
    let (adapter, _) = tiny_adapter(&tiny, 3);
    let mut o = opts(tiny.path(), out.clone(), Quant::F32);
    o.lora = Some(adapter.clone());
    let e = err(&o);
    assert!(e.contains("model.layers.2") && e.contains("adapter"), "{e}");

    // Rank-4 factors against a base of another width.
    let (adapter, mut at) = tiny_adapter(&tiny, 1);
    let k = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight".to_string();
    at.insert(k.clone(), (vec![4, FF + 1], vec![0.1; 4 * (FF + 1)]));
    write_safetensors(&adapter.join("adapter_model.safetensors"), &at);
    o.lora = Some(adapter);
    let e = err(&o);
    assert!(e.contains("lora_A") && e.contains("down_proj"), "{e}");

    // A GPT-2 adapter for a llama base, at convert-lora time.
    let base = tiny.out("base.gguf");
    convert(&opts(tiny.path(), base.clone(), Quant::F32), &none).unwrap();
    let gdir = tiny.dir.path().join("gpt2-adapter");
    std::fs::create_dir_all(&gdir).unwrap();
    let mut t = Tensors::new();
    let s = &mut 5u64;
    tensor(
        &mut t,
        s,
        "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
        &[4, D],
    );
    tensor(
        &mut t,
        s,
        "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
        &[3 * D, 4],
    );
    write_safetensors(&gdir.join("adapter_model.safetensors"), &t);
    std::fs::write(
        gdir.join("adapter_config.json"),
        json!({"r": 4, "lora_alpha": 8}).to_string(),
    )
    .unwrap();
    let e = convert_lora(
        &ConvertLoraOptions {
            adapter: gdir,
            base,
            output: tiny.out("a.gguf"),
            quant: Quant::F32,
            force: false,
        },
        &none,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c_attn") && e.contains("llama"), "{e}");
    assert!(!tiny.out("a.gguf").exists());
}
