//! Llama (SmolLM2, TinyLlama, Llama 2/3): pre-norm decoder with RMSNorm, RoPE,
//! grouped-query attention and a SwiGLU feed-forward block (Touvron et al., 2023).

use super::ops::{add_bias, attend, embed, matvec, matvecs, rmsnorm, rope, swiglu};
use super::weights::Loader;
use super::{LayerWeights, Model, ModelError, State};
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

fn residual(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
