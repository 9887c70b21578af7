//! Numerical building blocks shared by the architectures, mirroring ggml's CPU numerics.

use super::{Config, RopeKind, Vector, Weight};
use crate::quant;
use half::f16;

/// `out = W · x`: quantizes `x` once into `act` (the weight type's activation format), then runs the kernel.
pub fn matvec(w: &Weight<'_>, x: &[f32], act: &mut [u8], out: &mut [f32]) {
    let aty = w.ty.vec_dot_type();
    let n = aty.row_bytes(w.cols).unwrap_or(0);
    let act = &mut act[..n];
    // Shapes were checked at load, so both calls only fail on a runtime bug.
    let _ = quant::quantize_row(aty, &x[..w.cols], act);
    quant::matvec(w.ty, w.cols, w.data, act, &mut out[..w.rows]);
}

/// Adds a bias vector in place.
pub fn add_bias(x: &mut [f32], b: &Vector<'_>) {
    for (i, v) in x.iter_mut().enumerate() {
        *v += b.get(i);
    }
}

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * w` (sum in f64 as ggml does).
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &Vector<'_>, eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (ss / x.len() as f64) as f32;
    let scale = 1.0 / libm::sqrtf(mean + eps);
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        *o = v * scale * w.get(i);
    }
}

/// Rotates each head of `x` (`n_heads × head_dim`) by position `pos`, as ggml_rope_ext does.
pub fn rope(x: &mut [f32], n_heads: usize, c: &Config, pos: usize, freqs: Option<&Vector<'_>>) {
    let hd = c.head_dim;
    let n_rot = c.rope_dim;
    // ggml builds theta by repeated multiplication; doing the same keeps rounding identical.
    let theta_scale = libm::powf(c.rope_base, -2.0 / n_rot as f32);
    for h in 0..n_heads {
        let head = &mut x[h * hd..(h + 1) * hd];
        let mut theta = pos as f32;
        for i in 0..n_rot / 2 {
            let t = match freqs {
                Some(f) => theta / f.get(i),
                None => theta,
            };
            let (s, co) = (libm::sinf(t), libm::cosf(t));
            let (a, b) = match c.rope_kind {
                RopeKind::Normal => (2 * i, 2 * i + 1),
                RopeKind::Neox => (i, i + n_rot / 2),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * co - x1 * s;
            head[b] = x0 * s + x1 * co;
            theta *= theta_scale;
        }
    }
}

/// Softmax in place (max-subtracted, sum in f64).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SiLU(gate) · up, in place into `gate`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + libm::expf(-*g)) * u;
    }
}

/// Causal attention of one query position over `n_pos` cached positions, grouped-query aware.
///
/// Keys and values are f16 rows of `kv_dim`; the query is rounded to f16 for the key dot product,
/// as ggml does when multiplying with an f16 cache. `att` needs `n_pos` floats per call.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    out: &mut [f32],
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    n_pos: usize,
    c: &Config,
    att: &mut [f32],
    scale: f32,
) {
    let hd = c.head_dim;
    let kv_dim = c.kv_dim();
    let group = c.n_head / c.n_head_kv;
    let att = &mut att[..n_pos];
    for h in 0..c.n_head {
        let kvh = h / group;
        let qh = &q[h * hd..(h + 1) * hd];
        for (t, a) in att.iter_mut().enumerate() {
            let k = &k_cache[t * kv_dim + kvh * hd..t * kv_dim + (kvh + 1) * hd];
            let mut s = 0f32;
            for (&qv, &kv) in qh.iter().zip(k) {
                s += f16::from_f32(qv).to_f32() * kv.to_f32();
            }
            *a = s * scale;
        }
        softmax(att);
        let o = &mut out[h * hd..(h + 1) * hd];
        o.fill(0.0);
        for (t, &a) in att.iter().enumerate() {
            let v = &v_cache[t * kv_dim + kvh * hd..t * kv_dim + (kvh + 1) * hd];
            for (ov, &vv) in o.iter_mut().zip(v) {
                *ov += a * vv.to_f32();
            }
        }
    }
}

/// Copies row `token` of the embedding matrix into `out` as f32.
pub fn embed(out: &mut [f32], tok_embd: &Weight<'_>, token: usize) {
    let _ = quant::dequantize_row(tok_embd.ty, tok_embd.row(token), &mut out[..tok_embd.cols]);
}
