//! Portable reference kernels: dequantization and dot products, in ggml's exact order of operations.
//!
//! Each dot product mirrors ggml's scalar `ggml_vec_dot_*_generic` (ggml-cpu/quants.c): the same
//! integer sums, the same float products in the same order, so results agree with ggml bit for bit.
//! Inner loops run over fixed-size blocks with integer arithmetic so the compiler can vectorize them;
//! hand-written SIMD versions must match these within rounding.

use crate::quant::blocks::*;

// ---------------------------------------------------------------- dequantization

/// Q4_0 blocks to f32 (`y.len() == 32 * x.len()`).
pub fn dequantize_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            y[j] = (i32::from(b.qs[j] & 0x0F) - 8) as f32 * d;
            y[j + QK / 2] = (i32::from(b.qs[j] >> 4) - 8) as f32 * d;
        }
    }
}

/// Q4_1 blocks to f32.
pub fn dequantize_q4_1(x: &[BlockQ4_1], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        for j in 0..QK / 2 {
            y[j] = f32::from(b.qs[j] & 0x0F) * d + m;
            y[j + QK / 2] = f32::from(b.qs[j] >> 4) * d + m;
        }
    }
}

/// The two 5-bit values packed at position j of a Q5 block.
#[inline(always)]
fn q5_pair(qs: u8, qh: u32, j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) << 4) & 0x10) as u8;
    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
    ((qs & 0x0F) | h0, (qs >> 4) | h1)
}

/// Q5_0 blocks to f32.
pub fn dequantize_q5_0(x: &[BlockQ5_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (v0, v1) = q5_pair(b.qs[j], qh, j);
            y[j] = (i32::from(v0) - 16) as f32 * d;
            y[j + QK / 2] = (i32::from(v1) - 16) as f32 * d;
        }
    }
}

/// Q5_1 blocks to f32.
pub fn dequantize_q5_1(x: &[BlockQ5_1], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (v0, v1) = q5_pair(b.qs[j], qh, j);
            y[j] = f32::from(v0) * d + m;
            y[j + QK / 2] = f32::from(v1) * d + m;
        }
    }
}

/// Q8_0 blocks to f32.
pub fn dequantize_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = f32::from(q) * d;
        }
    }
}

/// `y += s · dequantize(x)` with one rounding per element: `d · q` is exact in f32 (an f16 scale
/// times an 8-bit integer), so this is `fmaf(d · q, s, y)`, what a vector FMA computes in any
/// lane order (ggml_vec_mad_f32 over a dequantized Q8_0 value row in its flash attention).
pub fn mad_q8_0(y: &mut [f32], x: &[BlockQ8_0], s: f32) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = libm::fmaf(f32::from(q) * d, s, *y);
        }
    }
}

/// Q8_1 blocks to f32 (ggml has no such function; the value is d * q as for Q8_0).
pub fn dequantize_q8_1(x: &[BlockQ8_1], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = f32::from(q) * d;
        }
    }
}

/// The 2-bit values of a Q2_K / Q3_K super-block in element order: element 128h + 32s + l sits in
/// bits 2s..2s+2 of qs[32h + l].
#[inline(always)]
fn unpack_2bit(qs: &[u8; QK_K / 4]) -> [u8; QK_K] {
    let mut out = [0u8; QK_K];
    for (out, qs) in out.chunks_exact_mut(128).zip(qs.chunks_exact(32)) {
        for l in 0..32 {
            out[l] = qs[l] & 3;
            out[l + 32] = (qs[l] >> 2) & 3;
            out[l + 64] = (qs[l] >> 4) & 3;
            out[l + 96] = qs[l] >> 6;
        }
    }
    out
}

/// The signed 3-bit values of a Q3_K super-block in element order: the 2-bit value, minus 4 where
/// the element's bit (e / 32 of hmask[e % 32]) is clear.
#[inline(always)]
fn unpack_q3k(b: &BlockQ3K) -> [i8; QK_K] {
    let low = unpack_2bit(&b.qs);
    let mut out = [0i8; QK_K];
    for (c, (out, low)) in out
        .chunks_exact_mut(32)
        .zip(low.chunks_exact(32))
        .enumerate()
    {
        for l in 0..32 {
            let minus = if b.hmask[l] & (1 << c) != 0 { 0 } else { 4 };
            out[l] = low[l] as i8 - minus;
        }
    }
    out
}

/// The signed 6-bit values of a Q6_K super-block in element order: element 128h + 32s + l has its
/// low nibble in ql[64h + l + 32(s & 1)] (high nibble for s >= 2) and two high bits at 2s in
/// qh[32h + l].
#[inline(always)]
fn unpack_q6k(b: &BlockQ6K) -> [i8; QK_K] {
    let mut out = [0i8; QK_K];
    for ((out, ql), qh) in out
        .chunks_exact_mut(128)
        .zip(b.ql.chunks_exact(64))
        .zip(b.qh.chunks_exact(32))
    {
        for l in 0..32 {
            out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | ((qh[l] >> 6) << 4)) as i8 - 32;
        }
    }
    out
}

/// Q2_K super-blocks to f32.
pub fn dequantize_q2_k(x: &[BlockQ2K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        let q = unpack_2bit(&b.qs);
        for ((y, q), &sc) in y
            .chunks_exact_mut(16)
            .zip(q.chunks_exact(16))
            .zip(&b.scales)
        {
            let dl = d * f32::from(sc & 0xF);
            let ml = min * f32::from(sc >> 4);
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * f32::from(q) - ml;
            }
        }
    }
}

/// Q3_K super-blocks to f32.
pub fn dequantize_q3_k(x: &[BlockQ3K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = f16_to_f32(b.d);
        let q = unpack_q3k(b);
        let scales = q3k_scales(&b.scales);
        for ((y, q), &sc) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).zip(&scales) {
            let dl = d_all * f32::from(sc);
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * f32::from(q);
            }
        }
    }
}

/// The 4-bit values of a Q4_K super-block in element order: each 32 bytes hold 64 elements, low
/// nibbles first.
#[inline(always)]
fn unpack_q4k(qs: &[u8; QK_K / 2]) -> [i8; QK_K] {
    let mut out = [0i8; QK_K];
    for (out, q) in out.chunks_exact_mut(64).zip(qs.chunks_exact(32)) {
        for l in 0..32 {
            out[l] = (q[l] & 0xF) as i8;
            out[l + 32] = (q[l] >> 4) as i8;
        }
    }
    out
}

/// The 5-bit values of a Q5_K super-block: Q4_K's nibbles plus 16 where bit e / 32 of qh[e % 32]
/// is set.
#[inline(always)]
fn unpack_q5k(b: &BlockQ5K) -> [i8; QK_K] {
    let mut out = unpack_q4k(&b.qs);
    for (c, out) in out.chunks_exact_mut(32).enumerate() {
        for (o, &h) in out.iter_mut().zip(&b.qh) {
            *o += if h & (1 << c) != 0 { 16 } else { 0 };
        }
    }
    out
}

/// Shared by Q4_K and Q5_K: 8 groups of 32 with a 6-bit scale and min each.
#[inline(always)]
fn dequantize_k4(
    q: &[i8; QK_K],
    packed: &[u8; K_SCALE_SIZE],
    d: [u8; 2],
    dmin: [u8; 2],
    y: &mut [f32],
) {
    let d = f16_to_f32(d);
    let min = f16_to_f32(dmin);
    for (j, (y, q)) in y.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
        let (sc, m) = scale_min_k4(j, packed);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        for (y, &q) in y.iter_mut().zip(q) {
            *y = d1 * f32::from(q) - m1;
        }
    }
}

/// Q4_K super-blocks to f32.
pub fn dequantize_q4_k(x: &[BlockQ4K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        dequantize_k4(&unpack_q4k(&b.qs), &b.scales, b.d, b.dmin, y);
    }
}

/// Q5_K super-blocks to f32.
pub fn dequantize_q5_k(x: &[BlockQ5K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        dequantize_k4(&unpack_q5k(b), &b.scales, b.d, b.dmin, y);
    }
}

/// Q6_K super-blocks to f32.
pub fn dequantize_q6_k(x: &[BlockQ6K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let q = unpack_q6k(b);
        for ((y, q), &sc) in y
            .chunks_exact_mut(16)
            .zip(q.chunks_exact(16))
            .zip(&b.scales)
        {
            for (y, &q) in y.iter_mut().zip(q) {
                *y = d * f32::from(sc) * f32::from(q);
            }
        }
    }
}

/// Q8_K super-blocks to f32.
pub fn dequantize_q8_k(x: &[BlockQ8K], y: &mut [f32]) {
    for (b, y) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f32::from_le_bytes(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = d * f32::from(q);
        }
    }
}

/// Little-endian f32 values to f32.
pub fn dequantize_f32(x: &[[u8; 4]], y: &mut [f32]) {
    for (y, &v) in y.iter_mut().zip(x) {
        *y = f32::from_le_bytes(v);
    }
}

/// f16 values to f32.
pub fn dequantize_f16(x: &[[u8; 2]], y: &mut [f32]) {
    for (y, &v) in y.iter_mut().zip(x) {
        *y = f16_to_f32(v);
    }
}

/// bf16 values to f32.
pub fn dequantize_bf16(x: &[[u8; 2]], y: &mut [f32]) {
    for (y, &v) in y.iter_mut().zip(x) {
        *y = bf16_to_f32(v);
    }
}

// ---------------------------------------------------------------- dot products

/// Q4_0 weights · Q8_0 activations.
pub fn vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let v0 = i32::from(x.qs[j] & 0x0F) - 8;
            let v1 = i32::from(x.qs[j] >> 4) - 8;
            sumi0 += v0 * i32::from(y.qs[j]);
            sumi1 += v1 * i32::from(y.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf += sumi as f32 * f16_to_f32(x.d) * f16_to_f32(y.d);
    }
    sumf
}

/// Q4_0 weights · Q8_0 activations in the blockwise order every SIMD level runs: per block the
/// exact integer dot product, then `acc = fma(isum, xd · yd, acc)` (the order of llama.cpp's
/// repacked Q4_0 kernels on x86, `gemv_q4_b32_8x8_q8_0_lut_avx`; not ggml's 8-lane `vec_dot`
/// order, which it no longer runs for Q4_0 there). One rounding per block and a scalar chain per
/// row let a kernel put rows or activation columns in its vector lanes instead of the block's
/// elements.
pub fn dot_q4_0_blockwise(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut isum = 0i32;
        for j in 0..QK / 2 {
            isum += (i32::from(x.qs[j] & 0x0F) - 8) * i32::from(y.qs[j]);
            isum += (i32::from(x.qs[j] >> 4) - 8) * i32::from(y.qs[j + QK / 2]);
        }
        acc = libm::fmaf(isum as f32, f16_to_f32(x.d) * f16_to_f32(y.d), acc);
    }
    acc
}

/// Q4_1 weights · Q8_1 activations; the min term uses the activation's stored d * sum.
pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            sumi0 += i32::from(x.qs[j] & 0x0F) * i32::from(y.qs[j]);
            sumi1 += i32::from(x.qs[j] >> 4) * i32::from(y.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf +=
            (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32 + f16_to_f32(x.m) * f16_to_f32(y.s);
    }
    sumf
}

/// Q5_0 weights · Q8_0 activations.
pub fn vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let qh = u32::from_le_bytes(x.qh);
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (v0, v1) = q5_pair(x.qs[j], qh, j);
            sumi0 += (i32::from(v0) - 16) * i32::from(y.qs[j]);
            sumi1 += (i32::from(v1) - 16) * i32::from(y.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf += (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32;
    }
    sumf
}

/// Q5_1 weights · Q8_1 activations.
pub fn vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let qh = u32::from_le_bytes(x.qh);
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (v0, v1) = q5_pair(x.qs[j], qh, j);
            sumi0 += i32::from(v0) * i32::from(y.qs[j]);
            sumi1 += i32::from(v1) * i32::from(y.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf +=
            (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32 + f16_to_f32(x.m) * f16_to_f32(y.s);
    }
    sumf
}

/// Q8_0 weights · Q8_0 activations.
pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += i32::from(x.qs[j]) * i32::from(y.qs[j]);
        }
        sumf += sumi as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d));
    }
    sumf
}

#[inline(always)]
fn bsum(y: &BlockQ8K, j: usize) -> i32 {
    i32::from(i16::from_le_bytes(y.bsums[j]))
}

/// Q2_K weights · Q8_K activations.
pub fn vec_dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut summs = 0i32;
        for j in 0..16 {
            summs += bsum(y, j) * i32::from(x.scales[j] >> 4);
        }
        let yd = f32::from_le_bytes(y.d);
        let dall = yd * f16_to_f32(x.d);
        let dmin = yd * f16_to_f32(x.dmin);
        let q2 = unpack_2bit(&x.qs);
        let mut isum = 0i32;
        for ((q8, q2), &sc) in
            y.qs.chunks_exact(16)
                .zip(q2.chunks_exact(16))
                .zip(&x.scales)
        {
            let mut isuml = 0i32;
            for l in 0..16 {
                isuml += i32::from(q8[l]) * i32::from(q2[l]);
            }
            isum += i32::from(sc & 0xF) * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Adds `scale * q8[l] * a[l]` into eight lanes, lane = position mod 8, for one group of 16 or 32.
#[inline(always)]
fn accumulate_lanes(aux32: &mut [i32; 8], scale: i32, q8: &[i8], a: &[i8]) {
    for (q8, a) in q8.chunks_exact(8).zip(a.chunks_exact(8)) {
        for l in 0..8 {
            aux32[l] += scale * (i32::from(q8[l]) * i32::from(a[l]));
        }
    }
}

/// Folds one super-block's lanes into the float lanes, as ggml does before its final sum.
#[inline(always)]
fn add_lanes(sums: &mut [f32; 8], d: f32, aux32: &[i32; 8]) {
    for l in 0..8 {
        sums[l] += d * aux32[l] as f32;
    }
}

/// ggml adds the lanes to the running min term last, in lane order.
#[inline(always)]
fn finish_lanes(mut sumf: f32, sums: &[f32; 8]) -> f32 {
    for &s in sums {
        sumf += s;
    }
    sumf
}

/// Q3_K weights · Q8_K activations.
pub fn vec_dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in x.iter().zip(y) {
        let a = unpack_q3k(x);
        let scales = q3k_scales(&x.scales);
        let mut aux32 = [0i32; 8];
        for (j, (q8, a)) in y.qs.chunks_exact(16).zip(a.chunks_exact(16)).enumerate() {
            accumulate_lanes(&mut aux32, i32::from(scales[j]), q8, a);
        }
        add_lanes(&mut sums, f16_to_f32(x.d) * f32::from_le_bytes(y.d), &aux32);
    }
    finish_lanes(0.0, &sums)
}

/// The eight scales and eight mins of a Q4_K / Q5_K super-block.
#[inline(always)]
fn scales_mins_k4(packed: &[u8; K_SCALE_SIZE]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        (sc[j], m[j]) = scale_min_k4(j, packed);
    }
    (sc, m)
}

/// The shared tail of the Q4_K and Q5_K dot products, given the unpacked quants.
#[inline(always)]
fn dot_k4_block(
    a: &[i8; QK_K],
    packed: &[u8; K_SCALE_SIZE],
    d: [u8; 2],
    dmin: [u8; 2],
    y: &BlockQ8K,
    sums: &mut [f32; 8],
) -> f32 {
    let (scales, mins) = scales_mins_k4(packed);
    let mut sumi = 0i32;
    for j in 0..16 {
        sumi += bsum(y, j) * i32::from(mins[j / 2]);
    }
    let mut aux32 = [0i32; 8];
    for (j, (q8, a)) in y.qs.chunks_exact(32).zip(a.chunks_exact(32)).enumerate() {
        accumulate_lanes(&mut aux32, i32::from(scales[j]), q8, a);
    }
    let yd = f32::from_le_bytes(y.d);
    add_lanes(sums, f16_to_f32(d) * yd, &aux32);
    f16_to_f32(dmin) * yd * sumi as f32
}

/// Q4_K weights · Q8_K activations.
pub fn vec_dot_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let a = unpack_q4k(&x.qs);
        sumf -= dot_k4_block(&a, &x.scales, x.d, x.dmin, y, &mut sums);
    }
    finish_lanes(sumf, &sums)
}

/// Q5_K weights · Q8_K activations.
pub fn vec_dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let a = unpack_q5k(x);
        sumf -= dot_k4_block(&a, &x.scales, x.d, x.dmin, y, &mut sums);
    }
    finish_lanes(sumf, &sums)
}

/// Q6_K weights · Q8_K activations.
pub fn vec_dot_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in x.iter().zip(y) {
        let a = unpack_q6k(x);
        let mut aux32 = [0i32; 8];
        for (j, (q8, a)) in y.qs.chunks_exact(16).zip(a.chunks_exact(16)).enumerate() {
            accumulate_lanes(&mut aux32, i32::from(x.scales[j]), q8, a);
        }
        add_lanes(&mut sums, f16_to_f32(x.d) * f32::from_le_bytes(y.d), &aux32);
    }
    finish_lanes(0.0, &sums)
}

/// f32 · f32 as ggml's scalar path: f32 products summed in f64.
pub fn vec_dot_f32(x: &[[u8; 4]], y: &[[u8; 4]]) -> f32 {
    let mut sum = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        sum += f64::from(f32::from_le_bytes(a) * f32::from_le_bytes(b));
    }
    sum as f32
}

/// f16 · f16 as ggml's scalar path: widened to f32, products summed in f64.
pub fn vec_dot_f16(x: &[[u8; 2]], y: &[[u8; 2]]) -> f32 {
    let mut sum = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        sum += f64::from(f16_to_f32(a) * f16_to_f32(b));
    }
    sum as f32
}

/// bf16 · bf16 as ggml's scalar path: widened to f32, products summed in f64.
pub fn vec_dot_bf16(x: &[[u8; 2]], y: &[[u8; 2]]) -> f32 {
    let mut sum = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        sum += f64::from(bf16_to_f32(a) * bf16_to_f32(b));
    }
    sum as f32
}
