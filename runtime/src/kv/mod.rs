//! The key/value cache: rows of f16 (the default), f32 or Q8_0 in caller-provided memory, one slot
//! per (layer, position), except in sliding-window layers, which keep a ring of the window's size:
//! position `p` lives in slot `p mod window`, so their memory does not grow with the context.
//! Attention reads a ring from its oldest row onward, wrapping, so positions come in order and
//! the result is the same as a full cache with a sliding mask (never rotated back, as tract does).

use crate::quant::blocks::{BlockQ8_0, QK};
use crate::quant::{quantize_act_row, GgmlType};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Element type of the KV cache, as llama.cpp's `--cache-type-k/-v` choose it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KvType {
    /// Half precision, llama.cpp's default: half the memory of f32, and the attention numerics of
    /// its flash-attention path.
    #[default]
    F16,
    /// Single precision, with attention computed in f32: closest to exact arithmetic.
    F32,
    /// ggml's Q8_0 blocks (32 values, an f16 scale, 34 bytes): 0.53× the memory of f16. Rows are
    /// quantized when written; attention takes integer dot products of keys with the query
    /// quantized to Q8_0 and accumulates dequantized values in f32, as llama.cpp does for
    /// `-ctk q8_0 -ctv q8_0 -fa on`. Needs head dimensions that are multiples of 32.
    Q8_0,
}

/// Sizes of the Walsh-Hadamard rotations llama.cpp applies around a quantized cache of heads of
/// `head_dim` (its `attn_rot_k` / `attn_rot_v`), as `(keys and queries, values)`: an orthonormal
/// rotation spreads outlier channels over the block before quantizing, and cancels in q·k and in
/// the rotated-back output. Keys use the largest power of two ≥ 64 dividing the head, values 64;
/// heads that are not a multiple of 64 are not rotated.
pub fn q8_0_rotation(head_dim: usize) -> Option<(usize, usize)> {
    if head_dim == 0 || !head_dim.is_multiple_of(64) {
        return None;
    }
    let mut k = 64;
    while head_dim.is_multiple_of(k * 2) {
        k *= 2;
    }
    Some((k, 64))
}

/// In-place orthonormal Walsh-Hadamard transform of each `n`-element chunk of `x` (`n` a power of
/// two), in ggml's order: scaled by 1/√n first, then butterflies of growing span (its FWHT, which
/// llama.cpp runs for the rotation). The transform is its own inverse.
pub fn fwht(x: &mut [f32], n: usize) {
    let scale = 1.0 / libm::sqrtf(n as f32);
    for chunk in x.chunks_exact_mut(n) {
        chunk.iter_mut().for_each(|v| *v *= scale);
        let mut len = 1;
        while len < n {
            for i in (0..n).step_by(2 * len) {
                for j in i..i + len {
                    let (u, v) = (chunk[j], chunk[j + len]);
                    chunk[j] = u + v;
                    chunk[j + len] = u - v;
                }
            }
            len *= 2;
        }
    }
}

/// The largest head dimension the Q8_0 cache takes (Llama-family models use 64–128, Gemma 3 256).
pub const Q8_0_MAX_HEAD_DIM: usize = 512;

impl KvType {
    /// Every supported type, in the order `--kv-type` lists them.
    pub const ALL: [KvType; 3] = [KvType::F16, KvType::F32, KvType::Q8_0];

    /// The name used on command lines (`f16`, `f32`, `q8_0`), as llama.cpp spells it.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// Bytes of one cached row of `kv_dim` elements (`None` on overflow, or for Q8_0 when
    /// `kv_dim` is not a whole number of 32-element blocks).
    pub fn row_bytes(self, kv_dim: usize) -> Option<usize> {
        match self {
            KvType::F16 => kv_dim.checked_mul(2),
            KvType::F32 => kv_dim.checked_mul(4),
            KvType::Q8_0 => GgmlType::Q8_0.row_bytes(kv_dim),
        }
    }

    /// Whether heads of `head_dim` can be cached in this type: whole blocks per head, and for
    /// Q8_0 at most [`Q8_0_MAX_HEAD_DIM`] (attention quantizes one query head on the stack).
    pub fn supports_head_dim(self, head_dim: usize) -> bool {
        head_dim.is_multiple_of(self.block_size())
            && (self != KvType::Q8_0 || head_dim <= Q8_0_MAX_HEAD_DIM)
    }

    /// Elements per block: heads must hold whole blocks (1 for the float types, 32 for Q8_0).
    pub fn block_size(self) -> usize {
        match self {
            KvType::F16 | KvType::F32 => 1,
            KvType::Q8_0 => QK,
        }
    }
}

impl core::fmt::Display for KvType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A KV cache type name that is not supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownKvType;

impl core::fmt::Display for UnknownKvType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown KV cache type (supported: ")?;
        for (i, t) in KvType::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(t.name())?;
        }
        f.write_str(")")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownKvType {}

impl core::str::FromStr for KvType {
    type Err = UnknownKvType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KvType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or(UnknownKvType)
    }
}

/// The cache's buffers, in its element type.
#[derive(Debug)]
enum Rows<'m> {
    F16 {
        k: &'m mut [f16],
        v: &'m mut [f16],
    },
    F32 {
        k: &'m mut [f32],
        v: &'m mut [f32],
    },
    Q8_0 {
        k: &'m mut [BlockQ8_0],
        v: &'m mut [BlockQ8_0],
        head_dim: usize,
    },
}

/// One layer's cached keys and values (`n_pos × kv_dim` each), in the cache's element type.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum KvLayer<'c> {
    /// f16 rows.
    F16 {
        /// Keys.
        k: &'c [f16],
        /// Values.
        v: &'c [f16],
    },
    /// f32 rows.
    F32 {
        /// Keys.
        k: &'c [f32],
        /// Values.
        v: &'c [f32],
    },
    /// Q8_0 rows, `kv_dim / 32` blocks each (a head is `head_dim / 32` consecutive blocks), each
    /// head rotated by [`q8_0_rotation`]'s transforms before it was quantized.
    Q8_0 {
        /// Keys.
        k: &'c [BlockQ8_0],
        /// Values.
        v: &'c [BlockQ8_0],
    },
}

/// Which layers keep a ring of `size` rows instead of one row per position: layer `l` does when
/// `size > 0 && l % pattern < pattern − 1` (every `pattern`-th layer is global, as in Gemma 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// Rows of a ring (the sliding window); 0: no layer has a ring.
    pub size: usize,
    /// Layers per group, the last of which is global.
    pub pattern: usize,
}

impl Ring {
    /// No ring: every layer holds all positions.
    pub const NONE: Ring = Ring {
        size: 0,
        pattern: 0,
    };

    /// Whether layer `l` is a ring.
    pub fn slides(&self, l: usize) -> bool {
        self.size > 0 && self.pattern > 0 && l % self.pattern < self.pattern - 1
    }

    /// Rows layer `l` holds in a cache of `n_ctx` positions.
    pub fn capacity(&self, l: usize, n_ctx: usize) -> usize {
        match self.slides(l) {
            true => self.size.min(n_ctx),
            false => n_ctx,
        }
    }

    /// Rows of all layers before `l` (`None` on overflow).
    pub fn rows_before(&self, l: usize, n_ctx: usize) -> Option<usize> {
        let rings = match self.size > 0 && self.pattern > 0 {
            true => {
                l / self.pattern * (self.pattern - 1) + (l % self.pattern).min(self.pattern - 1)
            }
            false => 0,
        };
        let ring_rows = rings.checked_mul(self.size.min(n_ctx))?;
        (l - rings).checked_mul(n_ctx)?.checked_add(ring_rows)
    }
}

/// Keys and values of every layer for up to `n_ctx` positions.
#[derive(Debug)]
pub struct KvCache<'m> {
    rows: Rows<'m>,
    n_ctx: usize,
    kv_dim: usize,
    ring: Ring,
}

impl<'m> KvCache<'m> {
    /// Elements (per K and per V) needed for `n_layer × n_ctx × kv_dim`.
    pub fn elements(n_layer: usize, n_ctx: usize, kv_dim: usize) -> Option<usize> {
        n_layer.checked_mul(n_ctx)?.checked_mul(kv_dim)
    }

    /// Elements (per K and per V) of `n_layer` layers of which those `ring` names hold only its
    /// size in rows.
    pub fn elements_ring(n_layer: usize, n_ctx: usize, kv_dim: usize, ring: Ring) -> Option<usize> {
        ring.rows_before(n_layer, n_ctx)?.checked_mul(kv_dim)
    }

    /// Wraps two buffers of `elements(..)` f16 each.
    pub fn new(k: &'m mut [f16], v: &'m mut [f16], n_ctx: usize, kv_dim: usize) -> KvCache<'m> {
        KvCache {
            rows: Rows::F16 { k, v },
            n_ctx,
            kv_dim,
            ring: Ring::NONE,
        }
    }

    /// Wraps two buffers of `elements(..)` f32 each.
    pub fn new_f32(k: &'m mut [f32], v: &'m mut [f32], n_ctx: usize, kv_dim: usize) -> KvCache<'m> {
        KvCache {
            rows: Rows::F32 { k, v },
            n_ctx,
            kv_dim,
            ring: Ring::NONE,
        }
    }

    /// Wraps two buffers of `elements(..) / 32` Q8_0 blocks each (`head_dim` a multiple of 32 and
    /// at most [`Q8_0_MAX_HEAD_DIM`], `kv_dim` a multiple of `head_dim`).
    pub fn new_q8_0(
        k: &'m mut [BlockQ8_0],
        v: &'m mut [BlockQ8_0],
        n_ctx: usize,
        kv_dim: usize,
        head_dim: usize,
    ) -> KvCache<'m> {
        KvCache {
            rows: Rows::Q8_0 { k, v, head_dim },
            n_ctx,
            kv_dim,
            ring: Ring::NONE,
        }
    }

    /// The same buffers laid out with rings (they must hold `elements_ring(..)`).
    pub fn with_ring(self, ring: Ring) -> KvCache<'m> {
        KvCache { ring, ..self }
    }

    /// The ring layout.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// The element type.
    pub fn kv_type(&self) -> KvType {
        match self.rows {
            Rows::F16 { .. } => KvType::F16,
            Rows::F32 { .. } => KvType::F32,
            Rows::Q8_0 { .. } => KvType::Q8_0,
        }
    }

    /// First row of `layer`.
    fn first_row(&self, layer: usize) -> usize {
        self.ring.rows_before(layer, self.n_ctx).unwrap_or(0)
    }

    fn range(&self, layer: usize, pos: usize) -> core::ops::Range<usize> {
        let cap = self.ring.capacity(layer, self.n_ctx).max(1);
        let start = (self.first_row(layer) + pos % cap) * self.kv_dim;
        start..start + self.kv_dim
    }

    /// Stores the key and value rows of `layer` at `pos`.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let r = self.range(layer, pos);
        match &mut self.rows {
            Rows::F16 { k: kc, v: vc } => {
                // Slice conversions (F16C where the CPU has it): the same round-to-nearest-even
                // as element by element, without a feature test per element.
                let n = r.len().min(k.len()).min(v.len());
                kc[r.start..r.start + n].convert_from_f32_slice(&k[..n]);
                vc[r.start..r.start + n].convert_from_f32_slice(&v[..n]);
            }
            Rows::F32 { k: kc, v: vc } => {
                let n = r.len().min(k.len()).min(v.len());
                kc[r.start..r.start + n].copy_from_slice(&k[..n]);
                vc[r.start..r.start + n].copy_from_slice(&v[..n]);
            }
            Rows::Q8_0 {
                k: kc,
                v: vc,
                head_dim,
            } => {
                let hd = *head_dim;
                let rot = q8_0_rotation(hd);
                let b = r.start / QK..r.end / QK;
                let kv = [
                    (k, &mut kc[b.clone()], rot.map(|r| r.0)),
                    (v, &mut vc[b], rot.map(|r| r.1)),
                ];
                // Head by head (rotated on the stack when llama.cpp rotates), with ggml's run-time
                // quantizer, the one its set_rows uses for a q8_0 cache. Lengths follow from the
                // plan, so the quantizer cannot fail.
                let mut head = [0f32; Q8_0_MAX_HEAD_DIM];
                for (src, dst, n_rot) in kv {
                    let src = &src[..self.kv_dim];
                    for (x, dst) in src.chunks_exact(hd).zip(dst.chunks_exact_mut(hd / QK)) {
                        let h = &mut head[..hd];
                        h.copy_from_slice(x);
                        if let Some(n) = n_rot {
                            fwht(h, n);
                        }
                        let _ = quantize_act_row(GgmlType::Q8_0, h, bytemuck::cast_slice_mut(dst));
                    }
                }
            }
        }
    }

    /// Keys and values of `layer` in storage rows `0..n_pos` (positions `0..n_pos` unless a ring
    /// has wrapped).
    pub fn layer(&self, layer: usize, n_pos: usize) -> KvLayer<'_> {
        self.rows(layer, 0, n_pos)
    }

    /// What the query at `pos` attends to in `layer` when it sees the last `window` positions
    /// (0: all): `(rows, n, first)`, `n` rows of which the oldest position is row `first`, the
    /// next ones following it, wrapping. A ring must be at least the window; a layer without a
    /// ring gives the last `window` positions (the sliding mask over a full cache).
    pub fn attended(&self, layer: usize, pos: usize, window: usize) -> (KvLayer<'_>, usize, usize) {
        let n_pos = pos + 1;
        let n = match window {
            0 => n_pos,
            w => n_pos.min(w),
        };
        let cap = self.ring.capacity(layer, self.n_ctx);
        if self.ring.slides(layer) && n_pos > cap {
            // Past the ring's size every slot is live: read all of it from the oldest one.
            (self.rows(layer, 0, cap), cap, n_pos % cap)
        } else {
            (self.rows(layer, n_pos - n, n_pos), n, 0)
        }
    }

    fn rows(&self, layer: usize, from: usize, to: usize) -> KvLayer<'_> {
        let base = self.first_row(layer);
        let (start, end) = ((base + from) * self.kv_dim, (base + to) * self.kv_dim);
        match &self.rows {
            Rows::F16 { k, v } => KvLayer::F16 {
                k: &k[start..end],
                v: &v[start..end],
            },
            Rows::F32 { k, v } => KvLayer::F32 {
                k: &k[start..end],
                v: &v[start..end],
            },
            Rows::Q8_0 { k, v, .. } => KvLayer::Q8_0 {
                k: &k[start / QK..end / QK],
                v: &v[start / QK..end / QK],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_supported_ones() {
        for t in KvType::ALL {
            assert_eq!(t.name().parse::<KvType>(), Ok(t));
        }
        assert_eq!(KvType::default(), KvType::F16);
        assert_eq!("q8_0".parse::<KvType>(), Ok(KvType::Q8_0));
        assert_eq!("q4_0".parse::<KvType>(), Err(UnknownKvType));
        assert_eq!("F16".parse::<KvType>(), Err(UnknownKvType));
        let mut buf = [0u8; 64];
        let mut w = Writer(&mut buf, 0);
        core::fmt::write(&mut w, format_args!("{}", UnknownKvType)).unwrap();
        let n = w.1;
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            "unknown KV cache type (supported: f16, f32, q8_0)"
        );
        assert_eq!(KvType::F16.row_bytes(192), Some(384));
        assert_eq!(KvType::F32.row_bytes(192), Some(768));
        assert_eq!(KvType::F32.row_bytes(usize::MAX), None);
        assert_eq!(KvType::Q8_0.row_bytes(192), Some(6 * 34));
        assert_eq!(KvType::Q8_0.row_bytes(48), None);
    }

    #[test]
    fn f32_rows_are_stored_exactly_and_f16_rows_rounded() {
        let (n_ctx, kv_dim) = (3, 4);
        let n = KvCache::elements(2, n_ctx, kv_dim).unwrap();
        let k: [f32; 4] = [0.1, -1.0e-3, 3.3, 70000.0];
        let v: [f32; 4] = [1.0, 2.0, -0.333, 5.5e-5];

        let (mut kb, mut vb) = ([0f32; 24], [0f32; 24]);
        let mut c = KvCache::new_f32(&mut kb[..n], &mut vb[..n], n_ctx, kv_dim);
        assert_eq!(c.kv_type(), KvType::F32);
        c.store(1, 2, &k, &v);
        match c.layer(1, 3) {
            KvLayer::F32 { k: kc, v: vc } => {
                assert_eq!(kc.len(), 12);
                assert_eq!(&kc[8..], &k);
                assert_eq!(&vc[8..], &v);
                assert!(kc[..8].iter().all(|&x| x == 0.0));
            }
            other => panic!("{other:?}"),
        }
        // Layer 0 is untouched.
        match c.layer(0, 3) {
            KvLayer::F32 { k: kc, .. } => assert!(kc.iter().all(|&x| x == 0.0)),
            other => panic!("{other:?}"),
        }

        let (mut kh, mut vh) = ([f16::ZERO; 24], [f16::ZERO; 24]);
        let mut c = KvCache::new(&mut kh[..n], &mut vh[..n], n_ctx, kv_dim);
        assert_eq!(c.kv_type(), KvType::F16);
        c.store(1, 2, &k, &v);
        match c.layer(1, 3) {
            KvLayer::F16 { k: kc, v: vc } => {
                for i in 0..4 {
                    assert_eq!(kc[8 + i], f16::from_f32(k[i]));
                    assert_eq!(vc[8 + i], f16::from_f32(v[i]));
                }
                // 70000 is beyond f16's range: the f32 cache is what keeps it.
                assert!(kc[11].to_f32().is_infinite());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn q8_0_rows_are_rotated_like_llama_cpp_and_round_trip_within_a_quantum() {
        assert_eq!(q8_0_rotation(64), Some((64, 64)));
        assert_eq!(q8_0_rotation(128), Some((128, 64)));
        assert_eq!(q8_0_rotation(256), Some((256, 64)));
        assert_eq!(q8_0_rotation(96), None);
        assert_eq!(q8_0_rotation(32), None);
        // Orthonormal and its own inverse.
        let x: [f32; 64] = core::array::from_fn(|i| libm::sinf(i as f32 * 0.7) * 3.0);
        let mut y = x;
        fwht(&mut y, 64);
        let (nx, ny): (f32, f32) = (x.iter().map(|v| v * v).sum(), y.iter().map(|v| v * v).sum());
        assert!((nx - ny).abs() < 1e-4 * nx);
        fwht(&mut y, 64);
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-5));

        // Two heads of 64: the stored blocks dequantize and rotate back to the row, within half
        // a quantization step of the rotated values.
        let (n_ctx, kv_dim) = (2, 128);
        let k: [f32; 128] = core::array::from_fn(|i| libm::cosf(i as f32 * 1.3) * (i % 7) as f32);
        let v: [f32; 128] = core::array::from_fn(|i| (i as f32 - 60.0) * 0.01);
        let (mut kb, mut vb) = ([BlockQ8_0::zeroed(); 8], [BlockQ8_0::zeroed(); 8]);
        let mut c = KvCache::new_q8_0(&mut kb, &mut vb, n_ctx, kv_dim, 64);
        assert_eq!(c.kv_type(), KvType::Q8_0);
        c.store(0, 1, &k, &v);
        let KvLayer::Q8_0 { k: kq, v: vq } = c.layer(0, 2) else {
            panic!("not q8_0")
        };
        for (blocks, want) in [(&kq[4..], &k), (&vq[4..], &v)] {
            let mut got = [0f32; 128];
            crate::quant::dequantize_row(GgmlType::Q8_0, bytemuck::cast_slice(blocks), &mut got)
                .unwrap();
            let amax = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            fwht(&mut got, 64);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= amax / 127.0 * 8.0, "{g} vs {w}");
            }
        }
        assert!(kq[..4].iter().all(|b| b.qs == [0; 32]));
    }

    /// A `core::fmt::Write` into a fixed buffer (the tests run without alloc too).
    struct Writer<'b>(&'b mut [u8], usize);

    impl core::fmt::Write for Writer<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }
}
