//! Llama (SmolLM2, TinyLlama, Llama 2/3): pre-norm decoder with RMSNorm, RoPE,
//! grouped-query attention and a SwiGLU feed-forward block (Touvron et al., 2023).

use super::ops::{
    add_bias, attend, attend_batch, embed, matmuls, matvec, matvecs, per_token, rmsnorm, rope,
    swiglu, Rows,
};
use super::weights::Loader;
use super::{Batch, LayerWeights, Model, ModelError, State};
use crate::kv::KvCache;

/// Reads the weights of block `i` (Q/K/V biases are picked up when present, as Qwen2 has them).
pub(crate) fn load_layer<'a>(w: &Loader<'_, 'a>, i: usize) -> Result<LayerWeights<'a>, ModelError> {
    let c = w.c;
    let (d, q, kv, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
    Ok(LayerWeights {
        attn_norm: w.lvector(i, "attn_norm.weight", d)?,
        wq: w.lmatrix(i, "attn_q.weight", q, d)?,
        wk: w.lmatrix(i, "attn_k.weight", kv, d)?,
        wv: w.lmatrix(i, "attn_v.weight", kv, d)?,
        bq: w.opt_lvector(i, "attn_q.bias", q)?,
        bk: w.opt_lvector(i, "attn_k.bias", kv)?,
        bv: w.opt_lvector(i, "attn_v.bias", kv)?,
        wo: w.lmatrix(i, "attn_output.weight", d, q)?,
        ffn_norm: w.lvector(i, "ffn_norm.weight", d)?,
        w_gate: w.lmatrix(i, "ffn_gate.weight", ff, d)?,
        w_up: w.lmatrix(i, "ffn_up.weight", ff, d)?,
        w_down: w.lmatrix(i, "ffn_down.weight", d, ff)?,
        ..LayerWeights::EMPTY
    })
}

/// Runs token `token` at position `pos`; its keys/values go into `kv`, the logits into `s.logits`.
pub fn forward<'a, L: AsRef<[LayerWeights<'a>]>>(
    m: &Model<'a, L>,
    s: &mut State<'_>,
    kv: &mut KvCache<'_>,
    token: u32,
    pos: usize,
) {
    let c = &m.config;
    let (q_dim, kv_dim) = (c.q_dim(), c.kv_dim());
    let scale = 1.0 / libm::sqrtf(c.head_dim as f32);
    embed(s.x, &m.tok_embd, token as usize);

    for (l, w) in m.layers().iter().enumerate() {
        // Attention: x += Wo · attn(RoPE(Wq·n(x)), RoPE(Wk·n(x)), Wv·n(x))
        rmsnorm(s.xb, s.x, &w.attn_norm, c.norm_eps);
        matvecs(
            s.xb,
            s.act,
            [(&w.wq, &mut *s.q), (&w.wk, &mut *s.k), (&w.wv, &mut *s.v)],
        );
        for (x, b) in [(&mut *s.q, w.bq), (&mut *s.k, w.bk), (&mut *s.v, w.bv)] {
            if let Some(b) = b {
                add_bias(x, &b);
            }
        }
        rope(s.q, c.n_head, c, pos, m.rope_freqs.as_ref());
        rope(s.k, c.n_head_kv, c, pos, m.rope_freqs.as_ref());
        kv.store(l, pos, &s.k[..kv_dim], &s.v[..kv_dim]);
        attend(s.xb2, s.q, kv.layer(l, pos + 1), pos + 1, 0, c, scale);
        matvec(&w.wo, &s.xb2[..q_dim], s.act, s.xb);
        residual(s.x, s.xb);

        // Feed-forward: x += W_down · (SiLU(W_gate·n(x)) ⊙ W_up·n(x))
        rmsnorm(s.xb, s.x, &w.ffn_norm, c.norm_eps);
        matvecs(
            s.xb,
            s.act,
            [(&w.w_gate, &mut *s.hb), (&w.w_up, &mut *s.hb2)],
        );
        swiglu(s.hb, s.hb2);
        matvec(&w.w_down, s.hb, s.act, s.xb);
        residual(s.x, s.xb);
    }

    rmsnorm(s.xb, s.x, &m.output_norm, c.norm_eps);
    matvec(&m.output, s.xb, s.act, s.logits);
}

/// Runs `tokens` (at most `b.n` of them) at positions `pos..`, as [`forward`] would one after
/// the other, with each weight product taken once for the whole batch (matrix × matrix) and
/// causal attention inside the batch; only the last token's logits are computed, into
/// `s.logits`. Every number equals token-by-token evaluation's, bit for bit.
pub fn forward_batch<'a, L: AsRef<[LayerWeights<'a>]>>(
    m: &Model<'a, L>,
    s: &mut State<'_>,
    b: &mut Batch<'_>,
    kv: &mut KvCache<'_>,
    tokens: &[u32],
    pos: usize,
) {
    let last = tokens.len().min(b.n).saturating_sub(1);
    forward_batch_each(m, s, b, kv, tokens, pos, last, &mut |_, _| {});
}

/// [`forward_batch`] that computes the logits of every token from index `first_logits` of the
/// batch on (into `s.logits`, one after the other) and hands each to `each(i, logits)`.
#[allow(clippy::too_many_arguments)]
pub fn forward_batch_each<'a, L: AsRef<[LayerWeights<'a>]>>(
    m: &Model<'a, L>,
    s: &mut State<'_>,
    b: &mut Batch<'_>,
    kv: &mut KvCache<'_>,
    tokens: &[u32],
    pos: usize,
    first_logits: usize,
    each: &mut dyn FnMut(usize, &[f32]),
) {
    let c = &m.config;
    let n = tokens.len().min(b.n);
    if n == 0 {
        return;
    }
    let (d, q_dim, kv_dim, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
    let wide = d.max(q_dim);
    // A token's query and attention output side by side.
    let qo = q_dim + wide;
    let scale = 1.0 / libm::sqrtf(c.head_dim as f32);
    let rows = |width, stride| Rows { n, width, stride };
    let (xr, xbr) = (rows(d, d), rows(d, wide));
    for (i, &t) in tokens[..n].iter().enumerate() {
        embed(xr.row_mut(b.x, i), &m.tok_embd, t as usize);
    }

    for (l, w) in m.layers().iter().enumerate() {
        // Attention: x += Wo · attn(RoPE(Wq·n(x)), RoPE(Wk·n(x)), Wv·n(x))
        per_token(b.xb, xbr, |i, out| {
            rmsnorm(out, xr.row(b.x, i), &w.attn_norm, c.norm_eps)
        });
        matmuls(
            b.xb,
            xbr,
            b.act,
            b.mm,
            [
                (&w.wq, &mut *b.q, qo),
                (&w.wk, &mut *b.k, kv_dim),
                (&w.wv, &mut *b.v, kv_dim),
            ],
        );
        for i in 0..n {
            let (q, k, v) = (
                rows(q_dim, qo).row_mut(b.q, i),
                rows(kv_dim, kv_dim).row_mut(b.k, i),
                rows(kv_dim, kv_dim).row_mut(b.v, i),
            );
            for (x, bias) in [(&mut *q, w.bq), (&mut *k, w.bk), (&mut *v, w.bv)] {
                if let Some(bias) = bias {
                    add_bias(x, &bias);
                }
            }
            rope(q, c.n_head, c, pos + i, m.rope_freqs.as_ref());
            rope(k, c.n_head_kv, c, pos + i, m.rope_freqs.as_ref());
            kv.store(l, pos + i, k, v);
        }
        // Causal: token i sees the cache up to its own position.
        attend_batch(b.q, rows(q_dim, qo), kv, l, pos, c, scale);
        let out = &b.q[q_dim..];
        matmuls(
            out,
            rows(q_dim, qo),
            b.act,
            b.mm,
            [(&w.wo, &mut *b.xb, wide)],
        );
        per_token(b.x, xr, |i, x| residual(x, xbr.row(b.xb, i)));

        // Feed-forward: x += W_down · (SiLU(W_gate·n(x)) ⊙ W_up·n(x))
        per_token(b.xb, xbr, |i, out| {
            rmsnorm(out, xr.row(b.x, i), &w.ffn_norm, c.norm_eps)
        });
        matmuls(
            b.xb,
            xbr,
            b.act,
            b.mm,
            [(&w.w_gate, &mut *b.hb, ff), (&w.w_up, &mut *b.hb2, ff)],
        );
        let hr = rows(ff, ff);
        per_token(b.hb, hr, |i, gate| swiglu(gate, hr.row(b.hb2, i)));
        matmuls(
            b.hb,
            rows(ff, ff),
            b.act,
            b.mm,
            [(&w.w_down, &mut *b.xb, wide)],
        );
        per_token(b.x, xr, |i, x| residual(x, xbr.row(b.xb, i)));
    }

    // Logits through the one-token path's buffers and kernels.
    for i in first_logits..n {
        s.x[..d].copy_from_slice(xr.row(b.x, i));
        rmsnorm(s.xb, s.x, &m.output_norm, c.norm_eps);
        matvec(&m.output, s.xb, s.act, s.logits);
        each(i, &s.logits[..c.n_vocab]);
    }
}

fn residual(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
