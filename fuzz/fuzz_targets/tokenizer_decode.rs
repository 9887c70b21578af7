//! Tokenizer decode on arbitrary id lists (in range or not) for real vocabularies, and the
//! streaming decoder: its pieces must add up to the lossy UTF-8 of all the token bytes.
#![no_main]

#[path = "tokenizer_common.rs"]
mod common;

use edgelm::tokenizer::StreamDecoder;
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
    let (_, tok) = &all[sel as usize % all.len()];
    let special = sel & 0x80 != 0;
    let n = tok.n_vocab() as u32;
    // Mostly valid ids, some just past the end, and any u32 when the top bit of a word is set.
    let ids: Vec<u32> = rest
        .chunks_exact(4)
        .map(|c| {
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if v & 0x8000_0000 != 0 {
                v
            } else {
                v % (n + 4)
            }
        })
        .collect();
    let text = tok.decode(&ids, special);
    let _ = text.len();
    let mut stream = StreamDecoder::new();
    let (mut streamed, mut all_bytes) = (String::new(), Vec::new());
    for &id in &ids {
        let b = tok.token_bytes(id, special);
        all_bytes.extend_from_slice(b);
        streamed.push_str(stream.push(b));
        let _ = (tok.piece(id), tok.is_eog(id), tok.is_control(id));
    }
    streamed.push_str(stream.finish());
    assert_eq!(streamed, String::from_utf8_lossy(&all_bytes));
    assert!(!stream.has_pending());
}
);
