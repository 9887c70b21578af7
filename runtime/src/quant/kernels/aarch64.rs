//! aarch64 kernels: Advanced SIMD (every aarch64 CPU), and with the dot-product extension
//! (`sdot`; Cortex-A76 / Raspberry Pi 5 and later), chosen at run time.
//!
//! `vdotq_s32` is not stable in Rust, so `sdot` is emitted with `asm!` inside functions that
//! enable `dotprod`. Kernels exist for the types of the models in use (Q4_0, Q4_1, Q5_0, Q8_0,
//! Q4_K, Q6_K); other types take the scalar kernels. Integer parts are exact; the float parts follow the
//! x86 kernels' order exactly (ggml's AVX2 order for the 32-element types), so an ARM board gives
//! bit for bit the logits of an x86 host (and of llama.cpp there, for those types): an x86 vector
//! of eight i32 lanes, each the sum of four neighbouring products, is two NEON vectors of four
//! (`sdot` lanes), scaled with fused multiply-adds and reduced as `hsum_ps` reduces them.
//!
//! Q4_0 is the exception: every level runs `scalar::dot_q4_0_blockwise`'s order (one fused
//! multiply-add per block into a scalar chain per row), which leaves the vector lanes free for
//! rows: four rows per activation block loaded, their integer sums reduced into one vector and
//! scaled with one `fmla`. The interleaved Q4_0_X4 kernels run the same block step.

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

/// Four lanes of sums of four i8 × i8 products, added to `acc`, without the dot-product extension:
/// lane k holds products 4k..4k+3, as `sdot` gives them (the float parts depend on the lanes).
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn dot_i8_neon(
    acc: core::arch::aarch64::int32x4_t,
    a: core::arch::aarch64::int8x16_t,
    b: core::arch::aarch64::int8x16_t,
) -> core::arch::aarch64::int32x4_t {
    use core::arch::aarch64::*;
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
}

/// x86's `hsum_ps` of the eight lanes `lo`, `hi`: lanes i and i + 4, then i and i + 2, then the two.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn hsum8(
    lo: core::arch::aarch64::float32x4_t,
    hi: core::arch::aarch64::float32x4_t,
) -> f32 {
    use core::arch::aarch64::*;
    let s = vaddq_f32(lo, hi);
    let t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    vget_lane_f32::<0>(t) + vget_lane_f32::<1>(t)
}

/// The same with `sdot`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(super) fn dot_i8_sdot(
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

/// The exact integer dot products of one Q4_0 block of four rows (`q[r]`: row r's quants minus
/// 8, elements 0-15 and 16-31) with an activation block's halves `y`: lane r is row r's.
/// Without `sdot`, i16 lanes: each holds four products (|(q - 8) · y| ≤ 1024), and the two
/// pairwise levels before the widening one reach 16 products, within i16.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn isums_q4_0_neon(
    q: [[core::arch::aarch64::int8x16_t; 2]; 4],
    y: [core::arch::aarch64::int8x16_t; 2],
) -> core::arch::aarch64::int32x4_t {
    use core::arch::aarch64::*;
    let mut p = [vdupq_n_s16(0); 4];
    for (p, [l, h]) in p.iter_mut().zip(q) {
        *p = products_q4_0_neon(l, h, y);
    }
    vpaddlq_s16(vpaddq_s16(vpaddq_s16(p[0], p[1]), vpaddq_s16(p[2], p[3])))
}

/// Eight i16 lanes summing a block's 32 products, four per lane.
#[target_feature(enable = "neon")]
#[inline]
fn products_q4_0_neon(
    l: core::arch::aarch64::int8x16_t,
    h: core::arch::aarch64::int8x16_t,
    y: [core::arch::aarch64::int8x16_t; 2],
) -> core::arch::aarch64::int16x8_t {
    use core::arch::aarch64::*;
    let p = vmull_s8(vget_low_s8(l), vget_low_s8(y[0]));
    let p = vmlal_high_s8(p, l, y[0]);
    let p = vmlal_s8(p, vget_low_s8(h), vget_low_s8(y[1]));
    vmlal_high_s8(p, h, y[1])
}

/// [`isums_q4_0_neon`] with `sdot`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(super) fn isums_q4_0_sdot(
    q: [[core::arch::aarch64::int8x16_t; 2]; 4],
    y: [core::arch::aarch64::int8x16_t; 2],
) -> core::arch::aarch64::int32x4_t {
    use core::arch::aarch64::*;
    let mut p = [vdupq_n_s32(0); 4];
    for (p, [l, h]) in p.iter_mut().zip(q) {
        *p = dot_i8_sdot(dot_i8_sdot(vdupq_n_s32(0), l, y[0]), h, y[1]);
    }
    vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]))
}

/// Four f16 scales widened, the same values as `f16_to_f32` gives (the conversion is exact;
/// a NaN is quieted as the scalar code's multiply quiets it). `fcvtl` from half is base
/// Advanced SIMD, but its intrinsic takes `float16x4_t`, which is not stable.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn f16x4_to_f32(d: [[u8; 2]; 4]) -> core::arch::aarch64::float32x4_t {
    use core::arch::aarch64::*;
    let h = vcreate_s16(u64::from_le_bytes(bytemuck::cast(d)));
    let out: float32x4_t;
    // SAFETY: fcvtl reads one vector register and writes another, nothing else; Advanced SIMD
    // (which has it) is enabled here.
    unsafe {
        core::arch::asm!(
            "fcvtl {0:v}.4s, {1:v}.4h",
            lateout(vreg) out,
            in(vreg) h,
            options(pure, nomem, nostack)
        );
    }
    out
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
    ($features:literal, $dot:path, $isums_q4_0:path) => {
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
                GgmlType::Q4_0 => q4_0_rows(w, w_row, as_blocks(act), out),
                GgmlType::Q4_1 => rows!(out, w, w_row, act, dot_q4_1),
                GgmlType::Q5_0 => rows!(out, w, w_row, act, dot_q5_0),
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

        /// Eight float lanes (x86's one 256-bit accumulator) and a scalar part (the min terms).
        #[derive(Clone, Copy)]
        struct Acc {
            lo: float32x4_t,
            hi: float32x4_t,
            s: f32,
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn acc0() -> Acc {
            Acc {
                lo: vdupq_n_f32(0.0),
                hi: vdupq_n_f32(0.0),
                s: 0.0,
            }
        }

        /// `acc += d · (lo, hi)`, fused as x86's `_mm256_fmadd_ps`.
        #[target_feature(enable = $features)]
        #[inline]
        fn fma8(acc: &mut Acc, d: f32, lo: int32x4_t, hi: int32x4_t) {
            acc.lo = vfmaq_n_f32(acc.lo, vcvtq_f32_s32(lo), d);
            acc.hi = vfmaq_n_f32(acc.hi, vcvtq_f32_s32(hi), d);
        }

        /// x86's ending of the K-quant kernels (two accumulators, alternating by super-block).
        #[target_feature(enable = $features)]
        #[inline]
        fn finish(a: Acc, b: Acc) -> f32 {
            super::hsum8(vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)) + (a.s + b.s)
        }

        /// Q4_0 in the blockwise order: groups of four rows through [`q4_0_block4`], the
        /// remaining rows one by one.
        #[target_feature(enable = $features)]
        fn q4_0_rows(w: &[u8], w_row: usize, act: &[BlockQ8_0], out: &mut [f32]) {
            let mut groups = out.chunks_exact_mut(4);
            let mut rows = w.chunks_exact(4 * w_row);
            for (o, g) in (&mut groups).zip(&mut rows) {
                let (r0, g) = g.split_at(w_row);
                let (r1, g) = g.split_at(w_row);
                let (r2, r3) = g.split_at(w_row);
                let x: [&[BlockQ4_0]; 4] =
                    [as_blocks(r0), as_blocks(r1), as_blocks(r2), as_blocks(r3)];
                let mut acc = vdupq_n_f32(0.0);
                let blocks = x[0].iter().zip(x[1]).zip(x[2]).zip(x[3]).zip(act);
                for ((((x0, x1), x2), x3), y) in blocks {
                    let qs = [&x0.qs, &x1.qs, &x2.qs, &x3.qs];
                    acc = q4_0_block4(acc, qs, [x0.d, x1.d, x2.d, x3.d], y);
                }
                // SAFETY: `o` is four writable floats (a whole chunk of `chunks_exact_mut(4)`).
                unsafe { vst1q_f32(o.as_mut_ptr(), acc) };
            }
            let rest = rows.remainder().chunks_exact(w_row);
            for (o, row) in groups.into_remainder().iter_mut().zip(rest) {
                *o = dot_q4_0(as_blocks(row), act);
            }
        }

        /// A row's quants minus 8: elements 0-15 and 16-31 of a Q4_0 block.
        #[target_feature(enable = $features)]
        #[inline]
        fn quants_q4_0(qs: &[u8; 16]) -> [int8x16_t; 2] {
            let (l, h) = nibbles(qs);
            [vsubq_s8(l, vdupq_n_s8(8)), vsubq_s8(h, vdupq_n_s8(8))]
        }

        /// One block column of four Q4_0 rows (quants `qs[r]`, f16 scales `d[r]`) against the
        /// activation block `y`: lane r of `acc` becomes `fma(isum_r, xd_r · yd, acc_r)`, the
        /// blockwise step, with one multiply and one fused multiply-add for the four rows.
        /// Shared with the interleaved kernels, so Q4_0_X4 gives these bits by construction.
        #[target_feature(enable = $features)]
        #[inline]
        pub(in crate::quant::kernels) fn q4_0_block4(
            acc: float32x4_t,
            qs: [&[u8; 16]; 4],
            d: [[u8; 2]; 4],
            y: &BlockQ8_0,
        ) -> float32x4_t {
            let (yl, yh) = halves(&y.qs);
            let q = [
                quants_q4_0(qs[0]),
                quants_q4_0(qs[1]),
                quants_q4_0(qs[2]),
                quants_q4_0(qs[3]),
            ];
            let isum = vcvtq_f32_s32($isums_q4_0(q, [yl, yh]));
            let scale = vmulq_n_f32(super::f16x4_to_f32(d), f16_to_f32(y.d));
            vfmaq_f32(acc, isum, scale)
        }

        /// One Q4_0 row in the blockwise order (the rows after the last group of four): the
        /// four-row step with the row in every lane.
        #[target_feature(enable = $features)]
        fn dot_q4_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
            let mut acc = vdupq_n_f32(0.0);
            for (x, y) in x.iter().zip(y) {
                acc = q4_0_block4(acc, [&x.qs; 4], [x.d; 4], y);
            }
            vgetq_lane_f32::<0>(acc)
        }

        #[target_feature(enable = $features)]
        fn dot_q4_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
            let mut acc = acc0();
            for (x, y) in x.iter().zip(y) {
                acc.s += f16_to_f32(x.m) * f16_to_f32(y.s);
                let (l, h) = nibbles(&x.qs);
                let (yl, yh) = halves(&y.qs);
                let zero = vdupq_n_s32(0);
                let (pl, ph) = ($dot(zero, l, yl), $dot(zero, h, yh));
                fma8(&mut acc, f16_to_f32(x.d) * f16_to_f32(y.d), pl, ph);
            }
            super::hsum8(acc.lo, acc.hi) + acc.s
        }

        /// Bit 4 set in byte j where bit j of `qh` (two bytes of the block's `qh`) is set.
        #[target_feature(enable = $features)]
        #[inline]
        fn fifth_bits(b0: u8, b1: u8) -> int8x16_t {
            let v = vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1));
            let bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
            vreinterpretq_s8_u8(vandq_u8(vtstq_u8(v, bit), vdupq_n_u8(0x10)))
        }

        #[target_feature(enable = $features)]
        fn dot_q5_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
            let mut acc = acc0();
            let sixteen = vdupq_n_s8(16);
            for (x, y) in x.iter().zip(y) {
                let (l, h) = nibbles(&x.qs);
                let l = vorrq_s8(l, fifth_bits(x.qh[0], x.qh[1]));
                let h = vorrq_s8(h, fifth_bits(x.qh[2], x.qh[3]));
                let (yl, yh) = halves(&y.qs);
                let zero = vdupq_n_s32(0);
                let pl = $dot(zero, vsubq_s8(l, sixteen), yl);
                let ph = $dot(zero, vsubq_s8(h, sixteen), yh);
                fma8(&mut acc, f16_to_f32(x.d) * f16_to_f32(y.d), pl, ph);
            }
            super::hsum8(acc.lo, acc.hi) + 0.0
        }

        #[target_feature(enable = $features)]
        fn dot_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
            let mut acc = acc0();
            for (x, y) in x.iter().zip(y) {
                let (xl, xh) = halves(&x.qs);
                let (yl, yh) = halves(&y.qs);
                let zero = vdupq_n_s32(0);
                let (pl, ph) = ($dot(zero, xl, yl), $dot(zero, xh, yh));
                fma8(&mut acc, f16_to_f32(x.d) * f16_to_f32(y.d), pl, ph);
            }
            super::hsum8(acc.lo, acc.hi) + 0.0
        }

        #[target_feature(enable = $features)]
        fn dot_q4_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
            let mut acc = [acc0(); 2];
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let acc = &mut acc[k % 2];
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
                acc.s -= f16_to_f32(x.dmin) * yd * vaddvq_s32(prod) as f32;
                let qs: &[[[u8; 16]; 2]; 4] = bytemuck::cast_ref(&x.qs);
                let q8: &[[i8; 32]; 8] = bytemuck::cast_ref(&y.qs);
                // Lanes as x86's: elements 0-15 of every group in `lo`, 16-31 in `hi`.
                let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
                let zero = vdupq_n_s32(0);
                for j in 0..4 {
                    let (l0, h0) = nibbles(&qs[j][0]);
                    let (l1, h1) = nibbles(&qs[j][1]);
                    for (g, (a, b)) in [(2 * j, (l0, l1)), (2 * j + 1, (h0, h1))] {
                        let (ya, yb) = halves(&q8[g]);
                        let s = i32::from(sc[g]);
                        lo = vmlaq_n_s32(lo, $dot(zero, a, ya), s);
                        hi = vmlaq_n_s32(hi, $dot(zero, b, yb), s);
                    }
                }
                fma8(acc, f16_to_f32(x.d) * yd, lo, hi);
            }
            finish(acc[0], acc[1])
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load8(b: &[u8; 8]) -> uint8x8_t {
            // SAFETY: `b` is 8 readable bytes; the load has no alignment requirement.
            unsafe { vld1_u8(b.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        fn dot_q6_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
            let mut acc = [acc0(); 2];
            let m4 = vdupq_n_u8(0x0F);
            let m3 = vdupq_n_u8(0x03);
            for (k, (x, y)) in x.iter().zip(y).enumerate() {
                let acc = &mut acc[k % 2];
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
                // Lanes as x86's: the first 16 of each 32 elements in `lo`, the last 16 in `hi`.
                let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
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
                        let s = i32::from(sc[k]);
                        if k % 2 == 0 {
                            lo = vmlaq_n_s32(lo, p, s);
                        } else {
                            hi = vmlaq_n_s32(hi, p, s);
                        }
                    }
                }
                lo = vsubq_s32(lo, vsetq_lane_s32::<0>(32 * off, vdupq_n_s32(0)));
                fma8(acc, f16_to_f32(x.d) * f32::from_le_bytes(y.d), lo, hi);
            }
            finish(acc[0], acc[1])
        }
    };
}

pub(super) mod neon {
    neon_family!("neon", super::dot_i8_neon, super::isums_q4_0_neon);
}

pub(super) mod neondot {
    neon_family!("neon,dotprod", super::dot_i8_sdot, super::isums_q4_0_sdot);
}
