//! GPT-2 (Radford et al., 2019) and Cerebras-GPT: pre-norm decoder with LayerNorm, learned absolute
//! position embeddings, multi-head attention from one fused Q/K/V projection, a GELU MLP, and
//! biases on every projection and norm. The output head is tied to the token embedding unless
//! the file carries `output.weight`.

use super::ops::{add_bias, attend, embed, gelu_erf, gelu_tanh, layernorm, matvec, matvecs};
use super::weights::Loader;
use super::{Activation, LayerWeights, Model, ModelError, State, Vector, Weight};
use crate::kv::KvCache;

/// Reads the weights of block `i`. `attn_qkv` (Hugging Face's `c_attn`) holds the Q, K and V rows
/// one after the other; the three are row views into it, so nothing is copied.
pub(crate) fn load_layer<'a>(w: &Loader<'_, 'a>, i: usize) -> Result<LayerWeights<'a>, ModelError> {
    let c = w.c;
    let (d, q, kv, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
    let qkv = w.lmatrix(i, "attn_qkv.weight", q + 2 * kv, d)?;
    let qkv_b = w.lvector(i, "attn_qkv.bias", q + 2 * kv)?;
    Ok(LayerWeights {
        attn_norm: w.lvector(i, "attn_norm.weight", d)?,
        attn_norm_b: Some(w.lvector(i, "attn_norm.bias", d)?),
        wq: rows(&qkv, 0, q),
        wk: rows(&qkv, q, kv),
        wv: rows(&qkv, q + kv, kv),
        bq: Some(part(&qkv_b, 0, q)),
        bk: Some(part(&qkv_b, q, kv)),
        bv: Some(part(&qkv_b, q + kv, kv)),
        wo: w.lmatrix(i, "attn_output.weight", d, q)?,
        bo: Some(w.lvector(i, "attn_output.bias", d)?),
        ffn_norm: w.lvector(i, "ffn_norm.weight", d)?,
        ffn_norm_b: Some(w.lvector(i, "ffn_norm.bias", d)?),
        w_up: w.lmatrix(i, "ffn_up.weight", ff, d)?,
        b_up: Some(w.lvector(i, "ffn_up.bias", ff)?),
        w_down: w.lmatrix(i, "ffn_down.weight", d, ff)?,
        b_down: Some(w.lvector(i, "ffn_down.bias", d)?),
        ..LayerWeights::EMPTY
    })
}

/// Rows `start..start + n` of a matrix (each row is whole blocks, so any row range is valid).
fn rows<'a>(w: &Weight<'a>, start: usize, n: usize) -> Weight<'a> {
    let rb = w.row_bytes();
    Weight {
        rows: n,
        data: &w.data[start * rb..(start + n) * rb],
        ..*w
    }
}

/// Elements `start..start + n` of a vector.
fn part<'a>(v: &Vector<'a>, start: usize, n: usize) -> Vector<'a> {
    let eb = v.ty.block_bytes();
    Vector {
        data: &v.data[start * eb..(start + n) * eb],
        ..*v
    }
}

/// Runs token `token` at position `pos` (below `n_ctx_train`: the plan guarantees it); its
/// keys/values go into `kv`, the logits into `s.logits`.
pub fn forward<'a, L: AsRef<[LayerWeights<'a>]>>(
    m: &Model<'a, L>,
    s: &mut State<'_>,
    kv: &mut KvCache<'_>,
    token: u32,
    pos: usize,
) {
    let c = &m.config;
    let (d, q_dim, kv_dim) = (c.n_embd, c.q_dim(), c.kv_dim());
    let scale = 1.0 / libm::sqrtf(c.head_dim as f32);

    // x = wte[token] + wpe[pos]
    embed(s.x, &m.tok_embd, token as usize);
    if let Some(wpe) = &m.pos_embd {
        embed(s.xb, wpe, pos);
        residual(s.x, &s.xb[..d]);
    }

    for (l, w) in m.layers().iter().enumerate() {
        // Attention: x += W_o · attn(W_qkv · LN_1(x) + b_qkv) + b_o
        layernorm(s.xb, s.x, &w.attn_norm, w.attn_norm_b.as_ref(), c.norm_eps);
        matvecs(
            s.xb,
            s.act,
            [(&w.wq, &mut *s.q), (&w.wk, &mut *s.k), (&w.wv, &mut *s.v)],
        );
        add(&mut s.q[..q_dim], w.bq);
        add(&mut s.k[..kv_dim], w.bk);
        add(&mut s.v[..kv_dim], w.bv);
        kv.store(l, pos, &s.k[..kv_dim], &s.v[..kv_dim]);
        attend(s.xb2, s.q, kv.layer(l, pos + 1), pos + 1, 0, c, scale);
        matvec(&w.wo, &s.xb2[..q_dim], s.act, s.xb);
        add(&mut s.xb[..d], w.bo);
        residual(s.x, &s.xb[..d]);

        // MLP: x += W_down · GELU(W_up · LN_2(x) + b_up) + b_down
        layernorm(s.xb, s.x, &w.ffn_norm, w.ffn_norm_b.as_ref(), c.norm_eps);
        matvec(&w.w_up, s.xb, s.act, s.hb);
        add(s.hb, w.b_up);
        // The config gives GPT-2 only the two GELUs.
        match c.activation {
            Activation::GeluErf => gelu_erf(s.hb),
            Activation::GeluTanh | Activation::Silu => gelu_tanh(s.hb),
        }
        matvec(&w.w_down, s.hb, s.act, s.xb);
        add(&mut s.xb[..d], w.b_down);
        residual(s.x, &s.xb[..d]);
    }

    // logits = W_head · LN_f(x)
    layernorm(
        s.xb,
        s.x,
        &m.output_norm,
        m.output_norm_b.as_ref(),
        c.norm_eps,
    );
    matvec(&m.output, &s.xb[..d], s.act, s.logits);
}

fn add(x: &mut [f32], b: Option<Vector<'_>>) {
    if let Some(b) = b {
        add_bias(x, &b);
    }
}

fn residual(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
