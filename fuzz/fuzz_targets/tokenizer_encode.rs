//! Tokenizer encode on arbitrary text, for real vocabularies; the first byte picks the vocabulary
//! and the flags. Every id must be in range, and decoding must give the text back where it has to:
//! without special-token parsing, for the vocabularies whose decoding is exact.
#![no_main]

#[path = "tokenizer_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // Loading the vocabularies takes seconds: done once before fuzzing, not under -timeout.
    init: {
        common::tokenizers();
    },
    |data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let all = common::tokenizers();
    let (name, tok) = &all[sel as usize % all.len()];
    let add_special = sel & 0x40 != 0;
    let parse_special = sel & 0x80 != 0;
    let text = String::from_utf8_lossy(rest);
    let ids = tok.encode(&text, add_special, parse_special);
    let n_vocab = tok.n_vocab() as u32;
    assert!(
        ids.iter().all(|&id| id < n_vocab),
        "{name}: id out of range"
    );
    if !text.is_empty() {
        assert!(
            ids.len() > usize::from(add_special && tok.add_bos()),
            "{name}: text encodes to no tokens"
        );
    }
    let back = tok.decode(&ids, true);
    if add_special || parse_special {
        return;
    }
    let exact = match *name {
        // Byte-level BPE without clean-up: every byte is a token, decoding concatenates them.
        "qwen2" => true,
        // SPM maps ' ' to U+2581, so a U+2581 in the text decodes as a space.
        "llama-spm" | "phi-3" => !text.contains('\u{2581}'),
        // The others clean up spaces before punctuation on decode, as llama.cpp does.
        _ => false,
    };
    if exact {
        assert_eq!(back, text, "{name}: decode(encode(s)) != s");
    }
}
);
