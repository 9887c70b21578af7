//! Per-architecture maps from a Hugging Face checkpoint to llama.cpp's GGUF names and metadata.

mod gpt2;
mod llama;

use crate::checkpoint::Checkpoint;
use crate::error::{ConvertError, Result};
use edgelm::gguf::write::MetaValue;
use serde_json::Value;

/// The architectures the converter reads, as config.json's `architectures` names them.
pub const SUPPORTED: &str = "GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM";

/// What a GGUF tensor is, for the quantization recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Token embedding table.
    TokenEmbd,
    /// Learned position embeddings (GPT-2).
    PosEmbd,
    /// Output head.
    Output,
    /// Query, key, output projections and other attention matrices.
    Attn,
    /// Value projection (kept at higher precision by q4_k_m).
    AttnV,
    /// Fused Q/K/V (GPT-2).
    AttnQkv,
    /// Feed-forward gate/up.
    Ffn,
    /// Feed-forward down projection (kept at higher precision by q4_k_m).
    FfnDown,
    /// Norm weights, biases and computed vectors: always F32.
    Vector,
}

/// Where a GGUF tensor's values come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A checkpoint tensor whose rows are the GGUF rows (Linear `[out, in]`, embeddings, vectors).
    Rows(String),
    /// Rows reordered for llama.cpp's adjacent-pair RoPE: `n_head` groups of `[2, half]` become `[half, 2]`.
    Permuted(String, usize),
    /// A Conv1D `[in, out]` weight: GGUF row `r` is column `r`.
    Transposed(String),
    /// Values computed by the converter.
    Values(Vec<f32>),
}

impl Source {
    /// The checkpoint tensor, if any.
    pub fn hf_name(&self) -> Option<&str> {
        match self {
            Source::Rows(n) | Source::Permuted(n, _) | Source::Transposed(n) => Some(n),
            Source::Values(_) => None,
        }
    }

    /// The checkpoint row that becomes GGUF row `r` of a `rows`-row tensor.
    pub fn src_row(&self, r: usize, rows: usize) -> usize {
        match *self {
            Source::Permuted(_, n_head) => permuted_row(r, rows, n_head),
            _ => r,
        }
    }
}

/// llama.cpp's Q/K permutation (convert_hf_to_gguf.py `permute`): the source row of GGUF row `r`.
pub fn permuted_row(r: usize, rows: usize, n_head: usize) -> usize {
    let half = rows / n_head / 2;
    let (h, rest) = (r / (2 * half), r % (2 * half));
    let (i, j) = (rest / 2, rest % 2);
    h * 2 * half + j * half + i
}

/// One tensor of the output file.
#[derive(Clone, Debug)]
pub struct Job {
    /// GGUF name.
    pub name: String,
    /// Rows (ggml `ne1`); 1 for vectors.
    pub rows: usize,
    /// Elements per row (ggml `ne0`).
    pub cols: usize,
    /// 1-D in the file.
    pub vector: bool,
    /// What it is.
    pub role: Role,
    /// Block index, for per-layer recipes.
    pub layer: Option<usize>,
    /// Where its values come from.
    pub source: Source,
}

impl Job {
    /// A matrix of `rows × cols` from `source`.
    pub fn matrix(name: String, rows: usize, cols: usize, role: Role, source: Source) -> Job {
        Job {
            name,
            rows,
            cols,
            vector: false,
            role,
            layer: None,
            source,
        }
    }

    /// A vector of `n` values from `source`.
    pub fn vector(name: String, n: usize, source: Source) -> Job {
        Job {
            name,
            rows: n,
            cols: 1,
            vector: true,
            role: Role::Vector,
            layer: None,
            source,
        }
    }

    /// Tags the job with its block index.
    pub fn in_layer(mut self, l: usize) -> Job {
        self.layer = Some(l);
        self
    }

    /// GGUF dims, innermost first.
    pub fn dims(&self) -> Vec<u64> {
        if self.vector {
            vec![self.rows as u64]
        } else {
            vec![self.cols as u64, self.rows as u64]
        }
    }

    /// The PyTorch shape the checkpoint tensor must have.
    pub fn hf_shape(&self) -> Vec<usize> {
        match (&self.source, self.vector) {
            (_, true) => vec![self.rows],
            (Source::Transposed(_), false) => vec![self.cols, self.rows],
            _ => vec![self.rows, self.cols],
        }
    }
}

/// Everything the converter writes for one model, except the tokenizer.
pub struct Plan {
    /// GGUF architecture name.
    pub arch: &'static str,
    /// Hyper-parameter metadata.
    pub kv: Vec<(String, MetaValue)>,
    /// Output tensors, in file order.
    pub jobs: Vec<Job>,
    /// Number of blocks.
    pub n_layer: usize,
    /// Whether the output head reuses the token embedding.
    pub tied: bool,
    /// Checkpoint tensors deliberately not converted (buffers, duplicate tied heads).
    pub ignored: Vec<String>,
    /// Vocabulary size from config.json.
    pub vocab_size: usize,
}

/// Builds the plan for the checkpoint's architecture.
pub fn plan(ck: &Checkpoint) -> Result<Plan> {
    let cfg = Cfg {
        v: &ck.config,
        path: ck.config_path(),
    };
    let archs: Vec<&str> = ck
        .config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let name = archs.first().copied().unwrap_or("");
    let mut plan = match name {
        "LlamaForCausalLM" => llama::plan(ck, &cfg, false)?,
        "Qwen2ForCausalLM" => llama::plan(ck, &cfg, true)?,
        "GPT2LMHeadModel" => gpt2::plan(ck, &cfg)?,
        other => {
            return Err(ConvertError::UnsupportedArch {
                path: cfg.path,
                arch: if other.is_empty() {
                    "(no \"architectures\" field)".into()
                } else {
                    other.into()
                },
                supported: SUPPORTED,
            })
        }
    };
    // Every checkpoint tensor must be used or known to be ignorable: anything else means the
    // checkpoint is not the architecture it claims, and converting would drop weights silently.
    let used: std::collections::HashSet<&str> = plan
        .jobs
        .iter()
        .filter_map(|j| j.source.hf_name())
        .collect();
    let mut extra: Vec<String> = ck
        .names()
        .filter(|n| !used.contains(n))
        .map(str::to_string)
        .collect();
    extra.sort();
    let (ignorable, unknown): (Vec<String>, Vec<String>) =
        extra.into_iter().partition(|n| ignorable(n, plan.tied));
    if let Some(n) = unknown.first() {
        return Err(ConvertError::Config {
            path: ck.dir.clone(),
            msg: format!(
                "tensor {n} (and {} more) has no place in a {name} model; is config.json right?",
                unknown.len() - 1
            ),
        });
    }
    plan.ignored = ignorable;
    Ok(plan)
}

/// Buffers Hugging Face saves with some checkpoints, and heads duplicated for tied embeddings.
fn ignorable(name: &str, tied: bool) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
        || (tied && name == "lm_head.weight")
}

/// The GGUF tensor a Hugging Face Linear weight becomes, with the Q/K permutation's head count.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// GGUF name.
    pub name: String,
    /// Heads of the RoPE permutation (arch llama's Q and K), if any.
    pub permute: Option<usize>,
}

/// Maps a Hugging Face weight name to its GGUF name for `arch` (for LoRA adapters).
pub fn map_name(arch: &str, hf: &str, n_head: usize, n_head_kv: usize) -> Option<Mapped> {
    match arch {
        "llama" | "qwen2" => llama::map_name(hf, arch == "llama", n_head, n_head_kv),
        "gpt2" => gpt2::map_name(hf),
        _ => None,
    }
}

/// Most blocks accepted (the runtime's limit): config.json is read before any tensor, and the
/// plan holds jobs for every block, so a huge count must fail here, not exhaust memory.
pub const MAX_LAYERS: usize = 1024;
/// Largest head size accepted (the runtime's limit); RoPE factors are computed per dimension.
pub const MAX_HEAD_DIM: usize = 1024;

/// Typed access to config.json with errors that name the file and key.
pub struct Cfg<'a> {
    v: &'a Value,
    /// config.json's path.
    pub path: std::path::PathBuf,
}

impl Cfg<'_> {
    fn err(&self, msg: String) -> ConvertError {
        ConvertError::Config {
            path: self.path.clone(),
            msg,
        }
    }

    /// A positive integer (at most 2^31, to keep later arithmetic in range).
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| self.err(format!("missing integer field {key:?}")))
    }

    /// An optional positive integer.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 && n <= 1 << 31 => Ok(Some(n as usize)),
                _ => Err(self.err(format!("field {key:?} = {v} is not a positive integer"))),
            },
        }
    }

    /// `v` (the value of `key`, or derived from it) if it is at most `max`.
    pub fn at_most(&self, key: &str, v: usize, max: usize) -> Result<usize> {
        if v > max {
            return Err(self.err(format!(
                "field {key:?} = {v} is larger than {max}, the most edgelm runs"
            )));
        }
        Ok(v)
    }

    /// An optional finite number.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x as f32)),
                _ => Err(self.err(format!("field {key:?} = {v} is not a number"))),
            },
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.v.get(key).and_then(Value::as_bool)
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.v.get(key).and_then(Value::as_str)
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key).filter(|v| !v.is_null())
    }

    /// An error about this file.
    pub fn invalid(&self, msg: String) -> ConvertError {
        self.err(msg)
    }
}

fn kv(key: impl Into<String>, v: MetaValue) -> (String, MetaValue) {
    (key.into(), v)
}

fn u32v(n: usize) -> MetaValue {
    MetaValue::U32(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permutation as numpy writes it: reshape(h, 2, half, c).swapaxes(1, 2).reshape(rows, c).
    fn plan_of(config: serde_json::Value) -> Result<Plan> {
        let ck = Checkpoint::from_parts(std::path::Path::new("ck"), config, Vec::new());
        plan(&ck)
    }

    /// Reproduced through the converter_config fuzz target (timeout, out of memory): sizes from
    /// config.json were used before any tensor was looked at, so a huge block count or head size
    /// ran the plan for minutes or out of memory.
    #[test]
    fn huge_sizes_are_refused_by_name() {
        let llama = |k: &str, v: u64| {
            let mut c = serde_json::json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 8,
                "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                "vocab_size": 16});
            c[k] = v.into();
            plan_of(c).err().expect("refused").to_string()
        };
        let e = llama("num_hidden_layers", 2_000_000_000);
        assert!(
            e.contains("\"num_hidden_layers\" = 2000000000 is larger than 1024"),
            "{e}"
        );
        let e = llama("head_dim", 1 << 31);
        assert!(
            e.contains("\"head_dim\" = 2147483648 is larger than 1024"),
            "{e}"
        );
        assert!(e.contains("config.json"), "{e}");
        let gpt2 = serde_json::json!({"architectures": ["GPT2LMHeadModel"], "n_embd": 8,
            "n_layer": 1u64 << 31, "n_head": 2, "n_positions": 8, "vocab_size": 16});
        let e = plan_of(gpt2).err().expect("refused").to_string();
        assert!(
            e.contains("\"n_layer\" = 2147483648 is larger than 1024"),
            "{e}"
        );
    }

    #[test]
    fn permutation_matches_numpy_reshape() {
        let (n_head, rows) = (3, 12);
        let half = rows / n_head / 2;
        let mut expect = Vec::new();
        for h in 0..n_head {
            for i in 0..half {
                for j in 0..2 {
                    expect.push(h * 2 * half + j * half + i);
                }
            }
        }
        let got: Vec<usize> = (0..rows).map(|r| permuted_row(r, rows, n_head)).collect();
        assert_eq!(got, expect);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..rows).collect::<Vec<_>>());
    }
}
