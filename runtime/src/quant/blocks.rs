//! ggml's block layouts, byte for byte (ggml-common.h).
//!
//! Every field is a byte array, so each block has alignment 1 and `bytemuck` can view any `&[u8]` of
//! the right length as a block slice without copying and without `unsafe`. Multi-byte fields are
//! little-endian, as in GGUF files.

use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

/// Elements per block of the 32-wide formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
pub const QK: usize = 32;
/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// 4-bit quants, one f16 scale: x = d * (q - 8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Element j in the low nibble of byte j, element j + 16 in the high nibble.
    pub qs: [u8; QK / 2],
}

/// 4-bit quants with a min: x = d * q + m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Min (f16).
    pub m: [u8; 2],
    /// Nibbles, laid out as in [`BlockQ4_0`].
    pub qs: [u8; QK / 2],
}

/// 5-bit quants: x = d * (q - 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Fifth bit of element j at bit j (u32, little-endian).
    pub qh: [u8; 4],
    /// Low four bits, laid out as in [`BlockQ4_0`].
    pub qs: [u8; QK / 2],
}

/// 5-bit quants with a min: x = d * q + m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Min (f16).
    pub m: [u8; 2],
    /// Fifth bits, as in [`BlockQ5_0`].
    pub qh: [u8; 4],
    /// Low four bits, laid out as in [`BlockQ4_0`].
    pub qs: [u8; QK / 2],
}

/// 8-bit quants: x = d * q.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Quants.
    pub qs: [i8; QK],
}

/// 8-bit quants that also carry d * sum(qs), the activation format paired with Q4_1 and Q5_1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// d * sum(qs) (f16).
    pub s: [u8; 2],
    /// Quants.
    pub qs: [i8; QK],
}

/// 2-bit K-quant: 16 groups of 16, 4-bit scales and mins.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Group scale in the low nibble, group min in the high nibble.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants, four per byte.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
}

/// 3-bit K-quant: 16 groups of 16, 6-bit signed scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bit of each quant.
    pub hmask: [u8; QK_K / 8],
    /// Low two bits of each quant.
    pub qs: [u8; QK_K / 4],
    /// 16 scales of 6 bits, packed.
    pub scales: [u8; 12],
    /// Super-block scale (f16).
    pub d: [u8; 2],
}

/// 4-bit K-quant: 8 groups of 32, 6-bit scales and mins.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
    /// 8 scales and 8 mins of 6 bits, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants: 64 elements per 32 bytes, low nibbles first.
    pub qs: [u8; QK_K / 2],
}

/// 5-bit K-quant: Q4_K plus a fifth bit per element.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale for the scales (f16).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16).
    pub dmin: [u8; 2],
    /// 8 scales and 8 mins of 6 bits, packed as in Q4_K.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits.
    pub qh: [u8; QK_K / 8],
    /// Low four bits, as in Q4_K.
    pub qs: [u8; QK_K / 2],
}

/// 6-bit K-quant: 16 groups of 16, 8-bit signed scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low four bits of each quant.
    pub ql: [u8; QK_K / 2],
    /// High two bits of each quant.
    pub qh: [u8; QK_K / 4],
    /// Group scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale (f16).
    pub d: [u8; 2],
}

/// 8-bit super-block with an f32 scale and group sums: the activation format of the K-quants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale (f32).
    pub d: [u8; 4],
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 quants (i16 each).
    pub bsums: [[u8; 2]; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);
const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ8_1>() == 36);
const _: () = assert!(size_of::<BlockQ2K>() == 84);
const _: () = assert!(size_of::<BlockQ3K>() == 110);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210);
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// An f16 stored as little-endian bytes, widened exactly.
///
/// Branch-free (FP16 library's fp16_ieee_to_fp32_value) so loops over f16 rows vectorize; `half`'s
/// portable conversion branches per value and is several times slower.
#[inline(always)]
pub(crate) fn f16_to_f32(b: [u8; 2]) -> f32 {
    let w = u32::from(u16::from_le_bytes(b)) << 16;
    let sign = w & 0x8000_0000;
    let two_w = w.wrapping_add(w);
    // Normal (and inf/NaN): move exponent and mantissa into place, rebias by multiplying by 2^-112.
    let normalized = f32::from_bits((two_w >> 4) + (0xE0 << 23)) * f32::from_bits(0x0780_0000);
    // Subnormal: mantissa * 2^-24, computed exactly as (0.5 + m * 2^-24) - 0.5.
    let denormalized = f32::from_bits((two_w >> 17) | (126 << 23)) - 0.5;
    let bits = if two_w < (1 << 27) {
        denormalized.to_bits()
    } else {
        normalized.to_bits()
    };
    f32::from_bits(sign | bits)
}

/// Round to nearest even, as GGML_FP32_TO_FP16.
#[inline(always)]
pub(crate) fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// A bf16 stored as little-endian bytes, widened exactly.
#[inline(always)]
pub(crate) fn bf16_to_f32(b: [u8; 2]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
}

/// ggml_compute_fp32_to_bf16: quiet NaNs, otherwise round to nearest even.
#[inline(always)]
pub(crate) fn f32_to_bf16(x: f32) -> [u8; 2] {
    let u = x.to_bits();
    let h = if u & 0x7fff_ffff > 0x7f80_0000 {
        (u >> 16) | 64
    } else {
        u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16
    };
    (h as u16).to_le_bytes()
}

/// Views bytes as blocks; a trailing partial block is left out (callers check lengths first).
#[inline(always)]
pub(crate) fn as_blocks<B: Pod>(bytes: &[u8]) -> &[B] {
    let whole = bytes.len() / size_of::<B>() * size_of::<B>();
    bytemuck::try_cast_slice(&bytes[..whole]).unwrap_or(&[])
}

/// Mutable form of [`as_blocks`].
#[inline(always)]
pub(crate) fn as_blocks_mut<B: Pod>(bytes: &mut [u8]) -> &mut [B] {
    let whole = bytes.len() / size_of::<B>() * size_of::<B>();
    bytemuck::try_cast_slice_mut(&mut bytes[..whole]).unwrap_or(&mut [])
}

/// Scale and min of group `j` (0..8) from the packed 6-bit fields of Q4_K / Q5_K (get_scale_min_k4).
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit scales and eight 6-bit mins as Q4_K / Q5_K store them.
#[inline(always)]
pub(crate) fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut q = [0u8; K_SCALE_SIZE];
    for j in 0..4 {
        q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    q
}

/// Packs the 16 biased (0..64) 6-bit group scales of Q3_K.
#[inline(always)]
pub(crate) fn pack_q3k_scales(biased: &[u8; 16]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for (j, &l) in biased.iter().enumerate() {
        if j < 8 {
            q[j] |= l & 0xF;
        } else {
            q[j - 8] |= (l & 0xF) << 4;
        }
        q[8 + j % 4] |= (l >> 4) << (2 * (j / 4));
    }
    q
}

/// The 16 signed 6-bit group scales of Q3_K, minus their bias of 32.
#[inline(always)]
pub(crate) fn q3k_scales(packed: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 {
            packed[j] & 0xF
        } else {
            packed[j - 8] >> 4
        };
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scales_round_trip() {
        let sc = [0, 1, 17, 63, 32, 15, 16, 62];
        let m = [63, 5, 0, 44, 1, 48, 31, 33];
        let packed = pack_scale_min_k4(&sc, &m);
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &packed), (sc[j], m[j]), "group {j}");
        }
    }

    #[test]
    fn q3k_scales_round_trip() {
        let biased = [0, 1, 2, 31, 32, 33, 63, 16, 47, 8, 60, 3, 15, 48, 49, 7];
        let decoded = q3k_scales(&pack_q3k_scales(&biased));
        for j in 0..16 {
            assert_eq!(
                i32::from(decoded[j]),
                i32::from(biased[j]) - 32,
                "group {j}"
            );
        }
    }

    #[test]
    fn bf16_rounds_like_ggml() {
        let bits = |u: u32| u16::from_le_bytes(f32_to_bf16(f32::from_bits(u)));
        assert_eq!(bits(0x3f80_0000), 0x3f80); // 1.0
        assert_eq!(bits(0x3f80_8000), 0x3f80); // halfway, to even
        assert_eq!(bits(0x3f81_8000), 0x3f82); // halfway, to even
        assert_eq!(bits(0x3f80_8001), 0x3f81); // above halfway
        assert_eq!(bits(0x7f80_0000), 0x7f80); // inf
        assert_eq!(bits(0x7f80_0001), 0x7fc0); // signalling NaN made quiet
        assert_eq!(bits(0x7f7f_ffff), 0x7f80); // rounds up to inf, as ggml does
        assert_eq!(bf16_to_f32([0x80, 0x3f]), 1.0);
    }

    #[test]
    fn f16_widening_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = f16_to_f32(h.to_le_bytes());
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        // 1 + 2^-11 is halfway between 1 and the next f16; ties go to the even 1.0.
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), [0x00, 0x3c]);
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), [0x02, 0x3c]);
        assert_eq!(f16_to_f32([0x01, 0x00]), 5.960_464_5e-8); // smallest subnormal
    }
}
