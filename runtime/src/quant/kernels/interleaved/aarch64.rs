//! aarch64 kernels for the interleaved types: per row, the plain NEON / dotprod kernels'
//! operations of `kernels/aarch64.rs` (eight float lanes as two vectors, a fused multiply-add of
//! the converted integer lanes and the scalar `xd · yd`, x86's final reduction), with each
//! activation block loaded once for the group's four rows. Q4_0_X4 runs the plain kernels'
//! blockwise Q4_0 step itself (rows in the lanes), reading the group's scales with one load.

use super::Isa;
use crate::quant::GgmlType;

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

/// Stamps a level's kernels with its i8 dot product.
macro_rules! family {
    ($features:literal, $dot:path, $q4_0_block4:path) => {
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

        /// The plain kernels' ending per row: x86's `hsum_ps` of the eight lanes.
        #[target_feature(enable = $features)]
        #[inline]
        fn finish(acc: [[float32x4_t; 2]; 4]) -> [f32; 4] {
            let mut out = [0f32; 4];
            for (o, a) in out.iter_mut().zip(acc) {
                *o = crate::quant::kernels::aarch64::hsum8(a[0], a[1]);
            }
            out
        }

        /// `a += d · (lo, hi)`, fused.
        #[target_feature(enable = $features)]
        #[inline]
        fn fma8(a: &mut [float32x4_t; 2], d: f32, lo: int32x4_t, hi: int32x4_t) {
            a[0] = vfmaq_n_f32(a[0], vcvtq_f32_s32(lo), d);
            a[1] = vfmaq_n_f32(a[1], vcvtq_f32_s32(hi), d);
        }

        #[target_feature(enable = $features)]
        fn q4_0(x: &[BlockQ4_0x4], y: &[BlockQ8_0]) -> [f32; 4] {
            let mut acc = vdupq_n_f32(0.0);
            for (x, y) in x.iter().zip(y) {
                let qs = [&x.qs[0], &x.qs[1], &x.qs[2], &x.qs[3]];
                acc = $q4_0_block4(acc, qs, x.d, y);
            }
            let mut out = [0f32; 4];
            // SAFETY: `out` is four writable floats.
            unsafe { vst1q_f32(out.as_mut_ptr(), acc) };
            out
        }

        #[target_feature(enable = $features)]
        fn q4_1(x: &[BlockQ4_1x4], y: &[BlockQ8_1]) -> [f32; 4] {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            let mut summs = [0.0f32; 4];
            for (x, y) in x.iter().zip(y) {
                let (yl, yh) = halves(&y.qs);
                let (yd, ys) = (f16_to_f32(y.d), f16_to_f32(y.s));
                for (r, a) in acc.iter_mut().enumerate() {
                    summs[r] += f16_to_f32(x.m[r]) * ys;
                    let (l, h) = nibbles(&x.qs[r]);
                    let zero = vdupq_n_s32(0);
                    let (pl, ph) = ($dot(zero, l, yl), $dot(zero, h, yh));
                    fma8(a, f16_to_f32(x.d[r]) * yd, pl, ph);
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
            for (x, y) in x.iter().zip(y) {
                let (yl, yh) = halves(&y.qs);
                let yd = f16_to_f32(y.d);
                for (r, a) in acc.iter_mut().enumerate() {
                    let (xl, xh) = halves(&x.qs[r]);
                    let zero = vdupq_n_s32(0);
                    let (pl, ph) = ($dot(zero, xl, yl), $dot(zero, xh, yh));
                    fma8(a, f16_to_f32(x.d[r]) * yd, pl, ph);
                }
            }
            finish(acc).map(|v| v + 0.0)
        }
    };
}

mod neon {
    family!(
        "neon",
        crate::quant::kernels::aarch64::dot_i8_neon,
        crate::quant::kernels::aarch64::neon::q4_0_block4
    );
}

mod neondot {
    family!(
        "neon,dotprod",
        crate::quant::kernels::aarch64::dot_i8_sdot,
        crate::quant::kernels::aarch64::neondot::q4_0_block4
    );
}
