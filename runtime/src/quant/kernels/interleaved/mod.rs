//! Kernels for the row-interleaved types of [`crate::quant::layout`]: one group of four rows per
//! call, four dot products per activation block loaded.
//!
//! Each row's result is bit-identical to the plain kernel of the same level on the same row: the
//! same integer sums, the same float operations in the same order (the scalar kernels here follow
//! `scalar`'s per-block expressions; the x86 and aarch64 ones the per-row accumulators of `x86` /
//! `aarch64`, and for Q4_0 their blockwise order with the rows in the vector lanes). Only the
//! addressing and the shared loads differ. `runtime/tests/layout.rs` checks
//! SIMD == scalar per level and interleaved == plain.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Isa;
use crate::quant::blocks::*;
use crate::quant::layout::{BlockQ4_0x4, BlockQ4_1x4, BlockQ8_0x4};
use crate::quant::GgmlType;

/// `out[r]` = dot(row r, act) for an interleaved `ty`: `w` holds `out.len() / 4` whole groups
/// of four `w_row`-byte rows, `act` one whole activation row (the caller checked both).
pub(super) fn matvec(isa: Isa, ty: GgmlType, w: &[u8], w_row: usize, act: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::matvec(isa, ty, w, w_row, act, out) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::matvec(isa, ty, w, w_row, act, out) {
        return;
    }
    let _ = isa;
    match ty {
        GgmlType::Q4_0_X4 => groups(w, w_row, act, out, q4_0),
        GgmlType::Q4_1_X4 => groups(w, w_row, act, out, q4_1),
        GgmlType::Q8_0_X4 => groups(w, w_row, act, out, q8_0),
        _ => out.fill(f32::NAN),
    }
}

/// Applies a group kernel to each group of four rows (`w` holds exactly `out.len() / 4` groups).
#[inline(always)]
fn groups<W: bytemuck::Pod, A: bytemuck::Pod>(
    w: &[u8],
    w_row: usize,
    act: &[u8],
    out: &mut [f32],
    dot: impl Fn(&[W], &[A]) -> [f32; 4],
) {
    let act = as_blocks::<A>(act);
    for (o, g) in out.chunks_exact_mut(4).zip(w.chunks_exact(4 * w_row)) {
        o.copy_from_slice(&dot(as_blocks(g), act));
    }
}

/// Q4_0 × Q8_0 in `scalar::vec_dot_q4_0_q8_0`'s order, per row.
fn q4_0(x: &[BlockQ4_0x4], y: &[BlockQ8_0]) -> [f32; 4] {
    let mut sumf = [0.0f32; 4];
    for (x, y) in x.iter().zip(y) {
        for (r, s) in sumf.iter_mut().enumerate() {
            let (mut sumi0, mut sumi1) = (0i32, 0i32);
            for j in 0..QK / 2 {
                let v0 = i32::from(x.qs[r][j] & 0x0F) - 8;
                let v1 = i32::from(x.qs[r][j] >> 4) - 8;
                sumi0 += v0 * i32::from(y.qs[j]);
                sumi1 += v1 * i32::from(y.qs[j + QK / 2]);
            }
            let sumi = sumi0 + sumi1;
            *s += sumi as f32 * f16_to_f32(x.d[r]) * f16_to_f32(y.d);
        }
    }
    sumf
}

/// Q4_1 × Q8_1 in `scalar::vec_dot_q4_1_q8_1`'s order, per row.
fn q4_1(x: &[BlockQ4_1x4], y: &[BlockQ8_1]) -> [f32; 4] {
    let mut sumf = [0.0f32; 4];
    for (x, y) in x.iter().zip(y) {
        for (r, s) in sumf.iter_mut().enumerate() {
            let (mut sumi0, mut sumi1) = (0i32, 0i32);
            for j in 0..QK / 2 {
                sumi0 += i32::from(x.qs[r][j] & 0x0F) * i32::from(y.qs[j]);
                sumi1 += i32::from(x.qs[r][j] >> 4) * i32::from(y.qs[j + QK / 2]);
            }
            let sumi = sumi0 + sumi1;
            *s += (f16_to_f32(x.d[r]) * f16_to_f32(y.d)) * sumi as f32
                + f16_to_f32(x.m[r]) * f16_to_f32(y.s);
        }
    }
    sumf
}

/// Q8_0 × Q8_0 in `scalar::vec_dot_q8_0_q8_0`'s order, per row.
fn q8_0(x: &[BlockQ8_0x4], y: &[BlockQ8_0]) -> [f32; 4] {
    let mut sumf = [0.0f32; 4];
    for (x, y) in x.iter().zip(y) {
        for (r, s) in sumf.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..QK {
                sumi += i32::from(x.qs[r][j]) * i32::from(y.qs[j]);
            }
            *s += sumi as f32 * (f16_to_f32(x.d[r]) * f16_to_f32(y.d));
        }
    }
    sumf
}
