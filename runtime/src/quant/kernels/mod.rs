//! Kernel selection. Only the portable scalar kernels exist so far; `x86.rs` and `aarch64.rs` will
//! add SIMD versions of the same functions, chosen here from the CPU's features and tested against
//! `scalar`.

pub(crate) mod lanes;
pub(crate) mod scalar;

use crate::quant::blocks::*;
use crate::quant::GgmlType;
use bytemuck::Pod;

/// out[r] = dot(row r of `w`, `act`); see [`crate::quant::matvec`].
pub(crate) fn matvec(ty: GgmlType, n: usize, w: &[u8], act: &[u8], out: &mut [f32]) {
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
    use scalar as k;
    match ty {
        GgmlType::F32 => rows::<[u8; 4], [u8; 4]>(w, w_row, act, out, k::vec_dot_f32),
        GgmlType::F16 => rows::<[u8; 2], [u8; 2]>(w, w_row, act, out, k::vec_dot_f16),
        GgmlType::BF16 => rows::<[u8; 2], [u8; 2]>(w, w_row, act, out, k::vec_dot_bf16),
        GgmlType::Q4_0 => rows(w, w_row, act, out, k::vec_dot_q4_0_q8_0),
        GgmlType::Q4_1 => rows(w, w_row, act, out, lanes::vec_dot_q4_1_q8_1),
        GgmlType::Q5_0 => rows(w, w_row, act, out, k::vec_dot_q5_0_q8_0),
        GgmlType::Q5_1 => rows(w, w_row, act, out, k::vec_dot_q5_1_q8_1),
        GgmlType::Q8_0 => rows(w, w_row, act, out, lanes::vec_dot_q8_0_q8_0),
        GgmlType::Q2_K => rows(w, w_row, act, out, k::vec_dot_q2_k_q8_k),
        GgmlType::Q3_K => rows(w, w_row, act, out, k::vec_dot_q3_k_q8_k),
        GgmlType::Q4_K => rows(w, w_row, act, out, k::vec_dot_q4_k_q8_k),
        GgmlType::Q5_K => rows(w, w_row, act, out, k::vec_dot_q5_k_q8_k),
        GgmlType::Q6_K => rows(w, w_row, act, out, k::vec_dot_q6_k_q8_k),
        GgmlType::Q8_1 | GgmlType::Q8_K => out.fill(f32::NAN),
    }
}

/// Applies a typed row kernel to each weight row; rows beyond `w` (a broken invariant) are NaN.
#[inline(always)]
fn rows<W: Pod, A: Pod>(
    w: &[u8],
    row_bytes: usize,
    act: &[u8],
    out: &mut [f32],
    dot: impl Fn(&[W], &[A]) -> f32,
) {
    let act = as_blocks::<A>(act);
    let mut w_rows = w.chunks_exact(row_bytes);
    for o in out.iter_mut() {
        *o = match w_rows.next() {
            Some(row) => dot(as_blocks(row), act),
            None => f32::NAN,
        };
    }
}
