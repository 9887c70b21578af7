//! Tokenizer behaviour beyond llama.cpp's test vectors: SmolLM2's real file, special tokens,
//! BOS/EOS, end-of-generation ids, detokenizing round trips, streaming decode, and the typed
//! errors of `from_gguf`.
#![cfg(feature = "std")]

mod tokenizer_util;

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::{Gguf, ValueType};
use edgelm::tokenizer::{StreamDecoder, Tokenizer, TokenizerError, VocabData, VocabKind};
use tokenizer_util::{load, models_dir, vocab_path};

fn from_file(bytes: &[u8]) -> Tokenizer {
    let g = Gguf::parse(bytes).expect("file parses");
    Tokenizer::from_gguf(&g).expect("tokenizer loads")
}

fn vocab_file(name: &str) -> Vec<u8> {
    load(&vocab_path(&format!("ggml-vocab-{name}.gguf")))
}

fn smollm2() -> Tokenizer {
    from_file(&load(
        &models_dir().join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ))
}

/// The `.inp` test strings of llama.cpp's vectors.
fn test_strings(name: &str) -> Vec<String> {
    let inp = String::from_utf8(load(&vocab_path(&format!("ggml-vocab-{name}.gguf.inp"))))
        .expect("UTF-8");
    let mut v: Vec<String> = inp
        .split("\n__ggml_vocab_test__\n")
        .map(String::from)
        .collect();
    if v.last().is_some_and(|s| s.is_empty()) {
        v.pop();
    }
    v
}

const CHAT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

// Reference ids for SmolLM2 come from Hugging Face `tokenizers` 0.23.3 (an independent
// implementation) built from this file's own tokens and merges with SmolLM2's pre-tokenizer
// (Digits(individual) + ByteLevel), control tokens registered as special tokens for the
// parse_special case.

#[test]
fn smollm2_prompt() {
    let tok = smollm2();
    assert_eq!(tok.n_vocab(), 49152);
    assert_eq!(
        tok.pre_tokenizer(),
        Some(edgelm::tokenizer::PreTokenizer::Smollm)
    );
    assert_eq!(
        tok.encode("The capital of France is", false, false),
        [504, 3575, 282, 4649, 314]
    );
    // The file says add_bos_token = false, so add_special adds nothing.
    assert!(!tok.add_bos());
    assert_eq!(
        tok.encode("The capital of France is", true, true),
        [504, 3575, 282, 4649, 314]
    );
    let pieces: Vec<&str> = [504, 3575, 282, 4649, 314]
        .iter()
        .map(|&i| tok.piece(i))
        .collect();
    assert_eq!(pieces, ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]);
    assert_eq!(
        tok.decode(&[504, 3575, 282, 4649, 314], false),
        "The capital of France is"
    );
}

#[test]
fn smollm2_chatml() {
    let tok = smollm2();
    let want = [
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
        407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1,
        520, 9531, 198,
    ];
    assert_eq!(tok.encode(CHAT, false, true), want);
    // Without parse_special the markers are ordinary text.
    let plain = [
        44, 108, 306, 79, 3738, 108, 46, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511,
        308, 34519, 28, 7018, 411, 407, 19712, 8182, 44, 108, 306, 79, 486, 108, 46, 198, 44, 108,
        306, 79, 3738, 108, 46, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 15137, 108, 306, 79,
        486, 108, 46, 198, 44, 108, 306, 79, 3738, 108, 46, 520, 9531, 198,
    ];
    assert_eq!(tok.encode(CHAT, false, false), plain);

    assert_eq!(tok.token_id("<|im_start|>"), Some(1));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    // Control tokens print only when asked.
    assert_eq!(tok.token_bytes(1, true), b"<|im_start|>");
    assert_eq!(tok.token_bytes(1, false), b"");
    assert_eq!(tok.decode(&want, true), CHAT);
    assert_eq!(
        tok.decode(&want, false),
        CHAT.replace("<|im_start|>", "").replace("<|im_end|>", "")
    );
}

#[test]
fn smollm2_end_of_generation() {
    let tok = smollm2();
    // llama.cpp: EOS (<|im_end|>), every token named like an end marker (<|endoftext|>), and the
    // FIM repo-name token it detects by text (<reponame>) end generation; <|im_start|> does not.
    assert!(tok.is_eog(2));
    assert!(tok.is_eog(0));
    assert_eq!(tok.eog_ids(), [0, 2, 4]);
    assert_eq!(tok.eot(), Some(2));
    assert!(!tok.is_eog(1));
    assert!(!tok.is_eog(504));
    assert!(!tok.is_eog(u32::MAX));
}

#[test]
fn llama_spm_specials_and_bos() {
    let tok = from_file(&vocab_file("llama-spm"));
    assert_eq!((tok.bos(), tok.eos()), (Some(1), Some(2)));
    assert!(tok.add_bos() && !tok.add_eos());
    let plain = tok.encode("Hello world", false, false);
    let mut with_bos = vec![1];
    with_bos.extend(&plain);
    assert_eq!(tok.encode("Hello world", true, false), with_bos);
    // "<s>" is a control token: text unless parse_special; text after a special token gets the
    // space prefix again.
    let parsed = tok.encode("<s>Hello", false, true);
    assert_eq!(parsed[0], 1);
    assert_eq!(tok.piece(parsed[1]), "▁Hello");
    assert_ne!(tok.encode("<s>Hello", false, false)[0], 1);
    // The space the model prefixes is dropped from the first token when decoding.
    assert_eq!(tok.decode(&plain, false), "Hello world");
    assert!(tok.is_eog(2));
    // Byte-fallback pieces decode to their byte.
    let nl = tok.token_id("<0x0A>").expect("byte token");
    assert_eq!(tok.token_bytes(nl, false), b"\n");
}

/// llama.cpp's test-tokenizer-1-spm: every token's text re-tokenizes (with parse_special) to
/// something that detokenizes to the same text, and every code point round-trips.
#[test]
fn llama_spm_round_trips() {
    let tok = from_file(&vocab_file("llama-spm"));
    for id in 0..tok.n_vocab() as u32 {
        let s = tok.decode(&[id], true);
        let again = tok.decode(&tok.encode(&s, false, true), true);
        assert_eq!(again, s, "token {id}");
    }
    for cp in (0..0x110000u32).filter(|c| !(0x40000..=0xE0000).contains(c) && *c != 0x2581) {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let s = c.to_string();
        assert_eq!(
            tok.decode(&tok.encode(&s, false, false), true),
            s,
            "U+{cp:04X}"
        );
    }
}

/// Byte-level BPE without llama.cpp's space clean-up (Qwen2, SmolLM) is lossless on text.
#[test]
fn byte_level_round_trips() {
    let qwen = from_file(&vocab_file("qwen2"));
    let smol = smollm2();
    for tok in [&qwen, &smol] {
        for s in test_strings("qwen2") {
            assert_eq!(tok.decode(&tok.encode(&s, false, false), false), s);
        }
    }
    for cp in (0..0x110000u32).step_by(7) {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let s = c.to_string();
        assert_eq!(
            qwen.decode(&qwen.encode(&s, false, false), false),
            s,
            "U+{cp:04X}"
        );
    }
}

#[test]
fn gpt2_decode_cleans_spaces_like_llama_cpp() {
    let tok = from_file(&vocab_file("gpt-2"));
    // GPT-2 keeps clean_up_tokenization_spaces: " ," loses its space on the way back.
    let ids = tok.encode("Hello , world !", false, false);
    assert_eq!(tok.decode(&ids, false), "Hello, world!");
    let ids = tok.encode("Hello, world!", false, false);
    assert_eq!(tok.decode(&ids, false), "Hello, world!");
    // <|endoftext|> is EOS and EOG; GPT-2 files do not ask for BOS.
    assert_eq!(tok.eos(), Some(50256));
    assert!(tok.is_eog(50256));
    assert!(!tok.add_bos());
}

#[test]
fn llama3_bos_and_specials() {
    let tok = from_file(&vocab_file("llama-bpe"));
    // llama.cpp adds BOS for the llama-bpe pre-tokenizer unless the file says otherwise.
    assert!(tok.add_bos());
    assert_eq!(tok.bos(), Some(128000));
    let ids = tok.encode("<|begin_of_text|>Hi<|eot_id|>", true, true);
    assert_eq!(ids[..2], [128000, 128000]);
    assert_eq!(*ids.last().unwrap(), 128009);
    assert!(tok.is_eog(128009) && tok.is_eog(128001));
    assert_eq!(tok.eot(), Some(128009));
}

#[test]
fn stream_decoder_joins_split_characters() {
    let tok = from_file(&vocab_file("gpt-2"));
    let text = "🦙 naïve 日本語 😀👍🏽";
    let ids = tok.encode(text, false, false);
    // The test is only meaningful if some token ends mid-character.
    assert!(ids
        .iter()
        .any(|&i| std::str::from_utf8(tok.token_bytes(i, false)).is_err()));
    let mut d = StreamDecoder::new();
    let mut out = String::new();
    let mut empty_pushes = 0;
    for &i in &ids {
        let s = d.push(tok.token_bytes(i, false));
        empty_pushes += usize::from(s.is_empty());
        out.push_str(s);
    }
    out.push_str(d.finish());
    assert_eq!(out, text);
    assert!(empty_pushes > 0);
}

#[test]
fn stream_decoder_replaces_invalid_bytes() {
    let tok = from_file(&vocab_file("llama-spm"));
    let byte = |b: u8| tok.token_id(&format!("<0x{b:02X}>")).expect("byte token");
    let mut d = StreamDecoder::new();
    let mut out = String::new();
    // A lone continuation byte, a lead byte cut off by ASCII, and a dangling lead byte at the end.
    for id in [
        byte(0x80),
        byte(b'a'),
        byte(0xE2),
        byte(0x82),
        byte(b'b'),
        byte(0xF0),
    ] {
        out.push_str(d.push(tok.token_bytes(id, false)));
    }
    assert!(d.has_pending());
    out.push_str(d.finish());
    assert_eq!(out, "\u{FFFD}a\u{FFFD}b\u{FFFD}");
    assert_eq!(d.finish(), "");
}

// ---- synthetic vocabularies -------------------------------------------------------------

/// A byte-level vocabulary: the 256 byte symbols, a few merges, and special tokens.
fn tiny_bpe() -> (Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| gpt2_char(b).to_string()).collect();
    let merges = [
        "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "r l", "Ġwo rl", "Ġworl d",
    ];
    for m in merges {
        tokens.push(m.replace(' ', ""));
    }
    tokens.extend([
        "<|end|>".to_string(),
        "<|user|>".to_string(),
        "<tool>".to_string(),
    ]);
    (tokens, merges.iter().map(|s| s.to_string()).collect())
}

/// GPT-2's byte to code point mapping (written out independently of the crate's).
fn gpt2_char(b: u8) -> char {
    let printable = |x: u8| matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

#[test]
fn bpe_merges_and_special_partition() {
    let (tokens, merges) = tiny_bpe();
    let mut d = VocabData::new(VocabKind::Bpe, tokens.iter().map(String::as_str).collect());
    d.merges = merges.iter().map(String::as_str).collect();
    d.pre = Some("gpt-2");
    let mut types = vec![1; tokens.len()];
    let n = tokens.len();
    types[n - 3] = 3; // <|end|> control
    types[n - 2] = 3; // <|user|> control
    types[n - 1] = 4; // <tool> user-defined
    d.token_types = Some(types);
    d.special.bos = Some(n as u32 - 2);
    d.special.eos = Some(n as u32 - 3);
    d.add_bos = Some(true);
    d.add_eos = Some(true);
    let tok = Tokenizer::from_vocab(&d).expect("builds");
    let id = |s: &str| tok.token_id(s).unwrap();

    assert_eq!(
        tok.encode("hello world", false, false),
        [id("hello"), id("Ġworld")]
    );
    // Bytes with no merge stay single byte tokens, one per byte.
    assert_eq!(tok.encode("é", false, false), [id("Ã"), id("©")]);
    // Control tokens need parse_special; user-defined ones are always split out.
    assert_eq!(tok.encode("<|end|>", false, true), [id("<|end|>")]);
    assert_eq!(tok.encode("<|end|>", false, false).len(), 7);
    assert_eq!(
        tok.encode("a<tool>b", false, false),
        [id("a"), id("<tool>"), id("b")]
    );
    // BOS and EOS as the data says.
    assert_eq!(
        tok.encode("hello", true, false),
        [id("<|user|>"), id("hello"), id("<|end|>")]
    );
    assert!(tok.is_eog(id("<|end|>")));
    // User-defined tokens always print; control tokens only with `special`.
    assert_eq!(tok.decode(&[id("<tool>"), id("<|end|>")], false), "<tool>");
    assert_eq!(
        tok.decode(&[id("<tool>"), id("<|end|>")], true),
        "<tool><|end|>"
    );
    assert_eq!(tok.token_bytes(u32::MAX, true), b"");
    assert_eq!(tok.piece(u32::MAX), "");
}

#[test]
fn long_words_encode_in_n_log_n() {
    let (tokens, merges) = tiny_bpe();
    let mut d = VocabData::new(VocabKind::Bpe, tokens.iter().map(String::as_str).collect());
    d.merges = merges.iter().map(String::as_str).collect();
    d.pre = Some("gpt-2");
    let tok = Tokenizer::from_vocab(&d).expect("builds");
    // One 200k-letter word: quadratic merging would take minutes.
    let word = "hello".repeat(40_000);
    let t = std::time::Instant::now();
    let ids = tok.encode(&word, false, false);
    assert_eq!(ids.len(), 40_000);
    assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
}

#[test]
fn spm_byte_fallback_and_space_prefix() {
    let mut tokens = vec!["<unk>", "<s>", "</s>"];
    let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    tokens.extend(bytes.iter().map(String::as_str));
    tokens.extend(["▁", "h", "i", "▁h", "▁hi"]);
    let n = tokens.len();
    let mut types = vec![1; n];
    types[0] = 2;
    types[1] = 3;
    types[2] = 3;
    for t in &mut types[3..259] {
        *t = 6;
    }
    let mut scores = vec![0.0f32; n];
    scores[n - 2] = -1.0; // ▁h
    scores[n - 1] = -0.5; // ▁hi
    let mut d = VocabData::new(VocabKind::Spm, tokens.clone());
    d.token_types = Some(types);
    d.scores = Some(scores);
    let tok = Tokenizer::from_vocab(&d).expect("builds");
    let id = |s: &str| tok.token_id(s).unwrap();
    assert_eq!(tok.encode("hi", false, false), [id("▁hi")]);
    // 'é' is not in the vocabulary: its two UTF-8 bytes come out as byte tokens.
    assert_eq!(
        tok.encode("é", false, false),
        [id("▁"), id("<0xC3>"), id("<0xA9>")]
    );
    assert_eq!(tok.encode("hi", true, false), [1, id("▁hi")]);
    assert_eq!(tok.decode(&tok.encode("hi é", false, false), false), "hi é");
    // Without the file's add_space_prefix nothing is prefixed.
    d.add_space_prefix = Some(false);
    let tok = Tokenizer::from_vocab(&d).expect("builds");
    assert_eq!(tok.encode("hi", false, false), [id("h"), id("i")]);
}

// ---- from_gguf errors ----------------------------------------------------------------------

fn gguf_with(f: impl FnOnce(&mut GgufWriter)) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    w.set("tokenizer.ggml.pre", MetaValue::Str("gpt-2".into()));
    w.set(
        "tokenizer.ggml.tokens",
        MetaValue::strings(["a", "b", "ab"]),
    );
    w.set("tokenizer.ggml.merges", MetaValue::strings(["a b"]));
    f(&mut w);
    w.to_bytes(&[]).expect("writes")
}

fn load_err(bytes: &[u8]) -> TokenizerError {
    let g = Gguf::parse(bytes).expect("parses");
    Tokenizer::from_gguf(&g).expect_err("must be refused")
}

#[test]
fn minimal_gguf_loads() {
    let b = gguf_with(|_| {});
    let tok = from_file(&b);
    assert_eq!(tok.encode("ab", false, false), [2]);
    // Without the key no pre-tokenizer name is needed (llama.cpp's default list).
    let b = gguf_with(|w| w.set("tokenizer.ggml.pre", MetaValue::Str("default".into())));
    assert_eq!(from_file(&b).encode("ab", false, false), [2]);
}

#[test]
fn from_gguf_errors() {
    let e = load_err(&gguf_with(|w| {
        w.set("tokenizer.ggml.model", MetaValue::Str("bert".into()))
    }));
    assert_eq!(e, TokenizerError::UnknownModel("bert".into()));

    let e = load_err(&gguf_with(|w| {
        w.set("tokenizer.ggml.pre", MetaValue::Str("falcon".into()))
    }));
    assert_eq!(e, TokenizerError::UnknownPreTokenizer("falcon".into()));
    assert!(e.to_string().contains("falcon"));

    let e = load_err(&gguf_with(|w| {
        w.set("tokenizer.ggml.bos_token_id", MetaValue::I32(1))
    }));
    assert!(matches!(
        e,
        TokenizerError::WrongType {
            key: "tokenizer.ggml.bos_token_id",
            ..
        }
    ));

    let e = load_err(&gguf_with(|w| {
        w.set("tokenizer.ggml.add_bos_token", MetaValue::U8(1))
    }));
    assert!(matches!(
        e,
        TokenizerError::WrongType {
            key: "tokenizer.ggml.add_bos_token",
            ..
        }
    ));

    let e = load_err(&gguf_with(|w| {
        w.set(
            "tokenizer.ggml.scores",
            MetaValue::Array(ValueType::F32, vec![MetaValue::F32(0.0)]),
        )
    }));
    assert_eq!(
        e,
        TokenizerError::TooShort {
            key: "tokenizer.ggml.scores",
            len: 1,
            n_vocab: 3
        }
    );

    let e = load_err(&gguf_with(|w| {
        w.set("tokenizer.ggml.tokens", MetaValue::Str("x".into()))
    }));
    assert!(matches!(
        e,
        TokenizerError::WrongType {
            key: "tokenizer.ggml.tokens",
            ..
        }
    ));

    let mut w = GgufWriter::new();
    w.set("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    w.set("tokenizer.ggml.tokens", MetaValue::strings(["a"]));
    let e = load_err(&w.to_bytes(&[]).unwrap());
    assert_eq!(e, TokenizerError::MissingKey("tokenizer.ggml.merges"));

    let e = load_err(&GgufWriter::new().to_bytes(&[]).unwrap());
    assert_eq!(e, TokenizerError::MissingKey("tokenizer.ggml.model"));
}
