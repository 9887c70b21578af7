//! x86-64 (AVX2, FMA, F16C) versions of the float loops that run once per token and layer outside
//! the weight products: one head of f16 flash attention, SwiGLU's vectorized exp, and ggml's
//! run-time activation quantizer (Q8_0 / Q8_1).
//!
//! Each one computes exactly what its portable version in `model::ops` computes, operation for
//! operation: the same f32 additions in the same pairs, f16 roundings by the same hardware
//! conversion, and `fma32` as the hardware fused multiply-add (ggml's; the portable code's f64 form
//! gives the same f32 but for exact ties of the f64 sum, see `fma32`). So the outputs are
//! bit-identical to the portable code at every level; `model::ops`'s tests check it.

use super::{F16Head, Isa};
use crate::quant::blocks::{f32_to_f16, BlockQ8_0, BlockQ8_1, QK};
use crate::quant::{quantize, GgmlType};
use core::arch::x86_64::*;

/// Quantizes activations to `ty` (Q8_0 or Q8_1) as `quantize::quantize_q8_0_act` /
/// `quantize_q8_1_act` do, with the same bytes; `false` leaves it to the caller.
pub(super) fn quantize_act(isa: Isa, ty: GgmlType, x: &[f32], y: &mut [u8]) -> bool {
    if !matches!(
        isa,
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni
    ) || !matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1)
        || !super::x86::has(Isa::Avx2)
    {
        return false;
    }
    // SAFETY: `has(Avx2)` checked that the CPU has AVX2, FMA and F16C, all that it enables.
    unsafe { quantize_act_avx2(ty, x, y) }
    true
}

#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_act_avx2(ty: GgmlType, x: &[f32], y: &mut [u8]) {
    if ty == GgmlType::Q8_0 {
        let y: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(y);
        for (x, y) in x.chunks_exact(QK).zip(y) {
            match q8_block_act(x, &mut y.qs) {
                Some((d, _)) => y.d = f32_to_f16(d),
                None => quantize::quantize_q8_0_act(x, core::slice::from_mut(y)),
            }
        }
    } else {
        let y: &mut [BlockQ8_1] = bytemuck::cast_slice_mut(y);
        for (x, y) in x.chunks_exact(QK).zip(y) {
            match q8_block_act(x, &mut y.qs) {
                Some((d, sum)) => {
                    y.d = f32_to_f16(d);
                    y.s = f32_to_f16(d * sum as f32);
                }
                None => quantize::quantize_q8_1_act(x, core::slice::from_mut(y)),
            }
        }
    }
}

/// One block of `quantize::quantize_q8_block_act`: amax, d = amax / 127, quants rounded to
/// nearest even from `x · (127 / amax)` (the conversion's rounding, as the portable code's
/// 1.5 · 2²³ trick), and their sum. `None`, nothing written, when the block holds NaN or
/// infinity or whose scale overflows (whose handling the portable code keeps).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q8_block_act(x: &[f32], qs: &mut [i8; QK]) -> Option<(f32, i32)> {
    // No closures: they do not get the function's target features, so each would be a call.
    let v = [load8(x), load8(&x[8..]), load8(&x[16..]), load8(&x[24..])];
    let sign = _mm256_set1_ps(-0.0);
    let abs = [
        _mm256_andnot_ps(sign, v[0]),
        _mm256_andnot_ps(sign, v[1]),
        _mm256_andnot_ps(sign, v[2]),
        _mm256_andnot_ps(sign, v[3]),
    ];
    let inf = _mm256_set1_ps(f32::INFINITY);
    // Not less than infinity: infinite or NaN.
    let mut bad = _mm256_setzero_ps();
    for &a in &abs {
        bad = _mm256_or_ps(bad, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf));
    }
    if _mm256_movemask_ps(bad) != 0 {
        return None;
    }
    let m8 = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps::<1>(m8));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    if !id.is_finite() {
        // A tiny subnormal amax: the portable code saturates infinite products, and so keeps it.
        return None;
    }
    let id = _mm256_set1_ps(id);
    let mut q = [_mm256_setzero_si256(); 4];
    for (q, &v) in q.iter_mut().zip(&v) {
        *q = _mm256_cvtps_epi32(_mm256_mul_ps(v, id));
    }
    let s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(s8),
        _mm256_extracti128_si256::<1>(s8),
    );
    let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
    // Per 128-bit lane the packs give quants 0-3 of each 8, then 4-7; the permute restores order.
    let p = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `qs` is 32 bytes, what the unaligned 256-bit store writes.
    unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), p) };
    Some((d, sum))
}

/// Runs one head of f16 attention if this CPU has the level's features; `false` leaves it to the
/// caller.
pub(super) fn attention_f16_head(isa: Isa, h: &F16Head<'_>, acc: &mut [f32]) -> bool {
    let hd = acc.len();
    let rows_ok = h.q.len() == hd
        && h.n_pos
            .checked_sub(1)
            .and_then(|last| last.checked_mul(h.kv_dim))
            .and_then(|r| r.checked_add(h.offset + hd))
            .is_some_and(|end| end <= h.k.len() && end <= h.v.len());
    if !rows_ok
        || !matches!(
            isa,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni
        )
    {
        return false;
    }
    if !super::x86::has(Isa::Avx2) {
        return false;
    }
    if hd == 64 {
        // SAFETY: as below.
        unsafe { attention_f16_head64_avx2(h, acc) };
        return true;
    }
    // SAFETY: `has(Avx2)` checked that the CPU has AVX2, FMA and F16C, all that it enables.
    unsafe { attention_f16_head_avx2(h, acc) };
    true
}

/// SiLU(gate) · up over the first `gate.len() / 16 * 16` elements (the groups where ggml uses its
/// vectorized exp), as `model::ops::swiglu` computes them; `false` leaves all to the caller.
pub(super) fn swiglu16(isa: Isa, gate: &mut [f32], up: &[f32]) -> bool {
    if up.len() < gate.len()
        || !matches!(
            isa,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni
        )
        || !super::x86::has(Isa::Avx2)
    {
        return false;
    }
    // SAFETY: `has(Avx2)` checked that the CPU has AVX2, FMA and F16C, all that it enables.
    unsafe { swiglu16_avx2(gate, up) };
    true
}

/// The f16-valued f32 nearest to each lane (round to nearest even, as the portable code's
/// `half` conversions do with F16C).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn round_f16(x: __m256) -> __m256 {
    _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
}

/// `fma32(a, b, c)` in each lane: a fused multiply-add, one rounding — ggml's `_mm256_fmadd_ps`.
/// The portable code computes it in f64 (exact product, then the f64 sum rounded to f32), which
/// rounds twice but gives the same f32 unless the f64 sum lands exactly on a tie between two f32
/// (the exact sum within 2⁻⁵³ of one, about once in 2²⁹ random operations; never in the tests).
/// The f64 form in vector lanes cost eight instructions per FMA: a third of SwiGLU's time.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn fma32(a: __m256, b: __m256, c: __m256) -> __m256 {
    _mm256_fmadd_ps(a, b, c)
}

/// f16 → f32 of one value.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn h2f(h: half::f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h.to_bits()))))
}

/// f32 → nearest f16 → f32 of one value.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn round_f16_1(x: f32) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
        _mm_set_ss(x),
    )))
}

/// Eight f16 as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn load8_f16(h: &[half::f16]) -> __m256 {
    let Some(h) = h.first_chunk::<8>() else {
        return _mm256_setzero_ps();
    };
    // SAFETY: `h` is 8 f16 (16 bytes), what the unaligned 128-bit load reads.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
}

/// Eight f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn load8(x: &[f32]) -> __m256 {
    let Some(x) = x.first_chunk::<8>() else {
        return _mm256_setzero_ps();
    };
    // SAFETY: `x` is 8 f32, what the unaligned 256-bit load reads.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

/// Stores eight f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store8(x: &mut [f32], v: __m256) {
    if let Some(x) = x.first_chunk_mut::<8>() {
        // SAFETY: `x` is 8 f32, what the unaligned 256-bit store writes.
        unsafe { _mm256_storeu_ps(x.as_mut_ptr(), v) }
    }
}

/// `dot_f16` of `model::ops`: four accumulators of 16 lanes over 64-element steps (each lane one
/// f32 sum of exact products, so fused multiply-adds round as the portable additions do), folded
/// (0+2)+(1+3), then halves 8/4/2/1; the tail in f64.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16(q: &[f32], k: &[half::f16]) -> f32 {
    let n = q.len().min(k.len());
    let np = n - n % 64;
    // acc[j][h]: lanes 8h..8h+8 of the portable code's accumulator j.
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    for (qs, ks) in q[..np].chunks_exact(64).zip(k[..np].chunks_exact(64)) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (h, a) in a.iter_mut().enumerate() {
                let at = j * 16 + h * 8;
                *a = _mm256_fmadd_ps(load8(&qs[at..]), load8_f16(&ks[at..]), *a);
            }
        }
    }
    // Not `from_fn`: the closure would not get the target features (a call per dot product).
    let half = |h: usize| [acc[0][h], acc[1][h], acc[2][h], acc[3][h]];
    let (a, b) = (half(0), half(1));
    let v = [
        _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3])),
        _mm256_add_ps(_mm256_add_ps(b[0], b[2]), _mm256_add_ps(b[1], b[3])),
    ];
    let v8 = _mm256_add_ps(v[0], v[1]);
    let v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps::<1>(v8));
    let v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    let v1 = _mm_add_ss(v2, _mm_shuffle_ps::<1>(v2, v2));
    let mut sum = _mm_cvtss_f32(v1) as f64;
    for (&q, &k) in q[np..n].iter().zip(&k[np..n]) {
        sum += (q * h2f(k)) as f64;
    }
    sum as f32
}

/// `model::ops::attention`'s loop for one head, with the query already rounded to f16.
#[target_feature(enable = "avx2,fma,f16c")]
fn attention_f16_head_avx2(h: &F16Head<'_>, acc: &mut [f32]) {
    let hd = acc.len();
    let h8 = hd - hd % 8;
    acc.fill(0.0);
    let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
    for t in 0..h.n_pos {
        let row = ((h.first + t) % h.n_pos) * h.kv_dim + h.offset;
        let (k, v) = (&h.k[row..row + hd], &h.v[row..row + hd]);
        let s = dot_f16(h.q, k) * h.scale;
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > m {
            let old = m;
            m = s;
            ms = (h.exp)(old - m);
            let msv = _mm256_set1_ps(ms);
            for a in acc[..h8].chunks_exact_mut(8) {
                store8(a, round_f16(_mm256_mul_ps(load8(a), msv)));
            }
            for a in &mut acc[h8..] {
                *a = round_f16_1(*a * ms);
            }
        } else {
            vs = (h.exp)(s - m);
        }
        let vsv = _mm256_set1_ps(vs);
        for (a, v) in acc[..h8].chunks_exact_mut(8).zip(v.chunks_exact(8)) {
            store8(a, round_f16(fma32(load8_f16(v), vsv, load8(a))));
        }
        for (a, &v) in acc[h8..].iter_mut().zip(&v[h8..]) {
            *a = round_f16_1((h2f(v) as f64 * vs as f64 + *a as f64) as f32);
        }
        sum = (sum as f64 * ms as f64 + vs as f64) as f32;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for a in acc.iter_mut() {
        *a *= inv;
    }
}

/// Positions `attention_f16_head64_avx2` takes per pass.
const POS_CHUNK: usize = 32;

/// `attention_f16_head_avx2` for heads of 64 (SmolLM2, Qwen2.5, GPT-2, Llama 3.2): the same
/// operations in the same order per position, but the accumulator stays in eight registers, and
/// positions go in chunks — first all their scores, then their exps (the running maximum follows
/// from the scores alone), then the value sums — so the independent dot products and exps
/// overlap instead of each waiting on the previous position's value sum.
#[target_feature(enable = "avx2,fma,f16c")]
fn attention_f16_head64_avx2(h: &F16Head<'_>, out: &mut [f32]) {
    const HD: usize = 64;
    let mut acc = [_mm256_setzero_ps(); HD / 8];
    let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
    let mut t0 = 0;
    while t0 < h.n_pos {
        let c = (h.n_pos - t0).min(POS_CHUNK);
        // The chunk's cache rows, oldest first (a division per position stood out in the profile).
        let mut rows = [0usize; POS_CHUNK];
        let mut at = (h.first + t0) % h.n_pos;
        for r in rows[..c].iter_mut() {
            *r = at * h.kv_dim + h.offset;
            at += 1;
            if at == h.n_pos {
                at = 0;
            }
        }
        let mut s = [0f32; POS_CHUNK];
        for (s, &r) in s[..c].iter_mut().zip(&rows) {
            *s = dot_f16(h.q, &h.k[r..r + HD]) * h.scale;
        }
        // Per position: whether it raised the maximum (then `ms` rescales the sums), else `vs`.
        let (mut ms, mut vs, mut raised) =
            ([1f32; POS_CHUNK], [1f32; POS_CHUNK], [false; POS_CHUNK]);
        for i in 0..c {
            if s[i] > m {
                let old = m;
                m = s[i];
                ms[i] = (h.exp)(old - m);
                raised[i] = true;
            } else {
                vs[i] = (h.exp)(s[i] - m);
            }
        }
        for i in 0..c {
            if raised[i] {
                let msv = _mm256_set1_ps(ms[i]);
                for a in acc.iter_mut() {
                    *a = round_f16(_mm256_mul_ps(*a, msv));
                }
            }
            let v = &h.v[rows[i]..rows[i] + HD];
            let vsv = _mm256_set1_ps(vs[i]);
            for (a, v) in acc.iter_mut().zip(v.chunks_exact(8)) {
                *a = round_f16(fma32(load8_f16(v), vsv, *a));
            }
            sum = (sum as f64 * ms[i] as f64 + vs[i] as f64) as f32;
        }
        t0 += c;
    }
    let inv = _mm256_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
    for (o, a) in out.chunks_exact_mut(8).zip(acc) {
        store8(o, _mm256_mul_ps(a, inv));
    }
}

/// `-x` in each lane (a sign flip, as Rust's negation: −0 for 0).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn neg(x: __m256) -> __m256 {
    _mm256_xor_ps(x, _mm256_set1_ps(-0.0))
}

/// `model::ops::expf_ggml` in eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn expf_ggml(x: __m256) -> __m256 {
    let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = fma32(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    let neg_n = neg(n);
    let b = fma32(neg_n, c(0x35bf_be8e), fma32(neg_n, c(0x3f31_7200), x));
    let u = _mm256_mul_ps(b, b);
    let j = fma32(
        fma32(
            fma32(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            fma32(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        fma32(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
    );
    // j · 2^n, 2^n built from its exponent bits in f64 lanes (exact for |n| ≤ 192; other lanes are
    // replaced below, or are NaN through j).
    let ni = _mm256_cvtps_epi32(n);
    let pow2 = |i: __m128i| {
        let e = _mm256_add_epi64(_mm256_cvtepi32_epi64(i), _mm256_set1_epi64x(1023));
        _mm256_castsi256_pd(_mm256_slli_epi64::<52>(e))
    };
    let lo = _mm256_cvtpd_ps(_mm256_mul_pd(
        _mm256_cvtps_pd(_mm256_castps256_ps128(j)),
        pow2(_mm256_castsi256_si128(ni)),
    ));
    let hi = _mm256_cvtpd_ps(_mm256_mul_pd(
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(j)),
        pow2(_mm256_extracti128_si256::<1>(ni)),
    ));
    let scaled = _mm256_set_m128(hi, lo);
    // |n| > 192: 0 below, infinity above (the portable code's early return; false for NaN).
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    let below = _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps());
    let limit = _mm256_blendv_ps(_mm256_set1_ps(f32::INFINITY), _mm256_setzero_ps(), below);
    _mm256_blendv_ps(scaled, limit, big)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn swiglu16_avx2(gate: &mut [f32], up: &[f32]) {
    let n16 = gate.len() - gate.len() % 16;
    let one = _mm256_set1_ps(1.0);
    for (g, u) in gate[..n16].chunks_exact_mut(8).zip(up.chunks_exact(8)) {
        let gv = load8(g);
        let e = expf_ggml(neg(gv));
        store8(
            g,
            _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), load8(u)),
        );
    }
}
