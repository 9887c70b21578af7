//! Tokenizers read from GGUF metadata that match llama.cpp token for token.
//!
//! Two models are supported: byte-level BPE (`tokenizer.ggml.model = "gpt2"`) with the GPT-2,
//! SmolLM, Qwen2, Llama 3 and default pre-tokenizers, and SentencePiece-style BPE by score
//! (`"llama"`). Special tokens, BOS/EOS handling, end-of-generation detection and detokenizing
//! follow llama.cpp's `llama-vocab.cpp` (including its heuristics on token texts), so a model
//! sees the same ids here as under llama.cpp.

mod bpe;
mod load;
mod offsets;
mod pretok;
mod spm;
mod stream;
mod unicode;
mod vocab;

pub use load::{SpecialIds, VocabData, VocabKind};
pub use pretok::PreTokenizer;
pub use stream::StreamDecoder;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use offsets::Offsets;
use unicode::ByteMap;
use vocab::Vocab;

/// Why a tokenizer could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A required metadata key is absent.
    MissingKey(&'static str),
    /// A metadata key has another type than llama.cpp accepts for it.
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An array has fewer elements than there are tokens.
    TooShort {
        /// The key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// Number of tokens.
        n_vocab: usize,
    },
    /// `tokenizer.ggml.model` names a tokenizer that is not implemented.
    UnknownModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer that is not implemented (llama.cpp refuses
    /// unknown names too; it falls back to its default list only when the key is absent).
    UnknownPreTokenizer(String),
    /// The vocabulary is empty, or too large (over 2^21 - 1 tokens or 4 GiB of text).
    BadVocabSize(usize),
    /// More than 2^22 - 1 merges (the merge table packs ranks in 22 bits).
    TooManyMerges(usize),
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerError::MissingKey(k) => write!(f, "missing tokenizer key {k}"),
            TokenizerError::WrongType { key, expected } => {
                write!(f, "tokenizer key {key} must be {expected}")
            }
            TokenizerError::TooShort { key, len, n_vocab } => {
                write!(
                    f,
                    "tokenizer key {key} has {len} elements for {n_vocab} tokens"
                )
            }
            TokenizerError::UnknownModel(m) => write!(f, "unsupported tokenizer model '{m}'"),
            TokenizerError::UnknownPreTokenizer(p) => write!(f, "unsupported pre-tokenizer '{p}'"),
            TokenizerError::BadVocabSize(n) => write!(f, "unusable vocabulary size {n}"),
            TokenizerError::TooManyMerges(n) => write!(f, "{n} merges, more than supported"),
        }
    }
}

impl core::error::Error for TokenizerError {}

// Token attributes, llama.cpp's `llama_token_attr` bits, except that RSTRIP takes the place of
// NORMALIZED (unused here) so that they fit in a byte.
const ATTR_UNKNOWN: u8 = 1;
const ATTR_UNUSED: u8 = 2;
const ATTR_NORMAL: u8 = 4;
const ATTR_CONTROL: u8 = 8;
const ATTR_USER_DEFINED: u8 = 16;
const ATTR_BYTE: u8 = 32;
const ATTR_LSTRIP: u8 = 128;
const ATTR_RSTRIP: u8 = 64;

enum Model {
    Bpe {
        pre: PreTokenizer,
        ignore_merges: bool,
        merges: alloc::boxed::Box<bpe::Merges>,
    },
    Spm {
        scores: Vec<f32>,
    },
}

/// A tokenizer: text to token ids and back.
pub struct Tokenizer {
    model: Model,
    vocab: Vocab,
    attrs: Vec<u8>,
    /// Each token's bytes as llama.cpp's `token_to_piece(special = true)` gives them, for the
    /// tokens where they differ from the text.
    pieces: Vec<u8>,
    /// Where each token's piece ends in `pieces` (it starts where the previous one ends).
    piece_ends: Offsets,
    /// Bit `i`: token `i`'s piece is its text (and nothing is stored in `pieces`).
    piece_is_text: Vec<u64>,
    /// Ids matched in raw text before tokenizing (control, user-defined, unknown), longest first.
    specials: Vec<u32>,
    /// End-of-generation ids, sorted.
    eog: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    bytes: ByteMap,
}

enum Frag<'t> {
    Text(&'t str),
    Token(u32),
}

impl Tokenizer {
    /// Reads the tokenizer from a GGUF file's metadata.
    pub fn from_gguf(g: &crate::gguf::Gguf<'_>) -> Result<Tokenizer, TokenizerError> {
        load::from_gguf(g)
    }

    /// Builds a tokenizer from vocabulary data (what `from_gguf` reads from the file).
    pub fn from_vocab(data: &VocabData<'_>) -> Result<Tokenizer, TokenizerError> {
        load::build(data)
    }

    /// Token ids of `text`. `add_special` adds BOS/EOS where the file asks for them;
    /// `parse_special` turns control-token texts such as `<|im_start|>` into their ids
    /// (user-defined tokens are always matched, as in llama.cpp).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let frags = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.model {
            Model::Bpe {
                pre,
                ignore_merges,
                merges,
            } => {
                let mut sc = bpe::Scratch::default();
                let (mut cps, mut fl) = (Vec::new(), Vec::new());
                for f in &frags {
                    match *f {
                        Frag::Token(id) => out.push(id),
                        Frag::Text(t) => {
                            pretok::classify(t, &mut cps, &mut fl);
                            let mut at = 0usize;
                            let mut cp = 0usize;
                            for n in pretok::split(*pre, &cps, &fl) {
                                let len: usize = cps[cp..cp + n].iter().map(|c| c.len_utf8()).sum();
                                let word = &t.as_bytes()[at..at + len];
                                bpe::encode_word(
                                    &self.vocab,
                                    merges,
                                    &self.bytes,
                                    *ignore_merges,
                                    word,
                                    &mut out,
                                    &mut sc,
                                );
                                at += len;
                                cp += n;
                            }
                        }
                    }
                }
            }
            Model::Spm { scores } => {
                let mut sc = spm::Scratch::default();
                let mut buf = String::new();
                // A space is prefixed to the text at the start and after each special token.
                let mut prev_special = true;
                for f in &frags {
                    match *f {
                        Frag::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Frag::Text(t) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in t.chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::encode(&self.vocab, scores, &buf, &mut out, &mut sc);
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Splits `text` at special tokens, longest first, as llama.cpp's `tokenizer_st_partition`.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Frag<'t>> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Frag::Text(text));
        for &id in &self.specials {
            let attr = self.attrs[id as usize];
            if !parse_special && attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
                continue;
            }
            let tok = self.vocab.text(id);
            if tok.is_empty() || !text.contains(tok) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let mut rest = match f {
                    Frag::Text(t) => t,
                    tok_frag => {
                        next.push(tok_frag);
                        continue;
                    }
                };
                while let Some(m) = rest.find(tok) {
                    let mut left = &rest[..m];
                    if attr & ATTR_LSTRIP != 0 {
                        left = left.trim_end_matches(is_c_space);
                    }
                    if !left.is_empty() {
                        next.push(Frag::Text(left));
                    }
                    next.push(Frag::Token(id));
                    rest = &rest[m + tok.len()..];
                    if attr & ATTR_RSTRIP != 0 {
                        rest = rest.trim_start_matches(is_c_space);
                    }
                }
                if !rest.is_empty() {
                    next.push(Frag::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }

    /// The bytes token `id` stands for; control and unknown tokens give their text only when
    /// `special` is set (llama.cpp's `token_to_piece`). Empty for ids out of range.
    pub fn token_bytes(&self, id: u32, special: bool) -> &[u8] {
        let i = id as usize;
        let Some(&attr) = self.attrs.get(i) else {
            return &[];
        };
        if !special && attr & (ATTR_UNKNOWN | ATTR_CONTROL) != 0 {
            return &[];
        }
        if self
            .piece_is_text
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 != 0)
        {
            return self.vocab.text(id).as_bytes();
        }
        let Some(end) = self.piece_ends.get(i) else {
            return &[];
        };
        let start = match i {
            0 => 0,
            _ => self.piece_ends.get(i - 1).unwrap_or(end),
        };
        self.pieces.get(start as usize..end as usize).unwrap_or(&[])
    }

    /// The token's text as stored in the vocabulary (byte-mapped for BPE, `▁` for SPM spaces).
    pub fn piece(&self, id: u32) -> &str {
        self.vocab.text(id)
    }

    /// The id of a vocabulary text.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.vocab.id(piece)
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The BPE pre-tokenizer (`None` for SPM, which has none).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match &self.model {
            Model::Bpe { pre, .. } => Some(*pre),
            Model::Spm { .. } => None,
        }
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// End-of-turn token (from the file, else found by its text like llama.cpp does).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }

    /// Padding token.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos && self.eos.is_some()
    }

    /// Whether generation ends at this token (EOS, EOT, `<|im_end|>`, `<|endoftext|>`, ... as llama.cpp decides).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// Whether the token is a control token (BOS, EOS, `<|im_start|>`, ...).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & ATTR_CONTROL != 0)
    }

    /// Text of `ids` as llama.cpp's `llama_detokenize(remove_special = false, unparse_special = special)`:
    /// the first token loses one leading space when the model prefixes one (SPM), and BPE models
    /// with `clean_up_tokenization_spaces` get its clean-up. Invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        let mut buf = Vec::new();
        let mut remove_space = self.add_space_prefix;
        for &id in ids {
            let mut p = self.token_bytes(id, special);
            if remove_space && p.first() == Some(&b' ') {
                p = &p[1..];
            }
            remove_space = false;
            buf.extend_from_slice(p);
        }
        if self.clean_spaces {
            clean_spaces(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.model {
            Model::Bpe { pre, .. } => alloc::format!("BPE {pre:?}"),
            Model::Spm { .. } => String::from("SPM"),
        };
        f.debug_struct("Tokenizer")
            .field("model", &kind)
            .field("n_vocab", &self.n_vocab())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// llama.cpp's `clean_up_tokenization_spaces` passes, byte for byte.
fn clean_spaces(t: &mut Vec<u8>) {
    // " ?", " !", " .", " ," lose the space.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);

    // " ' " loses both spaces.
    let n = t.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    t.truncate(total);

    // " 's", " 'm", " 're", " 've" lose the space.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if x1 != b't' && x1 != b'd' && i + 2 < n {
                let x2 = t[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut b = Vec::from(s.as_bytes());
        clean_spaces(&mut b);
        String::from_utf8(b).unwrap_or_default()
    }

    #[test]
    fn clean_up_matches_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(
            clean("it 's we 're I 'm they 've"),
            "it's we're I'm they've"
        );
        assert_eq!(clean("don 't I 'd we 'll"), "don 't I 'd we 'll");
        assert_eq!(clean(""), "");
        // The first character is kept even when a space is dropped before the second.
        assert_eq!(clean(" ."), ".");
        assert_eq!(clean("x ."), "x.");
    }
}
