//! llama.cpp's tokenizer test vectors (`tests/test-tokenizer-0`): for each vocab-only GGUF, the
//! `.inp` strings must tokenize to exactly the ids in `.out`. Like test-tokenizer-0 we tokenize
//! with add_special = false and parse_special = false.
//!
//! The files come from llama.cpp's `models/` folder (shipped in the llama-cpp-python sdist) and
//! are installed by `scripts/fetch-models` into `$EDGELM_MODELS/vocab/`.
#![cfg(feature = "std")]

mod tokenizer_util;

use edgelm::gguf::Gguf;
use edgelm::tokenizer::Tokenizer;
use tokenizer_util::{load, vocab_path};

/// (input, expected ids) pairs, split exactly as test-tokenizer-0's `read_tests` does.
fn read_tests(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = load(&vocab_path(&format!("ggml-vocab-{name}.gguf.inp")));
    let out = load(&vocab_path(&format!("ggml-vocab-{name}.gguf.out")));
    let inp = String::from_utf8(inp).expect("the .inp file is UTF-8");
    let out = String::from_utf8(out).expect("the .out file is UTF-8");

    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(sep) {
            Some(i) => {
                inputs.push(inp[pos..pos + i].to_string());
                pos += i + sep.len();
            }
            None => {
                inputs.push(inp[pos..].to_string());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("ids are integers"))
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree on the number of tests"
    );
    assert!(
        inputs.len() > 30,
        "{name}: too few tests ({})",
        inputs.len()
    );
    inputs.into_iter().zip(outputs).collect()
}

fn check(name: &str) {
    let bytes = load(&vocab_path(&format!("ggml-vocab-{name}.gguf")));
    let g = Gguf::parse(&bytes).expect("vocab file parses");
    let tok = Tokenizer::from_gguf(&g).expect("tokenizer loads");
    let mut failures = Vec::new();
    let tests = read_tests(name);
    for (text, want) in &tests {
        let got = tok.encode(text, false, false);
        if &got != want {
            failures.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} tests differ from llama.cpp:\n{}",
        failures.len(),
        tests.len(),
        failures.join("\n")
    );
}

#[test]
fn gpt2() {
    check("gpt-2");
}

#[test]
fn llama_spm() {
    check("llama-spm");
}

#[test]
fn qwen2() {
    check("qwen2");
}

#[test]
fn llama_bpe() {
    check("llama-bpe");
}

// The same vectors for other vocabularies whose pre-tokenizers share the supported code paths:
// StarCoder, Refact and Command-R use SmolLM's list; MPT GPT-2's; Phi-3 is SPM with llama.cpp's
// right-strip rule around its special tokens. scripts/fetch-models installs them with the others.

#[test]
fn starcoder() {
    check("starcoder");
}

#[test]
fn refact() {
    check("refact");
}

#[test]
fn command_r() {
    check("command-r");
}

#[test]
fn mpt() {
    check("mpt");
}

#[test]
fn phi3() {
    check("phi-3");
}
