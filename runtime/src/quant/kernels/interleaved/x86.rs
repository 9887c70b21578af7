//! x86-64 kernels for the interleaved types, one module per level as in `kernels::x86`.
//!
//! Per row they repeat the plain kernels' arithmetic: Q4_0 in the blockwise order (`q4_0_diag8`
//! in `kernels/x86.rs`); Q4_1 and Q8_0 in `legacy_rows!`'s (which every level runs, AVX-512
//! included): per block, the exact i32 lane sums
//! of four products, converted, times the f16 scale product `xd · yd`, fused into one 8-lane
//! accumulator; then the same horizontal sum, plus the mins' `xm · ys` summed block by block.
//! What the layout adds: one load of four scales (and mins) converted together, one activation
//! load for four rows, and one sequential stream through the groups, which the hardware prefetcher
//! follows on its own (a software prefetch of the next group measured 8% slower on Zen 4).
//! The AVX-512 levels run the 256-bit kernels, as the plain ones do for these types.

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
    if !crate::quant::kernels::x86::has(isa) {
        return false;
    }
    // SAFETY: `has(isa)` checked that the CPU has every feature the level's functions enable.
    unsafe {
        match isa {
            Isa::Avx2 => avx2::matvec(ty, w, w_row, act, out),
            Isa::AvxVnni => avxvnni::matvec(ty, w, w_row, act, out),
            Isa::Avx512 => avx512::matvec(ty, w, w_row, act, out),
            Isa::Avx512Vnni => avx512vnni::matvec(ty, w, w_row, act, out),
            _ => false,
        }
    }
}

/// Stamps a level's kernels: `$mul` sums four u8 × i8 products per i32 lane; `$level` is the
/// plain kernels' module of the same level (its blockwise Q4_0 block step).
macro_rules! family {
    ($features:literal, $mul:path, $level:ident) => {
        use crate::quant::blocks::*;
        use crate::quant::kernels::x86::$level;
        use crate::quant::kernels::x86::{DiagBlock, DIAG_CHUNK};
        use crate::quant::layout::{BlockQ4_0x4, BlockQ4_1x4, BlockQ8_0x4};
        use crate::quant::GgmlType;
        use core::arch::x86_64::*;

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
                    let gb = 4 * w_row;
                    for (o, g) in out.chunks_exact_mut(4).zip(w.chunks_exact(gb)) {
                        o.copy_from_slice(&$kernel(as_blocks(g), act));
                    }
                }};
            }
            match ty {
                GgmlType::Q4_0_X4 => {
                    // Group i with group h + i of the other half: two long sequential streams
                    // (adjacent groups restart both streams every group, which the hardware
                    // prefetcher does not follow: measured at less than half the speed). The
                    // activation is prepared as for the plain kernel, in the same chunks, the
                    // accumulators carried from chunk to chunk through `out`.
                    let act = as_blocks::<BlockQ8_0>(act);
                    let gb = 4 * w_row;
                    let nb = (w_row / core::mem::size_of::<BlockQ4_0>()).min(act.len());
                    let h = w.len() / gb / 2;
                    let (o2, o_rest) = out.split_at_mut(8 * h);
                    let (w2, w_rest) = w.split_at(2 * h * gb);
                    let (oa, ob) = o2.split_at_mut(4 * h);
                    let (wa, wb) = w2.split_at(h * gb);
                    fn group(g: &[u8], b0: usize, n: usize) -> &[BlockQ4_0x4] {
                        as_blocks::<BlockQ4_0x4>(g).get(b0..b0 + n).unwrap_or(&[])
                    }
                    let mut prep = [core::mem::MaybeUninit::uninit(); DIAG_CHUNK];
                    let mut b0 = 0;
                    while b0 < nb {
                        let n = (nb - b0).min(DIAG_CHUNK);
                        let y = $level::diag_prep(&act[b0..b0 + n], &mut prep);
                        for i in 0..h {
                            let at = i * gb..(i + 1) * gb;
                            let x = [group(&wa[at.clone()], b0, n), group(&wb[at], b0, n)];
                            let mut acc = [0.0f32; 8];
                            if b0 > 0 {
                                acc[..4].copy_from_slice(&oa[4 * i..4 * i + 4]);
                                acc[4..].copy_from_slice(&ob[4 * i..4 * i + 4]);
                            }
                            let r = q4_0x2(x, y, acc);
                            oa[4 * i..4 * i + 4].copy_from_slice(&r[..4]);
                            ob[4 * i..4 * i + 4].copy_from_slice(&r[4..]);
                        }
                        if let Some(g) = w_rest.get(..gb) {
                            let k = o_rest.len().min(4);
                            let mut acc = [0.0f32; 8];
                            if b0 > 0 {
                                acc[..k].copy_from_slice(&o_rest[..k]);
                            }
                            let r = q4_0x2([group(g, b0, n), group(g, b0, n)], y, acc);
                            o_rest[..k].copy_from_slice(&r[..k]);
                        }
                        b0 += n;
                    }
                }
                GgmlType::Q4_1_X4 => groups!(q4_1),
                GgmlType::Q8_0_X4 => groups!(q8_0),
                _ => return false,
            }
            true
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load16(b: &[u8; 16]) -> __m128i {
            // SAFETY: `b` is 16 readable bytes; the load has no alignment requirement.
            unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load32i(b: &[i8; 32]) -> __m256i {
            // SAFETY: `b` is 32 readable bytes; the load has no alignment requirement.
            unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
        }

        /// Four f16 values widened to f32.
        #[target_feature(enable = $features)]
        #[inline]
        fn h4(h: &[[u8; 2]; 4]) -> __m128 {
            let bits: [u8; 8] = bytemuck::cast(*h);
            _mm_cvtph_ps(_mm_set_epi64x(0, i64::from_le_bytes(bits)))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn h2f(h: [u8; 2]) -> f32 {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                u16::from_le_bytes(h),
            ))))
        }

        /// The same horizontal sum as the plain kernels' `hsum_ps`.
        #[target_feature(enable = $features)]
        #[inline]
        fn hsum_ps(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        /// The 32 nibbles of a block in element order: low nibbles, then high.
        #[target_feature(enable = $features)]
        #[inline]
        fn nibbles32(qs: &[u8; 16]) -> __m256i {
            let q = _mm256_broadcastsi128_si256(load16(qs));
            let q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
            _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
        }

        /// Sums of four i8 × i8 products per lane, through |x| and y * sign(x).
        #[target_feature(enable = $features)]
        #[inline]
        fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
            $mul(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
        }

        /// Lane `r` of `v` in all eight lanes.
        #[target_feature(enable = $features)]
        #[inline]
        fn lane(v: __m128, r: usize) -> __m256 {
            _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(r as i32))
        }

        /// Four rows' 256-bit accumulators: `acc[r] += d[r] · dot[r]` lane by lane.
        #[target_feature(enable = $features)]
        #[inline]
        fn fma4(acc: &mut [__m256; 4], d: __m128, dot: [__m256i; 4]) {
            for r in 0..4 {
                acc[r] = _mm256_fmadd_ps(lane(d, r), _mm256_cvtepi32_ps(dot[r]), acc[r]);
            }
        }

        /// The plain kernels' ending: the horizontal sum of each row, plus its min term.
        #[target_feature(enable = $features)]
        #[inline]
        fn finish(acc: [__m256; 4], m: [f32; 4]) -> [f32; 4] {
            let mut out = [0.0f32; 4];
            for r in 0..4 {
                out[r] = hsum_ps(acc[r]) + m[r];
            }
            out
        }

        /// Two groups (eight rows) of Q4_0 in the blockwise order of the plain kernels
        /// (`q4_0_diag8` in `kernels/x86.rs`), continuing from `acc0`: the same diagonal
        /// integer step (`q4_0_diag_isum`) over the groups' quant bytes, then one 8-lane
        /// `fma(isum, xd · yd, acc)` per block; each group's four scales are one load.
        #[target_feature(enable = $features)]
        fn q4_0x2(x: [&[BlockQ4_0x4]; 2], y: &[DiagBlock], acc0: [f32; 8]) -> [f32; 8] {
            let nb = x[0].len().min(x[1].len()).min(y.len());
            // SAFETY: `acc0` is 8 readable floats; the load has no alignment requirement.
            let mut acc = unsafe { _mm256_loadu_ps(acc0.as_ptr()) };
            for b in 0..nb {
                let (g0, g1, yb) = (&x[0][b], &x[1][b], &y[b]);
                let mut a = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    a[k] = _mm256_inserti128_si256::<1>(
                        _mm256_castsi128_si256(load16(&g0.qs[k])),
                        load16(&g1.qs[k]),
                    );
                }
                let dot = $level::q4_0_diag_isum(a, yb);
                let bits = |g: &BlockQ4_0x4| i64::from_le_bytes(bytemuck::cast(g.d));
                let xd = _mm256_cvtph_ps(_mm_set_epi64x(bits(g1), bits(g0)));
                let d = _mm256_mul_ps(xd, _mm256_set1_ps(yb.d()));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, acc);
            }
            let mut out = [0.0f32; 8];
            // SAFETY: `out` is 8 writable floats; the store has no alignment requirement.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) };
            out
        }

        #[target_feature(enable = $features)]
        fn q4_1(x: &[BlockQ4_1x4], y: &[BlockQ8_1]) -> [f32; 4] {
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut accm = _mm_setzero_ps();
            for (xb, yb) in x.iter().zip(y) {
                let d = _mm_mul_ps(h4(&xb.d), _mm_set1_ps(h2f(yb.d)));
                accm = _mm_add_ps(accm, _mm_mul_ps(h4(&xb.m), _mm_set1_ps(h2f(yb.s))));
                let qy = load32i(&yb.qs);
                let dot = [
                    $mul(nibbles32(&xb.qs[0]), qy),
                    $mul(nibbles32(&xb.qs[1]), qy),
                    $mul(nibbles32(&xb.qs[2]), qy),
                    $mul(nibbles32(&xb.qs[3]), qy),
                ];
                fma4(&mut acc, d, dot);
            }
            let mut m = [0.0f32; 4];
            // SAFETY: `m` is four writable floats; the store has no alignment requirement.
            unsafe { _mm_storeu_ps(m.as_mut_ptr(), accm) };
            finish(acc, m)
        }

        #[target_feature(enable = $features)]
        fn q8_0(x: &[BlockQ8_0x4], y: &[BlockQ8_0]) -> [f32; 4] {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (xb, yb) in x.iter().zip(y) {
                let d = _mm_mul_ps(h4(&xb.d), _mm_set1_ps(h2f(yb.d)));
                let qy = load32i(&yb.qs);
                let dot = [
                    mul_sum_i8(load32i(&xb.qs[0]), qy),
                    mul_sum_i8(load32i(&xb.qs[1]), qy),
                    mul_sum_i8(load32i(&xb.qs[2]), qy),
                    mul_sum_i8(load32i(&xb.qs[3]), qy),
                ];
                fma4(&mut acc, d, dot);
            }
            finish(acc, [0.0; 4])
        }
    };
}

// The lane products of the plain kernels (`kernels::x86`), shared so both sum alike.
use crate::quant::kernels::x86::{mul_sum_us8_avx2, mul_sum_us8_avx512vnni, mul_sum_us8_avxvnni};

mod avx2 {
    family!("avx2,fma,f16c", super::mul_sum_us8_avx2, avx2);
}

mod avxvnni {
    family!("avx2,fma,f16c,avxvnni", super::mul_sum_us8_avxvnni, avxvnni);
}

mod avx512 {
    family!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl",
        super::mul_sum_us8_avx2,
        avx512
    );
}

mod avx512vnni {
    family!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni",
        super::mul_sum_us8_avx512vnni,
        avx512vnni
    );
}
