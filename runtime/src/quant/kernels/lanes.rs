//! Dot products in the summation order of ggml's x86 SIMD kernels (what llama.cpp runs on a PC):
//! eight f32 lanes, lane `k` of a 32-element block holding the exact integer sum of elements
//! `4k..4k+3`, each lane accumulating `scale × lane` with one fused rounding per block, then a
//! 4-2-1 tree sum. Integer parts are exact in any order; only this float order decides the last
//! bits, and small models amplify last bits into different tokens. Our SIMD kernels use the same
//! lanes, so every platform computes the same numbers.

use crate::quant::blocks::*;

/// `a * b + c` with a single rounding: the product of two f32 is exact in f64.
#[inline(always)]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
}

/// ggml's `hsum_float_8`: (l + l+4), then (l + l+2), then (l + l+1).
#[inline(always)]
pub(crate) fn hsum8(v: [f32; 8]) -> f32 {
    let a = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    let b = [a[0] + a[2], a[1] + a[3]];
    b[0] + b[1]
}

#[inline(always)]
fn f16(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Q4_1 weights · Q8_1 activations.
pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (x, y) in x.iter().zip(y) {
        // m·s is a product of two f16 values: exact in f32, so fused or not gives the same sum.
        summs += f16(x.m) * f16(y.s);
        let d = f16(x.d) * f16(y.d);
        let mut q = [0u8; 32];
        for j in 0..16 {
            q[j] = x.qs[j] & 0x0F;
            q[j + 16] = x.qs[j] >> 4;
        }
        for ((a, q), y) in acc
            .iter_mut()
            .zip(q.chunks_exact(4))
            .zip(y.qs.chunks_exact(4))
        {
            let s: i32 = q
                .iter()
                .zip(y)
                .map(|(&q, &y)| i32::from(q) * i32::from(y))
                .sum();
            *a = fma(d, s as f32, *a);
        }
    }
    hsum8(acc) + summs
}

/// Q8_0 weights · Q8_0 activations.
pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in x.iter().zip(y) {
        let d = f16(x.d) * f16(y.d);
        for ((a, x), y) in acc
            .iter_mut()
            .zip(x.qs.chunks_exact(4))
            .zip(y.qs.chunks_exact(4))
        {
            let s: i32 = x
                .iter()
                .zip(y)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            *a = fma(d, s as f32, *a);
        }
    }
    hsum8(acc)
}
