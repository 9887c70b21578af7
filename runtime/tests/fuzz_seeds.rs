//! The fuzz targets' GGUF seeds (fuzz/corpus/gguf, written by fuzz/make-seeds) are what they claim:
//! tiny models of each architecture that load, tokenize and run, an adapter that parses, and
//! truncated real headers that fail with a typed error. Mutations start from these, so a seed
//! that stopped loading would quietly shrink what the fuzzer reaches.

#![cfg(feature = "std")]

use edgelm::gguf::{Gguf, GgufError};
use edgelm::model::{Adapter, Arch, ModelVec};
use edgelm::session::{alloc_memory, Session};
use edgelm::tokenizer::Tokenizer;
use std::path::PathBuf;

fn seed(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/gguf")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn tiny_model_seeds_load_and_run() {
    for (name, arch) in [
        ("llama-q8_0-bpe.gguf", Arch::Llama),
        ("qwen2-f16-spm.gguf", Arch::Qwen2),
        ("gpt2-f16.gguf", Arch::Gpt2),
    ] {
        let bytes = seed(name);
        let g = Gguf::parse(&bytes).unwrap();
        let model = ModelVec::load(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.config.arch, arch, "{name}");
        let tok = Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids = tok.encode("ab a", true, true);
        assert!(!ids.is_empty(), "{name}");
        let p = edgelm::plan::plan(&model.config, 4).unwrap();
        let mut mem = alloc_memory(&p);
        let mut s = Session::new(&model, &mut mem, 4).unwrap();
        for &id in ids.iter().take(4) {
            let logits = s.eval(id).unwrap();
            assert!(logits.iter().all(|x| x.is_finite()), "{name}");
        }
    }
}

#[test]
fn adapter_and_truncated_seeds() {
    let bytes = seed("lora-adapter.gguf");
    let g = Gguf::parse(&bytes).unwrap();
    let a = Adapter::parse(&g).unwrap();
    assert_eq!(a.n_pairs, 1);
    for name in ["smollm2-head-4k.gguf", "vocab-spm-head-2k.gguf"] {
        let e = Gguf::parse(&seed(name)).unwrap_err();
        assert!(matches!(e, GgufError::Truncated { .. }), "{name}: {e}");
        assert!(e.to_string().starts_with("GGUF file truncated in "), "{e}");
    }
    let empty = seed("empty-v2.gguf");
    let g = Gguf::parse(&empty).unwrap();
    assert_eq!((g.version(), g.n_metadata(), g.n_tensors()), (2, 0, 0));
}
