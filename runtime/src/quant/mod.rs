//! Tensor types and their kernels, with ggml's byte layouts and numerics.
//!
//! Weights stay in their GGUF bytes; activations are quantized per token to the weight type's
//! [`GgmlType::vec_dot_type`] with [`quantize_row`], then [`matvec`] takes dot products block by block
//! exactly as ggml's CPU reference does, so logits can be compared with llama.cpp token by token.
//!
//! Threads split a matrix by rows: [`matvec_rows`] computes any contiguous range of output rows.
//!
//! The dot products and activation quantizers run SIMD kernels chosen at run time ([`isa`]); those
//! agree with ggml's scalar order within float rounding, and the activation bytes are identical.

pub mod blocks;
mod kernels;
pub mod layout;
mod quantize;

pub(crate) use kernels::F16Head;
pub use kernels::{prefetch_read, Isa};

use blocks::*;
use core::fmt;
use core::mem::size_of;

/// A ggml tensor type, numbered as in ggml.h and GGUF files.
// ggml's spelling (Q4_K, not Q4K), which is also how the types appear in GGUF tools.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// 4-bit, blocks of 32, one scale.
    Q4_0,
    /// 4-bit, blocks of 32, scale and min.
    Q4_1,
    /// 5-bit, blocks of 32, one scale.
    Q5_0,
    /// 5-bit, blocks of 32, scale and min.
    Q5_1,
    /// 8-bit, blocks of 32, one scale.
    Q8_0,
    /// 8-bit, blocks of 32, scale and scaled sum (activations only).
    Q8_1,
    /// 2-bit K-quant, super-blocks of 256.
    Q2_K,
    /// 3-bit K-quant, super-blocks of 256.
    Q3_K,
    /// 4-bit K-quant, super-blocks of 256.
    Q4_K,
    /// 5-bit K-quant, super-blocks of 256.
    Q5_K,
    /// 6-bit K-quant, super-blocks of 256.
    Q6_K,
    /// 8-bit K-quant with an f32 scale and group sums (activations only).
    Q8_K,
    /// bfloat16.
    BF16,
    /// edgelm: Q4_0 with rows interleaved by four ([`layout`]).
    Q4_0_X4,
    /// edgelm: Q4_1 with rows interleaved by four ([`layout`]).
    Q4_1_X4,
    /// edgelm: Q8_0 with rows interleaved by four ([`layout`]).
    Q8_0_X4,
}

impl GgmlType {
    /// Every type this module knows, in ggml id order.
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::BF16,
    ];

    /// edgelm's row-interleaved types (ids in [`layout::ID_BASE`]'s range, above ggml's).
    pub const INTERLEAVED: [GgmlType; 3] =
        [GgmlType::Q4_0_X4, GgmlType::Q4_1_X4, GgmlType::Q8_0_X4];

    /// The type with ggml id `v` (or an edgelm interleaved id), or `None` for ids this module
    /// does not handle.
    pub fn from_u32(v: u32) -> Option<GgmlType> {
        Self::ALL
            .into_iter()
            .chain(Self::INTERLEAVED)
            .find(|t| t.id() == v)
    }

    /// Rows interleaved per group: 1 for ggml's own types.
    pub const fn interleave(self) -> usize {
        match self {
            GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => 4,
            _ => 1,
        }
    }

    /// The ggml type whose blocks an interleaved type holds (the type itself for ggml's types).
    pub const fn base(self) -> GgmlType {
        match self {
            GgmlType::Q4_0_X4 => GgmlType::Q4_0,
            GgmlType::Q4_1_X4 => GgmlType::Q4_1,
            GgmlType::Q8_0_X4 => GgmlType::Q8_0,
            t => t,
        }
    }

    /// The ggml type id (`enum ggml_type`).
    pub const fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::BF16 => 30,
            // layout::ID_BASE + the base type's id.
            GgmlType::Q4_0_X4 => 1026,
            GgmlType::Q4_1_X4 => 1027,
            GgmlType::Q8_0_X4 => 1032,
        }
    }

    /// The type's name as GGUF tools print it ("F32", "Q4_K", ...).
    pub const fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q8_1 => "Q8_1",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0_X4 => "Q4_0_X4",
            GgmlType::Q4_1_X4 => "Q4_1_X4",
            GgmlType::Q8_0_X4 => "Q8_0_X4",
        }
    }

    /// Elements per block (of one row, for interleaved types).
    pub const fn block_size(self) -> usize {
        match self {
            GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => self.base().block_size(),
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q8_1 => QK,
            GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q8_K => QK_K,
        }
    }

    /// Bytes per block (of one row, for interleaved types: a tensor's size is the same as its
    /// base type's, so every size and bounds check holds unchanged).
    pub const fn block_bytes(self) -> usize {
        match self {
            GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => self.base().block_bytes(),
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => size_of::<BlockQ4_0>(),
            GgmlType::Q4_1 => size_of::<BlockQ4_1>(),
            GgmlType::Q5_0 => size_of::<BlockQ5_0>(),
            GgmlType::Q5_1 => size_of::<BlockQ5_1>(),
            GgmlType::Q8_0 => size_of::<BlockQ8_0>(),
            GgmlType::Q8_1 => size_of::<BlockQ8_1>(),
            GgmlType::Q2_K => size_of::<BlockQ2K>(),
            GgmlType::Q3_K => size_of::<BlockQ3K>(),
            GgmlType::Q4_K => size_of::<BlockQ4K>(),
            GgmlType::Q5_K => size_of::<BlockQ5K>(),
            GgmlType::Q6_K => size_of::<BlockQ6K>(),
            GgmlType::Q8_K => size_of::<BlockQ8K>(),
        }
    }

    /// Bytes of a row of `n` elements; `None` if `n` is not a whole number of blocks or overflows.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.block_bytes())
    }

    /// The activation type ggml pairs with this weight type in dot products.
    pub const fn vec_dot_type(self) -> GgmlType {
        match self {
            GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => self.base().vec_dot_type(),
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => GgmlType::Q8_1,
            GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q8_K => GgmlType::Q8_K,
            GgmlType::F32 => GgmlType::F32,
            GgmlType::F16 => GgmlType::F16,
            GgmlType::BF16 => GgmlType::BF16,
        }
    }

    /// Whether weights of this type can be used in [`vec_dot`] / [`matvec`] (Q8_1 and Q8_K are
    /// activation formats; ggml has no dot product with them as weights either).
    pub const fn is_supported(self) -> bool {
        !matches!(self, GgmlType::Q8_1 | GgmlType::Q8_K)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a quantize or dequantize call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantError {
    /// A buffer has the wrong length (in bytes for quantized data, in elements for f32).
    LengthMismatch {
        /// The length the other argument implies.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The operation is not implemented for this type.
    Unsupported(GgmlType),
    /// The element count is not a multiple of the type's block size.
    NotBlockMultiple {
        /// Elements given.
        n: usize,
        /// Elements per block.
        block: usize,
    },
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QuantError::LengthMismatch { expected, got } => {
                write!(f, "buffer length {got}, expected {expected}")
            }
            QuantError::Unsupported(t) => write!(f, "tensor type {t} is not supported here"),
            QuantError::NotBlockMultiple { n, block } => {
                write!(
                    f,
                    "{n} elements is not a multiple of the block size {block}"
                )
            }
        }
    }
}

/// Checks that `got` bytes hold exactly `n` elements of `ty`.
fn check_row(ty: GgmlType, n: usize, got: usize) -> Result<(), QuantError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(QuantError::NotBlockMultiple { n, block });
    }
    // Cannot overflow for a real f32 buffer (at most 4 bytes per element); usize::MAX if it did.
    let expected = ty.row_bytes(n).unwrap_or(usize::MAX);
    if got != expected {
        return Err(QuantError::LengthMismatch { expected, got });
    }
    Ok(())
}

/// Dequantize `dst.len()` elements from `src` (exactly row_bytes(dst.len()) bytes).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_row(ty, dst.len(), src.len())?;
    use kernels::scalar as k;
    let (x, y) = (src, dst);
    match ty {
        GgmlType::F32 => k::dequantize_f32(as_blocks(x), y),
        GgmlType::F16 => k::dequantize_f16(as_blocks(x), y),
        GgmlType::BF16 => k::dequantize_bf16(as_blocks(x), y),
        GgmlType::Q4_0 => k::dequantize_q4_0(as_blocks(x), y),
        GgmlType::Q4_1 => k::dequantize_q4_1(as_blocks(x), y),
        GgmlType::Q5_0 => k::dequantize_q5_0(as_blocks(x), y),
        GgmlType::Q5_1 => k::dequantize_q5_1(as_blocks(x), y),
        GgmlType::Q8_0 => k::dequantize_q8_0(as_blocks(x), y),
        GgmlType::Q8_1 => k::dequantize_q8_1(as_blocks(x), y),
        GgmlType::Q2_K => k::dequantize_q2_k(as_blocks(x), y),
        GgmlType::Q3_K => k::dequantize_q3_k(as_blocks(x), y),
        GgmlType::Q4_K => k::dequantize_q4_k(as_blocks(x), y),
        GgmlType::Q5_K => k::dequantize_q5_k(as_blocks(x), y),
        GgmlType::Q6_K => k::dequantize_q6_k(as_blocks(x), y),
        GgmlType::Q8_K => k::dequantize_q8_k(as_blocks(x), y),
        // One row of an interleaved tensor is not contiguous: see `layout::deinterleave`.
        GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => {
            return Err(QuantError::Unsupported(ty))
        }
    }
    Ok(())
}

/// Quantize `src` into `dst` (exactly `ty.row_bytes(src.len())` bytes) with ggml's reference
/// quantizer (`quantize_row_*_ref`, no importance matrix).
///
/// The bytes equal ggml's for every type, K-quants included, when ggml's C code is compiled without
/// fused multiply-add contraction (`-ffp-contract=off`, or a target without FMA); a `-march=native`
/// build may contract and then differ now and then in the K-quant scale searches.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    quantize_row_with(isa(), ty, src, dst)
}

/// Quantize an activation row for a dot product the way ggml's CPU backend does at run time:
/// Q8_0 / Q8_1 with multiplier `127 / amax` and round-half-to-even (its SIMD quantizers), where
/// the reference quantizer above multiplies by `1 / d` and rounds half away from zero. The two
/// differ in a few quants per row, and small models turn that into different tokens.
pub fn quantize_act_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    quantize_act_row_with(isa(), ty, src, dst)
}

/// [`quantize_act_row`] with the kernels of `isa` (the portable code where this CPU or level has
/// none); for tests that compare levels. The bytes are the same at every level.
#[doc(hidden)]
pub fn quantize_act_row_with(
    isa: Isa,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), QuantError> {
    check_row(ty, src.len(), dst.len())?;
    match ty {
        GgmlType::Q8_0 | GgmlType::Q8_1 if kernels::quantize_act(isa, ty, src, dst) => {}
        GgmlType::Q8_0 => quantize::quantize_q8_0_act(src, as_blocks_mut(dst)),
        GgmlType::Q8_1 => quantize::quantize_q8_1_act(src, as_blocks_mut(dst)),
        _ => return quantize_row(ty, src, dst),
    }
    Ok(())
}

/// [`quantize_row`] with the kernels of `isa` (the portable ones where this CPU lacks it); for tests
/// and benchmarks that compare levels. The bytes are the same at every level.
#[doc(hidden)]
pub fn quantize_row_with(
    isa: Isa,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), QuantError> {
    check_row(ty, src.len(), dst.len())?;
    if matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K) {
        kernels::quantize_row(isa, ty, src, dst);
        return Ok(());
    }
    use quantize as q;
    let (x, y) = (src, dst);
    match ty {
        GgmlType::F32 => q::quantize_f32(x, as_blocks_mut(y)),
        GgmlType::F16 => q::quantize_f16(x, as_blocks_mut(y)),
        GgmlType::BF16 => q::quantize_bf16(x, as_blocks_mut(y)),
        GgmlType::Q4_0 => q::quantize_q4_0(x, as_blocks_mut(y)),
        GgmlType::Q4_1 => q::quantize_q4_1(x, as_blocks_mut(y)),
        GgmlType::Q5_0 => q::quantize_q5_0(x, as_blocks_mut(y)),
        GgmlType::Q5_1 => q::quantize_q5_1(x, as_blocks_mut(y)),
        GgmlType::Q8_0 => q::quantize_q8_0(x, as_blocks_mut(y)),
        GgmlType::Q8_1 => q::quantize_q8_1(x, as_blocks_mut(y)),
        GgmlType::Q2_K => q::quantize_q2_k(x, as_blocks_mut(y)),
        GgmlType::Q3_K => q::quantize_q3_k(x, as_blocks_mut(y)),
        GgmlType::Q4_K => q::quantize_q4_k(x, as_blocks_mut(y)),
        GgmlType::Q5_K => q::quantize_q5_k(x, as_blocks_mut(y)),
        GgmlType::Q6_K => q::quantize_q6_k(x, as_blocks_mut(y)),
        GgmlType::Q8_K => q::quantize_q8_k(x, as_blocks_mut(y)),
        // Quantize rows as the base type, then `layout::interleave` them.
        GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => {
            return Err(QuantError::Unsupported(ty))
        }
    }
    Ok(())
}

/// Dot product of one weight row (type `ty`, `n` elements) with an activation row already quantized
/// as `ty.vec_dot_type()`.
///
/// Lengths are the caller's invariant (checked at model load): debug builds assert them; release
/// builds never panic and give NaN for rows that are missing or for unsupported types.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> f32 {
    let mut out = [0.0f32];
    kernels::matvec(isa(), ty, n, w, act, &mut out);
    out[0]
}

/// `out[r]` = dot(row r of `w`, `act`) for r in 0..out.len(); `w` holds out.len() rows of `n`
/// elements each, contiguous. Same invariants as [`vec_dot`].
pub fn matvec(ty: GgmlType, n: usize, w: &[u8], act: &[u8], out: &mut [f32]) {
    kernels::matvec(isa(), ty, n, w, act, out);
}

/// [`matvec`] with the kernels of `isa` (the portable ones where this CPU lacks it); for tests and
/// benchmarks that compare levels. [`Isa::Scalar`] is bit-exact with ggml's scalar code.
#[doc(hidden)]
pub fn matvec_with(isa: Isa, ty: GgmlType, n: usize, w: &[u8], act: &[u8], out: &mut [f32]) {
    kernels::matvec(isa, ty, n, w, act, out);
}

/// The blockwise reference (per block the exact integer dot product, then one fused multiply-add
/// of it with xd · yd) that every SIMD level runs for the types that take it (Q4_0); `None` for
/// the other types, whose SIMD levels keep ggml's order. For tests that pin the SIMD bits.
#[doc(hidden)]
pub fn blockwise_dot(ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Option<f32> {
    let (w_row, a_row) = (ty.row_bytes(n)?, ty.vec_dot_type().row_bytes(n)?);
    let (w, act) = (w.get(..w_row)?, act.get(..a_row)?);
    match ty {
        GgmlType::Q4_0 => Some(kernels::scalar::dot_q4_0_blockwise(
            blocks::as_blocks(w),
            blocks::as_blocks(act),
        )),
        _ => None,
    }
}

/// `y += s · x` for a row `x` of Q8_0 blocks (`y.len()` = 32 × `x.len()`), each element one fused
/// multiply-add: ggml_vec_mad_f32 over a dequantized row, as its flash attention accumulates
/// values from a Q8_0 cache. The same bits at every kernel level.
pub fn mad_q8_0(y: &mut [f32], x: &[BlockQ8_0], s: f32) {
    kernels::mad_q8_0(isa(), y, x, s);
}

/// [`mad_q8_0`] with the kernels of `isa` (the portable ones where this CPU lacks it); for tests
/// and benchmarks that compare levels.
#[doc(hidden)]
pub fn mad_q8_0_with(isa: Isa, y: &mut [f32], x: &[BlockQ8_0], s: f32) {
    kernels::mad_q8_0(isa, y, x, s);
}

/// Matrix × matrix: `out[r * cols + c]` = dot(row r of `w`, column c of `act`), where `act` holds
/// `cols` activation rows (each quantized as [`matvec`] takes them) one after the other and `w`
/// holds `out.len() / cols` rows. Each column's results are bit-identical to [`matvec`] of that
/// column: batched prompt processing gives the same logits as token by token.
pub fn matmul(ty: GgmlType, n: usize, w: &[u8], act: &[u8], cols: usize, out: &mut [f32]) {
    kernels::matmul(isa(), ty, n, w, act, cols, out);
}

/// [`matmul`] with the kernels of `isa`; for tests and benchmarks that compare levels.
#[doc(hidden)]
pub fn matmul_with(
    isa: Isa,
    ty: GgmlType,
    n: usize,
    w: &[u8],
    act: &[u8],
    cols: usize,
    out: &mut [f32],
) {
    kernels::matmul(isa, ty, n, w, act, cols, out);
}

/// [`matmul`] for rows `first_row..first_row + out.len() / cols` of the whole matrix `w`, so
/// threads can each take a range of rows.
pub fn matmul_rows(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    act: &[u8],
    cols: usize,
    first_row: usize,
    out: &mut [f32],
) {
    let (Some(row), Some(rows)) = (ty.row_bytes(n), out.len().checked_div(cols)) else {
        out.fill(f32::NAN);
        return;
    };
    let start = first_row.saturating_mul(row).min(w.len());
    let end = start.saturating_add(row.saturating_mul(rows)).min(w.len());
    kernels::matmul(isa(), ty, n, &w[start..end], act, cols, out);
}

/// One head of attention over an f16 cache with the SIMD code of the current level (`isa`, for
/// tests, picks another); `false`, nothing done, where the level has none. Bit-identical to the
/// portable loop in `model::ops::attention`.
pub(crate) fn attention_f16_head(
    isa: Option<Isa>,
    h: &kernels::F16Head<'_>,
    acc: &mut [f32],
) -> bool {
    kernels::attention_f16_head(isa.unwrap_or_else(self::isa), h, acc)
}

/// SiLU(gate) · up over the whole 16-element groups with the SIMD code of the current level
/// (`isa`, for tests, picks another); `false`, nothing done, where the level has none.
pub(crate) fn swiglu16(isa: Option<Isa>, gate: &mut [f32], up: &[f32]) -> bool {
    kernels::swiglu16(isa.unwrap_or_else(self::isa), gate, up)
}

/// The kernel level in use: the best this CPU has, detected once.
pub fn isa() -> Isa {
    kernels::best()
}

/// Makes every kernel call use `isa` instead of the best level (to compare levels on a whole
/// model); `false`, and no change, when this CPU lacks it.
pub fn set_isa(isa: Isa) -> bool {
    kernels::set_best(isa)
}

/// [`matvec`] for rows `first_row..first_row + out.len()` of the whole matrix `w`, so threads can
/// each take a range of rows of one weight tensor.
pub fn matvec_rows(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    act: &[u8],
    first_row: usize,
    out: &mut [f32],
) {
    let Some(row) = ty.row_bytes(n) else {
        debug_assert!(false, "{n} elements is not a whole number of {ty} blocks");
        out.fill(f32::NAN);
        return;
    };
    // An interleaved group is only whole from its first row.
    if !first_row.is_multiple_of(ty.interleave()) {
        debug_assert!(false, "row {first_row} does not start a {ty} group");
        out.fill(f32::NAN);
        return;
    }
    let start = first_row.saturating_mul(row).min(w.len());
    let end = start
        .saturating_add(row.saturating_mul(out.len()))
        .min(w.len());
    kernels::matvec(isa(), ty, n, &w[start..end], act, out);
}
