//! aarch64 kernels (placeholder until the NEON kernels land).

use super::Isa;
use crate::quant::GgmlType;

pub(super) fn detect() -> Option<Isa> {
    None
}

pub(super) fn has(_isa: Isa) -> bool {
    false
}

pub(super) fn matvec(
    _isa: Isa,
    _ty: GgmlType,
    _w: &[u8],
    _w_row: usize,
    _act: &[u8],
    _out: &mut [f32],
) -> bool {
    false
}

pub(super) fn quantize_row(_isa: Isa, _ty: GgmlType, _x: &[f32], _y: &mut [u8]) -> bool {
    false
}
