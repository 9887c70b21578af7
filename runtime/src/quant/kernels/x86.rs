//! x86-64 kernels: AVX2 (with FMA and F16C), optionally with VNNI dot products, and AVX-512.
//!
//! Each level is a module of `#[target_feature]` functions stamped from one template
//! (`avx2_family!`, plus `avx512_family!` on the AVX-512 levels), so that everything inlines
//! within a level and one binary carries them all; [`has`] decides at run time which one may run.
//!
//! - The 32-element block types take four weight rows per activation block (`rows4!`): the
//!   activation's loads and scale conversion are shared, and each block's f16 scale and min are
//!   widened together. On AVX-512, Q4_0/Q4_1/Q5_0/Q5_1 put two blocks in each vector; Q8_0 stays
//!   at 256 bits, which measured faster (its signed products have no `vpsignb` at 512 bits; with
//!   VNNI it takes the quants + 128 as unsigned bytes instead, `rows_q8_0u`).
//! - Matrix products (`matmul`, batched prompts) run the same per-pair operations over tiles of
//!   four rows × several activation columns (`tiles!`; on AVX-512 two columns per 512-bit vector,
//!   `tiles512!`), so each column is bit-identical to its matrix-vector result.
//! - Q8_0 matrix products with VNNI prepare the activation once per product (`tiles512_prep!`:
//!   column pairs side by side with their seeds, [`PairQ`]) instead of once per row group and
//!   block: SmolLM2 Q8_0 pp64 391 → 478 tok/s at one thread, the same bits.
//! - Every kernel prefetches the next rows: model rows are a few hundred bytes, too short for the
//!   hardware prefetcher, and the output head otherwise ran at a quarter of the L3 bandwidth.
//! - The integer parts of the dot products are exact; the float parts (per-block scales) are
//!   summed in vector lanes instead of ggml's scalar order. A row's result does not depend on
//!   which rows it was grouped with.
//! - Q4_0 runs the blockwise order instead (`scalar::dot_q4_0_blockwise`: per block the exact
//!   integer sum, then one fused multiply-add per row), which frees the vector lanes from the
//!   block's elements: matrix × vector puts eight rows in the lanes (`q4_0_diag8`, each step
//!   taking a diagonal of the rows' quant dwords against an activation rotated to match, a
//!   [`DiagBlock`]), matrix products sixteen activation columns (`bw_tile_q4_0`, each weight
//!   dword broadcast against a [`ColBlock`]); prompts ran 1.8× faster (SmolLM2 Q4_0 pp64 375 →
//!   690 tok/s on Zen 4), and matrix × vector on rows in L2 1.4× (20 → 28 GiB/s).
//! - The activation quantizers give exactly the reference bytes (blocks holding NaN or infinity
//!   take the reference code, whose sequential NaN handling no vector order reproduces).
//!
//! As in ggml, the unsigned-by-signed byte products (`vpmaddubsw`, `vpdpbusd`) assume activation
//! quants in [-127, 127], which is what the activation quantizers produce; Q6_K's offset of 32 is
//! taken through the activation's group sums, which the quantizer makes consistent with its quants.

use super::Isa;
use crate::quant::GgmlType;
use core::arch::x86_64::*;

/// The best x86 level this CPU has.
pub(super) fn detect() -> Option<Isa> {
    [Isa::Avx512Vnni, Isa::Avx512, Isa::AvxVnni, Isa::Avx2]
        .into_iter()
        .find(|&isa| has(isa))
}

/// Whether the CPU has every feature the level's functions enable. With `std` this asks the CPU
/// (cached by std); without it, only what the build targets statically.
// Without std the feature tests are constants, which clippy would fold.
#[cfg_attr(not(feature = "std"), allow(clippy::nonminimal_bool))]
pub(super) fn has(isa: Isa) -> bool {
    #[cfg(feature = "std")]
    macro_rules! f {
        ($($name:tt),*) => { $(std::is_x86_feature_detected!($name))&&* };
    }
    #[cfg(not(feature = "std"))]
    macro_rules! f {
        ($($name:tt),*) => { $(cfg!(target_feature = $name))&&* };
    }
    let avx2 = f!("avx2", "fma", "f16c");
    match isa {
        Isa::Avx2 => avx2,
        Isa::AvxVnni => avx2 && f!("avxvnni"),
        Isa::Avx512 => avx2 && f!("avx512f", "avx512bw", "avx512dq", "avx512vl"),
        Isa::Avx512Vnni => avx2 && f!("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vnni"),
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
            Isa::Avx2 => avx2::matvec(ty, w, w_row, act, out),
            Isa::AvxVnni => avxvnni::matvec(ty, w, w_row, act, out),
            Isa::Avx512 => avx512::matvec(ty, w, w_row, act, out),
            Isa::Avx512Vnni => avx512vnni::matvec(ty, w, w_row, act, out),
            _ => false,
        }
    }
}

/// Runs `matmul` at `isa` if this module has kernels for it; `false` leaves the work to the caller.
pub(super) fn matmul(
    isa: Isa,
    ty: GgmlType,
    w: &[u8],
    w_row: usize,
    act: &[u8],
    act_row: usize,
    out: &mut [f32],
) -> bool {
    let cols = act.len() / act_row.max(1);
    if !has(isa) || cols == 0 {
        return false;
    }
    // SAFETY: `has(isa)` checked that the CPU has every feature the level's functions enable.
    unsafe {
        match isa {
            Isa::Avx2 => avx2::matmul(ty, w, w_row, act, act_row, cols, out),
            Isa::AvxVnni => avxvnni::matmul(ty, w, w_row, act, act_row, cols, out),
            Isa::Avx512 => avx512::matmul(ty, w, w_row, act, act_row, cols, out),
            Isa::Avx512Vnni => avx512vnni::matmul(ty, w, w_row, act, act_row, cols, out),
            _ => false,
        }
    }
}

/// Quantizes an activation row at `isa` if this module has a kernel for it.
pub(super) fn quantize_row(isa: Isa, ty: GgmlType, x: &[f32], y: &mut [u8]) -> bool {
    if !has(isa) {
        return false;
    }
    // SAFETY: `has(isa)` checked that the CPU has every feature the level's functions enable.
    unsafe {
        match isa {
            Isa::Avx2 => avx2::quantize_row(ty, x, y),
            Isa::AvxVnni => avxvnni::quantize_row(ty, x, y),
            Isa::Avx512 => avx512::quantize_row(ty, x, y),
            Isa::Avx512Vnni => avx512vnni::quantize_row(ty, x, y),
            _ => false,
        }
    }
}

/// `y += s · dequantize(x)` (Q8_0) at `isa`; `y` holds exactly `x.len()` blocks of elements.
pub(super) fn mad_q8_0(
    isa: Isa,
    y: &mut [f32],
    x: &[crate::quant::blocks::BlockQ8_0],
    s: f32,
) -> bool {
    if !has(isa) {
        return false;
    }
    // SAFETY: `has(isa)` checked that the CPU has every feature these functions enable.
    unsafe {
        match isa {
            Isa::Avx2 | Isa::AvxVnni => mad_q8_0_avx2(y, x, s),
            Isa::Avx512 | Isa::Avx512Vnni => mad_q8_0_avx512(y, x, s),
            _ => return false,
        }
    }
    true
}

#[target_feature(enable = "avx2,fma,f16c")]
fn mad_q8_0_avx2(y: &mut [f32], x: &[crate::quant::blocks::BlockQ8_0], s: f32) {
    let vs = _mm256_set1_ps(s);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(32)) {
        let d = _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
            u16::from_le_bytes(b.d),
        )))));
        for (q, y) in b.qs.chunks_exact(8).zip(y.chunks_exact_mut(8)) {
            // SAFETY: `q` has 8 bytes and `y` 8 floats, the widths these loads and the store use.
            unsafe {
                let q8 = _mm_loadl_epi64(q.as_ptr().cast());
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d);
                let acc = _mm256_loadu_ps(y.as_ptr());
                _mm256_storeu_ps(y.as_mut_ptr(), _mm256_fmadd_ps(v, vs, acc));
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx2,f16c")]
fn mad_q8_0_avx512(y: &mut [f32], x: &[crate::quant::blocks::BlockQ8_0], s: f32) {
    let vs = _mm512_set1_ps(s);
    for (b, y) in x.iter().zip(y.chunks_exact_mut(32)) {
        let d = _mm512_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
            u16::from_le_bytes(b.d),
        )))));
        for (q, y) in b.qs.chunks_exact(16).zip(y.chunks_exact_mut(16)) {
            // SAFETY: `q` has 16 bytes and `y` 16 floats, the widths these loads and the store use.
            unsafe {
                let q8 = _mm_loadu_si128(q.as_ptr().cast());
                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8)), d);
                let acc = _mm512_loadu_ps(y.as_ptr());
                _mm512_storeu_ps(y.as_mut_ptr(), _mm512_fmadd_ps(v, vs, acc));
            }
        }
    }
}

// ---------------------------------------------------------------- level-specific primitives

/// Sums of four u8 × i8 products per i32 lane (no saturation for |b| <= 127).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn mul_sum_us8_avx2(a: __m256i, b: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
}

#[target_feature(enable = "avx2,avxvnni")]
#[inline]
pub(super) fn mul_sum_us8_avxvnni(a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), a, b)
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
#[inline]
pub(super) fn mul_sum_us8_avx512vnni(a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
}

/// `acc` + sums of four u8 × i8 products per i32 lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn dp_us8_avx2(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, mul_sum_us8_avx2(a, b))
}

#[target_feature(enable = "avx2,avxvnni")]
#[inline]
pub(super) fn dp_us8_avxvnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(acc, a, b)
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
#[inline]
pub(super) fn dp_us8_avx512vnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, a, b)
}

/// Byte i is 0xFF where bit i of the little-endian `qh` is set, else 0.
#[target_feature(enable = "avx2")]
#[inline]
fn bits32_avx2(qh: [u8; 4]) -> __m256i {
    let x = _mm256_set1_epi32(i32::from_le_bytes(qh));
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(x, spread);
    // Every bit but bit (i mod 8) set in byte i: the byte is all ones iff that bit was set.
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, others), _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,avx512bw,avx512vl")]
#[inline]
fn bits32_avx512(qh: [u8; 4]) -> __m256i {
    _mm256_movm_epi8(u32::from_le_bytes(qh))
}

// ---------------------------------------------------------------- 256-bit kernels

/// Blocks a [`RowScales`] holds: rows of up to 8192 elements.
const ROW_SCALES: usize = 256;

/// A row group's block scales as `legacy_rows!`' matrix-product tiles take them: per block the
/// four rows' d (f32, lane r) and mins (lane 4 + r).
struct RowScales {
    dm: [__m256; ROW_SCALES],
    /// The current tile's products xd · yd per block, column and row.
    p: [[[f32; 4]; 4]; ROW_SCALES],
}

/// Column `c` of a matrix product's activations (`act_row` bytes per column) as blocks: the
/// bytes cast once, each tile's columns then taken by index (a per-tile cast, with its size and
/// alignment checks not inlined, took 3% of a Q8_0 prompt).
#[inline(always)]
fn column_blocks<'a, T: bytemuck::Pod>(act: &'a [u8], act_row: usize) -> impl Fn(usize) -> &'a [T] {
    let blocks = crate::quant::blocks::as_blocks::<T>(act);
    let per = act_row / core::mem::size_of::<T>().max(1);
    move |c| blocks.get(c * per..(c + 1) * per).unwrap_or(&[])
}

/// `out[r]` = `$dot`(row r, act) over whole rows.
macro_rules! rows {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $dot:expr) => {{
        let act = as_blocks($act);
        for (o, row) in $out.iter_mut().zip($w.chunks_exact($w_row)) {
            *o = $dot(as_blocks(row), act);
        }
    }};
}

/// `out[r]` = `$kernel`(row r, act) for rows taken four at a time (sharing the activation's loads
/// and scale conversions), then one at a time; both run the same per-row operations, so a row's
/// result does not depend on its neighbours. The four rows of a step come from the four quarters
/// of the matrix (rows i, q + i, 2q + i, 3q + i), not from four adjacent rows: each of the
/// kernel's four load streams then runs on at a constant stride from one row into the next, which
/// the hardware prefetcher follows. Adjacent rows (of a few hundred bytes) restart every stream
/// at each step, and decode ran at less than half the speed (measured on Zen 4: SmolLM2 Q8_0
/// tg64 62 → 155 tok/s; Q4_1 97 → 161; Q4_0 134 → 150).
macro_rules! rows4 {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $kernel:ident) => {{
        let act = as_blocks($act);
        let q = $out.len() / 4;
        let (o4, o_rest) = $out.split_at_mut(4 * q);
        let (w4, w_rest) = $w.split_at(4 * q * $w_row);
        let quarter = q * $w_row;
        super::prefetch_heads(w4, quarter);
        let (wa, wb) = w4.split_at(2 * quarter);
        let wq = [
            &wa[..quarter],
            &wa[quarter..],
            &wb[..quarter],
            &wb[quarter..],
        ];
        for i in 0..q {
            // Plain indexing, not `map`: a closure is not inlined here (measured: 6% of decode).
            let at = i * $w_row..(i + 1) * $w_row;
            let x = [
                as_blocks(&wq[0][at.clone()]),
                as_blocks(&wq[1][at.clone()]),
                as_blocks(&wq[2][at.clone()]),
                as_blocks(&wq[3][at]),
            ];
            let r = $kernel::<4, 1>(x, [act], None)[0];
            for (k, v) in r.into_iter().enumerate() {
                o4[k * q + i] = v;
            }
        }
        for (o, row) in o_rest.iter_mut().zip(w_rest.chunks_exact($w_row)) {
            *o = $kernel::<1, 1>([as_blocks(row)], [act], None)[0][0];
        }
    }};
}

/// `rows4!` for the 512-bit kernels, which take one activation.
macro_rules! rows4_wide {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $kernel:ident) => {{
        let act = as_blocks($act);
        let mut o4 = $out.chunks_exact_mut(4);
        let mut w4 = $w.chunks_exact(4 * $w_row);
        for (o, w) in (&mut o4).zip(&mut w4) {
            let mut rows = w.chunks_exact($w_row);
            let x = [(); 4].map(|_| as_blocks(rows.next().unwrap_or(&[])));
            o.copy_from_slice(&$kernel::<4>(x, act));
        }
        let rest = w4.remainder().chunks_exact($w_row);
        for (o, row) in o4.into_remainder().iter_mut().zip(rest) {
            *o = $kernel::<1>([as_blocks(row)], act)[0];
        }
    }};
}

/// `out[r * cols + c]` = `$kernel`(row r, column c of `act`) in tiles of four rows ×
/// `TILE_COLS` columns (then single rows and columns), so each weight block is decoded once per
/// tile; each pair runs the matrix-vector operations, so every column equals its `rows4!` result.
macro_rules! tiles {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $kernel:ident) => {{
        let col = super::column_blocks($act, $act_row);
        let mut sc = super::RowScales {
            dm: [_mm256_setzero_ps(); super::ROW_SCALES],
            p: [[[0.0; 4]; 4]; super::ROW_SCALES],
        };
        let mut o4 = $out.chunks_exact_mut(4 * $cols);
        let mut w4 = $w.chunks_exact(4 * $w_row);
        for (o, w) in (&mut o4).zip(&mut w4) {
            let mut rows = w.chunks_exact($w_row);
            let x = [(); 4].map(|_| as_blocks(rows.next().unwrap_or(&[])));
            tile_cols!(o, x, 4, $cols, col, $kernel, sc);
        }
        let rest = w4.remainder().chunks_exact($w_row);
        for (o, row) in o4.into_remainder().chunks_exact_mut($cols).zip(rest) {
            let x = [as_blocks(row)];
            tile_cols!(o, x, 1, $cols, col, $kernel, sc);
        }
    }};
}

/// One row group of `tiles!` over all columns.
macro_rules! tile_cols {
    ($o:ident, $x:ident, $r:literal, $cols:ident, $col:ident, $kernel:ident, $sc:ident) => {{
        let mut c = 0;
        // The group's first tile fills the row scales, the others read them.
        let mut fill = true;
        while c + TILE_COLS <= $cols {
            let mut y = [$col(c); TILE_COLS];
            for (k, y) in y.iter_mut().enumerate().skip(1) {
                *y = $col(c + k);
            }
            let t = $kernel::<$r, { TILE_COLS }>($x, y, Some((&mut $sc, fill)));
            fill = false;
            for (k, t) in t.iter().enumerate() {
                for (i, v) in t.iter().enumerate() {
                    $o[i * $cols + c + k] = *v;
                }
            }
            c += TILE_COLS;
        }
        while c < $cols {
            let t = $kernel::<$r, 1>($x, [$col(c)], None);
            for (i, v) in t[0].iter().enumerate() {
                $o[i * $cols + c] = *v;
            }
            c += 1;
        }
    }};
}

/// `out[r * cols + c]` = `$dot`(row r, column c): each row's kernel once per column while the
/// row is in L1 (the types without a multi-column kernel).
macro_rules! rows_cols {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $dot:expr) => {{
        for (o, row) in $out.chunks_exact_mut($cols).zip($w.chunks_exact($w_row)) {
            for (c, o) in o.iter_mut().enumerate() {
                *o = $dot(
                    as_blocks(row),
                    as_blocks(&$act[c * $act_row..(c + 1) * $act_row]),
                );
            }
        }
    }};
}

/// A dot-product kernel for `R` rows × `C` activation columns of a 32-element block type: each
/// weight block's quants are decoded once for all columns, each activation block loaded once for
/// all rows. `$quants` gives a block's 32 quants (unsigned for `$mul` = u8 × i8, signed for
/// i8 × i8), `$xs` / `$ys` the block's f16 scale(s) as a u32 (d in the low half, the min or
/// d · sum in the high half, if any). Every (row, column) pair runs the same operations in the
/// same order whatever `R` and `C` are, so a matrix product gives each column exactly its
/// matrix-vector result.
///
/// Matrix products (`C` > 1) pass `scales`: the row group's [`RowScales`], filled by the group's
/// first tile (`fill`) and read by the others, so the rows' scales are gathered and widened once
/// per row group, not once per tile. Without it (or for rows longer than [`ROW_SCALES`] blocks)
/// each pair takes the one-column path's per-row products.
macro_rules! legacy_rows {
    ($features:literal, $name:ident, $X:ty, $Y:ty, |$xb:ident| $quants:expr, $mul:path,
     $dp:path, $off:literal, $xs:expr, $ys:expr, $min:literal) => {
        #[target_feature(enable = $features)]
        fn $name<const R: usize, const C: usize>(
            x: [&[$X]; R],
            y: [&[$Y]; C],
            scales: Option<(&mut super::RowScales, bool)>,
        ) -> [[f32; R]; C] {
            let nb = x.iter().fold(usize::MAX, |n, x| n.min(x.len()));
            let nb = y.iter().fold(nb, |n, y| n.min(y.len()));
            let mut x = x;
            for x in x.iter_mut() {
                *x = x.get(..nb).unwrap_or(&[]);
            }
            let mut y = y;
            for y in y.iter_mut() {
                *y = y.get(..nb).unwrap_or(&[]);
            }
            const {
                assert!(
                    R <= 4 && C <= 4,
                    "the rows' scales are packed four to a vector"
                )
            };
            let xs: fn(&$X) -> u32 = $xs;
            let ys: fn(&$Y) -> u32 = $ys;
            let mut acc = [[_mm256_setzero_ps(); R]; C];
            // Unsigned quants stored with an offset: the offset times the activation sum, once
            // for all rows, replaces a per-row sign trick (the offsets are powers of two: a
            // shift, not a 10-cycle multiply). Quants with an offset start from −offset · Σy:
            // one accumulating product, no subtraction (the same integers).
            let dot = |q: __m256i, qy: __m256i, ysum: __m256i| {
                if $off != 0 {
                    $dp(ysum, q, qy)
                } else {
                    $mul(q, qy)
                }
            };
            let ysum = |qy: __m256i| {
                if $off != 0 {
                    const SHIFT: i32 = ($off as u32).trailing_zeros() as i32;
                    let s = _mm256_slli_epi32::<SHIFT>($mul(_mm256_set1_epi8(1), qy));
                    _mm256_sub_epi32(_mm256_setzero_si256(), s)
                } else {
                    _mm256_setzero_si256()
                }
            };
            let mut out = [[0.0f32; R]; C];
            if let Some((sc, fill)) = scales.filter(|_| C > 1 && nb <= super::ROW_SCALES) {
                if fill {
                    // [d0, d1, d2, d3, m0, m1, m2, m3] (mins zero without), from the rows' f16
                    // scales packed in general registers: one widening per block.
                    for b in 0..nb {
                        let (mut d, mut m) = (0u64, 0u64);
                        for r in 0..R {
                            let v = xs(&x[r][b]);
                            d |= u64::from(v as u16) << (16 * r);
                            m |= u64::from((v >> 16) as u16) << (16 * r);
                        }
                        let m = if $min { m } else { 0 };
                        sc.dm[b] = _mm256_cvtph_ps(_mm_set_epi64x(m as i64, d as i64));
                    }
                }
                // Every pair's xd · yd, stored: the block loop takes each as a broadcast load
                // (a load port) rather than a shuffle of a register (a vector port, which the
                // pairs' integer products keep busy). The same product gives the min terms
                // xm · ys, summed here in block order (the one-column path's products and sums,
                // so the same bits) with the columns' sums interleaved: summed after the block
                // loop, one column after the other, their chains of dependent adds took a
                // quarter of the tile's time.
                let mut accm = [_mm256_setzero_ps(); C];
                for b in 0..nb {
                    for c in 0..C {
                        let s = ys(&y[c][b]);
                        if $min {
                            // [yd × 4, ys × 4]
                            let spread = |h: u32| (h & 0xFFFF) as u64 * 0x0001_0001_0001_0001;
                            let yv = _mm256_cvtph_ps(_mm_set_epi64x(
                                spread(s >> 16) as i64,
                                spread(s) as i64,
                            ));
                            let p = _mm256_mul_ps(sc.dm[b], yv);
                            store4_ps(_mm256_castps256_ps128(p), &mut sc.p[b][c]);
                            accm[c] = _mm256_add_ps(accm[c], p);
                        } else {
                            let yd = _mm_cvtph_ps(_mm_set1_epi16(s as u16 as i16));
                            let p = _mm_mul_ps(_mm256_castps256_ps128(sc.dm[b]), yd);
                            store4_ps(p, &mut sc.p[b][c]);
                        }
                    }
                }
                for b in 0..nb {
                    let mut qy = [_mm256_setzero_si256(); C];
                    let mut ys0 = [_mm256_setzero_si256(); C];
                    for c in 0..C {
                        qy[c] = load32i(&y[c][b].qs);
                        ys0[c] = ysum(qy[c]);
                    }
                    for r in 0..R {
                        // Prefetch the next row group's rows, which the hardware prefetcher
                        // misses in short rows.
                        let ahead = (R * nb + b) * core::mem::size_of::<$X>();
                        _mm_prefetch::<_MM_HINT_T0>(x[r].as_ptr().cast::<i8>().wrapping_add(ahead));
                        let $xb = &x[r][b];
                        let q = $quants;
                        for c in 0..C {
                            let sum = _mm256_cvtepi32_ps(dot(q, qy[c], ys0[c]));
                            let d = _mm256_broadcast_ss(&sc.p[b][c][r]);
                            acc[c][r] = _mm256_fmadd_ps(d, sum, acc[c][r]);
                        }
                    }
                }
                for c in 0..C {
                    // Row r's min sum in lane 4 + r (zeros without a min).
                    let mut m = [0.0f32; 8];
                    store_ps(accm[c], &mut m);
                    for r in 0..R {
                        out[c][r] = hsum_ps(acc[c][r]) + m[4 + r];
                    }
                }
                return out;
            }
            // The min terms xm · ys, per pair in lane 1, summed in block order.
            let mut accm = [[_mm_setzero_ps(); R]; C];
            for b in 0..nb {
                let mut yv = [_mm256_setzero_ps(); C];
                let mut qy = [_mm256_setzero_si256(); C];
                let mut ys0 = [_mm256_setzero_si256(); C];
                for c in 0..C {
                    let s = ys(&y[c][b]);
                    // [yd, ys] four times with a min, else yd eight times.
                    yv[c] = if $min {
                        _mm256_cvtph_ps(_mm_set1_epi32(s as i32))
                    } else {
                        _mm256_cvtph_ps(_mm_set1_epi16(s as u16 as i16))
                    };
                    qy[c] = load32i(&y[c][b].qs);
                    ys0[c] = ysum(qy[c]);
                }
                for r in 0..R {
                    // Matrix-vector products take rows from far-apart streams the hardware
                    // prefetcher follows (see `rows4!`); a prefetch of each stream's coming
                    // lines, as in `q4_0_diag8`, measured +1-11% on Q8_0 decode and neutral on
                    // Q4_1 (Zen 4, noisy host).
                    super::prefetch_stream(x[r], b);
                    let $xb = &x[r][b];
                    let q = $quants;
                    for c in 0..C {
                        let sum = _mm256_cvtepi32_ps(dot(q, qy[c], ys0[c]));
                        let d = if $min {
                            // [xd · yd, xm · ys]: one product for both terms.
                            let xv = _mm_cvtph_ps(_mm_cvtsi32_si128(xs($xb) as i32));
                            let p = _mm_mul_ps(xv, _mm256_castps256_ps128(yv[c]));
                            accm[c][r] = _mm_add_ps(accm[c][r], p);
                            _mm256_broadcastss_ps(p)
                        } else {
                            // xd · yd straight in eight lanes: the f16 bits broadcast from
                            // memory, one 256-bit conversion and product, instead of a move to
                            // a vector register, a conversion, a product and a broadcast
                            // (SmolLM2 Q4_0 decode 7% faster). Per-column products of all
                            // rows' scales measured slower here (tg -5% to -11% on Zen 3).
                            let xd8 = _mm256_cvtph_ps(_mm_set1_epi16(xs($xb) as u16 as i16));
                            _mm256_mul_ps(xd8, yv[c])
                        };
                        acc[c][r] = _mm256_fmadd_ps(d, sum, acc[c][r]);
                    }
                }
            }
            for c in 0..C {
                for r in 0..R {
                    let m = if $min {
                        _mm_cvtss_f32(_mm_movehdup_ps(accm[c][r]))
                    } else {
                        0.0
                    };
                    out[c][r] = hsum_ps(acc[c][r]) + m;
                }
            }
            out
        }
    };
}

/// The 512-bit form of `legacy_rows!`: two blocks per vector, then a 256-bit odd block.
/// `$q2` gives the 64 quants of blocks `$a`, `$b`; `$q1` the 32 of block `$a`; for unsigned
/// quants with an offset (`$off` = 8 for Q4_0, 16 for Q5_0) the offset times the activation sum,
/// shared by the rows, is taken off the integer dot product.
macro_rules! legacy_rows512 {
    ($features:literal, $name:ident, $X:ty, $Y:ty, |$a:ident, $b:ident| $q2:expr, $q1:expr,
     $mul512:path, $mul256:path, $off:literal, $xs:expr, $ys:expr, $min:literal) => {
        #[target_feature(enable = $features)]
        fn $name<const R: usize>(x: [&[$X]; R], y: &[$Y]) -> [f32; R] {
            let nb = x.iter().fold(y.len(), |n, x| n.min(x.len()));
            let x = x.map(|x| x.get(..nb).unwrap_or(&[]));
            let y = y.get(..nb).unwrap_or(&[]);
            let xs: fn(&$X) -> u32 = $xs;
            let ys: fn(&$Y) -> u32 = $ys;
            let mut acc = [_mm512_setzero_ps(); R];
            let mut acc1 = [_mm256_setzero_ps(); R];
            let mut accm = [_mm_setzero_ps(); R];
            // Lanes 0-7 take the first block's scale, lanes 8-15 the second's.
            let pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
            let (y2, y1) = y.as_chunks::<2>();
            for (i, yy) in y2.iter().enumerate() {
                let qy = pair_i8(&yy[0].qs, &yy[1].qs);
                let yv = _mm_cvtph_ps(_mm_setr_epi32(ys(&yy[0]) as i32, ys(&yy[1]) as i32, 0, 0));
                let ysum = if $off != 0 {
                    _mm512_mullo_epi32($mul512(_mm512_set1_epi8(1), qy), _mm512_set1_epi32($off))
                } else {
                    _mm512_setzero_si512()
                };
                for r in 0..R {
                    // The next row group, R rows on: short rows defeat the hardware prefetcher.
                    let ahead = (R * nb + 2 * i) * core::mem::size_of::<$X>();
                    _mm_prefetch::<_MM_HINT_T0>(x[r].as_ptr().cast::<i8>().wrapping_add(ahead));
                    let ($a, $b) = (&x[r][2 * i], &x[r][2 * i + 1]);
                    let sc = _mm_setr_epi32(xs($a) as i32, xs($b) as i32, 0, 0);
                    // [xd · yd, xm · ys] of both blocks: one conversion, one product.
                    let p = _mm_mul_ps(_mm_cvtph_ps(sc), yv);
                    if $min {
                        accm[r] = _mm_add_ps(accm[r], p);
                    }
                    let mut dot = $mul512($q2, qy);
                    if $off != 0 {
                        dot = _mm512_sub_epi32(dot, ysum);
                    }
                    let d = _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(p));
                    acc[r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[r]);
                }
            }
            if let Some(yb) = y1.first() {
                let qy = load32i(&yb.qs);
                let yv = _mm_cvtph_ps(_mm_cvtsi32_si128(ys(yb) as i32));
                let ysum = if $off != 0 {
                    _mm256_mullo_epi32($mul256(_mm256_set1_epi8(1), qy), _mm256_set1_epi32($off))
                } else {
                    _mm256_setzero_si256()
                };
                for r in 0..R {
                    let $a = &x[r][nb - 1];
                    let p = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(xs($a) as i32)), yv);
                    if $min {
                        accm[r] = _mm_add_ps(accm[r], p);
                    }
                    let dot = _mm256_sub_epi32($mul256($q1, qy), ysum);
                    let d = _mm256_broadcastss_ps(p);
                    acc1[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc1[r]);
                }
            }
            let mut out = [0.0f32; R];
            for r in 0..R {
                let m = if $min {
                    let hi = _mm_movehdup_ps(accm[r]);
                    _mm_cvtss_f32(_mm_add_ss(hi, _mm_movehl_ps(hi, hi)))
                } else {
                    0.0
                };
                out[r] = _mm512_reduce_add_ps(acc[r]) + hsum_ps(acc1[r]) + m;
            }
            out
        }
    };
}

/// The 512-bit form of `legacy_rows!` for matrix products: two activation columns share each
/// vector (the weight block's 32 quants in both halves), and each half gets exactly the lane
/// values of `legacy_rows!` for its column (the same integer dot products, the same scale
/// products, the same float additions in the same order), so the results are still the
/// matrix-vector ones bit for bit. `$dp` is an accumulating dot product (acc + Σ four u8 × i8
/// products per lane): quants stored with an offset (`$off`) start from −offset · Σy, which each
/// activation block's column pair computes once for all rows; Q8_0 on VNNI runs as unsigned
/// (x + 128) · y with `$off` = 128, so `vpdpbusd` replaces the sign trick. The scale products
/// xd · yd come from one 512-bit multiply per (row, pair) with the activation scales spread
/// over the halves once per block.
macro_rules! legacy_tile512 {
    ($features:literal, $name:ident, $X:ty, $Y:ty, |$xb:ident| $quants:expr, $dp:ident,
     $sum:ident, $off:literal, $xs:expr, $ys:expr, $min:literal) => {
        #[target_feature(enable = $features)]
        fn $name<const R: usize, const P: usize>(
            x: [&[$X]; R],
            y: [[&[$Y]; 2]; P],
        ) -> [[[f32; R]; 2]; P] {
            let nb = x.iter().fold(usize::MAX, |n, x| n.min(x.len()));
            let nb = y.iter().flatten().fold(nb, |n, y| n.min(y.len()));
            // Loops, not `map`: closures here are not inlined (a call per block).
            let mut x = x;
            for x in x.iter_mut() {
                *x = x.get(..nb).unwrap_or(&[]);
            }
            let mut y = y;
            for y in y.iter_mut().flatten() {
                *y = y.get(..nb).unwrap_or(&[]);
            }
            let xs: fn(&$X) -> u32 = $xs;
            let ys: fn(&$Y) -> u32 = $ys;
            let mut acc = [[_mm512_setzero_ps(); R]; P];
            let mut accm = [[_mm_setzero_ps(); R]; P];
            // Lanes 0-7 take the first column's scale, lanes 8-15 the second's.
            let pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
            for b in 0..nb {
                // [yd₀, ys₀, yd₁, ys₁]
                let mut yv = [_mm_setzero_ps(); P];
                let mut yd = [_mm512_setzero_ps(); P];
                let mut qy = [_mm512_setzero_si512(); P];
                let mut seed = [_mm512_setzero_si512(); P];
                for p in 0..P {
                    let [y0, y1] = y[p];
                    let sc = _mm_setr_epi32(ys(&y0[b]) as i32, ys(&y1[b]) as i32, 0, 0);
                    yv[p] = _mm_cvtph_ps(sc);
                    yd[p] = _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(yv[p]));
                    qy[p] = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(load32i(&y0[b].qs)),
                        load32i(&y1[b].qs),
                    );
                    if $off != 0 {
                        let s = $sum(_mm512_setzero_si512(), _mm512_set1_epi8(1), qy[p]);
                        seed[p] = _mm512_mullo_epi32(s, _mm512_set1_epi32(-$off));
                    }
                }
                for r in 0..R {
                    // The next row group, R rows on: short rows defeat the hardware prefetcher.
                    let ahead = (R * nb + b) * core::mem::size_of::<$X>();
                    _mm_prefetch::<_MM_HINT_T0>(x[r].as_ptr().cast::<i8>().wrapping_add(ahead));
                    let $xb = &x[r][b];
                    // [xd, xm, xd, xm]: the u32 holds d and m as two halves.
                    let xv = _mm_cvtph_ps(_mm_set1_epi32(xs($xb) as i32));
                    let xd = _mm512_broadcastss_ps(xv);
                    // The block's 32 quants in both halves (from broadcast loads).
                    let q: __m512i = $quants;
                    for p in 0..P {
                        if $min {
                            accm[p][r] = _mm_add_ps(accm[p][r], _mm_mul_ps(xv, yv[p]));
                        }
                        let dot = $dp(seed[p], q, qy[p]);
                        let d = _mm512_mul_ps(xd, yd[p]);
                        acc[p][r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[p][r]);
                    }
                }
            }
            let mut out = [[[0.0f32; R]; 2]; P];
            for p in 0..P {
                for r in 0..R {
                    let (m0, m1) = if $min {
                        let m = accm[p][r];
                        (
                            _mm_cvtss_f32(_mm_movehdup_ps(m)),
                            _mm_cvtss_f32(_mm_shuffle_ps::<0b11>(m, m)),
                        )
                    } else {
                        (0.0, 0.0)
                    };
                    let lo = _mm512_castps512_ps256(acc[p][r]);
                    let hi = _mm512_extractf32x8_ps::<1>(acc[p][r]);
                    out[p][0][r] = hsum_ps(lo) + m0;
                    out[p][1][r] = hsum_ps(hi) + m1;
                }
            }
            out
        }
    };
}

/// Column pairs a 512-bit matrix-product tile takes at once.
const TILE_PAIRS: usize = 2;

/// Column pairs of the VNNI tiles: one seeded `vpdpbusd` per pair leaves room for more
/// accumulators, and each weight block's decoding serves more columns (measured faster for Q8_0,
/// Q4_0 and Q4_1).
const TILE_PAIRS_VNNI: usize = 4;

/// Two Q8_0 activation columns' block for `tile_q8_0p`: their quants side by side (the second
/// operand of a 512-bit `vpdpbusd`) and each lane's seed, −128 × its four quants' sum (the
/// weights' offset once they are made unsigned, taken through the activation).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct PairQ {
    q: [i8; 64],
    seed: [i32; 16],
}

/// Activation columns `tiles512_prep!` prepares at once, and the most blocks per row it takes:
/// 16 columns × 64 blocks (rows up to 2048) = 72 KB on the stack.
const PREP_COLS: usize = 16;
const PREP_BLOCKS: usize = 64;

/// The Q8_0 VNNI matrix product over activation pairs prepared once per product (`$prep`:
/// [`PairQ`] quants and seeds, and the scales), not once per row group and block as in
/// `legacy_tile512!`: the per-block setup was a third of the tile's instructions. Columns go in
/// chunks of [`PREP_COLS`]; each chunk's rows in groups of four through `$tile` (then single
/// rows), pairs in groups of `$pairs` (then single pairs); an odd last column through `$one`.
/// Rows longer than [`PREP_BLOCKS`] blocks take `tiles512!` instead. Same operations per
/// (row, column) as `tiles512!`, so the same bits.
macro_rules! tiles512_prep {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $prep:ident,
     $tile:ident, $one:ident, $pairs:path) => {{
        let rows = $out.len() / $cols;
        let nb = $w_row / core::mem::size_of::<BlockQ8_0>();
        let row =
            |r: usize| as_blocks::<BlockQ8_0>($w.get(r * $w_row..(r + 1) * $w_row).unwrap_or(&[]));
        let col = |c: usize| as_blocks(&$act[c * $act_row..(c + 1) * $act_row]);
        let mut q = [super::PairQ {
            q: [0; 64],
            seed: [0; 16],
        }; super::PREP_COLS / 2 * super::PREP_BLOCKS];
        let mut meta = [[0f32; 2]; super::PREP_COLS / 2 * super::PREP_BLOCKS];
        let mut c0 = 0;
        while c0 + 2 <= $cols {
            let np = (($cols - c0) / 2).min(super::PREP_COLS / 2);
            $prep($act, $act_row, c0, np, nb, &mut q, &mut meta);
            let mut r0 = 0;
            while r0 < rows {
                let k = if r0 + 4 <= rows { 4 } else { 1 };
                let mut p0 = 0;
                while p0 < np {
                    let g = if p0 + $pairs <= np { $pairs } else { 1 };
                    let (qp, mp) = (&q[p0 * nb..], &meta[p0 * nb..]);
                    let mut put = |i: usize, p: usize, h: usize, v: f32| {
                        if let Some(o) = $out.get_mut((r0 + i) * $cols + c0 + 2 * (p0 + p) + h) {
                            *o = v;
                        }
                    };
                    macro_rules! run {
                        ($r:literal, $g:expr) => {{
                            let x: [&[BlockQ8_0]; $r] = core::array::from_fn(|i| row(r0 + i));
                            let t = $tile::<$r, { $g }>(x, qp, mp, nb);
                            for (p, t) in t.iter().enumerate() {
                                for (h, t) in t.iter().enumerate() {
                                    for (i, v) in t.iter().enumerate() {
                                        put(i, p, h, *v);
                                    }
                                }
                            }
                        }};
                    }
                    match (k, g == $pairs) {
                        (4, true) => run!(4, $pairs),
                        (4, false) => run!(4, 1),
                        (_, true) => run!(1, $pairs),
                        _ => run!(1, 1),
                    }
                    p0 += g;
                }
                r0 += k;
            }
            c0 += 2 * np;
        }
        if c0 < $cols {
            let mut r0 = 0;
            while r0 < rows {
                let v = $one::<1, 1>([row(r0)], [col(c0)], None);
                $out[r0 * $cols + c0] = v[0][0];
                r0 += 1;
            }
        }
    }};
}

/// `tiles!` with a 512-bit kernel for whole groups of 2 · `$pairs` columns (default
/// [`TILE_PAIRS`]) and the 256-bit `$one` kernel (the same per-column numbers) for the rest.
macro_rules! tiles512 {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $kernel:ident,
     $one:ident) => {
        tiles512!(
            $out,
            $w,
            $w_row,
            $act,
            $act_row,
            $cols,
            $kernel,
            $one,
            super::TILE_PAIRS
        )
    };
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $kernel:ident,
     $one:ident, $pairs:path) => {{
        let col = super::column_blocks($act, $act_row);
        let mut o4 = $out.chunks_exact_mut(4 * $cols);
        let mut w4 = $w.chunks_exact(4 * $w_row);
        for (o, w) in (&mut o4).zip(&mut w4) {
            let mut rows = w.chunks_exact($w_row);
            let x = [(); 4].map(|_| as_blocks(rows.next().unwrap_or(&[])));
            tile512_cols!(o, x, 4, $cols, col, $kernel, $one, $pairs);
        }
        let rest = w4.remainder().chunks_exact($w_row);
        for (o, row) in o4.into_remainder().chunks_exact_mut($cols).zip(rest) {
            let x = [as_blocks(row)];
            tile512_cols!(o, x, 1, $cols, col, $kernel, $one, $pairs);
        }
    }};
}

/// One row group of `tiles512!` over all columns: groups of `$pairs` column pairs, then any
/// whole pairs one at a time, then single columns through `$one`.
macro_rules! tile512_cols {
    ($o:ident, $x:ident, $r:literal, $cols:ident, $col:ident, $kernel:ident, $one:ident,
     $pairs:path) => {{
        let mut c = 0;
        while c + 2 * $pairs <= $cols {
            let y: [[_; 2]; $pairs] =
                core::array::from_fn(|p| [$col(c + 2 * p), $col(c + 2 * p + 1)]);
            let t = $kernel::<$r, { $pairs }>($x, y);
            for (p, t) in t.iter().enumerate() {
                for (k, t) in t.iter().enumerate() {
                    for (i, v) in t.iter().enumerate() {
                        $o[i * $cols + c + 2 * p + k] = *v;
                    }
                }
            }
            c += 2 * $pairs;
        }
        while c + 2 <= $cols {
            let t = $kernel::<$r, 1>($x, [[$col(c), $col(c + 1)]]);
            for (k, t) in t[0].iter().enumerate() {
                for (i, v) in t.iter().enumerate() {
                    $o[i * $cols + c + k] = *v;
                }
            }
            c += 2;
        }
        while c < $cols {
            let t = $one::<$r, 1>($x, [$col(c)], None);
            for (i, v) in t[0].iter().enumerate() {
                $o[i * $cols + c] = *v;
            }
            c += 1;
        }
    }};
}

/// One block of sixteen activation columns for the blockwise tiles, one column per 32-bit lane:
/// the quants as eight dwords of four bytes, −offset · Σy (the weight quants' offset taken
/// through the activation) and the f32 scale. Filled once per matrix product and block chunk,
/// then shared by every row group, it lets a weight row's four quant bytes be broadcast to all
/// sixteen lanes: one `vpdpbusd` does four products for sixteen columns, and each column's
/// integer dot product ends whole in its lane (no reduction).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ColBlock {
    q: [[i32; 16]; 8],
    seed: [i32; 16],
    d: [f32; 16],
}

impl ColBlock {
    const ZERO: ColBlock = ColBlock {
        q: [[0; 16]; 8],
        seed: [0; 16],
        d: [0.0; 16],
    };
}

/// Blocks of activation columns prepared at once (2 × 16 × 640 bytes on the stack).
const BW_CHUNK: usize = 16;

/// Activation columns a blockwise tile takes: two groups of sixteen.
const BW_COLS: usize = 32;

/// Fewer columns than this run column by column through the matrix-vector kernel (same bits):
/// a tile's cost per row and block hardly depends on how many of its lanes are in use.
const BW_MIN_COLS: usize = 8;

/// One Q8_0 activation block laid out for the eight-row matrix × vector kernel (`q4_0_diag8`):
/// step `m`'s vectors hold in lane `p` the activation dword `(p % 4 + m) % 4` of the block's
/// first half (`lo`) and second half (`hi`), matching the weight dwords that step puts in that
/// lane; then −8 · Σy (the quants' offset taken through the activation) and the f32 scale.
/// Prepared once per matrix × vector product and shared by every row group.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
pub(crate) struct DiagBlock {
    lo: [[i32; 8]; 4],
    hi: [[i32; 8]; 4],
    seed: i32,
    d: f32,
}

impl DiagBlock {
    /// The activation block's scale.
    pub(crate) fn d(&self) -> f32 {
        self.d
    }
}

/// Activation blocks prepared at once for `q4_0_diag8` (64 × 288 bytes on the stack): rows
/// up to 2048 elements take one pass.
pub(crate) const DIAG_CHUNK: usize = 64;

/// The most bytes of rows `diag_eighths!` spreads its eight streams over: streams megabytes
/// apart (a 49152-row output head) read 25% slower from memory than within half a megabyte;
/// 1 MiB decoded SmolLM2 Q4_0 0.5–3% faster than 512 KiB, 256 KiB and 2 MiB slower (Zen 4).
const DIAG_PANEL_BYTES: usize = 1 << 20;

/// How far ahead the matrix × vector kernels prefetch each row, in bytes: once `q4_0_diag8` got
/// lighter, a software prefetch of every row's next lines paid 3–7% in decode at 256 bytes
/// (every fourth block), and lost at 512 and more (measured on Zen 4).
const PF_AHEAD: usize = 256;

/// The matrix × vector kernels' software prefetch of one row stream: [`PF_AHEAD`] bytes past
/// block `b` of `row`, at every fourth block (a few blocks span a cache line).
#[inline(always)]
fn prefetch_stream<T>(row: &[T], b: usize) {
    if b.is_multiple_of(4) {
        let ahead = b * core::mem::size_of::<T>() + PF_AHEAD;
        super::prefetch_read(row.as_ptr().cast::<u8>().wrapping_add(ahead));
    }
}

/// Starts the matrix × vector kernels' row streams (`w` cut into parts of `part` bytes): the
/// first [`PF_AHEAD`] bytes of each, which the kernels' own prefetch (that far ahead) never asks
/// for. Small matrices read 7% faster from memory on Zen 4.
#[inline(always)]
fn prefetch_heads(w: &[u8], part: usize) {
    if part == 0 {
        return;
    }
    for stream in w.chunks(part) {
        for line in stream.chunks(64).take(PF_AHEAD / 64) {
            super::prefetch_read(line.as_ptr());
        }
    }
}

/// Fills `out[i]` with blocks `b0 + i` of the `n` (≤ 16) activation columns from `c0`; missing
/// columns stay zero (their lanes compute zeros that are never stored).
fn col_blocks(
    act: &[u8],
    act_row: usize,
    c0: usize,
    n: usize,
    b0: usize,
    off: i32,
    out: &mut [ColBlock],
) {
    for cb in out.iter_mut() {
        *cb = ColBlock::ZERO;
    }
    for j in 0..n.min(16) {
        let Some(row) = act.get((c0 + j) * act_row..(c0 + j + 1) * act_row) else {
            continue;
        };
        let col: &[crate::quant::blocks::BlockQ8_0] = crate::quant::blocks::as_blocks(row);
        for (cb, yb) in out.iter_mut().zip(col.iter().skip(b0)) {
            let mut sum = 0i32;
            for k in 0..8 {
                let q = [
                    yb.qs[4 * k],
                    yb.qs[4 * k + 1],
                    yb.qs[4 * k + 2],
                    yb.qs[4 * k + 3],
                ];
                cb.q[k][j] = i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]);
                sum += i32::from(q[0]) + i32::from(q[1]) + i32::from(q[2]) + i32::from(q[3]);
            }
            cb.seed[j] = -off * sum;
            cb.d[j] = crate::quant::blocks::f16_to_f32(yb.d);
        }
    }
}

/// A blockwise tile's accumulators as floats: `out[at[r]..at[r] + n]` per row (zeros where
/// `first`, the tile starting the sum), padded to [`BW_COLS`].
fn tile_start<const R: usize>(
    out: &[f32],
    at: [usize; R],
    n: usize,
    first: bool,
) -> [[f32; BW_COLS]; R] {
    let mut t = [[0.0f32; BW_COLS]; R];
    if !first {
        for (t, &at) in t.iter_mut().zip(&at) {
            if let Some(o) = out.get(at..at + n) {
                t[..n].copy_from_slice(o);
            }
        }
    }
    t
}

/// Writes a blockwise tile's accumulators back (the first `n` columns of each row).
fn tile_end<const R: usize>(t: &[[f32; BW_COLS]; R], out: &mut [f32], at: [usize; R], n: usize) {
    for (t, &at) in t.iter().zip(&at) {
        if let Some(o) = out.get_mut(at..at + n) {
            o.copy_from_slice(&t[..n]);
        }
    }
}

/// Blockwise matrix product `out[r * cols + c]` through `$tile` (four rows or one × up to
/// [`BW_COLS`] columns): columns in groups of 32, blocks in chunks of [`BW_CHUNK`] (the tiles
/// carry each output's accumulator from chunk to chunk through `out`), all row groups per chunk.
macro_rules! bw_matmul {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $X:ty,
     $off:literal, $tile:ident) => {{
        let rows = $out.len() / $cols;
        let nb = $w_row / core::mem::size_of::<$X>();
        let mut prep = [[super::ColBlock::ZERO; super::BW_CHUNK]; 2];
        let mut c0 = 0;
        while c0 < $cols {
            let n = ($cols - c0).min(super::BW_COLS);
            let mut b0 = 0;
            while b0 < nb {
                let nbc = (nb - b0).min(super::BW_CHUNK);
                for (g, p) in prep.iter_mut().enumerate() {
                    let ng = n.saturating_sub(16 * g);
                    super::col_blocks($act, $act_row, c0 + 16 * g, ng, b0, $off, &mut p[..nbc]);
                }
                let y = [&prep[0][..nbc], &prep[1][..nbc]];
                let part = |r: usize| -> &[$X] {
                    let row = $w.get(r * $w_row..(r + 1) * $w_row).unwrap_or(&[]);
                    as_blocks::<$X>(row).get(b0..b0 + nbc).unwrap_or(&[])
                };
                let mut r0 = 0;
                while r0 + 4 <= rows {
                    let x = [part(r0), part(r0 + 1), part(r0 + 2), part(r0 + 3)];
                    let at = [
                        r0 * $cols + c0,
                        (r0 + 1) * $cols + c0,
                        (r0 + 2) * $cols + c0,
                        (r0 + 3) * $cols + c0,
                    ];
                    $tile::<4>(x, y, $out, at, n, b0 == 0);
                    r0 += 4;
                }
                while r0 < rows {
                    $tile::<1>([part(r0)], y, $out, [r0 * $cols + c0], n, b0 == 0);
                    r0 += 1;
                }
                b0 += nbc;
            }
            c0 += super::BW_COLS;
        }
    }};
}

/// Blockwise matrix product for few columns: each column through the four-row matrix-vector
/// kernel `$kernel` (the same bits), the four rows staying in L1 across the columns.
macro_rules! bw_columns {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $act_row:ident, $cols:ident, $kernel:ident) => {{
        let rows = $out.len() / $cols;
        let row = |r: usize| as_blocks($w.get(r * $w_row..(r + 1) * $w_row).unwrap_or(&[]));
        let mut r0 = 0;
        while r0 < rows {
            let k = (rows - r0).min(4);
            let x = [
                row(r0),
                row(r0 + 1.min(k - 1)),
                row(r0 + 2.min(k - 1)),
                row(r0 + 3.min(k - 1)),
            ];
            for c in 0..$cols {
                let y = as_blocks($act.get(c * $act_row..(c + 1) * $act_row).unwrap_or(&[]));
                let v = $kernel(x, y);
                for i in 0..k {
                    $out[(r0 + i) * $cols + c] = v[i];
                }
            }
            r0 += 4;
        }
    }};
}

/// Q4_0 matrix × vector through the eight-row kernel `$kernel` over activation blocks prepared
/// by `$prep` ([`DiagBlock`], in chunks of [`DIAG_CHUNK`], each row group's accumulators carried
/// from chunk to chunk through `out`), eight streams (rows i, q + i, …, 7q + i, as `rows4!` has
/// four) within each panel of [`DIAG_PANEL_BYTES`]; the rows past the last whole group of eight go
/// one by one through the four-row `$one`.
macro_rules! diag_eighths {
    ($out:ident, $w:ident, $w_row:ident, $act:ident, $prep:ident, $kernel:ident, $one:ident) => {{
        let act = as_blocks::<BlockQ8_0>($act);
        let nb = ($w_row / core::mem::size_of::<BlockQ4_0>()).min(act.len());
        let g8 = $out.len() / 8;
        let (o8_all, o_rest) = $out.split_at_mut(8 * g8);
        let (w8_all, w_rest) = $w.split_at(8 * g8 * $w_row);
        let panel = 8 * (super::DIAG_PANEL_BYTES / $w_row.max(1) / 8).max(1);
        let mut prep = [core::mem::MaybeUninit::<super::DiagBlock>::uninit(); super::DIAG_CHUNK];
        let mut b0 = 0;
        while b0 < nb {
            let nbc = (nb - b0).min(super::DIAG_CHUNK);
            let y = $prep(&act[b0..b0 + nbc], &mut prep);
            for (o8, w8) in o8_all.chunks_mut(panel).zip(w8_all.chunks(panel * $w_row)) {
                let q = o8.len() / 8;
                let part = q * $w_row;
                if b0 == 0 {
                    super::prefetch_heads(w8, part);
                }
                for i in 0..q {
                    let at = |k: usize| {
                        let row = as_blocks::<BlockQ4_0>(
                            &w8[k * part + i * $w_row..k * part + (i + 1) * $w_row],
                        );
                        row.get(b0..b0 + nbc).unwrap_or(&[])
                    };
                    let x = [at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)];
                    let mut acc = [0.0f32; 8];
                    if b0 > 0 {
                        for (k, a) in acc.iter_mut().enumerate() {
                            *a = o8[k * q + i];
                        }
                    }
                    let r = $kernel(x, y, acc);
                    for (k, v) in r.into_iter().enumerate() {
                        o8[k * q + i] = v;
                    }
                }
            }
            b0 += nbc;
        }
        for (o, row) in o_rest.iter_mut().zip(w_rest.chunks_exact($w_row)) {
            let x = as_blocks(row);
            *o = $one([x, x, x, x], act)[0];
        }
    }};
}

/// Whether the 32-element quants keep ggml's 256-bit summation order on AVX-512 (see `matvec`).
const EXACT: bool = true;

/// Stamps 512-bit kernels into a module that also holds `avx2_family!`'s (whose helpers they
/// use), and the module's `matvec`, which prefers them.
macro_rules! avx512_family {
    ($features:literal, $mul512:path, $mul256:path, $dp512:path, $vnni:literal) => {
        #[target_feature(enable = $features)]
        pub(super) fn matvec(
            ty: GgmlType,
            w: &[u8],
            w_row: usize,
            act: &[u8],
            out: &mut [f32],
        ) -> bool {
            match ty {
                // ggml's AVX-512 builds run its 256-bit kernels for the 32-element quants; using
                // the same order (one 8-lane accumulator per row) keeps our logits bit-identical
                // to llama.cpp's, which is worth more than the 512-bit kernels' few percent.
                GgmlType::Q4_0 => {
                    diag_eighths!(out, w, w_row, act, diag_prep, q4_0_diag8, q4_0_bw4)
                }
                GgmlType::Q4_1 if super::EXACT => rows4!(out, w, w_row, act, rows_q4_1),
                GgmlType::Q5_0 if super::EXACT => rows4!(out, w, w_row, act, rows_q5_0),
                GgmlType::Q5_1 if super::EXACT => rows4!(out, w, w_row, act, rows_q5_1),
                GgmlType::Q4_1 => rows4_wide!(out, w, w_row, act, wide_q4_1),
                GgmlType::Q5_0 => rows4_wide!(out, w, w_row, act, wide_q5_0),
                GgmlType::Q5_1 => rows4_wide!(out, w, w_row, act, wide_q5_1),
                // Q8_0's signed products cost more at 512 bits (no vpsignb: a mask, abs and a
                // masked subtract, on two ports) than in the 256-bit kernel: measured slower
                // (before its VNNI levels took the quants + 128 instead; not measured since).
                _ => return matvec256(ty, w, w_row, act, out),
            }
            true
        }

        /// `matmul256` with 512-bit tiles (two columns per vector) for the 32-element quants.
        #[target_feature(enable = $features)]
        pub(super) fn matmul(
            ty: GgmlType,
            w: &[u8],
            w_row: usize,
            act: &[u8],
            act_row: usize,
            cols: usize,
            out: &mut [f32],
        ) -> bool {
            match ty {
                GgmlType::Q4_0 if cols >= super::BW_MIN_COLS => bw_matmul!(
                    out,
                    w,
                    w_row,
                    act,
                    act_row,
                    cols,
                    BlockQ4_0,
                    8,
                    bw_tile_q4_0
                ),
                GgmlType::Q4_0 => bw_columns!(out, w, w_row, act, act_row, cols, q4_0_bw4),
                GgmlType::Q4_1 if $vnni => tiles512!(
                    out,
                    w,
                    w_row,
                    act,
                    act_row,
                    cols,
                    tile_q4_1,
                    rows_q4_1,
                    super::TILE_PAIRS_VNNI
                ),
                GgmlType::Q4_1 => {
                    tiles512!(out, w, w_row, act, act_row, cols, tile_q4_1, rows_q4_1)
                }
                GgmlType::Q5_0 if $vnni => tiles512!(
                    out,
                    w,
                    w_row,
                    act,
                    act_row,
                    cols,
                    tile_q5_0,
                    rows_q5_0,
                    super::TILE_PAIRS_VNNI
                ),
                GgmlType::Q5_0 => {
                    tiles512!(out, w, w_row, act, act_row, cols, tile_q5_0, rows_q5_0)
                }
                GgmlType::Q5_1 if $vnni => tiles512!(
                    out,
                    w,
                    w_row,
                    act,
                    act_row,
                    cols,
                    tile_q5_1,
                    rows_q5_1,
                    super::TILE_PAIRS_VNNI
                ),
                GgmlType::Q5_1 => {
                    tiles512!(out, w, w_row, act, act_row, cols, tile_q5_1, rows_q5_1)
                }
                GgmlType::Q8_0
                    if $vnni && w_row / core::mem::size_of::<BlockQ8_0>() <= super::PREP_BLOCKS =>
                {
                    tiles512_prep!(
                        out,
                        w,
                        w_row,
                        act,
                        act_row,
                        cols,
                        prep_q8_0_pairs,
                        tile_q8_0p,
                        rows_q8_0,
                        super::TILE_PAIRS_VNNI
                    )
                }
                GgmlType::Q8_0 if $vnni => tiles512!(
                    out,
                    w,
                    w_row,
                    act,
                    act_row,
                    cols,
                    tile_q8_0u,
                    rows_q8_0,
                    super::TILE_PAIRS_VNNI
                ),
                GgmlType::Q8_0 => {
                    tiles512!(out, w, w_row, act, act_row, cols, tile_q8_0, rows_q8_0)
                }
                _ => return matmul256(ty, w, w_row, act, act_row, cols, out),
            }
            true
        }

        /// `acc` + sums of four u8 × i8 products per lane (`$dp512` as a local name).
        #[target_feature(enable = $features)]
        #[inline]
        fn dp_us8_512(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
            $dp512(acc, a, b)
        }

        /// `acc` + sums of four i8 × i8 products per lane.
        #[target_feature(enable = $features)]
        #[inline]
        fn dp_i8_512(acc: __m512i, x: __m512i, y: __m512i) -> __m512i {
            _mm512_add_epi32(acc, mul_i8_512(x, y))
        }

        /// Sums of four i8 × i8 products per lane, through |x| and y negated where x < 0 (where
        /// x = 0 the product is 0 either way): the same integers as `mul_sum_i8`.
        #[target_feature(enable = $features)]
        #[inline]
        fn mul_i8_512(x: __m512i, y: __m512i) -> __m512i {
            let neg = _mm512_movepi8_mask(x);
            let y = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
            $mul512(_mm512_abs_epi8(x), y)
        }

        /// `bw_tile_q4_0_256` with sixteen columns per 512-bit vector.
        #[target_feature(enable = $features)]
        fn bw_tile_q4_0<const R: usize>(
            x: [&[BlockQ4_0]; R],
            y: [&[super::ColBlock]; 2],
            out: &mut [f32],
            at: [usize; R],
            n: usize,
            first: bool,
        ) {
            let nb = x
                .iter()
                .fold(y[0].len().min(y[1].len()), |n, x| n.min(x.len()));
            let n = n.min(super::BW_COLS);
            let mut t = super::tile_start(out, at, n, first);
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            for r in 0..R {
                for g in 0..2 {
                    // SAFETY: 16 readable floats of `t[r]`; no alignment requirement.
                    acc[r][g] = unsafe { _mm512_loadu_ps(t[r][16 * g..].as_ptr()) };
                }
            }
            for b in 0..nb {
                let mut quads = [[0i32; 8]; R];
                let mut xd = [0.0f32; R];
                for r in 0..R {
                    (quads[r], xd[r]) = q4_0_quads(&x[r][b]);
                }
                for g in 0..2 {
                    let yb = &y[g][b];
                    let mut qy = [_mm512_setzero_si512(); 8];
                    // SAFETY: `ColBlock` rows are 64 readable, 64-byte-aligned bytes.
                    let (seed, yd) = unsafe {
                        for k in 0..8 {
                            qy[k] = _mm512_load_si512(yb.q[k].as_ptr().cast());
                        }
                        (
                            _mm512_load_si512(yb.seed.as_ptr().cast()),
                            _mm512_load_ps(yb.d.as_ptr()),
                        )
                    };
                    for r in 0..R {
                        let mut dot = seed;
                        for k in 0..8 {
                            dot = dp_us8_512(dot, _mm512_set1_epi32(quads[r][k]), qy[k]);
                        }
                        let d = _mm512_mul_ps(_mm512_set1_ps(xd[r]), yd);
                        acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc[r][g]);
                    }
                }
            }
            for r in 0..R {
                for g in 0..2 {
                    // SAFETY: 16 writable floats of `t[r]`; no alignment requirement.
                    unsafe { _mm512_storeu_ps(t[r][16 * g..].as_mut_ptr(), acc[r][g]) };
                }
            }
            super::tile_end(&t, out, at, n);
        }

        legacy_tile512!(
            $features,
            tile_q4_1,
            BlockQ4_1,
            BlockQ8_1,
            |x| nibbles32x2(&x.qs),
            dp_us8_512,
            dp_us8_512,
            0,
            |x| u32::from_le_bytes([x.d[0], x.d[1], x.m[0], x.m[1]]),
            |y| u32::from_le_bytes([y.d[0], y.d[1], y.s[0], y.s[1]]),
            true
        );
        legacy_tile512!(
            $features,
            tile_q5_0,
            BlockQ5_0,
            BlockQ8_0,
            |x| _mm512_or_si512(nibbles32x2(&x.qs), fifth64(x.qh, x.qh)),
            dp_us8_512,
            dp_us8_512,
            16,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );
        legacy_tile512!(
            $features,
            tile_q5_1,
            BlockQ5_1,
            BlockQ8_1,
            |x| _mm512_or_si512(nibbles32x2(&x.qs), fifth64(x.qh, x.qh)),
            dp_us8_512,
            dp_us8_512,
            0,
            |x| u32::from_le_bytes([x.d[0], x.d[1], x.m[0], x.m[1]]),
            |y| u32::from_le_bytes([y.d[0], y.d[1], y.s[0], y.s[1]]),
            true
        );
        legacy_tile512!(
            $features,
            tile_q8_0,
            BlockQ8_0,
            BlockQ8_0,
            |x| _mm512_broadcast_i64x4(load32i(&x.qs)),
            dp_i8_512,
            dp_us8_512,
            0,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );
        legacy_tile512!(
            $features,
            tile_q8_0u,
            BlockQ8_0,
            BlockQ8_0,
            |x| _mm512_xor_si512(
                _mm512_broadcast_i64x4(load32i(&x.qs)),
                _mm512_set1_epi8(-128)
            ),
            dp_us8_512,
            dp_us8_512,
            128,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );

        /// Fills `q` and `meta` (pair-major: pair p's block b at `p * nb + b`) with the `np`
        /// column pairs from column `c0` of `act`, blocks `0..nb` ([`super::PairQ`], and the
        /// pair's f32 scales `[yd₀, yd₁]`).
        #[target_feature(enable = $features)]
        fn prep_q8_0_pairs(
            act: &[u8],
            act_row: usize,
            c0: usize,
            np: usize,
            nb: usize,
            q: &mut [super::PairQ],
            meta: &mut [[f32; 2]],
        ) {
            let col = |c: usize| -> &[BlockQ8_0] {
                as_blocks(act.get(c * act_row..(c + 1) * act_row).unwrap_or(&[]))
            };
            for p in 0..np {
                let (y0, y1) = (col(c0 + 2 * p), col(c0 + 2 * p + 1));
                let (qp, mp) = (q.iter_mut().skip(p * nb), meta.iter_mut().skip(p * nb));
                for (((q, m), a), b) in qp.zip(mp).zip(y0).zip(y1).take(nb) {
                    let qy = pair_i8(&a.qs, &b.qs);
                    let sums = $mul512(_mm512_set1_epi8(1), qy);
                    let seed =
                        _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(sums));
                    // SAFETY: `q.q` and `q.seed` are 64 writable bytes each, 64-aligned.
                    unsafe {
                        _mm512_store_si512(q.q.as_mut_ptr().cast(), qy);
                        _mm512_store_si512(q.seed.as_mut_ptr().cast(), seed);
                    }
                    *m = [h2f(a.d), h2f(b.d)];
                }
            }
        }

        /// `tile_q8_0u` over prepared activation pairs (`tiles512_prep!`): `q` and `meta` hold
        /// `P` pairs × `nb` blocks, pair-major. Per block and pair the scales are one load and
        /// one permute; the seeds load into the accumulator, the quants are `vpdpbusd`'s
        /// memory operand.
        #[target_feature(enable = $features)]
        fn tile_q8_0p<const R: usize, const P: usize>(
            x: [&[BlockQ8_0]; R],
            q: &[super::PairQ],
            meta: &[[f32; 2]],
            nb: usize,
        ) -> [[[f32; R]; 2]; P] {
            let nb = x.iter().fold(nb, |n, x| n.min(x.len()));
            let nb = nb.min(q.len() / P).min(meta.len() / P);
            let mut acc = [[_mm512_setzero_ps(); R]; P];
            let pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
            let flip = _mm512_set1_epi8(-128);
            for b in 0..nb {
                let mut yd = [_mm512_setzero_ps(); P];
                for p in 0..P {
                    let m = &meta[p * nb + b];
                    // SAFETY: `m` is 8 readable bytes; no alignment requirement.
                    let m = _mm_castpd_ps(unsafe { _mm_load_sd(m.as_ptr().cast()) });
                    yd[p] = _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(m));
                }
                for r in 0..R {
                    // The next row group, R rows on: short rows defeat the hardware prefetcher.
                    let ahead = (R * nb + b) * core::mem::size_of::<BlockQ8_0>();
                    _mm_prefetch::<_MM_HINT_T0>(x[r].as_ptr().cast::<i8>().wrapping_add(ahead));
                    let xb = &x[r][b];
                    let xv = _mm_cvtph_ps(_mm_set1_epi32(i32::from(u16::from_le_bytes(xb.d))));
                    let xd = _mm512_broadcastss_ps(xv);
                    let qx = _mm512_xor_si512(_mm512_broadcast_i64x4(load32i(&xb.qs)), flip);
                    for p in 0..P {
                        let pq = &q[p * nb + b];
                        // SAFETY: `pq.q` and `pq.seed` are 64 readable bytes each, 64-aligned.
                        let (qy, seed) = unsafe {
                            (
                                _mm512_load_si512(pq.q.as_ptr().cast()),
                                _mm512_load_si512(pq.seed.as_ptr().cast()),
                            )
                        };
                        let dot = $dp512(seed, qx, qy);
                        let d = _mm512_mul_ps(xd, yd[p]);
                        acc[p][r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[p][r]);
                    }
                }
            }
            let mut out = [[[0.0f32; R]; 2]; P];
            for p in 0..P {
                for r in 0..R {
                    out[p][0][r] = hsum_ps(_mm512_castps512_ps256(acc[p][r]));
                    out[p][1][r] = hsum_ps(_mm512_extractf32x8_ps::<1>(acc[p][r]));
                }
            }
            out
        }

        /// Two blocks' 32 bytes side by side.
        #[target_feature(enable = $features)]
        #[inline]
        fn pair_i8(a: &[i8; 32], b: &[i8; 32]) -> __m512i {
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load32i(a)), load32i(b))
        }

        /// The nibbles of two blocks in element order (low nibbles, then high, per block),
        /// from broadcast loads and one variable shift (no lane-crossing shuffle).
        #[target_feature(enable = $features)]
        #[inline]
        fn nibbles64(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
            let q = _mm512_broadcast_i32x4(load16(a));
            let q = _mm512_mask_broadcast_i32x4(q, 0xFF00, load16(b));
            let q = _mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
            _mm512_and_si512(q, _mm512_set1_epi8(0x0F))
        }

        /// One block's 32 nibbles in element order in both halves (`nibbles32` twice), from a
        /// broadcast load and one variable shift.
        #[target_feature(enable = $features)]
        #[inline]
        fn nibbles32x2(a: &[u8; 16]) -> __m512i {
            let q = _mm512_broadcast_i32x4(load16(a));
            let q = _mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
            _mm512_and_si512(q, _mm512_set1_epi8(0x0F))
        }

        /// 0x10 in the bytes whose fifth bit is set, for two Q5 blocks.
        #[target_feature(enable = $features)]
        #[inline]
        fn fifth64(a: [u8; 4], b: [u8; 4]) -> __m512i {
            let bits = u64::from(u32::from_le_bytes(a)) | (u64::from(u32::from_le_bytes(b)) << 32);
            _mm512_maskz_mov_epi8(bits, _mm512_set1_epi8(0x10))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn fifth32(a: [u8; 4]) -> __m256i {
            _mm256_maskz_mov_epi8(u32::from_le_bytes(a), _mm256_set1_epi8(0x10))
        }

        legacy_rows512!(
            $features,
            wide_q4_1,
            BlockQ4_1,
            BlockQ8_1,
            |a, b| nibbles64(&a.qs, &b.qs),
            nibbles32(&a.qs),
            $mul512,
            $mul256,
            0,
            |x| u32::from_le_bytes([x.d[0], x.d[1], x.m[0], x.m[1]]),
            |y| u32::from_le_bytes([y.d[0], y.d[1], y.s[0], y.s[1]]),
            true
        );
        legacy_rows512!(
            $features,
            wide_q5_0,
            BlockQ5_0,
            BlockQ8_0,
            |a, b| _mm512_or_si512(nibbles64(&a.qs, &b.qs), fifth64(a.qh, b.qh)),
            _mm256_or_si256(nibbles32(&a.qs), fifth32(a.qh)),
            $mul512,
            $mul256,
            16,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );
        legacy_rows512!(
            $features,
            wide_q5_1,
            BlockQ5_1,
            BlockQ8_1,
            |a, b| _mm512_or_si512(nibbles64(&a.qs, &b.qs), fifth64(a.qh, b.qh)),
            _mm256_or_si256(nibbles32(&a.qs), fifth32(a.qh)),
            $mul512,
            $mul256,
            0,
            |x| u32::from_le_bytes([x.d[0], x.d[1], x.m[0], x.m[1]]),
            |y| u32::from_le_bytes([y.d[0], y.d[1], y.s[0], y.s[1]]),
            true
        );
    };
}

/// Sums of four u8 × i8 products per i32 lane, 512 bits wide.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn mul_sum_us8_512(a: __m512i, b: __m512i) -> __m512i {
    _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1))
}

/// `acc` + sums of four u8 × i8 products per i32 lane, 512 bits wide.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn dp_us8_512(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi32(acc, mul_sum_us8_512(a, b))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn dp_us8_512_vnni(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(acc, a, b)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn mul_sum_us8_512_vnni(a: __m512i, b: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), a, b)
}

/// Runs `$body` on each (weight block, activation block) pair with two independent accumulators,
/// alternating (an FMA's latency is longer than one block's work), and returns both.
macro_rules! pairs {
    ($x:expr, $y:expr, |$a:ident, $b:ident, $acc:ident| $body:block) => {{
        let (x2, x1) = $x.as_chunks::<2>();
        let (y2, y1) = $y.as_chunks::<2>();
        let zero = Acc {
            v: _mm256_setzero_ps(),
            s: 0.0,
        };
        let (mut acc0, mut acc1) = (zero, zero);
        let row = $x.len() * core::mem::size_of_val(&$x[..1]);
        for (k, (xx, yy)) in x2.iter().zip(y2).enumerate() {
            // The next row, which follows this one: the hardware prefetcher starts too late on
            // rows of a few hundred bytes.
            let at = $x
                .as_ptr()
                .cast::<i8>()
                .wrapping_add(row + k * core::mem::size_of_val(xx));
            for line in (0..core::mem::size_of_val(xx)).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line));
            }
            {
                let ($a, $b, $acc) = (&xx[0], &yy[0], &mut acc0);
                $body
            }
            {
                let ($a, $b, $acc) = (&xx[1], &yy[1], &mut acc1);
                $body
            }
        }
        for (xx, yy) in x1.iter().zip(y1) {
            let ($a, $b, $acc) = (xx, yy, &mut acc0);
            $body
        }
        (acc0, acc1)
    }};
}

/// Stamps a module of 256-bit kernels compiled for `$features`, with the level's u8 × i8 dot
/// product and bit expansion; `$dp32`: whether that dot product accumulates in 32 bits (VNNI),
/// not through the saturating 16-bit `vpmaddubsw`; `$tile_cols`: the columns of a `tiles!` tile
/// (4 where the level has AVX-512's 32 vector registers, else 2).
macro_rules! avx2_family {
    ($features:literal, $mul_sum_us8:path, $dp_us8:path, $bits32:path, $dp32:literal,
     $tile_cols:literal) => {
        use crate::quant::blocks::*;
        use crate::quant::{quantize, GgmlType};
        use core::arch::x86_64::*;

        /// Activation columns a `tiles!` matrix-product tile takes at once: four rows × four
        /// columns of 8-lane accumulators need the 32 vector registers of AVX-512; with AVX2's
        /// sixteen, two columns keep them out of memory (the 4 × 4 tile spilled on Zen 3).
        const TILE_COLS: usize = $tile_cols;

        /// `out[r]` = dot(row r, act) for the types this level has; `w` holds `out.len()` rows.
        #[target_feature(enable = $features)]
        pub(super) fn matvec256(
            ty: GgmlType,
            w: &[u8],
            w_row: usize,
            act: &[u8],
            out: &mut [f32],
        ) -> bool {
            match ty {
                GgmlType::Q4_0 => {
                    diag_eighths!(out, w, w_row, act, diag_prep, q4_0_diag8, q4_0_bw4)
                }
                GgmlType::Q4_1 => rows4!(out, w, w_row, act, rows_q4_1),
                GgmlType::Q5_0 => rows4!(out, w, w_row, act, rows_q5_0),
                GgmlType::Q5_1 => rows4!(out, w, w_row, act, rows_q5_1),
                // With 32-bit dot products, quants + 128 as unsigned bytes and −128 · Σy as the
                // accumulator's start: the same lane integers as the sign trick in two vector
                // operations instead of three (no 16-bit pair sums to saturate).
                GgmlType::Q8_0 if $dp32 => rows4!(out, w, w_row, act, rows_q8_0u),
                GgmlType::Q8_0 => rows4!(out, w, w_row, act, rows_q8_0),
                GgmlType::Q4_K => rows!(out, w, w_row, act, dot_q4_k),
                GgmlType::Q5_K => rows!(out, w, w_row, act, dot_q5_k),
                GgmlType::Q6_K => rows!(out, w, w_row, act, dot_q6_k),
                GgmlType::F32 => rows!(out, w, w_row, act, dot_f32),
                GgmlType::F16 => rows!(out, w, w_row, act, dot_half::<false>),
                GgmlType::BF16 => rows!(out, w, w_row, act, dot_half::<true>),
                _ => return false,
            }
            true
        }

        /// `out[r * cols + c]` = dot(row r, activation column c) for the types this level has;
        /// `w` holds `out.len() / cols` rows, `act` `cols` activation rows of `act_row` bytes.
        #[target_feature(enable = $features)]
        pub(super) fn matmul256(
            ty: GgmlType,
            w: &[u8],
            w_row: usize,
            act: &[u8],
            act_row: usize,
            cols: usize,
            out: &mut [f32],
        ) -> bool {
            match ty {
                GgmlType::Q4_0 if cols >= super::BW_MIN_COLS => bw_matmul!(
                    out,
                    w,
                    w_row,
                    act,
                    act_row,
                    cols,
                    BlockQ4_0,
                    8,
                    bw_tile_q4_0_256
                ),
                GgmlType::Q4_0 => bw_columns!(out, w, w_row, act, act_row, cols, q4_0_bw4),
                GgmlType::Q4_1 => tiles!(out, w, w_row, act, act_row, cols, rows_q4_1),
                GgmlType::Q5_0 => tiles!(out, w, w_row, act, act_row, cols, rows_q5_0),
                GgmlType::Q5_1 => tiles!(out, w, w_row, act, act_row, cols, rows_q5_1),
                GgmlType::Q8_0 => tiles!(out, w, w_row, act, act_row, cols, rows_q8_0),
                GgmlType::Q4_K => rows_cols!(out, w, w_row, act, act_row, cols, dot_q4_k),
                GgmlType::Q5_K => rows_cols!(out, w, w_row, act, act_row, cols, dot_q5_k),
                GgmlType::Q6_K => rows_cols!(out, w, w_row, act, act_row, cols, dot_q6_k),
                GgmlType::F32 => rows_cols!(out, w, w_row, act, act_row, cols, dot_f32),
                GgmlType::F16 => rows_cols!(out, w, w_row, act, act_row, cols, dot_half::<false>),
                GgmlType::BF16 => rows_cols!(out, w, w_row, act, act_row, cols, dot_half::<true>),
                _ => return false,
            }
            true
        }

        /// Quantizes an activation row, byte-identical to the reference quantizers.
        #[target_feature(enable = $features)]
        pub(super) fn quantize_row(ty: GgmlType, x: &[f32], y: &mut [u8]) -> bool {
            match ty {
                GgmlType::Q8_0 => {
                    for (x, y) in x.chunks_exact(QK).zip(as_blocks_mut::<BlockQ8_0>(y)) {
                        match quantize_q8_block(x, &mut y.qs) {
                            Some((d, _)) => y.d = f2h(d),
                            None => quantize::quantize_q8_0(x, core::slice::from_mut(y)),
                        }
                    }
                }
                GgmlType::Q8_1 => {
                    for (x, y) in x.chunks_exact(QK).zip(as_blocks_mut::<BlockQ8_1>(y)) {
                        match quantize_q8_block(x, &mut y.qs) {
                            Some((d, sum)) => {
                                y.d = f2h(d);
                                y.s = f2h(sum as f32 * d);
                            }
                            None => quantize::quantize_q8_1(x, core::slice::from_mut(y)),
                        }
                    }
                }
                GgmlType::Q8_K => {
                    for (x, y) in x.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ8K>(y)) {
                        if !quantize_q8_k_block(x, y) {
                            quantize::quantize_q8_k(x, core::slice::from_mut(y));
                        }
                    }
                }
                _ => return false,
            }
            true
        }

        // ---------------- loads and reductions

        #[target_feature(enable = $features)]
        #[inline]
        fn load16(b: &[u8; 16]) -> __m128i {
            // SAFETY: `b` is 16 readable bytes; the load has no alignment requirement.
            unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load32(b: &[u8; 32]) -> __m256i {
            // SAFETY: `b` is 32 readable bytes; the load has no alignment requirement.
            unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load32i(b: &[i8; 32]) -> __m256i {
            // SAFETY: `b` is 32 readable bytes; the load has no alignment requirement.
            unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load_ps(x: &[f32; 8]) -> __m256 {
            // SAFETY: `x` is 8 readable floats; the load has no alignment requirement.
            unsafe { _mm256_loadu_ps(x.as_ptr()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn store4_ps(v: __m128, x: &mut [f32; 4]) {
            // SAFETY: `x` is 4 writable floats; the store has no alignment requirement.
            unsafe { _mm_storeu_ps(x.as_mut_ptr(), v) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn store32i(v: __m256i, b: &mut [i8; 32]) {
            // SAFETY: `b` is 32 writable bytes; the store has no alignment requirement.
            unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
        }

        /// f16 to f32 with F16C (exact, like the reference's widening).
        #[target_feature(enable = $features)]
        #[inline]
        fn h2f(h: [u8; 2]) -> f32 {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                u16::from_le_bytes(h),
            ))))
        }

        /// f32 to f16 with F16C, rounding to nearest even like the reference's conversion.
        #[target_feature(enable = $features)]
        #[inline]
        fn f2h(x: f32) -> [u8; 2] {
            let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x));
            (_mm_extract_epi16::<0>(h) as u16).to_le_bytes()
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn hsum_ps(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn hsum_epi32(v: __m256i) -> i32 {
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
            _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn hmax_ps(v: __m256) -> f32 {
            let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn hmin_ps(v: __m256) -> f32 {
            let s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_min_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_min_ss(s, _mm_movehdup_ps(s)))
        }

        // ---------------- small integer helpers

        /// The 32 nibbles of a Q4_0/Q4_1/Q5 block in element order: low nibbles, then high.
        #[target_feature(enable = $features)]
        #[inline]
        fn nibbles32(qs: &[u8; 16]) -> __m256i {
            // A broadcast load and a per-lane shift: no lane insert (a port-5 shuffle).
            let q = _mm256_broadcastsi128_si256(load16(qs));
            let q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
            _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
        }

        /// Sums of four i8 × i8 products per lane, through |x| and y * sign(x). The sign taken
        /// from the activation instead (|y| once per block for all rows, x * sign(y) per row:
        /// 8% fewer cycles per llvm-mca on the Q8_0 decode loop) is wrong where a weight quant is
        /// −128, which has no i8 negation; activations stop at ±127, weights from other tools
        /// need not.
        #[target_feature(enable = $features)]
        #[inline]
        fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
            $mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
        }

        /// A vector of partial sums and a scalar one (the min terms).
        #[derive(Clone, Copy)]
        struct Acc {
            v: __m256,
            s: f32,
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn finish(a: Acc, b: Acc) -> f32 {
            hsum_ps(_mm256_add_ps(a.v, b.v)) + (a.s + b.s)
        }

        // ---------------- blockwise Q4_0 (see `scalar::dot_q4_0_blockwise`)

        /// A Q4_0 block's 32 quants in element order as eight dwords of four (low nibbles, then
        /// high), the u8 operands the blockwise tiles broadcast, and its scale.
        #[target_feature(enable = $features)]
        #[inline]
        fn q4_0_quads(xb: &BlockQ4_0) -> ([i32; 8], f32) {
            let m4 = _mm_set1_epi8(0x0F);
            let raw = load16(&xb.qs);
            let lo = _mm_and_si128(raw, m4);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(raw), m4);
            let mut q = [0i32; 8];
            // SAFETY: `q` is 8 writable i32 (32 bytes); no alignment requirement.
            unsafe {
                _mm_storeu_si128(q.as_mut_ptr().cast(), lo);
                _mm_storeu_si128(q.as_mut_ptr().add(4).cast(), hi);
            }
            (q, h2f(xb.d))
        }

        /// Four Q4_0 rows × one Q8_0 activation in the blockwise order: per block the four rows'
        /// exact integer dot products reduced into one vector [r0, r1, r2, r3], then one 4-lane
        /// `acc = fma(isum, xd · yd, acc)`. For the rows after the last group of eight and the
        /// few-column matrix products: sending those through the eight-row kernel too (the row
        /// repeated) gave it more callers, it stopped being inlined into `matvec`, and decode ran
        /// 10% slower (measured).
        #[target_feature(enable = $features)]
        fn q4_0_bw4(x: [&[BlockQ4_0]; 4], y: &[BlockQ8_0]) -> [f32; 4] {
            let nb = x.iter().fold(y.len(), |n, x| n.min(x.len()));
            let mut acc = _mm_setzero_ps();
            for b in 0..nb {
                let yb = &y[b];
                let qy = load32i(&yb.qs);
                // −8 · Σy per lane: the quants' offset, once for the four rows.
                let s = _mm256_slli_epi32::<3>($mul_sum_us8(_mm256_set1_epi8(1), qy));
                let seed = _mm256_sub_epi32(_mm256_setzero_si256(), s);
                let d0 = $dp_us8(seed, nibbles32(&x[0][b].qs), qy);
                let d1 = $dp_us8(seed, nibbles32(&x[1][b].qs), qy);
                let d2 = $dp_us8(seed, nibbles32(&x[2][b].qs), qy);
                let d3 = $dp_us8(seed, nibbles32(&x[3][b].qs), qy);
                let t01 =
                    _mm256_add_epi32(_mm256_unpacklo_epi32(d0, d1), _mm256_unpackhi_epi32(d0, d1));
                let t23 =
                    _mm256_add_epi32(_mm256_unpacklo_epi32(d2, d3), _mm256_unpackhi_epi32(d2, d3));
                let u = _mm256_add_epi32(
                    _mm256_unpacklo_epi64(t01, t23),
                    _mm256_unpackhi_epi64(t01, t23),
                );
                let isum =
                    _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256::<1>(u));
                let h = [
                    u16::from_le_bytes(x[0][b].d) as i16,
                    u16::from_le_bytes(x[1][b].d) as i16,
                    u16::from_le_bytes(x[2][b].d) as i16,
                    u16::from_le_bytes(x[3][b].d) as i16,
                ];
                let xd = _mm_cvtph_ps(_mm_setr_epi16(h[0], h[1], h[2], h[3], 0, 0, 0, 0));
                let d = _mm_mul_ps(xd, _mm_set1_ps(h2f(yb.d)));
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), d, acc);
            }
            let mut out = [0.0f32; 4];
            // SAFETY: `out` is 4 writable floats; the store has no alignment requirement.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
            out
        }

        /// `v` with the dwords of each 128-bit lane rotated by 0, 1, 2 and 3 places (lane `p` of
        /// rotation `m` holds dword `(p + m) % 4`).
        #[target_feature(enable = $features)]
        #[inline]
        fn rotations(v: __m256i) -> [__m256i; 4] {
            [
                v,
                _mm256_shuffle_epi32::<0x39>(v),
                _mm256_shuffle_epi32::<0x4E>(v),
                _mm256_shuffle_epi32::<0x93>(v),
            ]
        }

        /// Lays out `y`'s blocks for `q4_0_diag8` ([`super::DiagBlock`]) in `out`, returning the
        /// filled part (`y.len()` blocks at most). `out` is left uninitialized by the caller: a
        /// zeroed 18 KB array cost 1% of decode in `memset`.
        #[target_feature(enable = $features)]
        pub(crate) fn diag_prep<'a>(
            y: &[BlockQ8_0],
            out: &'a mut [core::mem::MaybeUninit<super::DiagBlock>],
        ) -> &'a [super::DiagBlock] {
            let n = y.len().min(out.len());
            for (o, yb) in out[..n].iter_mut().zip(y) {
                let qy = load32i(&yb.qs);
                let lo = _mm256_permute2x128_si256::<0x00>(qy, qy);
                let hi = _mm256_permute2x128_si256::<0x11>(qy, qy);
                let p = o.as_mut_ptr();
                let store = |v: __m256i, to: *mut [i32; 8]| {
                    // SAFETY: `to` points at 32 bytes inside `*o`; no alignment requirement.
                    unsafe { _mm256_storeu_si256(to.cast(), v) }
                };
                // SAFETY (the field pointers): `p` points at `*o`, a whole `DiagBlock`;
                // `addr_of_mut!` takes the fields' addresses without reading them.
                let (lo, hi) = (rotations(lo), rotations(hi));
                unsafe {
                    for m in 0..4 {
                        store(lo[m], core::ptr::addr_of_mut!((*p).lo[m]));
                        store(hi[m], core::ptr::addr_of_mut!((*p).hi[m]));
                    }
                    core::ptr::addr_of_mut!((*p).seed)
                        .write(-8 * hsum_epi32($mul_sum_us8(_mm256_set1_epi8(1), qy)));
                    core::ptr::addr_of_mut!((*p).d).write(h2f(yb.d));
                }
            }
            // SAFETY: the loop above wrote every field of `out[..n]`; `MaybeUninit<T>` has
            // `T`'s layout.
            unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<super::DiagBlock>(), n) }
        }

        /// The exact integer dot products of eight Q4_0 rows' blocks with the prepared
        /// activation block `yb`, one row per lane: `a[k]` holds the 16 quant bytes of rows
        /// k | k + 4, and step `m` takes in lane `p` row `p`'s dword `(p + m) % 4` (see
        /// `q4_0_diag8`). Shared with the interleaved kernels (`interleaved/x86.rs`), so both
        /// give the same integers.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) fn q4_0_diag_isum(a: [__m256i; 4], yb: &super::DiagBlock) -> __m256i {
            let m4 = _mm256_set1_epi8(0x0F);
            // Lanes 0..3 of xa = rows 0 1 0 1, of xb = 1 0 1 0, of ya = 2 3 2 3, of
            // yb2 = 3 2 3 2 (and rows + 4 in the high half).
            let xa = _mm256_blend_epi32::<0xAA>(a[0], a[1]);
            let xb = _mm256_blend_epi32::<0x55>(a[0], a[1]);
            let ya = _mm256_blend_epi32::<0xAA>(a[2], a[3]);
            let yb2 = _mm256_blend_epi32::<0x55>(a[2], a[3]);
            let v = [
                _mm256_blend_epi32::<0xCC>(xa, ya),
                _mm256_shuffle_epi32::<0x39>(_mm256_blend_epi32::<0x99>(xb, yb2)),
                _mm256_shuffle_epi32::<0x4E>(_mm256_blend_epi32::<0x33>(xa, ya)),
                _mm256_shuffle_epi32::<0x93>(_mm256_blend_epi32::<0x66>(xb, yb2)),
            ];
            if !$dp32 {
                // The eight pair sums of u8 × i8 products stay in 16 bits (at most
                // 8 · 2 · 15 · 127 = 30480) and are widened once: one `vpmaddwd` and seven
                // 16-bit adds per block instead of eight `vpmaddwd` and 32-bit adds (SmolLM2
                // Q4_0 on Zen 3: prompts +9%, decode +7%).
                let mut s16 = _mm256_setzero_si256();
                for m in 0..4 {
                    let lo = _mm256_and_si256(v[m], m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v[m]), m4);
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, load8_epi32(&yb.lo[m])));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, load8_epi32(&yb.hi[m])));
                }
                let s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
                return _mm256_add_epi32(_mm256_set1_epi32(yb.seed), s32);
            }
            let mut dot = [_mm256_set1_epi32(yb.seed), _mm256_setzero_si256()];
            for m in 0..4 {
                let lo = _mm256_and_si256(v[m], m4);
                // With 32-bit dot products the high nibbles can stay in place (16 times
                // the products, divided out exactly below): one shift less per vector.
                let hi = if $dp32 {
                    _mm256_andnot_si256(m4, v[m])
                } else {
                    _mm256_and_si256(_mm256_srli_epi16::<4>(v[m]), m4)
                };
                dot[0] = $dp_us8(dot[0], lo, load8_epi32(&yb.lo[m]));
                dot[1] = $dp_us8(dot[1], hi, load8_epi32(&yb.hi[m]));
            }
            let hi = if $dp32 {
                _mm256_srai_epi32::<4>(dot[1])
            } else {
                dot[1]
            };
            _mm256_add_epi32(dot[0], hi)
        }

        /// Eight Q4_0 rows × prepared activation blocks in the blockwise order with one row per
        /// lane (rows k | k + 4 in the two halves), continuing from `acc0`. Instead of
        /// transposing the rows' quant dwords (eight shuffles), step `m` takes in lane `p` row
        /// `p`'s dword `(p + m) % 4`: two blends pair the rows, one more picks the diagonal and
        /// one in-lane rotation lines it up, while the activation's matching dwords were
        /// rotated once per product ([`super::DiagBlock`]).
        #[target_feature(enable = $features)]
        fn q4_0_diag8(x: [&[BlockQ4_0]; 8], y: &[super::DiagBlock], acc0: [f32; 8]) -> [f32; 8] {
            let nb = x.iter().fold(y.len(), |n, x| n.min(x.len()));
            let mut acc = load_ps(&acc0);
            for b in 0..nb {
                let yb = &y[b];
                for xk in x.iter() {
                    super::prefetch_stream(xk, b);
                }
                let mut a = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    a[k] = _mm256_blend_epi32::<0xF0>(
                        _mm256_castsi128_si256(load16(&x[k][b].qs)),
                        _mm256_broadcastsi128_si256(load16(&x[k + 4][b].qs)),
                    );
                }
                let isum = q4_0_diag_isum(a, yb);
                // The eight scales packed in general registers, two moves to the vector unit:
                // eight word inserts kept the vector ports busy (SmolLM2 Q4_0 decode at one
                // thread +5.7%, two +1.7%, Zen 4).
                let h = |k: usize| u64::from(u16::from_le_bytes(x[k][b].d));
                let four =
                    |k: usize| (h(k) | h(k + 1) << 16 | h(k + 2) << 32 | h(k + 3) << 48) as i64;
                let xd = _mm256_cvtph_ps(_mm_set_epi64x(four(4), four(0)));
                let d = _mm256_mul_ps(xd, _mm256_set1_ps(yb.d));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc);
            }
            let mut out = [0.0f32; 8];
            store_ps(acc, &mut out);
            out
        }

        /// `R` Q4_0 rows × up to 32 prepared activation columns ([`super::ColBlock`]) in the
        /// blockwise order, 8 columns per vector: per (row, block) the 16 quant bytes are split
        /// into eight dwords of four quants, each broadcast against eight columns' matching
        /// dwords, so each column's exact integer dot product builds up in its own lane; then
        /// one `fma(isum, xd · yd, acc)` per lane. Continues from `out[at[r]..at[r] + n]` unless
        /// `first`.
        #[target_feature(enable = $features)]
        fn bw_tile_q4_0_256<const R: usize>(
            x: [&[BlockQ4_0]; R],
            y: [&[super::ColBlock]; 2],
            out: &mut [f32],
            at: [usize; R],
            n: usize,
            first: bool,
        ) {
            let nb = x
                .iter()
                .fold(y[0].len().min(y[1].len()), |n, x| n.min(x.len()));
            let n = n.min(super::BW_COLS);
            let mut t = super::tile_start(out, at, n, first);
            let mut acc = [[_mm256_setzero_ps(); 4]; R];
            for r in 0..R {
                for h in 0..4 {
                    acc[r][h] = load_ps(t[r][8 * h..8 * h + 8].try_into().unwrap_or(&[0.0; 8]));
                }
            }
            for b in 0..nb {
                let mut quads = [[0i32; 8]; R];
                let mut xd = [0.0f32; R];
                for r in 0..R {
                    (quads[r], xd[r]) = q4_0_quads(&x[r][b]);
                }
                for h in 0..4 {
                    let yb = &y[h / 2][b];
                    let lane = 8 * (h % 2);
                    let mut qy = [_mm256_setzero_si256(); 8];
                    for k in 0..8 {
                        qy[k] = load8_epi32(yb.q[k][lane..lane + 8].try_into().unwrap_or(&[0; 8]));
                    }
                    let seed = load8_epi32(yb.seed[lane..lane + 8].try_into().unwrap_or(&[0; 8]));
                    let yd = load_ps(yb.d[lane..lane + 8].try_into().unwrap_or(&[0.0; 8]));
                    for r in 0..R {
                        let dot = if $dp32 {
                            let mut dot = seed;
                            for k in 0..8 {
                                dot = $dp_us8(dot, _mm256_set1_epi32(quads[r][k]), qy[k]);
                            }
                            dot
                        } else {
                            // 16-bit pair sums, widened once (as in `q4_0_diag_isum`).
                            let mut s16 = _mm256_setzero_si256();
                            for k in 0..8 {
                                let p = _mm256_maddubs_epi16(_mm256_set1_epi32(quads[r][k]), qy[k]);
                                s16 = _mm256_add_epi16(s16, p);
                            }
                            _mm256_add_epi32(seed, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)))
                        };
                        let d = _mm256_mul_ps(_mm256_set1_ps(xd[r]), yd);
                        acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, acc[r][h]);
                    }
                }
            }
            for r in 0..R {
                for h in 0..4 {
                    let v = (&mut t[r][8 * h..8 * h + 8]).try_into();
                    store_ps(acc[r][h], v.unwrap_or(&mut [0.0; 8]));
                }
            }
            super::tile_end(&t, out, at, n);
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load8_epi32(v: &[i32; 8]) -> __m256i {
            // SAFETY: `v` is 32 readable bytes; the load has no alignment requirement.
            unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn store_ps(v: __m256, x: &mut [f32; 8]) {
            // SAFETY: `x` is 8 writable floats; the store has no alignment requirement.
            unsafe { _mm256_storeu_ps(x.as_mut_ptr(), v) }
        }

        // ---------------- legacy quants (blocks of 32)

        legacy_rows!(
            $features,
            rows_q4_1,
            BlockQ4_1,
            BlockQ8_1,
            |x| nibbles32(&x.qs),
            $mul_sum_us8,
            $dp_us8,
            0,
            |x| u32::from_le_bytes([x.d[0], x.d[1], x.m[0], x.m[1]]),
            |y| u32::from_le_bytes([y.d[0], y.d[1], y.s[0], y.s[1]]),
            true
        );
        legacy_rows!(
            $features,
            rows_q5_0,
            BlockQ5_0,
            BlockQ8_0,
            |x| _mm256_or_si256(
                nibbles32(&x.qs),
                _mm256_and_si256($bits32(x.qh), _mm256_set1_epi8(0x10)),
            ),
            $mul_sum_us8,
            $dp_us8,
            16,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );
        legacy_rows!(
            $features,
            rows_q5_1,
            BlockQ5_1,
            BlockQ8_1,
            |x| _mm256_or_si256(
                nibbles32(&x.qs),
                _mm256_and_si256($bits32(x.qh), _mm256_set1_epi8(0x10)),
            ),
            $mul_sum_us8,
            $dp_us8,
            0,
            |x| u32::from_le_bytes([x.d[0], x.d[1], x.m[0], x.m[1]]),
            |y| u32::from_le_bytes([y.d[0], y.d[1], y.s[0], y.s[1]]),
            true
        );
        legacy_rows!(
            $features,
            rows_q8_0,
            BlockQ8_0,
            BlockQ8_0,
            |x| load32i(&x.qs),
            mul_sum_i8,
            $dp_us8,
            0,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );
        legacy_rows!(
            $features,
            rows_q8_0u,
            BlockQ8_0,
            BlockQ8_0,
            |x| _mm256_xor_si256(load32i(&x.qs), _mm256_set1_epi8(-128)),
            $mul_sum_us8,
            $dp_us8,
            128,
            |x| u32::from(u16::from_le_bytes(x.d)),
            |y| u32::from(u16::from_le_bytes(y.d)),
            false
        );

        // ---------------- K-quants (super-blocks of 256)

        /// Q4_K / Q5_K scales (low 128 bits, as i16) and mins (high 128 bits), from the 12 packed
        /// bytes (ggml's utmp shuffle).
        #[target_feature(enable = $features)]
        #[inline]
        fn scales_mins_k4(p: &[u8; K_SCALE_SIZE]) -> __m256i {
            const M1: u32 = 0x3f3f_3f3f;
            const M2: u32 = 0x0f0f_0f0f;
            const M3: u32 = 0x0303_0303;
            let u =
                |i: usize| u32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]]);
            let (u0, u1, u2) = (u(0), u(1), u(2));
            let sc_lo = u0 & M1;
            let sc_hi = (u2 & M2) | (((u0 >> 6) & M3) << 4);
            let m_lo = u1 & M1;
            let m_hi = ((u2 >> 4) & M2) | (((u1 >> 6) & M3) << 4);
            let v = _mm_set_epi32(m_hi as i32, m_lo as i32, sc_hi as i32, sc_lo as i32);
            _mm256_cvtepu8_epi16(v)
        }

        /// Σ `mins[g]` · (sum of the 32 activations of group g), from Q8_K's 16-element sums.
        #[target_feature(enable = $features)]
        #[inline]
        fn mins_dot_bsums(mins: __m128i, y: &BlockQ8K) -> i32 {
            let bsums = load32(bytemuck::cast_ref(&y.bsums));
            let pairs = _mm_hadd_epi16(
                _mm256_castsi256_si128(bsums),
                _mm256_extracti128_si256::<1>(bsums),
            );
            hsum_epi32_128(_mm_madd_epi16(mins, pairs))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn hsum_epi32_128(s: __m128i) -> i32 {
            let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
            _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
        }

        /// Element `I` of the eight i16 held (twice) in each 128-bit lane of `v`, in every lane.
        #[target_feature(enable = $features)]
        #[inline]
        fn splat_i16<const I: i32>(v: __m256i) -> __m256i {
            let idx = i16::from_le_bytes([(2 * I) as u8, (2 * I + 1) as u8]);
            _mm256_shuffle_epi8(v, _mm256_set1_epi16(idx))
        }

        /// Two groups of 32 (G and G + 1) of a Q4_K / Q5_K super-block, scaled: `l` and `h` are
        /// their unsigned quants, `sc` the eight scales.
        #[target_feature(enable = $features)]
        #[inline]
        fn k4_groups<const G: i32, const H: i32>(
            l: __m256i,
            h: __m256i,
            q8: &[[i8; 32]; 8],
            sc: __m256i,
        ) -> __m256i {
            let pl = _mm256_maddubs_epi16(l, load32i(&q8[G as usize]));
            let ph = _mm256_maddubs_epi16(h, load32i(&q8[H as usize]));
            let pl = _mm256_madd_epi16(splat_i16::<G>(sc), pl);
            let ph = _mm256_madd_epi16(splat_i16::<H>(sc), ph);
            _mm256_add_epi32(pl, ph)
        }

        /// The scales of a Q4_K / Q5_K super-block as i16 in both lanes, and the min term.
        #[target_feature(enable = $features)]
        #[inline]
        fn k4_setup(packed: &[u8; K_SCALE_SIZE], y: &BlockQ8K) -> (__m256i, i32) {
            let sm = scales_mins_k4(packed);
            let mins = mins_dot_bsums(_mm256_extracti128_si256::<1>(sm), y);
            let sc = _mm256_permute2x128_si256::<0x00>(sm, sm);
            (sc, mins)
        }

        #[target_feature(enable = $features)]
        fn dot_q4_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
            let m4 = _mm256_set1_epi8(0x0F);
            let (a, b) = pairs!(x, y, |x, y, acc| {
                let yd = f32::from_le_bytes(y.d);
                let (sc, mins) = k4_setup(&x.scales, y);
                acc.s -= h2f(x.dmin) * yd * mins as f32;
                let qs: &[[u8; 32]; 4] = bytemuck::cast_ref(&x.qs);
                let q8: &[[i8; 32]; 8] = bytemuck::cast_ref(&y.qs);
                let b0 = load32(&qs[0]);
                let b1 = load32(&qs[1]);
                let b2 = load32(&qs[2]);
                let b3 = load32(&qs[3]);
                let s0 = k4_groups::<0, 1>(_mm256_and_si256(b0, m4), nib_hi(b0, m4), q8, sc);
                let s1 = k4_groups::<2, 3>(_mm256_and_si256(b1, m4), nib_hi(b1, m4), q8, sc);
                let s2 = k4_groups::<4, 5>(_mm256_and_si256(b2, m4), nib_hi(b2, m4), q8, sc);
                let s3 = k4_groups::<6, 7>(_mm256_and_si256(b3, m4), nib_hi(b3, m4), q8, sc);
                let sumi = _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3));
                let d = _mm256_set1_ps(h2f(x.d) * yd);
                acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc.v);
            });
            finish(a, b)
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn nib_hi(b: __m256i, m4: __m256i) -> __m256i {
            _mm256_and_si256(_mm256_srli_epi16::<4>(b), m4)
        }

        /// Bit `G` of each byte of `h`, moved to bit 4.
        #[target_feature(enable = $features)]
        #[inline]
        fn fifth_bit<const G: i32>(h: __m256i) -> __m256i {
            let bit = _mm256_slli_epi16::<4>(_mm256_srli_epi16::<G>(h));
            _mm256_and_si256(bit, _mm256_set1_epi8(0x10))
        }

        #[target_feature(enable = $features)]
        fn dot_q5_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
            let m4 = _mm256_set1_epi8(0x0F);
            let (a, b) = pairs!(x, y, |x, y, acc| {
                let yd = f32::from_le_bytes(y.d);
                let (sc, mins) = k4_setup(&x.scales, y);
                acc.s -= h2f(x.dmin) * yd * mins as f32;
                let qs: &[[u8; 32]; 4] = bytemuck::cast_ref(&x.qs);
                let q8: &[[i8; 32]; 8] = bytemuck::cast_ref(&y.qs);
                let hb = load32(&x.qh);
                let b0 = load32(&qs[0]);
                let b1 = load32(&qs[1]);
                let b2 = load32(&qs[2]);
                let b3 = load32(&qs[3]);
                let l0 = _mm256_or_si256(_mm256_and_si256(b0, m4), fifth_bit::<0>(hb));
                let h0 = _mm256_or_si256(nib_hi(b0, m4), fifth_bit::<1>(hb));
                let l1 = _mm256_or_si256(_mm256_and_si256(b1, m4), fifth_bit::<2>(hb));
                let h1 = _mm256_or_si256(nib_hi(b1, m4), fifth_bit::<3>(hb));
                let l2 = _mm256_or_si256(_mm256_and_si256(b2, m4), fifth_bit::<4>(hb));
                let h2 = _mm256_or_si256(nib_hi(b2, m4), fifth_bit::<5>(hb));
                let l3 = _mm256_or_si256(_mm256_and_si256(b3, m4), fifth_bit::<6>(hb));
                let h3 = _mm256_or_si256(nib_hi(b3, m4), fifth_bit::<7>(hb));
                let s0 = k4_groups::<0, 1>(l0, h0, q8, sc);
                let s1 = k4_groups::<2, 3>(l1, h1, q8, sc);
                let s2 = k4_groups::<4, 5>(l2, h2, q8, sc);
                let s3 = k4_groups::<6, 7>(l3, h3, q8, sc);
                let sumi = _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3));
                let d = _mm256_set1_ps(h2f(x.d) * yd);
                acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc.v);
            });
            finish(a, b)
        }

        /// 32 elements of a Q6_K super-block (unsigned 6-bit `q`) times activations `y`, scaled
        /// by group A (first 16) and group B (last 16) of the eight scales in `sc`.
        #[target_feature(enable = $features)]
        #[inline]
        fn q6_quarter<const A: i32, const B: i32>(
            q: __m256i,
            y: &[i8; 32],
            sc: __m256i,
        ) -> __m256i {
            let p = _mm256_maddubs_epi16(q, load32i(y));
            // maddubs keeps elements 0-15 in the low 128-bit lane and 16-31 in the high one.
            let s = _mm256_blend_epi32::<0xF0>(splat_i16::<A>(sc), splat_i16::<B>(sc));
            _mm256_madd_epi16(s, p)
        }

        /// Bits 2k..2k+2 of each byte of `h`, moved to bits 4-5.
        #[target_feature(enable = $features)]
        #[inline]
        fn q6_high<const K2: i32>(h: __m256i) -> __m256i {
            let two = _mm256_and_si256(_mm256_srli_epi16::<K2>(h), _mm256_set1_epi8(0x03));
            _mm256_slli_epi16::<4>(two)
        }

        /// Half a Q6_K super-block (128 elements).
        #[target_feature(enable = $features)]
        #[inline]
        fn q6_half(ql: &[[u8; 32]; 2], qh: &[u8; 32], q8: &[[i8; 32]; 4], sc: __m256i) -> __m256i {
            let m4 = _mm256_set1_epi8(0x0F);
            let b1 = load32(&ql[0]);
            let b2 = load32(&ql[1]);
            let bh = load32(qh);
            let q0 = _mm256_or_si256(_mm256_and_si256(b1, m4), q6_high::<0>(bh));
            let q1 = _mm256_or_si256(_mm256_and_si256(b2, m4), q6_high::<2>(bh));
            let q2 = _mm256_or_si256(nib_hi(b1, m4), q6_high::<4>(bh));
            let q3 = _mm256_or_si256(nib_hi(b2, m4), q6_high::<6>(bh));
            let s0 = q6_quarter::<0, 1>(q0, &q8[0], sc);
            let s1 = q6_quarter::<2, 3>(q1, &q8[1], sc);
            let s2 = q6_quarter::<4, 5>(q2, &q8[2], sc);
            let s3 = q6_quarter::<6, 7>(q3, &q8[3], sc);
            _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3))
        }

        #[target_feature(enable = $features)]
        fn dot_q6_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
            let (a, b) = pairs!(x, y, |x, y, acc| {
                // Scales as i16: groups 0-7 in both lanes of `sc_lo`, 8-15 in `sc_hi`.
                let s16 = _mm256_cvtepi8_epi16(load16(bytemuck::cast_ref(&x.scales)));
                let sc_lo = _mm256_permute2x128_si256::<0x00>(s16, s16);
                let sc_hi = _mm256_permute2x128_si256::<0x11>(s16, s16);
                // The quants are stored plus 32: take 32 · Σ sc[g] · bsum[g] off at the end.
                let bsums = load32(bytemuck::cast_ref(&y.bsums));
                let off = hsum_epi32(_mm256_madd_epi16(s16, bsums));
                let ql: &[[[u8; 32]; 2]; 2] = bytemuck::cast_ref(&x.ql);
                let qh: &[[u8; 32]; 2] = bytemuck::cast_ref(&x.qh);
                let q8: &[[[i8; 32]; 4]; 2] = bytemuck::cast_ref(&y.qs);
                let sumi = _mm256_add_epi32(
                    q6_half(&ql[0], &qh[0], &q8[0], sc_lo),
                    q6_half(&ql[1], &qh[1], &q8[1], sc_hi),
                );
                let sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * off, 0, 0, 0, 0, 0, 0, 0));
                let d = _mm256_set1_ps(h2f(x.d) * f32::from_le_bytes(y.d));
                acc.v = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc.v);
            });
            finish(a, b)
        }

        // ---------------- float rows

        #[target_feature(enable = $features)]
        #[inline]
        fn load_ps_bytes(b: &[u8; 32]) -> __m256 {
            // SAFETY: `b` is 32 readable bytes; the load has no alignment requirement.
            unsafe { _mm256_loadu_ps(b.as_ptr().cast()) }
        }

        /// Prefetches the bytes `row` on from `chunk` (the same place in the next row).
        #[target_feature(enable = $features)]
        #[inline]
        fn prefetch_next_row<const N: usize>(chunk: &[u8; N], row: usize) {
            let at = chunk.as_ptr().cast::<i8>().wrapping_add(row);
            for line in (0..N).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line));
            }
        }

        /// f32 · f32 in four 8-lane accumulators (ggml's SIMD order of work, not its scalar one).
        #[target_feature(enable = $features)]
        fn dot_f32(x: &[u8], y: &[u8]) -> f32 {
            let (x4, xt) = x.as_chunks::<128>();
            let (y4, yt) = y.as_chunks::<128>();
            let mut acc = [_mm256_setzero_ps(); 4];
            for (xb, yb) in x4.iter().zip(y4) {
                prefetch_next_row(xb, x.len());
                let xs: &[[u8; 32]; 4] = bytemuck::cast_ref(xb);
                let ys: &[[u8; 32]; 4] = bytemuck::cast_ref(yb);
                for ((a, xv), yv) in acc.iter_mut().zip(xs).zip(ys) {
                    *a = _mm256_fmadd_ps(load_ps_bytes(xv), load_ps_bytes(yv), *a);
                }
            }
            let (x1, xt) = xt.as_chunks::<32>();
            let (y1, yt) = yt.as_chunks::<32>();
            for (xv, yv) in x1.iter().zip(y1) {
                acc[0] = _mm256_fmadd_ps(load_ps_bytes(xv), load_ps_bytes(yv), acc[0]);
            }
            let mut tail = 0.0f32;
            for (a, b) in xt.as_chunks::<4>().0.iter().zip(yt.as_chunks::<4>().0) {
                tail += f32::from_le_bytes(*a) * f32::from_le_bytes(*b);
            }
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            hsum_ps(s) + tail
        }

        /// Eight f16 (or bf16) values widened to f32.
        #[target_feature(enable = $features)]
        #[inline]
        fn widen8<const BF16: bool>(b: &[u8; 16]) -> __m256 {
            let v = load16(b);
            if BF16 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v)))
            } else {
                _mm256_cvtph_ps(v)
            }
        }

        /// f16 · f16 (or bf16 · bf16) widened to f32 lanes, as ggml's SIMD path.
        #[target_feature(enable = $features)]
        fn dot_half<const BF16: bool>(x: &[u8], y: &[u8]) -> f32 {
            let (x4, xt) = x.as_chunks::<64>();
            let (y4, yt) = y.as_chunks::<64>();
            let mut acc = [_mm256_setzero_ps(); 4];
            for (xb, yb) in x4.iter().zip(y4) {
                prefetch_next_row(xb, x.len());
                let xs: &[[u8; 16]; 4] = bytemuck::cast_ref(xb);
                let ys: &[[u8; 16]; 4] = bytemuck::cast_ref(yb);
                for ((a, xv), yv) in acc.iter_mut().zip(xs).zip(ys) {
                    *a = _mm256_fmadd_ps(widen8::<BF16>(xv), widen8::<BF16>(yv), *a);
                }
            }
            let (x1, xt) = xt.as_chunks::<16>();
            let (y1, yt) = yt.as_chunks::<16>();
            for (xv, yv) in x1.iter().zip(y1) {
                acc[0] = _mm256_fmadd_ps(widen8::<BF16>(xv), widen8::<BF16>(yv), acc[0]);
            }
            let mut tail = 0.0f32;
            for (&a, &b) in xt.as_chunks::<2>().0.iter().zip(yt.as_chunks::<2>().0) {
                tail += if BF16 {
                    bf16_to_f32(a) * bf16_to_f32(b)
                } else {
                    f16_to_f32(a) * f16_to_f32(b)
                };
            }
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            hsum_ps(s) + tail
        }

        // ---------------- activation quantizers

        /// roundf (halfway away from zero), exactly: truncate, then step away from zero when
        /// the (exact) remainder is at least one half.
        #[target_feature(enable = $features)]
        #[inline]
        fn round_away(v: __m256) -> __m256 {
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
            let sign = _mm256_set1_ps(-0.0);
            let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
            let half = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
            let step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0));
            _mm256_add_ps(t, _mm256_and_ps(half, step))
        }

        /// Packs 4 × 8 i32 (each within i8) into 32 bytes in element order.
        #[target_feature(enable = $features)]
        #[inline]
        fn pack_i8(i: [__m256i; 4]) -> __m256i {
            let a = _mm256_packs_epi32(i[0], i[1]);
            let b = _mm256_packs_epi32(i[2], i[3]);
            let p = _mm256_packs_epi16(a, b);
            _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        }

        /// One Q8_0/Q8_1 block: writes the quants, returns (d, sum of quants), or `None` if the
        /// block holds NaN or infinity.
        #[target_feature(enable = $features)]
        #[inline]
        fn quantize_q8_block(x: &[f32], qs: &mut [i8; QK]) -> Option<(f32, i32)> {
            let x: &[f32; QK] = x.try_into().ok()?;
            let x: &[[f32; 8]; 4] = bytemuck::cast_ref(x);
            let v = [
                load_ps(&x[0]),
                load_ps(&x[1]),
                load_ps(&x[2]),
                load_ps(&x[3]),
            ];
            let sign = _mm256_set1_ps(-0.0);
            let mut m = _mm256_andnot_ps(sign, v[0]);
            for v in &v[1..] {
                // max(|v|, m) keeps m where |v| is NaN (caught below through the sum).
                m = _mm256_max_ps(_mm256_andnot_ps(sign, *v), m);
            }
            let amax = hmax_ps(m);
            // NaN anywhere makes x·0 NaN; infinity makes amax infinite.
            let sum = _mm256_add_ps(_mm256_add_ps(v[0], v[1]), _mm256_add_ps(v[2], v[3]));
            let any_nan = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(sum, sum)) != 0;
            if any_nan || !amax.is_finite() {
                return None;
            }
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let idv = _mm256_set1_ps(id);
            let q = [
                _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[0], idv))),
                _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[1], idv))),
                _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[2], idv))),
                _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[3], idv))),
            ];
            let sum = hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            store32i(pack_i8(q), qs);
            Some((d, sum))
        }

        /// The totals of eight vectors of i32, in order.
        #[target_feature(enable = $features)]
        #[inline]
        fn group_sums(g: &[__m256i]) -> __m256i {
            let t0 = _mm256_hadd_epi32(g[0], g[1]);
            let t1 = _mm256_hadd_epi32(g[2], g[3]);
            let t2 = _mm256_hadd_epi32(g[4], g[5]);
            let t3 = _mm256_hadd_epi32(g[6], g[7]);
            let u0 = _mm256_hadd_epi32(t0, t1);
            let u1 = _mm256_hadd_epi32(t2, t3);
            _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(u0, u1),
                _mm256_permute2x128_si256::<0x31>(u0, u1),
            )
        }

        /// One Q8_K super-block; `false` if it holds NaN or infinity (left to the reference code).
        #[target_feature(enable = $features)]
        #[inline]
        fn quantize_q8_k_block(x: &[f32], y: &mut BlockQ8K) -> bool {
            let Ok(x) = <&[f32; QK_K]>::try_from(x) else {
                return false;
            };
            let xv: &[[f32; 8]; 32] = bytemuck::cast_ref(x);
            let mut hi = load_ps(&xv[0]);
            let mut lo = hi;
            let mut sum = hi;
            for v in &xv[1..] {
                let v = load_ps(v);
                hi = _mm256_max_ps(v, hi);
                lo = _mm256_min_ps(v, lo);
                sum = _mm256_add_ps(sum, v);
            }
            let (hi, lo) = (hmax_ps(hi), hmin_ps(lo));
            if !(hi.is_finite() && lo.is_finite() && hsum_ps(sum).is_finite()) {
                // A NaN is ignored by max/min but not by the sum; an overflowing sum is only a
                // false alarm that the reference code handles.
                return false;
            }
            // The reference takes the first value of largest magnitude.
            let max = if hi > -lo {
                hi
            } else if -lo > hi {
                lo
            } else {
                let amax = hi;
                x.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0)
            };
            if max == 0.0 {
                *y = bytemuck::Zeroable::zeroed();
                return true;
            }
            let iscale = -127.0 / max;
            let iv = _mm256_set1_ps(iscale);
            let qs: &mut [[i8; 32]; 8] = bytemuck::cast_mut(&mut y.qs);
            let mut group = [_mm256_setzero_si256(); 16];
            for (k, (q, x)) in qs.iter_mut().zip(xv.chunks_exact(4)).enumerate() {
                // Round to nearest even, as the reference's nearest_int.
                let i = [
                    _mm256_cvtps_epi32(_mm256_mul_ps(iv, load_ps(&x[0]))),
                    _mm256_cvtps_epi32(_mm256_mul_ps(iv, load_ps(&x[1]))),
                    _mm256_cvtps_epi32(_mm256_mul_ps(iv, load_ps(&x[2]))),
                    _mm256_cvtps_epi32(_mm256_mul_ps(iv, load_ps(&x[3]))),
                ];
                group[2 * k] = _mm256_add_epi32(i[0], i[1]);
                group[2 * k + 1] = _mm256_add_epi32(i[2], i[3]);
                store32i(pack_i8(i), q);
            }
            let (g0, g1) = group.split_at(8);
            let (a, b) = (group_sums(g0), group_sums(g1));
            let s16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
            store32i(s16, bytemuck::cast_mut(&mut y.bsums));
            y.d = (1.0 / iscale).to_le_bytes();
            true
        }
    };
}

pub(super) mod avx2 {
    avx2_family!(
        "avx2,fma,f16c",
        super::mul_sum_us8_avx2,
        super::dp_us8_avx2,
        super::bits32_avx2,
        false,
        2
    );
    pub(super) use matmul256 as matmul;
    pub(super) use matvec256 as matvec;
}

pub(super) mod avxvnni {
    avx2_family!(
        "avx2,fma,f16c,avxvnni",
        super::mul_sum_us8_avxvnni,
        super::dp_us8_avxvnni,
        super::bits32_avx2,
        true,
        2
    );
    pub(super) use matmul256 as matmul;
    pub(super) use matvec256 as matvec;
}

pub(super) mod avx512 {
    avx2_family!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl",
        super::mul_sum_us8_avx2,
        super::dp_us8_avx2,
        super::bits32_avx512,
        false,
        4
    );
    avx512_family!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl",
        super::mul_sum_us8_512,
        super::mul_sum_us8_avx2,
        super::dp_us8_512,
        false
    );
}

pub(super) mod avx512vnni {
    avx2_family!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni",
        super::mul_sum_us8_avx512vnni,
        super::dp_us8_avx512vnni,
        super::bits32_avx512,
        true,
        4
    );
    avx512_family!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni",
        super::mul_sum_us8_512_vnni,
        super::mul_sum_us8_avx512vnni,
        super::dp_us8_512_vnni,
        true
    );
}
