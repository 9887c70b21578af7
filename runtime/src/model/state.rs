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

/// Scratch of a batched forward pass ([`super::llama::forward_batch`]): each activation for up
/// to `n` tokens, token-major (token `i`'s row starts at `i ×` the row width), so norms, RoPE and
/// attention run per token on rows while the weight products run once per batch.
#[derive(Debug, Default)]
pub struct Batch<'m> {
    /// Tokens the buffers hold (the plan's batch size; 0 or 1 = no batch buffers).
    pub n: usize,
    /// Residual streams, `n × n_embd`.
    pub x: &'m mut [f32],
    /// Normed inputs / block outputs, `n × max(n_embd, q_dim)`.
    pub xb: &'m mut [f32],
    /// Each token's query and attention output side by side, `n × (q_dim + max(n_embd, q_dim))`,
    /// so that threads can take whole tokens of attention.
    pub q: &'m mut [f32],
    /// Keys, `n × kv_dim`.
    pub k: &'m mut [f32],
    /// Values, `n × kv_dim`.
    pub v: &'m mut [f32],
    /// Feed-forward hidden, `n × n_ff`.
    pub hb: &'m mut [f32],
    /// Feed-forward hidden (second branch), `n × n_ff`; empty for GPT-2.
    pub hb2: &'m mut [f32],
    /// Product outputs weight-row-major (`rows × n`, as the matrix kernels write them and threads
    /// split them), for the largest group of products sharing an input: `n ×` [`mm_rows`].
    pub mm: &'m mut [f32],
    /// The activations quantized for the weight kernels, `n × 4 × max(n_embd, q_dim, n_ff)` bytes.
    pub act: &'m mut [u8],
}

/// Element counts of each [`Batch`] buffer for `n_batch` tokens, in field order (after `n`); all
/// zero when `n_batch` ≤ 1, where prompts run one token at a time in [`State`].
pub fn batch_sizes(c: &super::Config, n_batch: usize) -> [(usize, usize); 9] {
    let s = state_sizes(c);
    let widest = c.n_embd.max(c.q_dim()).max(c.n_ff);
    let n = if n_batch > 1 { n_batch } else { 0 };
    // (elements, bytes per element); the same rows as `State`, `n` of each.
    [
        (n * s[0].0, 4),
        (n * s[1].0, 4),
        (n * (s[3].0 + s[2].0), 4),
        (n * s[4].0, 4),
        (n * s[5].0, 4),
        (n * s[6].0, 4),
        (n * s[7].0, 4),
        (n * mm_rows(c), 4),
        (n * 4 * widest, 1),
    ]
}

/// Output rows of the largest group of products that share an input (Q/K/V, gate/up).
pub fn mm_rows(c: &super::Config) -> usize {
    let ff = match c.arch {
        Arch::Llama | Arch::Qwen2 | Arch::Gemma3 => 2 * c.n_ff,
        Arch::Gpt2 => c.n_ff,
    };
    (c.q_dim() + 2 * c.kv_dim()).max(ff).max(c.n_embd)
}
