//! Row-interleaved layouts: weights stored the way a target's kernels read them, used in place.
//!
//! An interleaved tensor holds its rows in groups of four (rows 4g..4g+3), one group after the
//! other. Inside a group, block column b of the four rows is one "x4 block": the four rows' f16
//! scales side by side (then their f16 mins, for Q4_1), then the four rows' quants, row by row
//! ([`BlockQ4_0x4`], [`BlockQ4_1x4`], [`BlockQ8_0x4`]). A kernel then reads one stream per group
//! and computes four dot products per activation block it loads, converting four scales at once.
//! A group takes exactly the bytes of its four plain rows, so a tensor's size, offsets and bounds
//! checks are those of its base type; only its row count must be a multiple of four.
//!
//! The types get ids above ggml's ([`ID_BASE`] + the base type's id: Q4_0_X4 = 1026,
//! Q4_1_X4 = 1027, Q8_0_X4 = 1032), so llama.cpp and older readers refuse such files ("invalid
//! ggml type") instead of misreading them; `edgelm repack --layout none` gives the plain file back
//! byte for byte. A file using them declares each id under [`KEY_TYPE_IDS`], with its base type
//! under [`KEY_BASE_TYPES`] and its interleave under [`KEY_INTERLEAVE`] (the GGUF reader checks
//! them), and the target it was made for under [`KEY_TARGET`].

use super::blocks::{as_blocks, as_blocks_mut};
use super::{GgmlType, QuantError};
use bytemuck::{Pod, Zeroable};
use core::fmt;

/// edgelm's interleaved type ids are this plus the base type's ggml id.
pub const ID_BASE: u32 = 1024;
/// Metadata key: the target the file's layout was made for (a [`Target`] name).
pub const KEY_TARGET: &str = "edgelm.layout";
/// Metadata key: u32 array, the interleaved type ids the file uses.
pub const KEY_TYPE_IDS: &str = "edgelm.layout.type_ids";
/// Metadata key: u32 array, the ggml id of each of those types' base type.
pub const KEY_BASE_TYPES: &str = "edgelm.layout.base_types";
/// Metadata key: u32 array, the rows interleaved per group for each of those types.
pub const KEY_INTERLEAVE: &str = "edgelm.layout.interleave";

/// Block column b of four Q4_0 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0x4 {
    /// The rows' scales (f16).
    pub d: [[u8; 2]; 4],
    /// The rows' nibbles, as in [`super::blocks::BlockQ4_0`].
    pub qs: [[u8; 16]; 4],
}

/// Block column b of four Q4_1 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1x4 {
    /// The rows' scales (f16).
    pub d: [[u8; 2]; 4],
    /// The rows' mins (f16).
    pub m: [[u8; 2]; 4],
    /// The rows' nibbles, as in [`super::blocks::BlockQ4_1`].
    pub qs: [[u8; 16]; 4],
}

/// Block column b of four Q8_0 rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0x4 {
    /// The rows' scales (f16).
    pub d: [[u8; 2]; 4],
    /// The rows' quants.
    pub qs: [[i8; 32]; 4],
}

const _: () = assert!(core::mem::size_of::<BlockQ4_0x4>() == 4 * 18);
const _: () = assert!(core::mem::size_of::<BlockQ4_1x4>() == 4 * 20);
const _: () = assert!(core::mem::size_of::<BlockQ8_0x4>() == 4 * 34);

/// What a layout is tuned for. Several targets share one interleave today (rows by four: the
/// AVX2 / AVX-512 and NEON / dotprod / i8mm kernels all compute four rows per activation load);
/// the name is recorded so a file says what it was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// Plain GGUF, as llama.cpp writes it.
    None,
    /// x86-64 with AVX2.
    X86Avx2,
    /// x86-64 with AVX-512 (and VNNI).
    X86Avx512,
    /// aarch64 Advanced SIMD.
    ArmNeon,
    /// aarch64 with the dot-product extension.
    ArmDotprod,
    /// aarch64 with the int8 matrix-multiply extension.
    ArmI8mm,
}

impl Target {
    /// Every target, in the order help texts list them.
    pub const ALL: [Target; 6] = [
        Target::None,
        Target::X86Avx2,
        Target::X86Avx512,
        Target::ArmNeon,
        Target::ArmDotprod,
        Target::ArmI8mm,
    ];

    /// The name `--layout` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Target::None => "none",
            Target::X86Avx2 => "x86-avx2",
            Target::X86Avx512 => "x86-avx512",
            Target::ArmNeon => "arm-neon",
            Target::ArmDotprod => "arm-dotprod",
            Target::ArmI8mm => "arm-i8mm",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Rows interleaved per group (1: plain).
    pub const fn interleave(self) -> usize {
        match self {
            Target::None => 1,
            _ => 4,
        }
    }

    /// The type tensor `name` of type `ty` and GGUF dims `dims` takes in this layout: interleaved
    /// where a kernel exists for the base type and the rows fill whole groups, plain otherwise.
    /// Token and position embeddings stay plain: they are read a row at a time.
    pub fn type_for(self, name: &str, ty: GgmlType, dims: &[u64]) -> GgmlType {
        let base = ty.base();
        let r = self.interleave() as u64;
        let matrix = dims.len() >= 2 && dims[2..].iter().all(|&d| d == 1);
        let embedding = matches!(name, "token_embd.weight" | "position_embd.weight");
        if r == 1 || !matrix || embedding || !dims[1].is_multiple_of(r) {
            return base;
        }
        interleaved(base, self.interleave()).unwrap_or(base)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The interleaved type with `base`'s blocks and `r` rows per group, if there is one.
pub fn interleaved(base: GgmlType, r: usize) -> Option<GgmlType> {
    GgmlType::INTERLEAVED
        .into_iter()
        .find(|t| t.base() == base && t.interleave() == r)
}

/// Rewrites whole groups of plain rows of `ty.base()` (`src`) as `ty`'s interleaved groups (`dst`).
pub fn interleave(ty: GgmlType, cols: usize, src: &[u8], dst: &mut [u8]) -> Result<(), QuantError> {
    shuffle(ty, cols, src, dst, true)
}

/// The inverse of [`interleave`]: `ty`'s groups (`src`) back to plain rows of `ty.base()` (`dst`).
pub fn deinterleave(
    ty: GgmlType,
    cols: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), QuantError> {
    shuffle(ty, cols, src, dst, false)
}

/// Moves each base block between a plain row and its place in an x4 block, as whole typed
/// fields (one code path both ways, so the two directions are inverses by construction; fixed
/// sizes, so a prompt's matrix products can afford it per group).
fn shuffle(
    ty: GgmlType,
    cols: usize,
    src: &[u8],
    dst: &mut [u8],
    to_interleaved: bool,
) -> Result<(), QuantError> {
    use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0};
    let base = ty.base();
    if ty.interleave() != 4 {
        return Err(QuantError::Unsupported(ty));
    }
    let row = base.row_bytes(cols).ok_or(QuantError::NotBlockMultiple {
        n: cols,
        block: base.block_size(),
    })?;
    if src.len() != dst.len() {
        return Err(QuantError::LengthMismatch {
            expected: src.len(),
            got: dst.len(),
        });
    }
    let group = row * 4;
    if group == 0 || !src.len().is_multiple_of(group) {
        return Err(QuantError::LengthMismatch {
            expected: src.len().next_multiple_of(group.max(1)),
            got: src.len(),
        });
    }
    let nb = row / base.block_bytes();
    match base {
        GgmlType::Q4_0 => move_groups::<BlockQ4_0x4, BlockQ4_0>(
            src,
            dst,
            nb,
            to_interleaved,
            |x, k| BlockQ4_0 {
                d: x.d[k],
                qs: x.qs[k],
            },
            |x, k, b| {
                x.d[k] = b.d;
                x.qs[k] = b.qs;
            },
        ),
        GgmlType::Q4_1 => move_groups::<BlockQ4_1x4, BlockQ4_1>(
            src,
            dst,
            nb,
            to_interleaved,
            |x, k| BlockQ4_1 {
                d: x.d[k],
                m: x.m[k],
                qs: x.qs[k],
            },
            |x, k, b| {
                x.d[k] = b.d;
                x.m[k] = b.m;
                x.qs[k] = b.qs;
            },
        ),
        GgmlType::Q8_0 => move_groups::<BlockQ8_0x4, BlockQ8_0>(
            src,
            dst,
            nb,
            to_interleaved,
            |x, k| BlockQ8_0 {
                d: x.d[k],
                qs: x.qs[k],
            },
            |x, k, b| {
                x.d[k] = b.d;
                x.qs[k] = b.qs;
            },
        ),
        _ => return Err(QuantError::Unsupported(ty)),
    }
    Ok(())
}

/// Whole groups of `nb` x4 blocks (`X`) to four plain rows of `nb` base blocks (`B`) each, or
/// back; `get(x, k)` is row k's block of `x`, `set(x, k, b)` puts it there.
fn move_groups<X: Pod, B: Pod>(
    src: &[u8],
    dst: &mut [u8],
    nb: usize,
    to_interleaved: bool,
    get: impl Fn(&X, usize) -> B,
    set: impl Fn(&mut X, usize, &B),
) {
    let group = 4 * nb * core::mem::size_of::<B>();
    for (gs, gd) in src.chunks_exact(group).zip(dst.chunks_exact_mut(group)) {
        if to_interleaved {
            let (plain, x4) = (as_blocks::<B>(gs), as_blocks_mut::<X>(gd));
            for (b, x) in x4.iter_mut().enumerate() {
                for k in 0..4 {
                    set(x, k, &plain[k * nb + b]);
                }
            }
        } else {
            let (x4, plain) = (as_blocks::<X>(gs), as_blocks_mut::<B>(gd));
            for (b, x) in x4.iter().enumerate() {
                for k in 0..4 {
                    plain[k * nb + b] = get(x, k);
                }
            }
        }
    }
}
