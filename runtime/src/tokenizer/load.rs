//! Building a `Tokenizer`: reading GGUF metadata, then llama.cpp's `llama_vocab::impl::load`
//! rules for defaults, token attributes, special tokens and end-of-generation ids.

use super::offsets::Offsets;
use super::pretok::PreTokenizer;
use super::unicode::ByteMap;
use super::vocab::{self, Vocab};
use super::{bpe, Model, Tokenizer, TokenizerError};
use super::{
    ATTR_BYTE, ATTR_CONTROL, ATTR_LSTRIP, ATTR_NORMAL, ATTR_RSTRIP, ATTR_UNKNOWN, ATTR_UNUSED,
    ATTR_USER_DEFINED,
};
use crate::gguf::{Gguf, Value, ValueType};
use alloc::string::String;
use alloc::vec::Vec;

/// The tokenizer algorithm (`tokenizer.ggml.model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VocabKind {
    /// Byte-level BPE with merges (`"gpt2"`).
    Bpe,
    /// SentencePiece-style BPE by score (`"llama"`).
    Spm,
}

/// Special token ids as the file gives them (`None`: key absent; llama.cpp's defaults apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecialIds {
    /// `tokenizer.ggml.bos_token_id`
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`
    pub eot: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`
    pub eom: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`
    pub pad: Option<u32>,
    /// `tokenizer.ggml.fim_pre_token_id` (or the older `prefix_token_id`)
    pub fim_pre: Option<u32>,
    /// `tokenizer.ggml.fim_suf_token_id` (or the older `suffix_token_id`)
    pub fim_suf: Option<u32>,
    /// `tokenizer.ggml.fim_mid_token_id` (or the older `middle_token_id`)
    pub fim_mid: Option<u32>,
    /// `tokenizer.ggml.fim_pad_token_id`
    pub fim_pad: Option<u32>,
    /// `tokenizer.ggml.fim_rep_token_id`
    pub fim_rep: Option<u32>,
    /// `tokenizer.ggml.fim_sep_token_id`
    pub fim_sep: Option<u32>,
}

/// Everything a tokenizer is built from: the `tokenizer.ggml.*` metadata, decoded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VocabData<'a> {
    /// Algorithm.
    pub kind: VocabKind,
    /// `tokenizer.ggml.pre` (BPE only).
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`
    pub tokens: Vec<&'a str>,
    /// `tokenizer.ggml.scores` (SPM merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` ("a b", rank = index; BPE only).
    pub merges: Vec<&'a str>,
    /// Special token ids.
    pub special: SpecialIds,
    /// `tokenizer.ggml.add_bos_token`
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`
    pub add_space_prefix: Option<bool>,
    /// `general.name` (llama.cpp keys a few per-model token attributes on it).
    pub name: Option<&'a str>,
    /// `general.architecture` (same).
    pub arch: Option<&'a str>,
}

impl<'a> VocabData<'a> {
    /// Data with just the tokens; every other field absent.
    pub fn new(kind: VocabKind, tokens: Vec<&'a str>) -> VocabData<'a> {
        VocabData {
            kind,
            pre: None,
            tokens,
            scores: None,
            token_types: None,
            merges: Vec::new(),
            special: SpecialIds::default(),
            add_bos: None,
            add_eos: None,
            add_space_prefix: None,
            name: None,
            arch: None,
        }
    }
}

/// A list of strings: given as a slice, or read in place from a GGUF string array so that
/// loading copies no per-token pointers (786 KB each for SmolLM2's tokens and merges).
#[derive(Clone, Copy)]
enum Strs<'a> {
    List(&'a [&'a str]),
    /// A GGUF string array's encoded bytes (u64 length + UTF-8, each), checked by `Strs::raw`.
    Raw {
        raw: &'a [u8],
        n: usize,
    },
}

impl<'a> Strs<'a> {
    /// The `n` strings encoded in `raw`, if it has exactly that shape.
    fn raw(raw: &'a [u8], n: usize) -> Option<Strs<'a>> {
        let mut it = StrsIter::Raw { raw, left: n };
        for _ in 0..n {
            it.try_next()?;
        }
        match it {
            StrsIter::Raw { raw: [], .. } => Some(Strs::Raw { raw, n }),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            Strs::List(l) => l.len(),
            Strs::Raw { n, .. } => *n,
        }
    }

    /// The strings' lengths in bytes (without checking them as UTF-8 again).
    fn lens(&self) -> impl Iterator<Item = usize> + 'a {
        let (list, mut raw) = match *self {
            Strs::List(l) => (l, &[][..]),
            Strs::Raw { raw, .. } => (&[][..], raw),
        };
        let raw_lens = core::iter::from_fn(move || {
            let (len, rest) = raw.split_first_chunk::<8>()?;
            let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
            raw = rest.get(len..)?;
            Some(len)
        });
        list.iter().map(|s| s.len()).chain(raw_lens)
    }

    fn iter(&self) -> StrsIter<'a> {
        match *self {
            Strs::List(l) => StrsIter::List(l.iter()),
            Strs::Raw { raw, n } => StrsIter::Raw { raw, left: n },
        }
    }
}

#[derive(Clone)]
enum StrsIter<'a> {
    List(core::slice::Iter<'a, &'a str>),
    Raw { raw: &'a [u8], left: usize },
}

impl<'a> StrsIter<'a> {
    /// The next string; `None` at the end or on a malformed array.
    fn try_next(&mut self) -> Option<&'a str> {
        match self {
            StrsIter::List(l) => l.next().copied(),
            StrsIter::Raw { raw, left } => {
                if *left == 0 {
                    return None;
                }
                let (len, rest) = raw.split_first_chunk::<8>()?;
                let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
                if len > rest.len() {
                    return None;
                }
                let (s, rest) = rest.split_at(len);
                let s = core::str::from_utf8(s).ok()?;
                *raw = rest;
                *left -= 1;
                Some(s)
            }
        }
    }
}

impl<'a> Iterator for StrsIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.try_next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            StrsIter::List(l) => l.len(),
            StrsIter::Raw { left, .. } => *left,
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for StrsIter<'_> {}

/// A list of numbers: given as a slice, or read in place from a GGUF array's little-endian bytes.
#[derive(Clone, Copy)]
enum Nums<'a> {
    I32(&'a [i32]),
    F32(&'a [f32]),
    LeI32(&'a [u8]),
    LeF32(&'a [u8]),
}

impl Nums<'_> {
    fn len(&self) -> usize {
        match self {
            Nums::I32(v) => v.len(),
            Nums::F32(v) => v.len(),
            Nums::LeI32(b) | Nums::LeF32(b) => b.len() / 4,
        }
    }

    fn le(b: &[u8], i: usize) -> [u8; 4] {
        b.get(i * 4..i * 4 + 4)
            .and_then(|c| c.try_into().ok())
            .unwrap_or([0; 4])
    }

    /// Element `i` as an i32 (0 when out of range; f32 lists are never read this way).
    fn i32(&self, i: usize) -> i32 {
        match self {
            Nums::I32(v) => v.get(i).copied().unwrap_or(0),
            Nums::LeI32(b) => i32::from_le_bytes(Nums::le(b, i)),
            Nums::F32(_) | Nums::LeF32(_) => 0,
        }
    }

    /// Element `i` as an f32 (0 when out of range).
    fn f32(&self, i: usize) -> f32 {
        match self {
            Nums::I32(v) => v.get(i).map_or(0.0, |&x| x as f32),
            Nums::F32(v) => v.get(i).copied().unwrap_or(0.0),
            Nums::LeI32(b) => i32::from_le_bytes(Nums::le(b, i)) as f32,
            Nums::LeF32(b) => f32::from_le_bytes(Nums::le(b, i)),
        }
    }
}

/// What `build` reads: `VocabData`'s fields, with the lists borrowed either from it or from the file.
struct Src<'a> {
    kind: VocabKind,
    pre: Option<&'a str>,
    tokens: Strs<'a>,
    scores: Option<Nums<'a>>,
    token_types: Option<Nums<'a>>,
    merges: Strs<'a>,
    special: SpecialIds,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    add_space_prefix: Option<bool>,
    name: Option<&'a str>,
    arch: Option<&'a str>,
}

impl<'a> Src<'a> {
    fn of(d: &'a VocabData<'_>) -> Src<'a> {
        Src {
            kind: d.kind,
            pre: d.pre,
            tokens: Strs::List(&d.tokens),
            scores: d.scores.as_deref().map(Nums::F32),
            token_types: d.token_types.as_deref().map(Nums::I32),
            merges: Strs::List(&d.merges),
            special: d.special,
            add_bos: d.add_bos,
            add_eos: d.add_eos,
            add_space_prefix: d.add_space_prefix,
            name: d.name,
            arch: d.arch,
        }
    }
}

const K_MODEL: &str = "tokenizer.ggml.model";
const K_PRE: &str = "tokenizer.ggml.pre";
const K_TOKENS: &str = "tokenizer.ggml.tokens";
const K_SCORES: &str = "tokenizer.ggml.scores";
const K_TYPES: &str = "tokenizer.ggml.token_type";
const K_MERGES: &str = "tokenizer.ggml.merges";

/// Every key `from_gguf` reads.
const KEYS: [&str; 23] = [
    K_MODEL,
    K_PRE,
    K_TOKENS,
    K_SCORES,
    K_TYPES,
    K_MERGES,
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.prefix_token_id",
    "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.suffix_token_id",
    "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.middle_token_id",
    "tokenizer.ggml.fim_pad_token_id",
    "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id",
    "general.name",
    "general.architecture",
];
const KEYS_FLAGS: [&str; 3] = [
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
];

/// The values of the keys above, gathered in one walk over the metadata (each `Gguf::get`
/// re-walks the header, which for a 150k-token vocabulary means re-reading every string).
struct Meta<'a> {
    vals: [Option<Value<'a>>; KEYS.len()],
    flags: [Option<Value<'a>>; KEYS_FLAGS.len()],
}

impl<'a> Meta<'a> {
    fn read(g: &Gguf<'a>) -> Meta<'a> {
        let mut m = Meta {
            vals: [None; KEYS.len()],
            flags: [None; KEYS_FLAGS.len()],
        };
        for (k, v) in g.metadata() {
            if let Some(i) = KEYS.iter().position(|&x| x == k) {
                m.vals[i] = Some(v);
            } else if let Some(i) = KEYS_FLAGS.iter().position(|&x| x == k) {
                m.flags[i] = Some(v);
            }
        }
        m
    }

    fn get(&self, key: &'static str) -> Option<Value<'a>> {
        let i = KEYS.iter().position(|&x| x == key)?;
        self.vals[i]
    }

    fn str(&self, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(TokenizerError::WrongType {
                key,
                expected: "a string",
            }),
        }
    }

    fn u32(&self, key: &'static str) -> Result<Option<u32>, TokenizerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::U32(v)) => Ok(Some(v)),
            Some(_) => Err(TokenizerError::WrongType {
                key,
                expected: "a u32",
            }),
        }
    }

    fn flag(&self, i: usize) -> Result<Option<bool>, TokenizerError> {
        match self.flags[i] {
            None => Ok(None),
            Some(Value::Bool(v)) => Ok(Some(v)),
            Some(_) => Err(TokenizerError::WrongType {
                key: KEYS_FLAGS[i],
                expected: "a bool",
            }),
        }
    }

    fn strings(&self, key: &'static str) -> Result<Option<Strs<'a>>, TokenizerError> {
        let wrong = TokenizerError::WrongType {
            key,
            expected: "an array of strings",
        };
        match self.get(key) {
            None => Ok(None),
            // `Gguf::parse` validated the array, so its bytes always have the shape.
            Some(Value::Array(a)) if a.elem_type() == ValueType::Str => {
                Strs::raw(a.raw(), a.len()).map(Some).ok_or(wrong)
            }
            Some(_) => Err(wrong),
        }
    }
}

/// Reads the tokenizer keys llama.cpp reads.
pub(crate) fn from_gguf(g: &Gguf<'_>) -> Result<Tokenizer, TokenizerError> {
    let m = Meta::read(g);
    let model = m.str(K_MODEL)?.ok_or(TokenizerError::MissingKey(K_MODEL))?;
    let kind = match model {
        "gpt2" => VocabKind::Bpe,
        "llama" => VocabKind::Spm,
        other => return Err(TokenizerError::UnknownModel(String::from(other))),
    };
    let tokens = m
        .strings(K_TOKENS)?
        .ok_or(TokenizerError::MissingKey(K_TOKENS))?;
    let pre = m.str(K_PRE)?;

    // Fixed-size arrays are read in place from their little-endian bytes.
    let scores = match m.get(K_SCORES) {
        None => None,
        Some(Value::Array(a)) if a.elem_type() == ValueType::F32 => Some(Nums::LeF32(a.raw())),
        Some(Value::Array(a)) if a.elem_type() == ValueType::I32 => Some(Nums::LeI32(a.raw())),
        Some(_) => {
            return Err(TokenizerError::WrongType {
                key: K_SCORES,
                expected: "an array of f32 or i32",
            })
        }
    };
    let token_types = match m.get(K_TYPES) {
        None => None,
        Some(Value::Array(a)) if a.elem_type() == ValueType::I32 => Some(Nums::LeI32(a.raw())),
        Some(_) => {
            return Err(TokenizerError::WrongType {
                key: K_TYPES,
                expected: "an array of i32",
            })
        }
    };
    let merges = if kind == VocabKind::Bpe {
        m.strings(K_MERGES)?
            .ok_or(TokenizerError::MissingKey(K_MERGES))?
    } else {
        Strs::List(&[])
    };

    let mut s = SpecialIds {
        bos: m.u32("tokenizer.ggml.bos_token_id")?,
        eos: m.u32("tokenizer.ggml.eos_token_id")?,
        eot: m.u32("tokenizer.ggml.eot_token_id")?,
        eom: m.u32("tokenizer.ggml.eom_token_id")?,
        unk: m.u32("tokenizer.ggml.unknown_token_id")?,
        pad: m.u32("tokenizer.ggml.padding_token_id")?,
        ..SpecialIds::default()
    };
    // The older key names are read after the new ones and win, as in llama.cpp.
    s.fim_pre = m
        .u32("tokenizer.ggml.prefix_token_id")?
        .or(m.u32("tokenizer.ggml.fim_pre_token_id")?);
    s.fim_suf = m
        .u32("tokenizer.ggml.suffix_token_id")?
        .or(m.u32("tokenizer.ggml.fim_suf_token_id")?);
    s.fim_mid = m
        .u32("tokenizer.ggml.middle_token_id")?
        .or(m.u32("tokenizer.ggml.fim_mid_token_id")?);
    s.fim_pad = m.u32("tokenizer.ggml.fim_pad_token_id")?;
    s.fim_rep = m.u32("tokenizer.ggml.fim_rep_token_id")?;
    s.fim_sep = m.u32("tokenizer.ggml.fim_sep_token_id")?;
    let src = Src {
        kind,
        pre,
        tokens,
        scores,
        token_types,
        merges,
        special: s,
        add_bos: m.flag(0)?,
        add_eos: m.flag(1)?,
        add_space_prefix: m.flag(2)?,
        name: m.str("general.name")?,
        arch: m.str("general.architecture")?,
    };
    build_from(&src)
}

/// Flags llama.cpp derives from a BPE `tokenizer.ggml.pre` name.
#[derive(Clone, Copy)]
struct PreInfo {
    pre: PreTokenizer,
    clean_spaces: bool,
    ignore_merges: bool,
    add_bos: bool,
}

/// The names llama.cpp maps onto the five supported regex lists, with the flags it sets for each.
/// Names that map onto other lists (falcon, deepseek, tekken, ...) or carry behaviour not
/// implemented here (a separator token, other normalizers) are refused.
fn pre_info(name: Option<&str>) -> Result<PreInfo, TokenizerError> {
    use PreTokenizer::*;
    let info = |pre, clean_spaces| PreInfo {
        pre,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
    };
    let Some(name) = name else {
        // llama.cpp warns ("generation quality will be degraded") and uses its default list.
        return Ok(info(Default, true));
    };
    Ok(match name {
        "default" => info(Default, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreInfo {
            pre: Llama3,
            clean_spaces: true,
            ignore_merges: true,
            add_bos: true,
        },
        "dbrx" | "smaug-bpe" => info(Llama3, true),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4" => {
            info(Gpt2, true)
        }
        "trillion" | "granite-docling" => info(Gpt2, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            info(Smollm, true)
        }
        "smollm" | "command-r" => info(Smollm, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            info(Qwen2, false)
        }
        "stablelm2" | "megrez" => info(Qwen2, true),
        other => return Err(TokenizerError::UnknownPreTokenizer(String::from(other))),
    })
}

const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_NAMES: &[&str] = &["<|eom_id|>"];
const FIM_PRE_NAMES: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_NAMES: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_NAMES: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_NAMES: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_NAMES: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_NAMES: &[&str] = &["<|file_sep|>"];
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// A default id, dropped when out of range; a file id replaces it when in range (llama.cpp
/// keeps the default when the file's id is out of range).
fn resolve(default: Option<u32>, file: Option<u32>, n: usize) -> Option<u32> {
    let ok = |id: &u32| (*id as usize) < n;
    file.filter(ok).or(default.filter(ok))
}

fn attr_of_type(t: i32) -> u8 {
    match t {
        1 => ATTR_NORMAL,
        2 => ATTR_UNKNOWN,
        3 => ATTR_CONTROL,
        4 => ATTR_USER_DEFINED,
        5 => ATTR_UNUSED,
        6 => ATTR_BYTE,
        _ => 0,
    }
}

/// Builds the tokenizer with llama.cpp's rules.
pub(crate) fn build(d: &VocabData<'_>) -> Result<Tokenizer, TokenizerError> {
    build_from(&Src::of(d))
}

fn build_from(d: &Src<'_>) -> Result<Tokenizer, TokenizerError> {
    let n = d.tokens.len();
    let total: usize = d.tokens.lens().map(|l| l.max(16)).sum();
    if n == 0 || n > vocab::MAX_TOKENS || total >= u32::MAX as usize {
        return Err(TokenizerError::BadVocabSize(n));
    }
    if d.merges.len() > bpe::MAX_MERGES {
        return Err(TokenizerError::TooManyMerges(d.merges.len()));
    }
    for (key, len) in [
        (K_SCORES, d.scores.as_ref().map(Nums::len)),
        (K_TYPES, d.token_types.as_ref().map(Nums::len)),
    ] {
        if let Some(len) = len.filter(|&l| l < n) {
            return Err(TokenizerError::TooShort {
                key,
                len,
                n_vocab: n,
            });
        }
    }

    // Per-model defaults (llama.cpp `load`, "determine vocab type").
    let (pre, mut add_bos, mut add_space_prefix, clean_spaces, def_bos, def_eos, def_unk) =
        match d.kind {
            VocabKind::Bpe => {
                let p = pre_info(d.pre)?;
                (
                    Some(p),
                    p.add_bos,
                    false,
                    p.clean_spaces,
                    Some(11),
                    Some(11),
                    None,
                )
            }
            VocabKind::Spm => (None, true, true, false, Some(1), Some(2), Some(0)),
        };
    let mut add_eos = false;
    if let Some(v) = d.add_space_prefix {
        add_space_prefix = v;
    }

    // Empty texts become "[EMPTY_<id>]".
    let text_len = d.tokens.lens().map(|l| if l == 0 { 16 } else { l }).sum();
    let vocab = Vocab::new(d.tokens.iter(), text_len);
    let mut attrs: Vec<u8> = match &d.token_types {
        Some(t) => (0..n).map(|i| attr_of_type(t.i32(i))).collect(),
        None => alloc::vec![ATTR_NORMAL; n],
    };

    let s = &d.special;
    let bos = resolve(def_bos, s.bos, n);
    let eos = resolve(def_eos, s.eos, n);
    let _unk = resolve(def_unk, s.unk, n);
    let pad = resolve(None, s.pad, n);
    let mut eot = resolve(None, s.eot, n);
    let mut eom = resolve(None, s.eom, n);
    let mut fim_pre = resolve(None, s.fim_pre, n);
    let mut fim_suf = resolve(None, s.fim_suf, n);
    let mut fim_mid = resolve(None, s.fim_mid, n);
    let mut fim_pad = resolve(None, s.fim_pad, n);
    let mut fim_rep = resolve(None, s.fim_rep, n);
    let mut fim_sep = resolve(None, s.fim_sep, n);
    if let Some(v) = d.add_bos {
        add_bos = v;
    }
    if let Some(v) = d.add_eos {
        add_eos = v;
    }

    // llama.cpp looks through its text -> id map, which holds only the last id of a duplicated
    // text, and takes the first name it meets in hash-map order (unspecified); here the earliest
    // name in its list wins (`<|eot_id|>` over `<|end_of_text|>`, `<|im_end|>` over
    // `<|endoftext|>`). All the names start with one of these bytes, which skips almost every token.
    let candidates: Vec<u32> = (0..n as u32)
        .filter(|&id| {
            let t = vocab.text(id);
            matches!(t.as_bytes().first(), Some(b'<' | b'[' | b'_' | 0xE2))
                && vocab.id(t) == Some(id)
        })
        .collect();
    for (slot, names) in [
        (&mut eot, EOT_NAMES),
        (&mut eom, EOM_NAMES),
        (&mut fim_pre, FIM_PRE_NAMES),
        (&mut fim_suf, FIM_SUF_NAMES),
        (&mut fim_mid, FIM_MID_NAMES),
        (&mut fim_pad, FIM_PAD_NAMES),
        (&mut fim_rep, FIM_REP_NAMES),
        (&mut fim_sep, FIM_SEP_NAMES),
    ] {
        if slot.is_none() {
            *slot = names.iter().find_map(|&name| {
                candidates
                    .iter()
                    .copied()
                    .find(|&id| vocab.text(id) == name)
            });
            if let Some(id) = *slot {
                // A control-looking token that is not typed control is made one.
                attrs[id as usize] |= ATTR_CONTROL;
            }
        }
    }

    // End-of-generation ids.
    let mut eog: Vec<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
    for &id in &candidates {
        let t = vocab.text(id);
        if EOG_NAMES.contains(&t) {
            eog.push(id);
            attrs[id as usize] |= ATTR_CONTROL;
        }
        if matches!(
            t,
            "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
        ) {
            // gpt-oss: always rendered.
            attrs[id as usize] = ATTR_USER_DEFINED;
        }
    }
    eog.extend([eos, eot, eom].into_iter().flatten());
    eog.sort_unstable();
    eog.dedup();
    {
        // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
        let has = |name: &str| eog.iter().any(|&id| vocab.text(id) == name);
        let end = eog
            .iter()
            .rev()
            .copied()
            .find(|&id| vocab.text(id) == "<|end|>");
        let call = has("<|call|>") || has("<|calls|>");
        if let Some(end) = end {
            if call && (has("<|return|>") || has("<|flush|>")) {
                eog.retain(|&id| id != end);
                attrs[end as usize] = ATTR_USER_DEFINED;
            }
        }
    }
    {
        // Gemma 4 / PLaMo: "</s>" is an ordinary token there.
        let marker = eog
            .iter()
            .any(|&id| matches!(vocab.text(id), "<|tool_response>" | "<|plamo:eos|>"));
        let s_id = eog
            .iter()
            .rev()
            .copied()
            .find(|&id| vocab.text(id) == "</s>");
        if let (true, Some(s_id)) = (marker, s_id) {
            eog.retain(|&id| id != s_id);
            attrs[s_id as usize] = ATTR_NORMAL;
        }
    }

    // Tokens matched in raw text, longest first (llama.cpp's sort is not stable; ties keep id order here).
    let mut specials: Vec<u32> = (0..n as u32)
        .filter(|&id| attrs[id as usize] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0)
        .collect();
    specials.sort_by_key(|&id| core::cmp::Reverse(vocab.text(id).len()));

    let bytes = ByteMap::new();
    // Pieces are at most as long as texts except for rare `[UNK_BYTE_..]` markers.
    let mut pieces = Vec::with_capacity(vocab.text_len());
    let mut piece_ends = Vec::with_capacity(n);
    let mut piece_is_text = alloc::vec![0u64; n.div_ceil(64)];
    for id in 0..n as u32 {
        let start = pieces.len();
        piece(
            d.kind,
            vocab.text(id),
            attrs[id as usize],
            &bytes,
            &mut pieces,
        );
        if pieces[start..] == *vocab.text(id).as_bytes() {
            // Control tokens, and BPE tokens of printable ASCII: a third of SmolLM2's.
            pieces.truncate(start);
            piece_is_text[id as usize / 64] |= 1 << (id % 64);
        }
        piece_ends.push(pieces.len() as u32);
    }
    let piece_ends = Offsets::new(piece_ends);
    pieces.shrink_to_fit();

    // Per-model attributes llama.cpp sets by name (only the strip flags, used when splitting at specials).
    let name = d.name.unwrap_or("").to_ascii_lowercase();
    let set = |attrs: &mut [u8], text: &str, flag: u8, on: bool| {
        if let Some(id) = vocab.id(text) {
            let a = &mut attrs[id as usize];
            *a = if on { *a | flag } else { *a & !flag };
        }
    };
    let pre_name = d.pre.unwrap_or("");
    let arch = d.arch.unwrap_or("");
    if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
        .iter()
        .any(|p| pre_name.contains(p))
        || ["nomic-bert-moe", "jina-bert-v3"]
            .iter()
            .any(|a| arch.contains(a))
    {
        set(&mut attrs, "<mask>", ATTR_LSTRIP, true);
    } else if name.contains("phi-3") || name.contains("phi3") {
        for &id in &specials {
            attrs[id as usize] |= ATTR_RSTRIP;
        }
        set(&mut attrs, "</s>", ATTR_RSTRIP, true);
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            set(&mut attrs, t, ATTR_RSTRIP, false);
        }
    } else if name.contains("modern-bert") {
        set(&mut attrs, "[MASK]", ATTR_LSTRIP, true);
    }

    let model = match pre {
        Some(p) => Model::Bpe {
            pre: p.pre,
            ignore_merges: p.ignore_merges,
            merges: alloc::boxed::Box::new(bpe::Merges::new(&vocab, &bytes, d.merges.iter())),
        },
        None => Model::Spm {
            scores: match &d.scores {
                Some(s) => (0..n).map(|i| s.f32(i)).collect(),
                None => alloc::vec![0.0; n],
            },
        },
    };

    Ok(Tokenizer {
        model,
        vocab,
        attrs,
        pieces,
        piece_ends,
        piece_is_text,
        specials,
        eog,
        bos,
        eos,
        eot,
        pad,
        add_bos,
        add_eos,
        add_space_prefix,
        clean_spaces,
        bytes,
    })
}

/// llama.cpp's `token_to_piece(special = true)` for one token, appended to `out`.
fn piece(kind: VocabKind, text: &str, attr: u8, bytes: &ByteMap, out: &mut Vec<u8>) {
    if attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
        out.extend_from_slice(text.as_bytes());
    } else if attr & ATTR_NORMAL != 0 {
        match kind {
            VocabKind::Spm => {
                for c in text.chars() {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(
                        if c == '\u{2581}' {
                            " "
                        } else {
                            c.encode_utf8(&mut b)
                        }
                        .as_bytes(),
                    );
                }
            }
            VocabKind::Bpe => {
                for c in text.chars() {
                    match bytes.decode(c) {
                        Some(b) => out.push(b),
                        None => {
                            // llama.cpp's marker for a code point outside the byte mapping.
                            let mut b = [0u8; 4];
                            out.extend_from_slice(b"[UNK_BYTE_0x");
                            for &x in c.encode_utf8(&mut b).as_bytes() {
                                const HEX: &[u8; 16] = b"0123456789abcdef";
                                out.push(HEX[usize::from(x >> 4)]);
                                out.push(HEX[usize::from(x & 15)]);
                            }
                            out.extend_from_slice(text.as_bytes());
                            out.push(b']');
                        }
                    }
                }
            }
        }
    } else if attr & ATTR_BYTE != 0 {
        // `<0xXX>`: the two characters after "<0x", read as hex like strtol (leading digits only).
        if let Some(hex) = text.as_bytes().get(3..) {
            let mut v = 0u32;
            for &c in hex.iter().take(2) {
                match (c as char).to_digit(16) {
                    Some(d) => v = v * 16 + d,
                    None => break,
                }
            }
            out.push(v as u8);
        }
    }
}
