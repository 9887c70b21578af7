//! SentencePiece-style tokenizer.json (Llama 2, TinyLlama: BPE with byte fallback) end to end.
//!
//! llama.cpp's vocab-only `ggml-vocab-llama-spm.gguf` holds Llama's SentencePiece model (pieces,
//! scores, types). From it we build the tokenizer.json transformers' `LlamaConverter` would write
//! (as scripts/reference/spm_tokenizer_json.py does; that script also shows the Hugging Face
//! `tokenizers` library reproduces llama.cpp's test vectors with it), convert a tiny random llama
//! checkpoint that uses it, and require that the tokenizer in the converted GGUF tokenizes
//! llama.cpp's test strings (`.inp`) to exactly llama.cpp's ids (`.out`).

mod util;

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::tokenizer::Tokenizer;
use edgelm_converter::{convert, Quant};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use util::{load, models_dir, none, opts, tensor, write_checkpoint, Tensors};

fn vocab_path(name: &str) -> PathBuf {
    models_dir().join("vocab").join(name)
}

/// (input, expected ids) pairs, split as llama.cpp's test-tokenizer-0 does.
fn read_tests() -> Vec<(String, Vec<u32>)> {
    let inp = load(&vocab_path("ggml-vocab-llama-spm.gguf.inp"));
    let out = load(&vocab_path("ggml-vocab-llama-spm.gguf.out"));
    let inp = String::from_utf8(inp).unwrap();
    let out = String::from_utf8(out).unwrap();
    let mut inputs: Vec<String> = inp
        .split("\n__ggml_vocab_test__\n")
        .map(str::to_string)
        .collect();
    // The separator after the last test ends it; it does not start another.
    if inputs.last().is_some_and(String::is_empty) {
        inputs.pop();
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(inputs.len(), outputs.len());
    assert!(inputs.len() > 30, "too few tests ({})", inputs.len());
    inputs.into_iter().zip(outputs).collect()
}

/// The vocab file's pieces, scores and types.
struct Spm {
    pieces: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i64>,
}

fn read_spm(g: &Gguf<'_>) -> Spm {
    let arr = |k: &str| g.get(k).unwrap().as_array().unwrap();
    Spm {
        pieces: arr("tokenizer.ggml.tokens")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        scores: arr("tokenizer.ggml.scores")
            .iter()
            .map(|v| v.as_f32().unwrap())
            .collect(),
        types: arr("tokenizer.ggml.token_type")
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect(),
    }
}

/// transformers' `SentencePieceExtractor.extract` with `LlamaConverter`'s scores (0 for the first
/// three pieces): every split of a piece into two pieces of the vocab, splits of one piece by
/// (left id, right id), all of them stably sorted by the merged piece's score, highest first.
fn hf_merges(spm: &Spm) -> Vec<(String, String)> {
    let ids: HashMap<&str, usize> = spm
        .pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let score = |i: usize| if i < 3 { 0.0 } else { spm.scores[i] };
    let mut merges: Vec<(usize, usize, usize)> = Vec::new();
    for (i, piece) in spm.pieces.iter().enumerate() {
        let mut local: Vec<(usize, usize, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(b, _)| {
                let (l, r) = piece.split_at(b);
                Some((*ids.get(l)?, *ids.get(r)?, i))
            })
            .collect();
        local.sort();
        merges.extend(local);
    }
    merges.sort_by(|a, b| score(b.2).partial_cmp(&score(a.2)).unwrap());
    merges
        .into_iter()
        .map(|(l, r, _)| (spm.pieces[l].clone(), spm.pieces[r].clone()))
        .collect()
}

/// The tokenizer.json and tokenizer_config.json of a Llama 2 checkpoint.
fn hf_tokenizer(spm: &Spm) -> (Value, Value) {
    let vocab: serde_json::Map<String, Value> = spm
        .pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), json!(i)))
        .collect();
    let merges: Vec<Value> = hf_merges(spm)
        .into_iter()
        .map(|(a, b)| json!([a, b]))
        .collect();
    let added = |i: usize| {
        json!({"id": i, "content": spm.pieces[i], "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(0), added(1), added(2)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    let config = json!({
        "add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": null, "legacy": true, "model_max_length": 2048,
        "tokenizer_class": "LlamaTokenizer",
    });
    (tok, config)
}

const VOCAB: usize = 32000;
const D: usize = 16;
const FF: usize = 32;

/// A one-block llama with Llama 2's vocabulary size and the given tokenizer files.
fn tiny_llama(dir: &std::path::Path, tok: &Value, tok_config: &Value) {
    let mut t = Tensors::new();
    let s = &mut 3u64;
    tensor(&mut t, s, "model.embed_tokens.weight", &[VOCAB, D], 0.5);
    tensor(&mut t, s, "lm_head.weight", &[VOCAB, D], 0.5);
    tensor(&mut t, s, "model.norm.weight", &[D], 1.0);
    for (n, shape) in [
        ("input_layernorm.weight", vec![D]),
        ("post_attention_layernorm.weight", vec![D]),
        ("self_attn.q_proj.weight", vec![D, D]),
        ("self_attn.k_proj.weight", vec![D, D]),
        ("self_attn.v_proj.weight", vec![D, D]),
        ("self_attn.o_proj.weight", vec![D, D]),
        ("mlp.gate_proj.weight", vec![FF, D]),
        ("mlp.up_proj.weight", vec![FF, D]),
        ("mlp.down_proj.weight", vec![D, FF]),
    ] {
        tensor(&mut t, s, &format!("model.layers.0.{n}"), &shape, 0.5);
    }
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
        "intermediate_size": FF, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2, "vocab_size": VOCAB, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "max_position_embeddings": 2048,
        "bos_token_id": 1, "eos_token_id": 2,
    });
    write_checkpoint(
        dir,
        &config,
        &t,
        &BTreeMap::new(),
        &[
            ("tokenizer.json", tok),
            ("tokenizer_config.json", tok_config),
        ],
    );
}

#[test]
fn llama_spm_tokenizer_json_reproduces_llama_cpp_vectors() {
    let vocab_bytes = load(&vocab_path("ggml-vocab-llama-spm.gguf"));
    let vg = Gguf::parse(&vocab_bytes).unwrap();
    let spm = read_spm(&vg);
    assert_eq!(spm.pieces.len(), VOCAB);
    let (tok, tok_config) = hf_tokenizer(&spm);
    // Pinned so that a change in the extraction shows (Llama 2's tokenizer.json has this many too).
    assert_eq!(tok["model"]["merges"].as_array().unwrap().len(), 61249);
    let dump = std::env::var_os("EDGELM_DUMP_SPM").map(PathBuf::from);
    if let Some(d) = &dump {
        // For `scripts/reference/spm_tokenizer_json.py --compare/--llama-tokenize`.
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("tokenizer.json"), tok.to_string()).unwrap();
    }

    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("tinyllama-spm");
    tiny_llama(&ck, &tok, &tok_config);
    let out = tmp.path().join("t.gguf");
    convert(&opts(ck, out.clone(), Quant::F32), &none).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    if let Some(d) = &dump {
        std::fs::write(d.join("converted.gguf"), &bytes).unwrap();
    }

    // Metadata as llama.cpp's own conversion of Llama 2 has it.
    assert_eq!(g.get_str("tokenizer.ggml.model"), Some("llama"));
    assert_eq!(g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()), None);
    for k in ["bos_token_id", "eos_token_id", "unknown_token_id"] {
        let k = format!("tokenizer.ggml.{k}");
        assert_eq!(g.get_u32(&k), vg.get_u32(&k), "{k}");
    }
    assert_eq!(g.get_u32("tokenizer.ggml.bos_token_id"), Some(1));
    assert_eq!(g.get_u32("tokenizer.ggml.eos_token_id"), Some(2));
    assert_eq!(g.get_u32("tokenizer.ggml.unknown_token_id"), Some(0));
    let flag = |g: &Gguf<'_>, k: &str| g.get(k).and_then(|v| v.as_bool());
    assert_eq!(flag(&g, "tokenizer.ggml.add_bos_token"), Some(true));
    assert_eq!(flag(&g, "tokenizer.ggml.add_eos_token"), Some(false));
    let conv = read_spm(&g);
    assert_eq!(conv.pieces, spm.pieces);
    // UNKNOWN for <unk>, CONTROL for <s> </s>, BYTE for the 256 <0xXX>, NORMAL for the rest.
    assert_eq!(conv.types, spm.types);
    let count = |t: i64| conv.types.iter().filter(|&&x| x == t).count();
    assert_eq!((count(2), count(3), count(6), count(1)), (1, 2, 256, 31741));
    for b in 0..256 {
        assert_eq!(conv.types[3 + b], 6, "{}", conv.pieces[3 + b]);
        assert_eq!(conv.pieces[3 + b], format!("<0x{b:02X}>"));
    }

    // Derived scores order the pieces a merge can make exactly as SentencePiece's scores do.
    let made: Vec<usize> = (3..VOCAB)
        .filter(|&i| conv.types[i] == 1 && conv.pieces[i].chars().count() > 1)
        .collect();
    let mut by_orig = made.clone();
    by_orig.sort_by(|&a, &b| spm.scores[b].total_cmp(&spm.scores[a]).then(a.cmp(&b)));
    let mut by_conv = made.clone();
    by_conv.sort_by(|&a, &b| conv.scores[b].total_cmp(&conv.scores[a]).then(a.cmp(&b)));
    assert_eq!(by_orig, by_conv);

    let tk = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!((tk.bos(), tk.eos(), tk.add_bos()), (Some(1), Some(2), true));
    let tests = read_tests();
    let mut failures = Vec::new();
    for (text, want) in &tests {
        let got = tk.encode(text, false, false);
        if &got != want {
            failures.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
        let mut with_bos = vec![1];
        with_bos.extend(want);
        assert_eq!(tk.encode(text, true, false), with_bos, "{text:?} with BOS");
    }
    eprintln!(
        "llama-spm via tokenizer.json → GGUF: {}/{} llama.cpp test vectors equal",
        tests.len() - failures.len(),
        tests.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} tests differ from llama.cpp:\n{}",
        failures.len(),
        tests.len(),
        failures.join("\n")
    );

    // Negative control: the same vocab with the merge order reversed must tokenize differently,
    // or the vectors could not have caught a wrong score derivation.
    let mut rev = tok.clone();
    rev["model"]["merges"].as_array_mut().unwrap().reverse();
    let ck2 = tmp.path().join("reversed");
    tiny_llama(&ck2, &rev, &tok_config);
    let out2 = tmp.path().join("r.gguf");
    convert(&opts(ck2, out2.clone(), Quant::F32), &none).unwrap();
    let bytes2 = std::fs::read(&out2).unwrap();
    let tk2 = Tokenizer::from_gguf(&Gguf::parse(&bytes2).unwrap()).unwrap();
    let differ = tests
        .iter()
        .filter(|(text, want)| &tk2.encode(text, false, false) != want)
        .count();
    eprintln!("with the merges reversed: {differ} tests differ");
    assert!(differ >= 10, "only {differ} differ");

    // The converted model loads and runs.
    let model = ModelVec::load(&g).unwrap();
    assert_eq!(model.config.n_vocab, VOCAB);
    let logits = util::runtime_logits(&model, &tk.encode("Hello world", true, false));
    assert!(logits.iter().flatten().all(|x| x.is_finite()));
}
