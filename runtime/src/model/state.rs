//! Activation buffers of one forward pass (llama2.c's RunState), carved from caller memory.

use super::Arch;

/// Scratch buffers for one token's forward pass; sizes follow from the config and context length.
#[derive(Debug)]
pub struct State<'m> {
    /// Residual stream, `n_embd`.
    pub x: &'m mut [f32],
    /// Normed input / block output, `max(n_embd, q_dim)`.
    pub xb: &'m mut [f32],
    /// Attention output before projection, `max(n_embd, q_dim)`.
    pub xb2: &'m mut [f32],
    /// Queries, `q_dim`.
    pub q: &'m mut [f32],
    /// Keys of this position, `kv_dim`.
    pub k: &'m mut [f32],
    /// Values of this position, `kv_dim`.
    pub v: &'m mut [f32],
    /// Feed-forward hidden, `n_ff`.
    pub hb: &'m mut [f32],
    /// Feed-forward hidden (second branch), `n_ff`; empty for GPT-2, whose MLP has no gate.
    pub hb2: &'m mut [f32],
    /// Output logits, `n_vocab`.
    pub logits: &'m mut [f32],
    /// The activation quantized for the weight kernels, `4 × max(n_embd, q_dim, n_ff)` bytes.
    pub act: &'m mut [u8],
}

/// Element counts of each [`State`] buffer, in field order (none grows with the context: attention
/// runs online over the KV cache).
pub fn state_sizes(c: &super::Config) -> [(usize, usize); 10] {
    let wide = c.n_embd.max(c.q_dim());
    let widest = wide.max(c.n_ff);
    let gated_ff = match c.arch {
        Arch::Llama | Arch::Qwen2 | Arch::Gemma3 => c.n_ff,
        Arch::Gpt2 => 0,
    };
    // (elements, bytes per element)
    [
        (c.n_embd, 4),
        (wide, 4),
        (wide, 4),
        (c.q_dim(), 4),
        (c.kv_dim(), 4),
        (c.kv_dim(), 4),
        (c.n_ff, 4),
        (gated_ff, 4),
        (c.n_vocab, 4),
        (4 * widest, 1),
    ]
}
