//! Hyper-parameters read from GGUF metadata, checked for range and consistency.

use super::ModelError;
use crate::gguf::{Gguf, Name};

/// Architectures this runtime runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arch {
    /// Llama family: SmolLM/SmolLM2, TinyLlama, Llama 2/3.
    Llama,
    /// Qwen2 / Qwen2.5: Llama with Q/K/V biases and half-split RoPE.
    Qwen2,
    /// GPT-2 and Cerebras-GPT: LayerNorm, learned positions, fused QKV, GELU MLP, biases everywhere.
    Gpt2,
    /// Gemma 3: sliding-window and global attention layers, Q/K norms, sandwich norms, GeGLU.
    Gemma3,
}

impl Arch {
    /// Names accepted in `general.architecture`, for error messages.
    pub const SUPPORTED: &'static str = "llama, qwen2, gpt2, gemma3";

    /// From `general.architecture`.
    pub fn from_name(s: &str) -> Option<Arch> {
        match s {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "gpt2" => Some(Arch::Gpt2),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }

    /// The name used as metadata key prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gpt2 => "gpt2",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// How RoPE pairs dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeKind {
    /// Adjacent pairs (2i, 2i+1): llama.cpp permutes Llama's Q/K rows into this order.
    Normal,
    /// Half-split pairs (i, i + d/2), "NeoX" style: Qwen2, Gemma.
    Neox,
    /// No rotation: positions come from a learned embedding (GPT-2).
    None,
}

/// The feed-forward block's nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU gating a second projection (SwiGLU): Llama, Qwen2.
    Silu,
    /// GELU, tanh approximation (Hugging Face `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// GELU with the exact error function (Hugging Face `gelu`), as Cerebras-GPT was trained.
    GeluErf,
}

impl Activation {
    /// Names accepted in `edgelm.activation_function`, for error messages.
    pub const SUPPORTED_GELU: &'static str = "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast";

    /// From a Hugging Face `activation_function` value naming a GELU.
    pub fn from_hf_name(s: &str) -> Option<Activation> {
        match s {
            "gelu" => Some(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            _ => None,
        }
    }
}

/// Metadata key the converter writes when a GPT-2-family model names its GELU
/// (llama.cpp always uses the tanh form, which is right for GPT-2 but not for Cerebras-GPT).
pub const ACTIVATION_KEY: &str = "edgelm.activation_function";

/// Model hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Architecture.
    pub arch: Arch,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention (query) heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Hidden width of the feed-forward block.
    pub n_ff: usize,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    /// Norm epsilon: RMSNorm's (`layer_norm_rms_epsilon`) or LayerNorm's (`layer_norm_epsilon`, GPT-2).
    pub norm_eps: f32,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// Number of head dimensions RoPE rotates.
    pub rope_dim: usize,
    /// RoPE pairing.
    pub rope_kind: RopeKind,
    /// Feed-forward nonlinearity.
    pub activation: Activation,
    /// Positions a sliding-window layer attends to (itself included); 0 when every layer is global.
    pub sliding_window: usize,
    /// Every `swa_pattern`-th layer (the last of each group) is global, the others slide; 0: none slide.
    pub swa_pattern: usize,
    /// RoPE base of the sliding-window layers.
    pub rope_base_swa: f32,
    /// Scale applied to the queries before attention (Gemma: 1/√head_dim; others fold it in).
    pub attn_scale: f32,
    /// `c·tanh(logit/c)` on the output logits when nonzero.
    pub logit_softcap: f32,
}

/// Builds `arch.suffix` in a stack buffer (no allocation).
struct Key {
    buf: [u8; 96],
    len: usize,
}

impl Key {
    fn new(arch: &str, suffix: &str) -> Key {
        let mut k = Key {
            buf: [0; 96],
            len: 0,
        };
        for part in [arch, ".", suffix] {
            let n = part.len().min(96 - k.len);
            k.buf[k.len..k.len + n].copy_from_slice(&part.as_bytes()[..n]);
            k.len += n;
        }
        k
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

fn bounded(what: &'static str, v: u64, lo: u64, hi: u64) -> Result<usize, ModelError> {
    if v < lo || v > hi {
        return Err(ModelError::BadConfig { what, value: v });
    }
    Ok(v as usize)
}

impl Config {
    /// Reads and checks the hyper-parameters of a GGUF model.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Config, ModelError> {
        let name = g.architecture().ok_or(ModelError::NoArchitecture)?;
        let arch = Arch::from_name(name).ok_or(ModelError::UnknownArchitecture(Name::new(name)))?;
        let a = arch.name();
        let req = |suffix: &str| -> Result<u64, ModelError> {
            let k = Key::new(a, suffix);
            g.get(k.as_str())
                .and_then(|v| v.as_u64())
                .ok_or(ModelError::MissingKey(Name::new(k.as_str())))
        };
        let opt_u = |suffix: &str| g.get(Key::new(a, suffix).as_str()).and_then(|v| v.as_u64());
        let opt_f = |suffix: &str| g.get(Key::new(a, suffix).as_str()).and_then(|v| v.as_f32());

        let n_embd = bounded("embedding_length", req("embedding_length")?, 1, 1 << 16)?;
        let n_layer = bounded("block_count", req("block_count")?, 1, 1024)?;
        let n_head = bounded(
            "attention.head_count",
            req("attention.head_count")?,
            1,
            1024,
        )?;
        let n_head_kv = bounded(
            "attention.head_count_kv",
            opt_u("attention.head_count_kv").unwrap_or(n_head as u64),
            1,
            n_head as u64,
        )?;
        if n_head % n_head_kv != 0 {
            return Err(ModelError::BadConfig {
                what: "attention.head_count_kv (must divide head_count)",
                value: n_head_kv as u64,
            });
        }
        let head_dim = bounded(
            "attention.key_length",
            opt_u("attention.key_length").unwrap_or((n_embd / n_head) as u64),
            2,
            1024,
        )?;
        if let Some(vl) = opt_u("attention.value_length") {
            if vl != head_dim as u64 {
                return Err(ModelError::BadConfig {
                    what: "attention.value_length (must equal key_length)",
                    value: vl,
                });
            }
        }
        let n_ff = bounded(
            "feed_forward_length",
            req("feed_forward_length")?,
            1,
            1 << 20,
        )?;
        let n_ctx_train = bounded(
            "context_length",
            opt_u("context_length").unwrap_or(2048),
            1,
            1 << 24,
        )?;
        let rope_dim = bounded(
            "rope.dimension_count",
            opt_u("rope.dimension_count").unwrap_or(head_dim as u64),
            2,
            head_dim as u64,
        )?;
        if rope_dim % 2 != 0 {
            return Err(ModelError::BadConfig {
                what: "rope.dimension_count (must be even)",
                value: rope_dim as u64,
            });
        }
        let norm_eps = match arch {
            // llama.cpp requires the LayerNorm epsilon for GPT-2 rather than guessing it.
            Arch::Gpt2 => opt_f("attention.layer_norm_epsilon").ok_or(ModelError::MissingKey(
                Name::new("gpt2.attention.layer_norm_epsilon"),
            ))?,
            Arch::Llama | Arch::Qwen2 | Arch::Gemma3 => {
                opt_f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5)
            }
        };
        let rope_base = opt_f("rope.freq_base").unwrap_or(10000.0);
        if !(norm_eps.is_finite() && norm_eps >= 0.0 && rope_base.is_finite() && rope_base > 0.0) {
            return Err(ModelError::BadConfig {
                what: "layer_norm_rms_epsilon / rope.freq_base",
                value: 0,
            });
        }
        let n_vocab = g
            .tensor("token_embd.weight")
            .map(|t| t.dims[1])
            .ok_or(ModelError::MissingTensor(Name::new("token_embd.weight")))?;
        let n_vocab = bounded("vocab size", n_vocab, 1, 1 << 22)?;
        let rope_kind = match arch {
            Arch::Llama => RopeKind::Normal,
            Arch::Qwen2 | Arch::Gemma3 => RopeKind::Neox,
            Arch::Gpt2 => RopeKind::None,
        };
        let activation = match arch {
            Arch::Llama | Arch::Qwen2 => Activation::Silu,
            Arch::Gemma3 => Activation::GeluTanh,
            Arch::Gpt2 => match g.get(ACTIVATION_KEY) {
                None => Activation::GeluTanh,
                Some(v) => {
                    let name = v
                        .as_str()
                        .ok_or(ModelError::MissingKey(Name::new(ACTIVATION_KEY)))?;
                    Activation::from_hf_name(name)
                        .ok_or(ModelError::UnknownActivation(Name::new(name)))?
                }
            },
        };
        // Gemma 3 (llama.cpp's loader): without a window every layer is global; with one, five
        // sliding layers per global one unless the file says otherwise, their RoPE base 10000.
        let (sliding_window, swa_pattern, rope_base_swa) = match arch {
            Arch::Gemma3 => match opt_u("attention.sliding_window").unwrap_or(0) {
                0 => (0, 0, rope_base),
                w => (
                    bounded("attention.sliding_window", w, 1, 1 << 24)?,
                    bounded(
                        "attention.sliding_window_pattern",
                        opt_u("attention.sliding_window_pattern").unwrap_or(6),
                        1,
                        1024,
                    )?,
                    opt_f("rope.freq_base_swa").unwrap_or(10000.0),
                ),
            },
            Arch::Llama | Arch::Qwen2 | Arch::Gpt2 => (0, 0, rope_base),
        };
        if !(rope_base_swa.is_finite() && rope_base_swa > 0.0) {
            return Err(ModelError::BadConfig {
                what: "rope.freq_base_swa",
                value: 0,
            });
        }
        let attn_scale = match arch {
            // Gemma 3 27B scales by the width per head rather than the head size (gemma_pytorch).
            Arch::Gemma3 if n_layer == 62 => 1.0 / libm::sqrtf((n_embd / n_head) as f32),
            _ => 1.0 / libm::sqrtf(head_dim as f32),
        };
        let logit_softcap = match arch {
            Arch::Gemma3 => opt_f("final_logit_softcapping").unwrap_or(0.0),
            Arch::Llama | Arch::Qwen2 | Arch::Gpt2 => 0.0,
        };
        if !(logit_softcap.is_finite() && logit_softcap >= 0.0) {
            return Err(ModelError::BadConfig {
                what: "final_logit_softcapping",
                value: 0,
            });
        }
        Ok(Config {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_ctx_train,
            norm_eps,
            rope_base,
            rope_dim,
            rope_kind,
            activation,
            sliding_window,
            swa_pattern,
            rope_base_swa,
            attn_scale,
            logit_softcap,
        })
    }

    /// Whether layer `l` attends through a sliding window (llama.cpp's `set_swa_pattern`).
    pub fn is_swa(&self, l: usize) -> bool {
        self.sliding_window > 0
            && self.swa_pattern > 0
            && l % self.swa_pattern < self.swa_pattern - 1
    }

    /// Number of sliding-window layers.
    pub fn n_swa_layers(&self) -> usize {
        (0..self.n_layer).filter(|&l| self.is_swa(l)).count()
    }

    /// Width of the concatenated query heads.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the concatenated key (or value) heads.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// The longest context the model can run, if it has a hard limit: a learned position
    /// embedding (GPT-2) has no row beyond `n_ctx_train`. RoPE models have none.
    pub fn max_ctx(&self) -> Option<usize> {
        match self.rope_kind {
            RopeKind::None => Some(self.n_ctx_train),
            RopeKind::Normal | RopeKind::Neox => None,
        }
    }
}
