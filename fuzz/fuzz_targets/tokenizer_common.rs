//! Real tokenizers for the tokenizer targets, read once from the vocabulary files
//! `scripts/fetch-models vocab` caches (llama.cpp's test vocabularies).

use edgelm::gguf::Gguf;
use edgelm::tokenizer::Tokenizer;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The vocabularies: SPM (llama, phi-3), and byte-level BPE with each pre-tokenizer family
/// (GPT-2, Llama 3, Qwen2, StarCoder/SmolLM). Qwen2's does no clean-up of spaces, so
/// decode(encode(s)) == s must hold for it exactly.
pub const VOCABS: [&str; 6] = [
    "llama-spm",
    "gpt-2",
    "llama-bpe",
    "qwen2",
    "starcoder",
    "phi-3",
];

fn models_dir() -> PathBuf {
    match std::env::var_os("EDGELM_MODELS") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/edgelm/models")
        }
    }
}

/// `(name, tokenizer)` for every vocabulary; panics at start-up (not per input) when a file is
/// missing, naming the fix.
pub fn tokenizers() -> &'static [(&'static str, Tokenizer)] {
    static T: OnceLock<Vec<(&'static str, Tokenizer)>> = OnceLock::new();
    T.get_or_init(|| {
        VOCABS
            .iter()
            .map(|name| {
                let p = models_dir().join(format!("vocab/ggml-vocab-{name}.gguf"));
                let bytes = std::fs::read(&p).unwrap_or_else(|e| {
                    panic!("{}: {e}; run scripts/fetch-models vocab", p.display())
                });
                let g = Gguf::parse(&bytes).expect("a valid vocabulary file");
                (
                    *name,
                    Tokenizer::from_gguf(&g).expect("a supported tokenizer"),
                )
            })
            .collect()
    })
}
