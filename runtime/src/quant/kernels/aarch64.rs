//! aarch64 kernels: Advanced SIMD (every aarch64 CPU), and with the dot-product extension
//! (`sdot`; Cortex-A76 / Raspberry Pi 5 and later), chosen at run time.
//!
//! `vdotq_s32` is not stable in Rust, so `sdot` is emitted with `asm!` inside functions that
//! enable `dotprod`. Kernels exist for the types of the models in use (Q4_0, Q4_1, Q8_0, Q4_K,
//! Q6_K); other types take the scalar kernels. Integer parts are exact, float parts are summed in
//! another order than the scalar ones, as on x86.

use super::Isa;
use crate::quant::GgmlType;

/// The best aarch64 level this CPU has (Advanced SIMD is part of the aarch64 baseline).
pub(super) fn detect() -> Option<Isa> {
    if has(Isa::NeonDot) {
        Some(Isa::NeonDot)
    } else if has(Isa::Neon) {
        Some(Isa::Neon)
    } else {
        None
    }
}

/// Whether the CPU has every feature the level's functions enable. With `std` this asks the OS;
/// without it, only what the build targets statically.
pub(super) fn has(isa: Isa) -> bool {
    #[cfg(feature = "std")]
    let dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
    #[cfg(not(feature = "std"))]
    let dotprod = cfg!(target_feature = "dotprod");
    let neon = cfg!(target_feature = "neon");
    match isa {
        Isa::Neon => neon,
        Isa::NeonDot => neon && dotprod,
        _ => false,
    }
}

/// Runs `matvec` at `isa` if this module has kernels for it; `false` leaves the work to the caller.
pub(super) fn matvec(
    isa: Isa,
    ty: GgmlType,
    w: &[u8],
    w_row: usize,
    act: &[u8],
    out: &mut [f32],
) -> bool {
    if !has(isa) {
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

/// The activation quantizers run the reference code on aarch64 (they are a small part of a
/// matvec's time).
pub(super) fn quantize_row(_isa: Isa, _ty: GgmlType, _x: &[f32], _y: &mut [u8]) -> bool {
    false
}

/// `y += s · dequantize(x)` (Q8_0) at `isa`; `y` holds exactly `x.len()` blocks of elements.
pub(super) fn mad_q8_0(
    isa: Isa,
    y: &mut [f32],
    x: &[crate::quant::blocks::BlockQ8_0],
    s: f32,
) -> bool {
    if !has(isa) || !matches!(isa, Isa::Neon | Isa::NeonDot) {
        return false;
    }
    // SAFETY: `has(isa)` checked that the CPU has Advanced SIMD.
    unsafe { mad_q8_0_neon(y, x, s) };
    true
}

#[target_feature(enable = "neon")]
fn mad_q8_0_neon(y: &mut [f32], x: &[crate::quant::blocks::BlockQ8_0], s: f32) {
    use core::arch::aarch64::*;
    for (b, y) in x.iter().zip(y.chunks_exact_mut(32)) {
        let d = crate::quant::blocks::f16_to_f32(b.d);
        for (q, y) in b.qs.chunks_exact(16).zip(y.chunks_exact_mut(16)) {
            // SAFETY: `q` has 16 bytes and `y` 16 floats, what these loads and stores touch.
            unsafe {
                let q8 = vld1q_s8(q.as_ptr());
                let lo = vmovl_s8(vget_low_s8(q8));
                let hi = vmovl_high_s8(q8);
                let parts = [
                    vmovl_s16(vget_low_s16(lo)),
                    vmovl_high_s16(lo),
                    vmovl_s16(vget_low_s16(hi)),
                    vmovl_high_s16(hi),
                ];
                for (i, p) in parts.into_iter().enumerate() {
                    let v = vmulq_n_f32(vcvtq_f32_s32(p), d);
                    let ptr = y.as_mut_ptr().add(4 * i);
                    vst1q_f32(ptr, vfmaq_n_f32(vld1q_f32(ptr), v, s));
                }
            }
        }
    }
}

/// Four lanes of sums of four i8 × i8 products, added to `acc`, without the dot-product extension.
#[target_feature(enable = "neon")]
#[inline]
fn dot_i8_neon(
    acc: core::arch::aarch64::int32x4_t,
    a: core::arch::aarch64::int8x16_t,
    b: core::arch::aarch64::int8x16_t,
) -> core::arch::aarch64::int32x4_t {
    use core::arch::aarch64::*;
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
}

/// The same with `sdot`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn dot_i8_sdot(
    acc: core::arch::aarch64::int32x4_t,
    a: core::arch::aarch64::int8x16_t,
    b: core::arch::aarch64::int8x16_t,
) -> core::arch::aarch64::int32x4_t {
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

/// `out[r]` = `$dot`(row r, act) over whole rows.
macro_rules! rows {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $dot:ident) => {{
        let act = as_blocks($act);
        for (o, row) in $out.iter_mut().zip($w.chunks_exact($w_row)) {
            *o = $dot(as_blocks(row), act);
        }
    }};
}

/// Stamps a module of kernels compiled for `$features` with the level's i8 dot product.
macro_rules! neon_family {
    ($features:literal, $dot:path) => {
        use crate::quant::blocks::*;
        use crate::quant::GgmlType;
        use core::arch::aarch64::*;

        /// `out[r]` = dot(row r, act) for the types this level has; `w` holds `out.len()` rows.
        #[target_feature(enable = $features)]
        pub(super) fn matvec(
            ty: GgmlType,
            w: &[u8],
            w_row: usize,
            act: &[u8],
            out: &mut [f32],
        ) -> bool {
            match ty {
                GgmlType::Q4_0 => rows!(out, w, w_row, act, dot_q4_0),
                GgmlType::Q4_1 => rows!(out, w, w_row, act, dot_q4_1),
                GgmlType::Q8_0 => rows!(out, w, w_row, act, dot_q8_0),
                GgmlType::Q4_K => rows!(out, w, w_row, act, dot_q4_k),
                GgmlType::Q6_K => rows!(out, w, w_row, act, dot_q6_k),
                _ => return false,
            }
            true
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load16u(b: &[u8; 16]) -> uint8x16_t {
            // SAFETY: `b` is 16 readable bytes; the load has no alignment requirement.
            unsafe { vld1q_u8(b.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load16s(b: &[i8; 16]) -> int8x16_t {
            // SAFETY: `b` is 16 readable bytes; the load has no alignment requirement.
            unsafe { vld1q_s8(b.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load8s16(b: &[[u8; 2]; 8]) -> int16x8_t {
            // SAFETY: `b` is 16 readable bytes (eight little-endian i16, the target's order).
            unsafe { vld1q_s16(b.as_ptr().cast()) }
        }

        /// The 32 quants of a block as two halves.
        #[target_feature(enable = $features)]
        #[inline]
        fn halves(q: &[i8; 32]) -> (int8x16_t, int8x16_t) {
            let q: &[[i8; 16]; 2] = bytemuck::cast_ref(q);
            (load16s(&q[0]), load16s(&q[1]))
        }

        /// Low and high nibbles of 16 bytes: elements 0-15 and 16-31 of a Q4_0 / Q4_1 block.
        #[target_feature(enable = $features)]
        #[inline]
        fn nibbles(qs: &[u8; 16]) -> (int8x16_t, int8x16_t) {
            let v = load16u(qs);
            (
                vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))),
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
            )
        }

        #[target_feature(enable = $features)]
        fn dot_q4_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
            let mut acc = [vdupq_n_f32(0.0); 2];
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let (l, h) = nibbles(&x.qs);
                let eight = vdupq_n_s8(8);
                let (yl, yh) = halves(&y.qs);
                let zero = vdupq_n_s32(0);
                let p = $dot($dot(zero, vsubq_s8(l, eight), yl), vsubq_s8(h, eight), yh);
                let d = f16_to_f32(x.d) * f16_to_f32(y.d);
                acc[k % 2] = vmlaq_n_f32(acc[k % 2], vcvtq_f32_s32(p), d);
            }
            vaddvq_f32(vaddq_f32(acc[0], acc[1]))
        }

        #[target_feature(enable = $features)]
        fn dot_q4_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
            let mut acc = [vdupq_n_f32(0.0); 2];
            let mut summs = 0.0f32;
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                summs += f16_to_f32(x.m) * f16_to_f32(y.s);
                let (l, h) = nibbles(&x.qs);
                let (yl, yh) = halves(&y.qs);
                let p = $dot($dot(vdupq_n_s32(0), l, yl), h, yh);
                let d = f16_to_f32(x.d) * f16_to_f32(y.d);
                acc[k % 2] = vmlaq_n_f32(acc[k % 2], vcvtq_f32_s32(p), d);
            }
            vaddvq_f32(vaddq_f32(acc[0], acc[1])) + summs
        }

        #[target_feature(enable = $features)]
        fn dot_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
            let mut acc = [vdupq_n_f32(0.0); 2];
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let (xl, xh) = halves(&x.qs);
                let (yl, yh) = halves(&y.qs);
                let p = $dot($dot(vdupq_n_s32(0), xl, yl), xh, yh);
                let d = f16_to_f32(x.d) * f16_to_f32(y.d);
                acc[k % 2] = vmlaq_n_f32(acc[k % 2], vcvtq_f32_s32(p), d);
            }
            vaddvq_f32(vaddq_f32(acc[0], acc[1]))
        }

        /// Σ of the products of 32 quants (two halves each side), as one i32.
        #[target_feature(enable = $features)]
        #[inline]
        fn dot32(a: (int8x16_t, int8x16_t), b: (int8x16_t, int8x16_t)) -> i32 {
            vaddvq_s32($dot($dot(vdupq_n_s32(0), a.0, b.0), a.1, b.1))
        }

        #[target_feature(enable = $features)]
        fn dot_q4_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
            let mut sumf = 0.0f32;
            for (x, y) in x.iter().zip(y) {
                let yd = f32::from_le_bytes(y.d);
                let bsums: &[[[u8; 2]; 8]; 2] = bytemuck::cast_ref(&y.bsums);
                // Sums of the activations per group of 32, then the min term.
                let group = vpaddq_s16(load8s16(&bsums[0]), load8s16(&bsums[1]));
                let mut sc = [0u8; 8];
                let mut mn = [0u8; 8];
                for j in 0..8 {
                    (sc[j], mn[j]) = scale_min_k4(j, &x.scales);
                }
                let mins = vreinterpretq_s16_u16(vmovl_u8(load8(&mn)));
                let prod = vaddq_s32(
                    vmull_s16(vget_low_s16(group), vget_low_s16(mins)),
                    vmull_high_s16(group, mins),
                );
                sumf -= f16_to_f32(x.dmin) * yd * vaddvq_s32(prod) as f32;
                let qs: &[[[u8; 16]; 2]; 4] = bytemuck::cast_ref(&x.qs);
                let q8: &[[i8; 32]; 8] = bytemuck::cast_ref(&y.qs);
                let mut sumi = 0i32;
                for j in 0..4 {
                    let (l0, h0) = nibbles(&qs[j][0]);
                    let (l1, h1) = nibbles(&qs[j][1]);
                    sumi += dot32((l0, l1), halves(&q8[2 * j])) * i32::from(sc[2 * j]);
                    sumi += dot32((h0, h1), halves(&q8[2 * j + 1])) * i32::from(sc[2 * j + 1]);
                }
                sumf += f16_to_f32(x.d) * yd * sumi as f32;
            }
            sumf
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load8(b: &[u8; 8]) -> uint8x8_t {
            // SAFETY: `b` is 8 readable bytes; the load has no alignment requirement.
            unsafe { vld1_u8(b.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        fn dot_q6_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
            let mut sumf = 0.0f32;
            let m4 = vdupq_n_u8(0x0F);
            let m3 = vdupq_n_u8(0x03);
            for (x, y) in x.iter().zip(y) {
                // The quants are stored plus 32: take 32 · Σ sc[g] · bsum[g] off at the end.
                let s8 = load16s(&x.scales);
                let bsums: &[[[u8; 2]; 8]; 2] = bytemuck::cast_ref(&y.bsums);
                let (b0, b1) = (load8s16(&bsums[0]), load8s16(&bsums[1]));
                let (s0, s1) = (vmovl_s8(vget_low_s8(s8)), vmovl_high_s8(s8));
                let prod = vaddq_s32(
                    vaddq_s32(
                        vmull_s16(vget_low_s16(b0), vget_low_s16(s0)),
                        vmull_high_s16(b0, s0),
                    ),
                    vaddq_s32(
                        vmull_s16(vget_low_s16(b1), vget_low_s16(s1)),
                        vmull_high_s16(b1, s1),
                    ),
                );
                let off = vaddvq_s32(prod);
                let ql: &[[[u8; 16]; 4]; 2] = bytemuck::cast_ref(&x.ql);
                let qh: &[[[u8; 16]; 2]; 2] = bytemuck::cast_ref(&x.qh);
                let q8: &[[[i8; 16]; 8]; 2] = bytemuck::cast_ref(&y.qs);
                let mut sumi = 0i32;
                for h in 0..2 {
                    let sc = &x.scales[8 * h..8 * h + 8];
                    let (hb0, hb1) = (load16u(&qh[h][0]), load16u(&qh[h][1]));
                    let l = [
                        load16u(&ql[h][0]),
                        load16u(&ql[h][1]),
                        load16u(&ql[h][2]),
                        load16u(&ql[h][3]),
                    ];
                    let y8 = &q8[h];
                    // Elements 16k..16k+16 of this half: nibbles of ql, two bits of qh each.
                    let q = [
                        vorrq_u8(vandq_u8(l[0], m4), vshlq_n_u8::<4>(vandq_u8(hb0, m3))),
                        vorrq_u8(vandq_u8(l[1], m4), vshlq_n_u8::<4>(vandq_u8(hb1, m3))),
                        vorrq_u8(
                            vandq_u8(l[2], m4),
                            vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(hb0), m3)),
                        ),
                        vorrq_u8(
                            vandq_u8(l[3], m4),
                            vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(hb1), m3)),
                        ),
                        vorrq_u8(
                            vshrq_n_u8::<4>(l[0]),
                            vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(hb0), m3)),
                        ),
                        vorrq_u8(
                            vshrq_n_u8::<4>(l[1]),
                            vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(hb1), m3)),
                        ),
                        vorrq_u8(vshrq_n_u8::<4>(l[2]), vshlq_n_u8::<4>(vshrq_n_u8::<6>(hb0))),
                        vorrq_u8(vshrq_n_u8::<4>(l[3]), vshlq_n_u8::<4>(vshrq_n_u8::<6>(hb1))),
                    ];
                    for k in 0..8 {
                        let p = $dot(vdupq_n_s32(0), vreinterpretq_s8_u8(q[k]), load16s(&y8[k]));
                        sumi += vaddvq_s32(p) * i32::from(sc[k]);
                    }
                }
                sumf += f16_to_f32(x.d) * f32::from_le_bytes(y.d) * (sumi - 32 * off) as f32;
            }
            sumf
        }
    };
}

mod neon {
    neon_family!("neon", super::dot_i8_neon);
}

mod neondot {
    neon_family!("neon,dotprod", super::dot_i8_sdot);
}
