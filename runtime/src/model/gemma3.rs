//! Gemma 3 (Gemma Team, 2025): a pre- and post-norm ("sandwich") decoder with RMSNorm, per-head
//! Q/K norms, half-split RoPE, grouped-query attention that is local (a sliding window, RoPE base
//! 10000) in five layers of every six and global (RoPE base `rope.freq_base`) in the sixth, a
//! GELU-gated feed-forward block, embeddings scaled by √width and an output head tied to them.
//!
//! llama.cpp's converter stores every norm weight as `1 + w` (Gemma's norms multiply by `1 + w`),
//! so the plain RMSNorm of `ops` applies them as they are.

use super::ops::{
    attend, embed, geglu, matvec, matvecs, rmsnorm, rmsnorm_heads, rope_base, scale, softcap,
};
use super::weights::Loader;
use super::{LayerWeights, Model, ModelError, State};
use crate::kv::KvCache;

/// Reads the weights of block `i`.
pub(crate) fn load_layer<'a>(w: &Loader<'_, 'a>, i: usize) -> Result<LayerWeights<'a>, ModelError> {
    let c = w.c;
    let (d, q, kv, ff, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.head_dim);
    Ok(LayerWeights {
        attn_norm: w.lvector(i, "attn_norm.weight", d)?,
        wq: w.lmatrix(i, "attn_q.weight", q, d)?,
        wk: w.lmatrix(i, "attn_k.weight", kv, d)?,
        wv: w.lmatrix(i, "attn_v.weight", kv, d)?,
        q_norm: Some(w.lvector(i, "attn_q_norm.weight", hd)?),
        k_norm: Some(w.lvector(i, "attn_k_norm.weight", hd)?),
        wo: w.lmatrix(i, "attn_output.weight", d, q)?,
        post_attn_norm: Some(w.lvector(i, "post_attention_norm.weight", d)?),
        ffn_norm: w.lvector(i, "ffn_norm.weight", d)?,
        w_gate: w.lmatrix(i, "ffn_gate.weight", ff, d)?,
        w_up: w.lmatrix(i, "ffn_up.weight", ff, d)?,
        w_down: w.lmatrix(i, "ffn_down.weight", d, ff)?,
        post_ffn_norm: Some(w.lvector(i, "post_ffw_norm.weight", d)?),
        ..LayerWeights::EMPTY
    })
}

/// Runs token `token` at position `pos`; its keys/values go into `kv`, the logits into `s.logits`.
///
/// `kv` may hold rings for the sliding-window layers or every position of every layer (then the
/// window is applied as a mask): both give the same numbers.
pub fn forward<'a, L: AsRef<[LayerWeights<'a>]>>(
    m: &Model<'a, L>,
    s: &mut State<'_>,
    kv: &mut KvCache<'_>,
    token: u32,
    pos: usize,
) {
    let c = &m.config;
    let (q_dim, kv_dim, d, eps) = (c.q_dim(), c.kv_dim(), c.n_embd, c.norm_eps);
    embed(s.x, &m.tok_embd, token as usize);
    scale(&mut s.x[..d], libm::sqrtf(d as f32));

    for (l, w) in m.layers().iter().enumerate() {
        let (window, base) = match c.is_swa(l) {
            true => (c.sliding_window, c.rope_base_swa),
            false => (0, c.rope_base),
        };
        // Attention: x += n_post(Wo · attn(RoPE(n_q(Wq·n(x)))·scale, RoPE(n_k(Wk·n(x))), Wv·n(x)))
        rmsnorm(s.xb, s.x, &w.attn_norm, eps);
        matvecs(
            s.xb,
            s.act,
            [(&w.wq, &mut *s.q), (&w.wk, &mut *s.k), (&w.wv, &mut *s.v)],
        );
        if let (Some(qn), Some(kn)) = (&w.q_norm, &w.k_norm) {
            rmsnorm_heads(&mut s.q[..q_dim], c.head_dim, qn, eps, s.xb2);
            rmsnorm_heads(&mut s.k[..kv_dim], c.head_dim, kn, eps, s.xb2);
        }
        rope_base(s.q, c.n_head, c, base, pos, None);
        rope_base(s.k, c.n_head_kv, c, base, pos, None);
        scale(&mut s.q[..q_dim], c.attn_scale);
        kv.store(l, pos, &s.k[..kv_dim], &s.v[..kv_dim]);
        let (rows, n, first) = kv.attended(l, pos, window);
        attend(s.xb2, s.q, rows, n, first, c, 1.0);
        matvec(&w.wo, &s.xb2[..q_dim], s.act, s.xb);
        post_norm_residual(s.x, s.xb, s.xb2, w.post_attn_norm.as_ref(), eps);

        // Feed-forward: x += n_post(W_down · (GELU(W_gate·n(x)) ⊙ W_up·n(x)))
        rmsnorm(s.xb, s.x, &w.ffn_norm, eps);
        matvecs(
            s.xb,
            s.act,
            [(&w.w_gate, &mut *s.hb), (&w.w_up, &mut *s.hb2)],
        );
        geglu(s.hb, s.hb2);
        matvec(&w.w_down, s.hb, s.act, s.xb);
        post_norm_residual(s.x, s.xb, s.xb2, w.post_ffn_norm.as_ref(), eps);
    }

    rmsnorm(s.xb, s.x, &m.output_norm, eps);
    matvec(&m.output, s.xb, s.act, s.logits);
    if c.logit_softcap > 0.0 {
        softcap(&mut s.logits[..c.n_vocab], c.logit_softcap);
    }
}

/// `x += norm(y)` (`tmp` holds the normed `y`).
fn post_norm_residual(
    x: &mut [f32],
    y: &[f32],
    tmp: &mut [f32],
    norm: Option<&super::Vector<'_>>,
    eps: f32,
) {
    let d = x.len();
    let y = match norm {
        Some(n) => {
            rmsnorm(&mut tmp[..d], &y[..d], n, eps);
            &tmp[..d]
        }
        None => &y[..d],
    };
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
