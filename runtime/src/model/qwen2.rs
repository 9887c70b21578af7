//! Qwen2 / Qwen2.5 (Yang et al., 2024): the Llama block with biases on the Q/K/V projections and
//! half-split ("NeoX") RoPE. llama.cpp stores its Q/K rows in Hugging Face order, so the
//! rotation pairs `(i, i + d/2)`; the config sets that, and the Llama forward adds the biases.

pub use super::llama::forward;
