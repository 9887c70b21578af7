//! Kernel selection: the portable `scalar` kernels (ggml's reference order, bit-exact with ggml's
//! scalar code) and SIMD versions of the same functions in `x86` and `aarch64`, chosen once at run
//! time from the CPU's features so that one binary runs on any CPU of its architecture.
//!
//! SIMD kernels sum in a different order than the scalar ones (their integer parts are exact), so
//! they agree with them within float rounding; `runtime/tests/quant_simd.rs` checks every kernel
//! at every level this CPU has against `scalar`. The activation quantizers are exact at every level.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod interleaved;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_float;

use crate::quant::blocks::*;
use crate::quant::{quantize, GgmlType};
use bytemuck::Pod;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// Portable Rust in ggml's reference order of operations.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (Haswell, Zen 1 and later).
    Avx2,
    /// AVX2 with 256-bit VNNI dot products (AVX-VNNI: Alder Lake and later, Zen 5).
    AvxVnni,
    /// AVX-512 F/BW/DQ/VL (Skylake-X).
    Avx512,
    /// AVX-512 with VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later).
    Avx512Vnni,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the dot-product extension (Cortex-A76 / Raspberry Pi 5 and later).
    NeonDot,
}

impl Isa {
    /// Every level, the portable one first.
    pub const ALL: [Isa; 7] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDot,
    ];

    /// Whether this CPU can run the level's kernels.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni => x86::has(self),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon | Isa::NeonDot => aarch64::has(self),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The level's name as printed in logs ("avx512-vnni", ...).
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Neon => "neon",
            Isa::NeonDot => "neon-dotprod",
        }
    }

    const fn code(self) -> u8 {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 2,
            Isa::AvxVnni => 3,
            Isa::Avx512 => 4,
            Isa::Avx512Vnni => 5,
            Isa::Neon => 6,
            Isa::NeonDot => 7,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The detected level, as `Isa::code`; 0 until the first call of [`best`]. Detection is idempotent,
/// so racing threads at worst detect twice and store the same value.
static BEST: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU has, detected on first use.
pub fn best() -> Isa {
    let code = BEST.load(Ordering::Relaxed);
    if let Some(&isa) = Isa::ALL.iter().find(|i| i.code() == code) {
        return isa;
    }
    let isa = detect();
    BEST.store(isa.code(), Ordering::Relaxed);
    isa
}

/// Makes `isa` the level every kernel call uses from now on (for comparing levels on whole models);
/// `false`, and no change, when this CPU lacks it.
pub fn set_best(isa: Isa) -> bool {
    if !isa.is_available() {
        return false;
    }
    BEST.store(isa.code(), Ordering::Relaxed);
    true
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = x86::detect() {
        return isa;
    }
    #[cfg(target_arch = "aarch64")]
    if let Some(isa) = aarch64::detect() {
        return isa;
    }
    Isa::Scalar
}

/// Activation quantizers with SIMD versions; the others take `quantize`'s reference code.
pub(crate) fn quantize_row(isa: Isa, ty: GgmlType, x: &[f32], y: &mut [u8]) {
    // Only the SIMD architectures read the level; elsewhere everything is scalar.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_variables)
    )]
    let isa = if isa.is_available() { isa } else { Isa::Scalar };
    // Only the SIMD architectures consult the level (no warning on thumb or riscv builds).
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if x86::quantize_row(isa, ty, x, y) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::quantize_row(isa, ty, x, y) {
        return;
    }
    match ty {
        GgmlType::Q8_0 => quantize::quantize_q8_0(x, as_blocks_mut(y)),
        GgmlType::Q8_1 => quantize::quantize_q8_1(x, as_blocks_mut(y)),
        GgmlType::Q8_K => quantize::quantize_q8_k(x, as_blocks_mut(y)),
        _ => debug_assert!(false, "{ty} is not an activation type"),
    }
}

/// `y += s · dequantize(x)` for Q8_0 blocks with the kernels of `isa` (bit-identical at every
/// level: each element is one fused multiply-add of an exact product).
pub(crate) fn mad_q8_0(isa: Isa, y: &mut [f32], x: &[BlockQ8_0], s: f32) {
    let n = (x.len() * QK).min(y.len() / QK * QK);
    let (y, x) = (&mut y[..n], &x[..n / QK]);
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let isa = if isa.is_available() { isa } else { Isa::Scalar };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if x86::mad_q8_0(isa, y, x, s) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::mad_q8_0(isa, y, x, s) {
        return;
    }
    scalar::mad_q8_0(y, x, s);
}

/// One head of attention over an f16 KV cache (`model::ops::attention`'s loop, query already
/// rounded to f16): row `t` of the `n_pos` attended rows is cache row `(first + t) % n_pos`, the
/// head's keys and values at `row * kv_dim + offset`.
pub(crate) struct F16Head<'a> {
    /// The head's query (f16 values).
    pub q: &'a [f32],
    /// The layer's keys.
    pub k: &'a [half::f16],
    /// The layer's values.
    pub v: &'a [half::f16],
    /// Rows attended.
    pub n_pos: usize,
    /// The oldest row (a ring cache's), read first.
    pub first: usize,
    /// Elements from one cache row to the next.
    pub kv_dim: usize,
    /// The head's first element in a row.
    pub offset: usize,
    /// Score scale.
    pub scale: f32,
    /// The exp the softmax uses (the platform's, as `model::math::expf`).
    pub exp: fn(f32) -> f32,
}

/// Runs [`F16Head`] into `acc` (the head's output) with the SIMD code of `isa`, bit-identical to
/// the portable loop; `false` (nothing done) where there is none.
pub(crate) fn attention_f16_head(isa: Isa, h: &F16Head<'_>, acc: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_float::attention_f16_head(isa, h, acc)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, h, acc);
        false
    }
}

/// A hint to start loading the cache line holding `p` (nothing where the target has no such
/// hint). Never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64, and a prefetch does not access memory architecturally (an
    // invalid address is ignored).
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// ggml's run-time activation quantizer (Q8_0 or Q8_1) with the SIMD code of `isa`, the same
/// bytes as the portable one; `false` (nothing done) where there is none.
pub(crate) fn quantize_act(isa: Isa, ty: GgmlType, x: &[f32], y: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_float::quantize_act(isa, ty, x, y)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, ty, x, y);
        false
    }
}

/// SiLU(gate) · up in place over the whole 16-element groups of `gate` with the SIMD code of
/// `isa`, bit-identical to `model::ops::swiglu`'s; `false` (nothing done) where there is none.
pub(crate) fn swiglu16(isa: Isa, gate: &mut [f32], up: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_float::swiglu16(isa, gate, up)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, gate, up);
        false
    }
}

/// `out[r]` = dot(row r of `w`, `act`) with the kernels of `isa` (scalar where the CPU lacks it or
/// the level has no kernel for `ty`); see [`crate::quant::matvec`].
pub(crate) fn matvec(isa: Isa, ty: GgmlType, n: usize, w: &[u8], act: &[u8], out: &mut [f32]) {
    let (Some(w_row), Some(act_row)) = (ty.row_bytes(n), ty.vec_dot_type().row_bytes(n)) else {
        debug_assert!(false, "{n} elements is not a whole number of {ty} blocks");
        out.fill(f32::NAN);
        return;
    };
    debug_assert!(ty.is_supported(), "no dot product for {ty} weights");
    debug_assert_eq!(
        w.len(),
        w_row * out.len(),
        "weight bytes for {} rows",
        out.len()
    );
    debug_assert_eq!(act.len(), act_row, "activation bytes");
    if n == 0 {
        out.fill(0.0);
        return;
    }
    // Rows beyond `w` (a broken invariant) are NaN; the kernels see whole rows (whole groups of
    // rows for interleaved types) only.
    let whole = (w.len() / w_row).min(out.len());
    let whole = whole - whole % ty.interleave();
    let (out, missing) = out.split_at_mut(whole);
    missing.fill(f32::NAN);
    let w = &w[..whole * w_row];
    // A short activation (another broken invariant) must not be read past its end.
    if act.len() < act_row {
        out.fill(f32::NAN);
        return;
    }
    let act = &act[..act_row];
    // Only the SIMD architectures read the level; elsewhere everything is scalar.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_variables)
    )]
    let isa = if isa.is_available() { isa } else { Isa::Scalar };
    if ty.interleave() > 1 {
        interleaved::matvec(isa, ty, w, w_row, act, out);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::matvec(isa, ty, w, w_row, act, out) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::matvec(isa, ty, w, w_row, act, out) {
        return;
    }
    matvec_scalar(ty, w, w_row, act, out);
}

/// `out[r * cols + c]` = dot(row r of `w`, activation column c), `act` holding `cols` activation
/// rows one after the other; every column is bit-identical to [`matvec`] of that column. Kernels
/// without a multi-column form (scalar, aarch64) run [`matvec`] on groups of rows per column,
/// which keeps the rows in L1 across the columns.
pub(crate) fn matmul(
    isa: Isa,
    ty: GgmlType,
    n: usize,
    w: &[u8],
    act: &[u8],
    cols: usize,
    out: &mut [f32],
) {
    let (Some(w_row), Some(act_row)) = (ty.row_bytes(n), ty.vec_dot_type().row_bytes(n)) else {
        debug_assert!(false, "{n} elements is not a whole number of {ty} blocks");
        out.fill(f32::NAN);
        return;
    };
    if cols == 0 {
        return;
    }
    debug_assert_eq!(out.len() % cols, 0, "output is rows × {cols} columns");
    debug_assert_eq!(act.len(), act_row * cols, "activation bytes");
    let rows = out.len() / cols;
    if n == 0 {
        out.fill(0.0);
        return;
    }
    // Broken invariants (short weights or activations) give NaN, never a read out of bounds.
    let whole = (w.len() / w_row).min(rows);
    let (out, missing) = out.split_at_mut(whole * cols);
    missing.fill(f32::NAN);
    let w = &w[..whole * w_row];
    if act.len() < act_row * cols {
        out.fill(f32::NAN);
        return;
    }
    let act = &act[..act_row * cols];
    let isa = if isa.is_available() { isa } else { Isa::Scalar };
    #[cfg(feature = "std")]
    if ty.interleave() > 1 && matmul_interleaved(isa, ty, n, w, w_row, act, cols, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::matmul(isa, ty, w, w_row, act, act_row, out) {
        return;
    }
    const GROUP: usize = 16;
    let mut col = [0f32; GROUP];
    for (o, w) in out.chunks_mut(GROUP * cols).zip(w.chunks(GROUP * w_row)) {
        let col = &mut col[..o.len() / cols];
        for (c, a) in act.chunks_exact(act_row).enumerate() {
            matvec(isa, ty, n, w, a, col);
            for (r, v) in col.iter().enumerate() {
                o[r * cols + c] = *v;
            }
        }
    }
}

/// [`matmul`] of an interleaved type: each group of rows back to plain rows in a per-thread
/// buffer (the group's bytes, then hot in L1 for every column), then the base type's matrix
/// product, whose columns have the base type's matrix-vector bits — which the interleaved
/// matrix-vector kernels equal (`runtime/tests/layout.rs`). The interleaved kernels are
/// matrix-vector ones: a prompt through them ran 20% slower than through the plain file.
/// `false` (nothing done) when `w` is not whole groups.
#[cfg(feature = "std")]
#[allow(clippy::too_many_arguments)]
fn matmul_interleaved(
    isa: Isa,
    ty: GgmlType,
    n: usize,
    w: &[u8],
    w_row: usize,
    act: &[u8],
    cols: usize,
    out: &mut [f32],
) -> bool {
    std::thread_local! {
        static PLAIN: core::cell::RefCell<std::vec::Vec<u8>> =
            const { core::cell::RefCell::new(std::vec::Vec::new()) };
    }
    let r = ty.interleave();
    let group = r * w_row;
    if group == 0 || !w.len().is_multiple_of(group) || out.len() != w.len() / w_row * cols {
        return false;
    }
    // Groups put back into plain rows per call: enough rows that the plain kernels' per-call
    // work on the activation (the blockwise tiles prepare every column's blocks) is shared.
    const GROUPS: usize = 32;
    PLAIN.with(|plain| {
        let Ok(mut plain) = plain.try_borrow_mut() else {
            return false;
        };
        if plain.len() < GROUPS * group {
            plain.resize(GROUPS * group, 0);
        }
        for (gs, o) in w
            .chunks(GROUPS * group)
            .zip(out.chunks_mut(GROUPS * r * cols))
        {
            let plain = &mut plain[..gs.len()];
            let mut ok = true;
            for (g, p) in gs.chunks_exact(group).zip(plain.chunks_exact_mut(group)) {
                ok &= crate::quant::layout::deinterleave(ty, n, g, p).is_ok();
            }
            if !ok {
                o.fill(f32::NAN);
                continue;
            }
            matmul(isa, ty.base(), n, plain, act, cols, o);
        }
        true
    })
}

fn matvec_scalar(ty: GgmlType, w: &[u8], w_row: usize, act: &[u8], out: &mut [f32]) {
    use scalar as k;
    match ty {
        GgmlType::F32 => rows::<[u8; 4], [u8; 4]>(w, w_row, act, out, k::vec_dot_f32),
        GgmlType::F16 => rows::<[u8; 2], [u8; 2]>(w, w_row, act, out, k::vec_dot_f16),
        GgmlType::BF16 => rows::<[u8; 2], [u8; 2]>(w, w_row, act, out, k::vec_dot_bf16),
        GgmlType::Q4_0 => rows(w, w_row, act, out, k::vec_dot_q4_0_q8_0),
        GgmlType::Q4_1 => rows(w, w_row, act, out, k::vec_dot_q4_1_q8_1),
        GgmlType::Q5_0 => rows(w, w_row, act, out, k::vec_dot_q5_0_q8_0),
        GgmlType::Q5_1 => rows(w, w_row, act, out, k::vec_dot_q5_1_q8_1),
        GgmlType::Q8_0 => rows(w, w_row, act, out, k::vec_dot_q8_0_q8_0),
        GgmlType::Q2_K => rows(w, w_row, act, out, k::vec_dot_q2_k_q8_k),
        GgmlType::Q3_K => rows(w, w_row, act, out, k::vec_dot_q3_k_q8_k),
        GgmlType::Q4_K => rows(w, w_row, act, out, k::vec_dot_q4_k_q8_k),
        GgmlType::Q5_K => rows(w, w_row, act, out, k::vec_dot_q5_k_q8_k),
        GgmlType::Q6_K => rows(w, w_row, act, out, k::vec_dot_q6_k_q8_k),
        GgmlType::Q8_1 | GgmlType::Q8_K => out.fill(f32::NAN),
        GgmlType::Q4_0_X4 | GgmlType::Q4_1_X4 | GgmlType::Q8_0_X4 => {
            interleaved::matvec(Isa::Scalar, ty, w, w_row, act, out)
        }
    }
}

/// Applies a typed row kernel to each weight row (`w` holds exactly `out.len()` rows).
#[inline(always)]
fn rows<W: Pod, A: Pod>(
    w: &[u8],
    row_bytes: usize,
    act: &[u8],
    out: &mut [f32],
    dot: impl Fn(&[W], &[A]) -> f32,
) {
    let act = as_blocks::<A>(act);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        *o = dot(as_blocks(row), act);
    }
}
