//! The key/value cache: f16 rows in caller-provided memory, one slot per (layer, position).

use half::f16;

/// Keys and values of every layer for up to `n_ctx` positions.
///
/// Stored as f16, like llama.cpp's default cache: half the memory of f32, and the same rounding.
#[derive(Debug)]
pub struct KvCache<'m> {
    k: &'m mut [f16],
    v: &'m mut [f16],
    n_ctx: usize,
    kv_dim: usize,
}

impl<'m> KvCache<'m> {
    /// Elements (per K and per V) needed for `n_layer × n_ctx × kv_dim`.
    pub fn elements(n_layer: usize, n_ctx: usize, kv_dim: usize) -> Option<usize> {
        n_layer.checked_mul(n_ctx)?.checked_mul(kv_dim)
    }

    /// Wraps two buffers of `elements(..)` f16 each.
    pub fn new(k: &'m mut [f16], v: &'m mut [f16], n_ctx: usize, kv_dim: usize) -> KvCache<'m> {
        KvCache {
            k,
            v,
            n_ctx,
            kv_dim,
        }
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn range(&self, layer: usize, pos: usize) -> core::ops::Range<usize> {
        let start = (layer * self.n_ctx + pos) * self.kv_dim;
        start..start + self.kv_dim
    }

    /// Stores the key and value rows of `layer` at `pos`.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let r = self.range(layer, pos);
        for (d, &s) in self.k[r.clone()].iter_mut().zip(k) {
            *d = f16::from_f32(s);
        }
        for (d, &s) in self.v[r].iter_mut().zip(v) {
            *d = f16::from_f32(s);
        }
    }

    /// Keys and values of `layer` for positions `0..n_pos`.
    pub fn layer(&self, layer: usize, n_pos: usize) -> (&[f16], &[f16]) {
        let start = layer * self.n_ctx * self.kv_dim;
        let end = start + n_pos * self.kv_dim;
        (&self.k[start..end], &self.v[start..end])
    }
}
