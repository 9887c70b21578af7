//! Hugging Face tokenizer files → llama.cpp's `tokenizer.ggml.*` metadata.
//!
//! Byte-level BPE (`tokenizer.json`, or `vocab.json` + `merges.txt`) becomes model `gpt2` with the
//! pre-tokenizer named the way llama.cpp names it; BPE with byte fallback (Llama 2, TinyLlama)
//! becomes model `llama` (SentencePiece-style) with scores derived from the merge ranks.

use crate::checkpoint::{read_json, read_json_opt};
use crate::error::{io, ConvertError, Result};
use edgelm::gguf::write::MetaValue;
use edgelm::gguf::ValueType;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Pre-tokenizers recognised from tokenizer.json, by llama.cpp's names.
pub const SUPPORTED_PRE: &str = "gpt-2 (ByteLevel), smollm (Digits + ByteLevel), llama-bpe, qwen2";

const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

// llama.cpp token types.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

struct Vocab {
    /// Token text by id.
    tokens: Vec<Option<String>>,
    types: Vec<i32>,
    merges: Vec<String>,
    /// `llama` (SentencePiece-style) or `gpt2` (byte-level).
    model: &'static str,
    pre: Option<&'static str>,
    post_adds_bos: Option<String>,
    /// SentencePiece-style only: whether a "▁" is put before the text.
    add_space_prefix: Option<bool>,
    path: PathBuf,
}

/// The tokenizer metadata for the checkpoint in `dir`; `config` is its config.json.
pub fn convert(dir: &Path, config: &Value, vocab_size: usize) -> Result<Vec<(String, MetaValue)>> {
    let tj = dir.join("tokenizer.json");
    let mut v = if tj.is_file() {
        from_tokenizer_json(&tj)?
    } else if dir.join("vocab.json").is_file() {
        from_vocab_merges(dir)?
    } else if dir.join("tokenizer.model").is_file() {
        return Err(ConvertError::Tokenizer {
            path: dir.join("tokenizer.model"),
            msg: "SentencePiece model files are not read yet; provide the tokenizer.json Hugging Face \
                  writes next to it"
                .into(),
        });
    } else {
        return Err(ConvertError::Missing {
            path: tj,
            what: "the tokenizer (tokenizer.json, or vocab.json + merges.txt)",
        });
    };
    // The embedding may have more rows than the tokenizer has tokens (padding for speed).
    if v.tokens.len() < vocab_size {
        v.tokens.resize(vocab_size, None);
        v.types.resize(vocab_size, UNUSED);
    }
    if v.tokens.len() > vocab_size {
        return Err(ConvertError::Tokenizer {
            path: v.path.clone(),
            msg: format!(
                "{} tokens, but config.json's vocab_size is {vocab_size}",
                v.tokens.len()
            ),
        });
    }
    let tokens: Vec<String> = v
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| t.clone().unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();

    let tc = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    let gen = read_json_opt(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
    let special = |key: &str| -> Option<u32> {
        let tok = tc.get(key).and_then(|t| {
            t.as_str()
                .or_else(|| t.get("content").and_then(Value::as_str))
        });
        if let Some(&id) = tok.and_then(|t| ids.get(t)) {
            return Some(id as u32);
        }
        let id_key = key.replace("_token", "_token_id");
        let id = |v: &Value| match v.get(&id_key) {
            Some(Value::Array(a)) => a.first().and_then(Value::as_u64),
            Some(x) => x.as_u64(),
            None => None,
        };
        id(config)
            .or_else(|| id(&gen))
            .filter(|&i| (i as usize) < tokens.len())
            .map(|i| i as u32)
    };
    let mut out = vec![
        (
            "tokenizer.ggml.model".to_string(),
            MetaValue::Str(v.model.into()),
        ),
        (
            "tokenizer.ggml.tokens".to_string(),
            MetaValue::strings(tokens.iter().cloned()),
        ),
    ];
    if let Some(pre) = v.pre {
        out.push(("tokenizer.ggml.pre".into(), MetaValue::Str(pre.into())));
    }
    if v.model == "llama" {
        let scores = spm_scores(&tokens, &v.merges, &v.types);
        out.push((
            "tokenizer.ggml.scores".into(),
            MetaValue::Array(
                ValueType::F32,
                scores.into_iter().map(MetaValue::F32).collect(),
            ),
        ));
    }
    out.push((
        "tokenizer.ggml.token_type".into(),
        MetaValue::Array(
            ValueType::I32,
            v.types.iter().map(|&t| MetaValue::I32(t)).collect(),
        ),
    ));
    if v.model == "gpt2" {
        out.push((
            "tokenizer.ggml.merges".into(),
            MetaValue::strings(v.merges.iter().cloned()),
        ));
    }
    // GPT-2's own files name no special tokens: its one control token is both BOS and EOS.
    let eot = ids.get("<|endoftext|>").map(|&i| i as u32);
    let bos = special("bos_token").or(if v.model == "gpt2" { eot } else { None });
    let eos = special("eos_token").or(if v.model == "gpt2" { eot } else { None });
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("unknown_token_id", special("unk_token")),
        ("padding_token_id", special("pad_token")),
    ] {
        if let Some(id) = id {
            out.push((format!("tokenizer.ggml.{key}"), MetaValue::U32(id)));
        }
    }
    let add_bos = tc
        .get("add_bos_token")
        .and_then(Value::as_bool)
        .or_else(|| {
            let b = v.post_adds_bos.as_deref()?;
            Some(bos.is_some_and(|id| tokens[id as usize] == b))
        })
        .unwrap_or(v.model == "llama");
    out.push((
        "tokenizer.ggml.add_bos_token".into(),
        MetaValue::Bool(add_bos),
    ));
    if let Some(p) = v.add_space_prefix {
        out.push(("tokenizer.ggml.add_space_prefix".into(), MetaValue::Bool(p)));
    }
    if let Some(add_eos) = tc.get("add_eos_token").and_then(Value::as_bool) {
        out.push((
            "tokenizer.ggml.add_eos_token".into(),
            MetaValue::Bool(add_eos),
        ));
    }
    out.extend(chat_templates(dir, &tc)?);
    Ok(out)
}

fn tok_err(path: &Path, msg: impl Into<String>) -> ConvertError {
    ConvertError::Tokenizer {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn from_tokenizer_json(path: &Path) -> Result<Vocab> {
    let j = read_json(path, "tokenizer.json")?;
    let model = j
        .get("model")
        .ok_or_else(|| tok_err(path, "no \"model\""))?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "BPE" {
        return Err(tok_err(
            path,
            format!("model type {kind:?} is not supported (supported: BPE)"),
        ));
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| tok_err(path, "no model.vocab object"))?;
    let mut tokens: Vec<Option<String>> = Vec::new();
    let mut types = Vec::new();
    let mut put = |id: u64, text: &str, ty: i32, tokens: &mut Vec<Option<String>>| -> Result<()> {
        let id = usize::try_from(id)
            .ok()
            .filter(|&i| i < 1 << 24)
            .ok_or_else(|| tok_err(path, format!("token id {id} out of range")))?;
        if tokens.len() <= id {
            tokens.resize(id + 1, None);
            types.resize(id + 1, UNUSED);
        }
        tokens[id] = Some(text.to_string());
        types[id] = ty;
        Ok(())
    };
    let byte_fallback = model
        .get("byte_fallback")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let unk = model.get("unk_token").and_then(Value::as_str);
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| tok_err(path, format!("token {text:?} has no integer id")))?;
        let ty = if byte_fallback && is_byte_token(text) {
            BYTE
        } else if Some(text.as_str()) == unk {
            UNKNOWN
        } else {
            NORMAL
        };
        put(id, text, ty, &mut tokens)?;
    }
    if let Some(added) = j.get("added_tokens").and_then(Value::as_array) {
        for a in added {
            let (Some(id), Some(text)) = (
                a.get("id").and_then(Value::as_u64),
                a.get("content").and_then(Value::as_str),
            ) else {
                return Err(tok_err(path, "an added_tokens entry lacks id or content"));
            };
            let special = a.get("special").and_then(Value::as_bool).unwrap_or(false);
            let ty = if Some(text) == unk {
                UNKNOWN
            } else if special {
                CONTROL
            } else {
                USER_DEFINED
            };
            put(id, text, ty, &mut tokens)?;
        }
    }
    let merges = read_merges_json(path, model.get("merges"))?;
    let (model_name, pre) = if byte_fallback {
        ("llama", None)
    } else {
        ("gpt2", Some(detect_pre(path, j.get("pre_tokenizer"))?))
    };
    let post_adds_bos = j
        .get("post_processor")
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("TemplateProcessing"))
        .and_then(|p| {
            p.get("single")?
                .as_array()?
                .first()?
                .get("SpecialToken")?
                .get("id")?
                .as_str()
        })
        .map(str::to_string);
    let add_space_prefix = byte_fallback.then(|| space_prefix(&j));
    Ok(Vocab {
        tokens,
        types,
        merges,
        model: model_name,
        pre,
        post_adds_bos,
        add_space_prefix,
        path: path.to_path_buf(),
    })
}

/// Whether a SentencePiece-style tokenizer.json puts "▁" before the text: a `Prepend` normalizer
/// (Llama 2, TinyLlama) or a `Metaspace` pre-tokenizer that prepends (newer exports).
fn space_prefix(j: &Value) -> bool {
    fn steps<'v>(v: Option<&'v Value>, list: &str) -> Vec<&'v Value> {
        match v {
            Some(x) if x.get("type").and_then(Value::as_str) == Some("Sequence") => x
                .get(list)
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            Some(x) if !x.is_null() => vec![x],
            _ => Vec::new(),
        }
    }
    let ty = |v: &Value| {
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let prepend = steps(j.get("normalizer"), "normalizers").iter().any(|n| {
        ty(n) == "Prepend" && n.get("prepend").and_then(Value::as_str) == Some("\u{2581}")
    });
    let metaspace = steps(j.get("pre_tokenizer"), "pretokenizers")
        .iter()
        .any(|p| {
            ty(p) == "Metaspace"
                && (p.get("add_prefix_space").and_then(Value::as_bool) == Some(true)
                    || matches!(
                        p.get("prepend_scheme").and_then(Value::as_str),
                        Some("always" | "first")
                    ))
        });
    prepend || metaspace
}

fn is_byte_token(t: &str) -> bool {
    t.len() == 6 && t.starts_with("<0x") && t.ends_with('>')
}

fn read_merges_json(path: &Path, merges: Option<&Value>) -> Result<Vec<String>> {
    let Some(list) = merges.and_then(Value::as_array) else {
        return Err(tok_err(path, "no model.merges list"));
    };
    list.iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                _ => Err(tok_err(path, "a merge pair is not two strings")),
            },
            _ => Err(tok_err(path, format!("merge entry {m} is not understood"))),
        })
        .collect()
}

/// Names the pre-tokenizer the way llama.cpp does, from its structure in tokenizer.json.
fn detect_pre(path: &Path, pre: Option<&Value>) -> Result<&'static str> {
    let steps: Vec<&Value> = match pre {
        Some(p) if p.get("type").and_then(Value::as_str) == Some("Sequence") => p
            .get("pretokenizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(p) if !p.is_null() => vec![p],
        _ => Vec::new(),
    };
    let ty = |v: &Value| {
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let byte_level = |v: &Value, regex: bool| {
        ty(v) == "ByteLevel" && v.get("use_regex").and_then(Value::as_bool).unwrap_or(true) == regex
    };
    fn split_regex(v: &Value) -> Option<&str> {
        if v.get("type")?.as_str()? != "Split" {
            return None;
        }
        v.get("pattern")?.get("Regex")?.as_str()
    }
    let found = match steps.as_slice() {
        [b] if byte_level(b, true) => Some("gpt-2"),
        [d, b]
            if ty(d) == "Digits"
                && d.get("individual_digits").and_then(Value::as_bool) == Some(true)
                && byte_level(b, true) =>
        {
            Some("smollm")
        }
        [s, b] if byte_level(b, false) => match split_regex(s) {
            Some(LLAMA3_REGEX) => Some("llama-bpe"),
            Some(QWEN2_REGEX) => Some("qwen2"),
            _ => None,
        },
        _ => None,
    };
    found.ok_or_else(|| {
        tok_err(
            path,
            format!(
                "pre-tokenizer {} is not one edgelm knows (supported: {SUPPORTED_PRE})",
                pre.map(|p| p.to_string())
                    .unwrap_or_else(|| "(none)".into())
            ),
        )
    })
}

fn from_vocab_merges(dir: &Path) -> Result<Vocab> {
    let vpath = dir.join("vocab.json");
    let mpath = dir.join("merges.txt");
    let vocab = read_json(&vpath, "vocab.json")?;
    let vocab = vocab
        .as_object()
        .ok_or_else(|| tok_err(&vpath, "not a JSON object of token → id"))?;
    let mut tokens: Vec<Option<String>> = Vec::new();
    for (t, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| i < 1 << 24)
            .ok_or_else(|| tok_err(&vpath, format!("token {t:?} has no valid id")))?
            as usize;
        if tokens.len() <= id {
            tokens.resize(id + 1, None);
        }
        tokens[id] = Some(t.clone());
    }
    let text = std::fs::read(&mpath).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConvertError::Missing {
            path: mpath.clone(),
            what: "BPE merges to go with vocab.json",
        },
        _ => io(&mpath)(e),
    })?;
    let text = String::from_utf8(text).map_err(|_| tok_err(&mpath, "not UTF-8"))?;
    let merges = text
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    // GPT-2's files mark nothing; `<|endoftext|>` is its control token.
    let types = tokens
        .iter()
        .map(|t| match t.as_deref() {
            Some("<|endoftext|>") => CONTROL,
            Some(_) => NORMAL,
            None => UNUSED,
        })
        .collect();
    Ok(Vocab {
        tokens,
        types,
        merges,
        model: "gpt2",
        pre: Some("gpt-2"),
        post_adds_bos: None,
        add_space_prefix: None,
        path: vpath,
    })
}

/// SentencePiece merges by score: a token made by an earlier merge scores higher.
fn spm_scores(tokens: &[String], merges: &[String], types: &[i32]) -> Vec<f32> {
    let rank: HashMap<String, usize> = merges
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.split_once(' ').map(|(a, b)| (format!("{a}{b}"), i)))
        .rev()
        .collect();
    tokens
        .iter()
        .zip(types)
        .map(|(t, &ty)| match (ty, rank.get(t)) {
            (NORMAL, Some(&r)) => -(r as f32) - 1.0,
            (NORMAL, None) => -1e9,
            _ => 0.0,
        })
        .collect()
}

fn chat_templates(dir: &Path, tc: &Value) -> Result<Vec<(String, MetaValue)>> {
    let mut out = Vec::new();
    match tc.get("chat_template") {
        Some(Value::String(s)) => {
            out.push(("tokenizer.chat_template".into(), MetaValue::Str(s.clone())))
        }
        Some(Value::Array(list)) => {
            for t in list {
                let (Some(name), Some(tpl)) = (
                    t.get("name").and_then(Value::as_str),
                    t.get("template").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let key = if name == "default" {
                    "tokenizer.chat_template".to_string()
                } else {
                    format!("tokenizer.chat_template.{name}")
                };
                out.push((key, MetaValue::Str(tpl.to_string())));
            }
        }
        _ => {
            let f = dir.join("chat_template.jinja");
            if f.is_file() {
                let s = std::fs::read_to_string(&f).map_err(io(&f))?;
                out.push(("tokenizer.chat_template".into(), MetaValue::Str(s)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_tokenizers_are_named_like_llama_cpp() {
        let p = Path::new("tokenizer.json");
        let bl = json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true});
        assert_eq!(detect_pre(p, Some(&bl)).unwrap(), "gpt-2");
        let smol = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, bl]});
        assert_eq!(detect_pre(p, Some(&smol)).unwrap(), "smollm");
        let qwen = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated"},
            {"type": "ByteLevel", "use_regex": false}]});
        assert_eq!(detect_pre(p, Some(&qwen)).unwrap(), "qwen2");
        let odd = json!({"type": "Whitespace"});
        let e = detect_pre(p, Some(&odd)).unwrap_err().to_string();
        assert!(e.contains("supported"), "{e}");
    }

    #[test]
    fn spm_scores_follow_merge_order() {
        let tokens: Vec<String> = ["<unk>", "a", "b", "ab", "abb"].map(String::from).to_vec();
        let types = [UNKNOWN, NORMAL, NORMAL, NORMAL, NORMAL];
        let s = spm_scores(&tokens, &["a b".into(), "ab b".into()], &types);
        assert!(s[3] > s[4] && s[4] > s[1]);
    }
}
