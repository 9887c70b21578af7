//! aarch64 kernels for the interleaved types: per row, the plain NEON / dotprod kernels'
//! operations of `kernels/aarch64.rs` (two float accumulators alternating by block, `vmlaq_n_f32`
//! of the converted integer dot product and the scalar `xd · yd`, the same final reductions), with
//! each activation block loaded once for the group's four rows.

use super::Isa;
use crate::quant::GgmlType;
use core::arch::aarch64::*;

/// Runs the interleaved `matvec` at `isa` if there is a kernel for it.
pub(super) fn matvec(
    isa: Isa,
    ty: GgmlType,
    w: &[u8],
    w_row: usize,
    act: &[u8],
    out: &mut [f32],
) -> bool {
    if !crate::quant::kernels::aarch64::has(isa) {
        return false;
    }
    // SAFETY: `has(isa)` checked that the CPU has every feature the level's functions enable.
    unsafe {
        match isa {
            Isa::Neon => neon::matvec(ty, w, w_row, act, out),
            Isa::NeonDot => neondot::matvec(ty, w, w_row, act, out),
            _ => false,
        }
    }
}

/// Four lanes of sums of four i8 × i8 products, added to `acc`, without the dot-product extension.
#[target_feature(enable = "neon")]
#[inline]
fn dot_i8_neon(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
}

/// The same with `sdot`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn dot_i8_sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: sdot reads two vector registers and updates a third, nothing else; this function
    // is only reachable where the CPU has the dot-product extension.
    unsafe {
        core::arch::asm!(
            "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack)
        );
    }
    acc
}

/// Stamps a level's kernels with its i8 dot product.
macro_rules! family {
    ($features:literal, $dot:path) => {
        use crate::quant::blocks::*;
        use crate::quant::layout::{BlockQ4_0x4, BlockQ4_1x4, BlockQ8_0x4};
        use crate::quant::GgmlType;
        use core::arch::aarch64::*;

        /// `out[r]` = dot(row r, act) over whole groups of four rows.
        #[target_feature(enable = $features)]
        pub(super) fn matvec(
            ty: GgmlType,
            w: &[u8],
            w_row: usize,
            act: &[u8],
            out: &mut [f32],
        ) -> bool {
            macro_rules! groups {
                ($kernel:ident) => {{
                    let act = as_blocks(act);
                    for (o, g) in out.chunks_exact_mut(4).zip(w.chunks_exact(4 * w_row)) {
                        o.copy_from_slice(&$kernel(as_blocks(g), act));
                    }
                }};
            }
            match ty {
                GgmlType::Q4_0_X4 => groups!(q4_0),
                GgmlType::Q4_1_X4 => groups!(q4_1),
                GgmlType::Q8_0_X4 => groups!(q8_0),
                _ => return false,
            }
            true
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load16s(b: &[i8; 16]) -> int8x16_t {
            // SAFETY: `b` is 16 readable bytes; the load has no alignment requirement.
            unsafe { vld1q_s8(b.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load16u(b: &[u8; 16]) -> uint8x16_t {
            // SAFETY: `b` is 16 readable bytes; the load has no alignment requirement.
            unsafe { vld1q_u8(b.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn halves(q: &[i8; 32]) -> (int8x16_t, int8x16_t) {
            let q: &[[i8; 16]; 2] = bytemuck::cast_ref(q);
            (load16s(&q[0]), load16s(&q[1]))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn nibbles(qs: &[u8; 16]) -> (int8x16_t, int8x16_t) {
            let v = load16u(qs);
            (
                vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))),
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
            )
        }

        /// The plain kernels' ending per row.
        #[target_feature(enable = $features)]
        #[inline]
        fn finish(acc: [[float32x4_t; 2]; 4]) -> [f32; 4] {
            acc.map(|a| vaddvq_f32(vaddq_f32(a[0], a[1])))
        }

        #[target_feature(enable = $features)]
        fn q4_0(x: &[BlockQ4_0x4], y: &[BlockQ8_0]) -> [f32; 4] {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            let eight = vdupq_n_s8(8);
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let (yl, yh) = halves(&y.qs);
                let yd = f16_to_f32(y.d);
                for (r, a) in acc.iter_mut().enumerate() {
                    let (l, h) = nibbles(&x.qs[r]);
                    let zero = vdupq_n_s32(0);
                    let p = $dot($dot(zero, vsubq_s8(l, eight), yl), vsubq_s8(h, eight), yh);
                    let d = f16_to_f32(x.d[r]) * yd;
                    a[k % 2] = vmlaq_n_f32(a[k % 2], vcvtq_f32_s32(p), d);
                }
            }
            finish(acc)
        }

        #[target_feature(enable = $features)]
        fn q4_1(x: &[BlockQ4_1x4], y: &[BlockQ8_1]) -> [f32; 4] {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            let mut summs = [0.0f32; 4];
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let (yl, yh) = halves(&y.qs);
                let (yd, ys) = (f16_to_f32(y.d), f16_to_f32(y.s));
                for (r, a) in acc.iter_mut().enumerate() {
                    summs[r] += f16_to_f32(x.m[r]) * ys;
                    let (l, h) = nibbles(&x.qs[r]);
                    let p = $dot($dot(vdupq_n_s32(0), l, yl), h, yh);
                    let d = f16_to_f32(x.d[r]) * yd;
                    a[k % 2] = vmlaq_n_f32(a[k % 2], vcvtq_f32_s32(p), d);
                }
            }
            let mut out = finish(acc);
            for (o, s) in out.iter_mut().zip(summs) {
                *o += s;
            }
            out
        }

        #[target_feature(enable = $features)]
        fn q8_0(x: &[BlockQ8_0x4], y: &[BlockQ8_0]) -> [f32; 4] {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let (yl, yh) = halves(&y.qs);
                let yd = f16_to_f32(y.d);
                for (r, a) in acc.iter_mut().enumerate() {
                    let (xl, xh) = halves(&x.qs[r]);
                    let p = $dot($dot(vdupq_n_s32(0), xl, yl), xh, yh);
                    let d = f16_to_f32(x.d[r]) * yd;
                    a[k % 2] = vmlaq_n_f32(a[k % 2], vcvtq_f32_s32(p), d);
                }
            }
            finish(acc)
        }
    };
}

mod neon {
    family!("neon", super::dot_i8_neon);
}

mod neondot {
    family!("neon,dotprod", super::dot_i8_sdot);
}
