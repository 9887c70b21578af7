//! ggml's reference quantizers (`quantize_row_*_ref` in ggml-quants.c), without importance matrix.
//!
//! The float operations follow ggml's C source step by step (same order, no fused multiply-add), so the
//! bytes equal those of ggml built without FP contraction and of the `gguf` Python package.

use crate::quant::blocks::*;
use bytemuck::Zeroable;

/// Round to nearest, ties to even, for |x| < 2^22: ggml's `nearest_int` bit trick.
#[inline(always)]
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Groups whose largest magnitude is below this are stored as zero (GROUP_MAX_EPS).
const GROUP_MAX_EPS: f32 = 1e-15;

/// `id` as ggml computes it: 1/d, or 0 for an all-zero block.
#[inline(always)]
fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// The value of largest magnitude, first one on ties (the sign matters to the symmetric formats).
#[inline(always)]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// f32 to Q4_0.
pub fn quantize_q4_0(x: &[f32], y: &mut [BlockQ4_0]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let (_, max) = signed_absmax(x);
        let d = max / -8.0;
        let id = inverse_or_zero(d);
        y.d = f32_to_f16(d);
        for j in 0..QK / 2 {
            let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
            y.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// f32 to Q4_1.
pub fn quantize_q4_1(x: &[f32], y: &mut [BlockQ4_1]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        y.d = f32_to_f16(d);
        y.m = f32_to_f16(min);
        for j in 0..QK / 2 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
            y.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Packs 32 five-bit values: low nibbles into `qs`, fifth bits into `qh`.
#[inline(always)]
fn pack_q5(q: &[u8; QK], qs: &mut [u8; QK / 2], qh: &mut [u8; 4]) {
    let mut h = 0u32;
    for j in 0..QK / 2 {
        let (q0, q1) = (q[j], q[j + QK / 2]);
        qs[j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        h |= u32::from((q0 & 0x10) >> 4) << j;
        h |= u32::from((q1 & 0x10) >> 4) << (j + QK / 2);
    }
    *qh = h.to_le_bytes();
}

/// f32 to Q5_0.
pub fn quantize_q5_0(x: &[f32], y: &mut [BlockQ5_0]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let (_, max) = signed_absmax(x);
        let d = max / -16.0;
        let id = inverse_or_zero(d);
        y.d = f32_to_f16(d);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v * id + 16.5) as i8).min(31) as u8;
        }
        pack_q5(&q, &mut y.qs, &mut y.qh);
    }
}

/// f32 to Q5_1.
pub fn quantize_q5_1(x: &[f32], y: &mut [BlockQ5_1]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        y.d = f32_to_f16(d);
        y.m = f32_to_f16(min);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            // ggml does not clamp here; the value cannot exceed 31.
            *q = ((v - min) * id + 0.5) as u8;
        }
        pack_q5(&q, &mut y.qs, &mut y.qh);
    }
}

/// Scale and quants of one Q8_0 / Q8_1 block; returns d.
#[inline(always)]
fn quantize_q8_block(x: &[f32], qs: &mut [i8; QK]) -> f32 {
    let mut amax = 0.0f32;
    for &v in x {
        // ggml's MAX(amax, fabsf(v)), NaN handling included
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    let d = amax / 127.0;
    let id = inverse_or_zero(d);
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = libm::roundf(v * id) as i8;
    }
    d
}

/// f32 to Q8_0.
pub fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let d = quantize_q8_block(x, &mut y.qs);
        y.d = f32_to_f16(d);
    }
}

/// f32 to Q8_1, with the block sum scaled by d.
pub fn quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let d = quantize_q8_block(x, &mut y.qs);
        let sum: i32 = y.qs.iter().map(|&q| i32::from(q)).sum();
        y.d = f32_to_f16(d);
        y.s = f32_to_f16(sum as f32 * d);
    }
}

/// One Q8 block the way ggml's CPU backend quantizes activations at run time (x86 AVX2 and the
/// like): multiplier `127 / amax` and round-half-to-even. The `_ref` quantizer above multiplies by
/// `1 / (amax / 127)` and rounds half away from zero; the two differ in a few quants per row, and
/// mirroring the run-time path keeps our logits next to llama.cpp's. Returns d.
#[inline(always)]
fn quantize_q8_block_act(x: &[f32], qs: &mut [i8; QK]) -> f32 {
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_even(v * id) as i8;
    }
    d
}

/// `rintf` (nearest, ties to even) for |v| < 2²², NaN and ±0, which is all an activation quant
/// can be: adding and taking off 1.5 · 2²³ leaves no fraction bits, and the addition rounds to
/// nearest even (IEEE's default). Much faster than libm's bit-by-bit `rintf`, and it vectorizes.
#[inline(always)]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// f32 activations to Q8_0 as ggml's CPU backend does at run time.
pub fn quantize_q8_0_act(x: &[f32], y: &mut [BlockQ8_0]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let d = quantize_q8_block_act(x, &mut y.qs);
        y.d = f32_to_f16(d);
    }
}

/// f32 activations to Q8_1 as ggml's CPU backend does at run time.
pub fn quantize_q8_1_act(x: &[f32], y: &mut [BlockQ8_1]) {
    for (x, y) in x.chunks_exact(QK).zip(y) {
        let d = quantize_q8_block_act(x, &mut y.qs);
        let sum: i32 = y.qs.iter().map(|&q| i32::from(q)).sum();
        y.d = f32_to_f16(d);
        y.s = f32_to_f16(d * sum as f32);
    }
}

/// f32 to Q8_K, with group sums.
pub fn quantize_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(y) {
        let (amax, max) = signed_absmax(x);
        if amax == 0.0 {
            *y = BlockQ8K::zeroed();
            continue;
        }
        // ggml uses -127 rather than -128 so that SIMD versions can negate safely.
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, q) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
            let sum: i32 = q.iter().map(|&q| i32::from(q)).sum();
            *s = (sum as i16).to_le_bytes();
        }
        y.d = (1.0 / iscale).to_le_bytes();
    }
}

// ---------------------------------------------------------------- K-quant searches

/// Symmetric quants in [-nmax, nmax) with a scale chosen by weighted least squares over 19 trial
/// scales (ggml's make_qx_quants with rmse_type 1 and no importance weights: weight = x^2).
/// Writes `L[i] = q + nmax` and returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let fnmax = nmax as f32;
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let mut iscale = -fnmax / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l_out, &v) in l_out.iter_mut().zip(x) {
        let l = quant(iscale, v);
        *l_out = (l + nmax) as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(fnmax + 0.1 * is as f32) / max;
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = quant(iscale, v);
            let w = v * v;
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l_out, &v) in l_out.iter_mut().zip(x) {
                *l_out = (quant(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Symmetric 3-bit quants refined by coordinate descent (ggml's make_q3_quants with do_rmse).
/// Writes `L[i] = q + nmax` and returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l_out, &v) in l_out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *l_out = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (l_cur, &v) in l_out.iter_mut().zip(x) {
            let w = v * v;
            let lc = f32::from(*l_cur);
            let mut slx = sumlx - w * v * lc;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * lc * lc;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*l_cur) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l_cur = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for l in l_out.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Search parameters of ggml's make_qkx2_quants.
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

/// Asymmetric quants in [0, nmax] with scale and min fitted by weighted least squares over a sweep of
/// trial scales (ggml's make_qkx2_quants). Returns (scale, -min).
fn make_qkx2_quants(p: &Qkx2, x: &[f32], weights: &[f32], l_out: &mut [u8]) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let nmax = p.nmax as f32;
    let err = |diff: f32| if p.use_mad { diff.abs() } else { diff * diff };
    let mut iscale = nmax / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax) as u8;
        l_out[i] = l;
        let diff = scale * f32::from(l) + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let l = l as f32;
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 2-bit values: element 128h + 32s + l goes to bits 2s of byte 32h + l.
#[inline(always)]
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for h in 0..2 {
        for i in 0..32 {
            let e = 128 * h + i;
            qs[32 * h + i] = l[e] | (l[e + 32] << 2) | (l[e + 64] << 4) | (l[e + 96] << 6);
        }
    }
}

/// f32 to Q2_K.
pub fn quantize_q2_k(x: &[f32], y: &mut [BlockQ2K]) {
    const P: Qkx2 = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    const Q4SCALE: f32 = 15.0;
    for (x, y) in x.chunks_exact(QK_K).zip(y) {
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins) = ([0.0f32; QK_K / 16], [0.0f32; QK_K / 16]);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            let mut weights = [0.0f32; 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            (scales[j], mins[j]) = make_qkx2_quants(&P, xs, &weights, &mut l[16 * j..16 * j + 16]);
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (q, &s) in y.scales.iter_mut().zip(&scales) {
                *q = nearest_int(iscale * s) as u8;
            }
            y.d = f32_to_f16(max_scale / Q4SCALE);
        } else {
            y.scales = [0; QK_K / 16];
            y.d = f32_to_f16(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (q, &m) in y.scales.iter_mut().zip(&mins) {
                *q |= (nearest_int(iscale * m) << 4) as u8;
            }
            y.dmin = f32_to_f16(max_min / Q4SCALE);
        } else {
            y.dmin = f32_to_f16(0.0);
        }
        for ((l, x), &sc) in l
            .chunks_exact_mut(16)
            .zip(x.chunks_exact(16))
            .zip(&y.scales)
        {
            let d = f16_to_f32(y.d) * f32::from(sc & 0xF);
            if d == 0.0 {
                continue;
            }
            let dm = f16_to_f32(y.dmin) * f32::from(sc >> 4);
            for (l, &v) in l.iter_mut().zip(x) {
                *l = nearest_int((v + dm) / d).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut y.qs);
    }
}

/// f32 to Q3_K.
pub fn quantize_q3_k(x: &[f32], y: &mut [BlockQ3K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(y) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            let mut biased = [0u8; QK_K / 16];
            for (b, &s) in biased.iter_mut().zip(&scales) {
                *b = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            }
            y.scales = pack_q3k_scales(&biased);
            y.d = f32_to_f16(1.0 / iscale);
        } else {
            y.scales = [0; 12];
            y.d = f32_to_f16(0.0);
        }
        let sc = q3k_scales(&y.scales);
        for ((l, x), &sc) in l.chunks_exact_mut(16).zip(x.chunks_exact(16)).zip(&sc) {
            let d = f16_to_f32(y.d) * f32::from(sc);
            if d == 0.0 {
                continue;
            }
            for (l, &v) in l.iter_mut().zip(x) {
                *l = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
            }
        }
        // High bit of element e at bit e / 32 of hmask[e % 32]; the rest as 2-bit values.
        y.hmask = [0; QK_K / 8];
        let mut low = [0u8; QK_K];
        for (e, (&q, low)) in l.iter().zip(low.iter_mut()).enumerate() {
            let mut q = q as u8;
            if q > 3 {
                y.hmask[e % 32] |= 1 << (e / 32);
                q -= 4;
            }
            *low = q;
        }
        pack_2bit(&low, &mut y.qs);
    }
}

/// Scales and mins of Q4_K / Q5_K: per group of 32, fit with make_qkx2_quants, then quantize the
/// scales and mins to 6 bits under two f16 super-block scales. Leaves the quants in `l`.
fn quantize_k4_scales(
    p: &Qkx2,
    x: &[f32],
    l: &mut [u8; QK_K],
    packed: &mut [u8; K_SCALE_SIZE],
    d_out: &mut [u8; 2],
    dmin_out: &mut [u8; 2],
) {
    let (mut scales, mut mins) = ([0.0f32; QK_K / 32], [0.0f32; QK_K / 32]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = libm::sqrtf(sum_x2 / 32.0);
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        (scales[j], mins[j]) = make_qkx2_quants(p, xs, &weights, &mut l[32 * j..32 * j + 32]);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..QK_K / 32 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    *packed = pack_scale_min_k4(&ls, &lm);
    *d_out = f32_to_f16(max_scale / 63.0);
    *dmin_out = f32_to_f16(max_min / 63.0);
    // ggml re-reads the packed fields here; they hold exactly ls and lm.
    for (j, (l, x)) in l.chunks_exact_mut(32).zip(x.chunks_exact(32)).enumerate() {
        let d = f16_to_f32(*d_out) * f32::from(ls[j]);
        if d == 0.0 {
            continue;
        }
        let dm = f16_to_f32(*dmin_out) * f32::from(lm[j]);
        for (l, &v) in l.iter_mut().zip(x) {
            *l = nearest_int((v + dm) / d).clamp(0, p.nmax) as u8;
        }
    }
}

/// f32 to Q4_K.
pub fn quantize_q4_k(x: &[f32], y: &mut [BlockQ4K]) {
    const P: Qkx2 = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (x, y) in x.chunks_exact(QK_K).zip(y) {
        let mut l = [0u8; QK_K];
        quantize_k4_scales(&P, x, &mut l, &mut y.scales, &mut y.d, &mut y.dmin);
        for (q, l) in y.qs.chunks_exact_mut(32).zip(l.chunks_exact(64)) {
            for i in 0..32 {
                q[i] = l[i] | (l[i + 32] << 4);
            }
        }
    }
}

/// f32 to Q5_K.
pub fn quantize_q5_k(x: &[f32], y: &mut [BlockQ5K]) {
    const P: Qkx2 = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (x, y) in x.chunks_exact(QK_K).zip(y) {
        let mut l = [0u8; QK_K];
        quantize_k4_scales(&P, x, &mut l, &mut y.scales, &mut y.d, &mut y.dmin);
        y.qh = [0; QK_K / 8];
        for (c, (q, l)) in
            y.qs.chunks_exact_mut(32)
                .zip(l.chunks_exact(64))
                .enumerate()
        {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for i in 0..32 {
                let (mut l1, mut l2) = (l[i], l[i + 32]);
                if l1 > 15 {
                    l1 -= 16;
                    y.qh[i] |= m1;
                }
                if l2 > 15 {
                    l2 -= 16;
                    y.qh[i] |= m2;
                }
                q[i] = l1 | (l2 << 4);
            }
        }
    }
}

/// f32 to Q6_K.
pub fn quantize_q6_k(x: &[f32], y: &mut [BlockQ6K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(y) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            scales[j] = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            if scales[j].abs() > max_abs_scale {
                max_abs_scale = scales[j].abs();
                max_scale = scales[j];
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *y = BlockQ6K::zeroed();
            continue;
        }
        let iscale = -128.0 / max_scale;
        y.d = f32_to_f16(1.0 / iscale);
        for (q, &s) in y.scales.iter_mut().zip(&scales) {
            *q = nearest_int(iscale * s).min(127) as i8;
        }
        for ((l, x), &sc) in l
            .chunks_exact_mut(16)
            .zip(x.chunks_exact(16))
            .zip(&y.scales)
        {
            let d = f16_to_f32(y.d) * f32::from(sc);
            if d == 0.0 {
                continue;
            }
            for (l, &v) in l.iter_mut().zip(x) {
                *l = (nearest_int(v / d).clamp(-32, 31) + 32) as i8;
            }
        }
        // Element 128h + 32s + i: low nibble in ql[64h + i + 32(s & 1)] at bit 4(s >> 1),
        // high two bits in qh[32h + i] at bit 2s.
        for h in 0..2 {
            for i in 0..32 {
                let q = |s: usize| l[128 * h + 32 * s + i] as u8;
                y.ql[64 * h + i] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
                y.ql[64 * h + i + 32] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
                y.qh[32 * h + i] =
                    (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
    }
}

/// f32 to f16, round to nearest even.
pub fn quantize_f16(x: &[f32], y: &mut [[u8; 2]]) {
    for (y, &v) in y.iter_mut().zip(x) {
        *y = f32_to_f16(v);
    }
}

/// f32 to bf16 as ggml rounds it.
pub fn quantize_bf16(x: &[f32], y: &mut [[u8; 2]]) {
    for (y, &v) in y.iter_mut().zip(x) {
        *y = f32_to_bf16(v);
    }
}

/// f32 to little-endian f32 bytes.
pub fn quantize_f32(x: &[f32], y: &mut [[u8; 4]]) {
    for (y, &v) in y.iter_mut().zip(x) {
        *y = v.to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::{nearest_int, round_even};

    #[test]
    fn round_even_is_rintf_on_quant_values() {
        // Every quarter step over the quant range and a walk of odd values near the ties.
        let mut v = -130.0f32;
        while v <= 130.0 {
            for x in [v, v + 1e-6, v - 1e-6, v * 1.000_001] {
                assert_eq!(round_even(x) as i8, libm::rintf(x) as i8, "{x}");
            }
            v += 0.25;
        }
        assert_eq!(round_even(f32::NAN) as i8, libm::rintf(f32::NAN) as i8);
        assert_eq!(round_even(-0.0) as i8, 0);
    }

    #[test]
    fn nearest_int_ties_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (3.49, 3),
            (-3.51, -4),
            (4_194_303.0, 4_194_303),
            (-4_194_303.0, -4_194_303),
        ];
        for (x, want) in cases {
            assert_eq!(nearest_int(x), want, "{x}");
        }
    }
}
