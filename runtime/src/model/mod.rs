//! Model architectures: hyper-parameters from GGUF metadata, weights borrowed from the file.
//!
//! Each architecture is one file (`llama.rs`, `qwen2.rs`, `gpt2.rs`, `gemma3.rs`) with its forward pass;
//! `ops.rs` holds the shared numerical building blocks (norms, RoPE, attention, activations)
//! written once; `lora.rs` adds LoRA adapters' low-rank deltas to any weight, so every
//! architecture gets them from `ops`.

mod config;
mod error;
pub mod gemma3;
pub mod gpt2;
pub mod llama;
pub mod lora;
pub mod math;
pub mod ops;
pub mod qwen2;
mod state;
mod weights;

pub use config::{Activation, Arch, Config, RopeKind, ACTIVATION_KEY};
pub use error::ModelError;
pub use lora::{Adapter, LoraDelta, LoraError, MAX_LORA_RANK};
pub use state::{batch_sizes, state_sizes, Batch, State};
pub use weights::{LayerWeights, Vector, Weight};

use crate::gguf::Gguf;

/// A loaded model: its config and weights borrowed from the GGUF bytes (never copied).
///
/// `L` holds the per-layer weight table: a `Vec` with `alloc`, or an array / slice the caller
/// provides on a microcontroller (see [`Model::load_into`]).
#[derive(Clone, Debug)]
pub struct Model<'a, L> {
    /// Hyper-parameters.
    pub config: Config,
    /// Token embedding, `[n_vocab rows × n_embd]`.
    pub tok_embd: Weight<'a>,
    /// Final norm weight.
    pub output_norm: Vector<'a>,
    /// Final norm bias (architectures with LayerNorm).
    pub output_norm_b: Option<Vector<'a>>,
    /// Output head; the token embedding when tied.
    pub output: Weight<'a>,
    /// Per-dimension RoPE frequency factors (Llama 3.1+), if present.
    pub rope_freqs: Option<Vector<'a>>,
    /// Learned position embedding, `[n_ctx_train rows × n_embd]` (GPT-2).
    pub pos_embd: Option<Weight<'a>>,
    /// Per-layer weights.
    pub layers: L,
}

/// A model whose layer table lives on the heap.
#[cfg(feature = "alloc")]
pub type ModelVec<'a> = Model<'a, alloc::vec::Vec<LayerWeights<'a>>>;

#[cfg(feature = "alloc")]
impl<'a> Model<'a, alloc::vec::Vec<LayerWeights<'a>>> {
    /// Loads a model, allocating only its small layer table.
    pub fn load(g: &Gguf<'a>) -> Result<Self, ModelError> {
        let config = Config::from_gguf(g)?;
        let layers = alloc::vec![LayerWeights::EMPTY; config.n_layer];
        Self::load_with(g, config, layers)
    }
}

impl<'a, L: AsRef<[LayerWeights<'a>]> + AsMut<[LayerWeights<'a>]>> Model<'a, L> {
    /// Loads a model into a caller-provided layer table whose length must equal the layer count.
    pub fn load_into(g: &Gguf<'a>, layers: L) -> Result<Self, ModelError> {
        let config = Config::from_gguf(g)?;
        Self::load_with(g, config, layers)
    }

    fn load_with(g: &Gguf<'a>, config: Config, mut layers: L) -> Result<Self, ModelError> {
        if layers.as_ref().len() != config.n_layer {
            return Err(ModelError::LayerTable {
                expected: config.n_layer,
                got: layers.as_ref().len(),
            });
        }
        let w = weights::Loader { g, c: &config };
        let tok_embd = w.embedding("token_embd.weight", config.n_vocab, config.n_embd)?;
        let output = match w.has("output.weight") {
            true => w.matrix("output.weight", config.n_vocab, config.n_embd)?,
            false => tok_embd,
        };
        let model_output_norm = w.vector("output_norm.weight", config.n_embd)?;
        let output_norm_b = match config.arch {
            Arch::Gpt2 => Some(w.vector("output_norm.bias", config.n_embd)?),
            Arch::Llama | Arch::Qwen2 | Arch::Gemma3 => {
                w.opt_vector("output_norm.bias", config.n_embd)?
            }
        };
        let rope_freqs = w.opt_vector("rope_freqs.weight", config.rope_dim / 2)?;
        let pos_embd = match config.arch {
            Arch::Gpt2 => {
                Some(w.embedding("position_embd.weight", config.n_ctx_train, config.n_embd)?)
            }
            Arch::Llama | Arch::Qwen2 | Arch::Gemma3 => None,
        };
        for (i, l) in layers.as_mut().iter_mut().enumerate() {
            *l = match config.arch {
                Arch::Llama | Arch::Qwen2 => llama::load_layer(&w, i)?,
                Arch::Gpt2 => gpt2::load_layer(&w, i)?,
                Arch::Gemma3 => gemma3::load_layer(&w, i)?,
            };
        }
        Ok(Model {
            config,
            tok_embd,
            output_norm: model_output_norm,
            output_norm_b,
            output,
            rope_freqs,
            pos_embd,
            layers,
        })
    }
}

impl<'a, L: AsRef<[LayerWeights<'a>]>> Model<'a, L> {
    /// The per-layer weights.
    pub fn layers(&self) -> &[LayerWeights<'a>] {
        self.layers.as_ref()
    }
}
