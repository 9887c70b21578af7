//! Memory plan: the exact bytes a session needs, known before any weights are touched,
//! and the carving of one caller-provided buffer into the KV cache and scratch buffers.

use crate::kv::{KvCache, KvType, Ring};
use crate::model::{batch_sizes, state_sizes, Arch, Batch, Config, State};
use crate::quant::blocks::{BlockQ8_0, QK};
use crate::sampler::Candidate;
use half::f16;

/// Every buffer starts on this boundary (cache line; SIMD-friendly).
pub const ALIGN: usize = 64;

/// Bytes a session needs for a model config and context length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Context length planned for.
    pub n_ctx: usize,
    /// KV cache element type planned for.
    pub kv_type: KvType,
    /// Most prompt tokens one batched forward pass takes (1 = one token at a time, no batch
    /// buffers).
    pub n_batch: usize,
    /// KV cache bytes (keys + values, all layers; sliding-window layers hold a ring of the window).
    pub kv_bytes: usize,
    /// Of `kv_bytes`, those of the sliding-window layers' rings (independent of `n_ctx` beyond the window).
    pub kv_ring_bytes: usize,
    /// Activation scratch bytes (one token's, plus `n_batch` tokens' when batching).
    pub scratch_bytes: usize,
    /// Sampler candidate buffer bytes.
    pub sampler_bytes: usize,
    /// Total bytes to provide, including alignment slack for any buffer address.
    pub total_bytes: usize,
}

/// Why a plan or carve failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The context length is zero or the sizes overflow.
    BadContext(usize),
    /// The model has learned positions only up to `n_ctx_train` (GPT-2), fewer than asked for.
    BeyondPositions {
        /// Context length asked for.
        n_ctx: usize,
        /// Positions the model has.
        n_ctx_train: usize,
    },
    /// The KV cache type cannot hold this model's heads (Q8_0 needs whole 32-element blocks).
    KvHeadDim {
        /// The cache type asked for.
        kv_type: KvType,
        /// The model's head dimension.
        head_dim: usize,
    },
    /// The buffer given is smaller than the plan.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlanError::BadContext(n) => write!(f, "context length {n} is zero or too large"),
            PlanError::BeyondPositions { n_ctx, n_ctx_train } => write!(
                f,
                "context length {n_ctx} exceeds the model's {n_ctx_train} learned positions; use -c {n_ctx_train} or less"
            ),
            PlanError::KvHeadDim { kv_type, head_dim } => write!(
                f,
                "the {kv_type} KV cache needs head dimensions that are multiples of {} (at most {}); this model's heads have {head_dim}: use --kv-type f16",
                kv_type.block_size(),
                crate::kv::Q8_0_MAX_HEAD_DIM
            ),
            PlanError::BufferTooSmall { needed, got } => {
                write!(
                    f,
                    "session memory too small: {got} bytes given, {needed} needed"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PlanError {}

fn padded(bytes: usize) -> Option<usize> {
    bytes.checked_add(ALIGN - 1).map(|b| b / ALIGN * ALIGN)
}

/// Bytes of the sampler's candidate buffer: one (id, logit) pair per vocabulary entry.
pub fn sampler_bytes(n_vocab: usize) -> usize {
    n_vocab * core::mem::size_of::<Candidate>()
}

/// The exact memory a session with context `n_ctx` and the default f16 KV cache needs.
pub fn plan(c: &Config, n_ctx: usize) -> Result<Plan, PlanError> {
    plan_with(c, n_ctx, KvType::F16)
}

/// The exact memory a session with context `n_ctx` and a KV cache of `kv_type` needs, evaluating
/// prompts one token at a time.
pub fn plan_with(c: &Config, n_ctx: usize, kv_type: KvType) -> Result<Plan, PlanError> {
    plan_batch(c, n_ctx, kv_type, 1)
}

/// The exact memory a session needs that evaluates prompts in batches of up to `n_batch` tokens
/// (matrix × matrix products; `n_batch` ≤ 1 plans no batch buffers, as [`plan_with`]).
pub fn plan_batch(
    c: &Config,
    n_ctx: usize,
    kv_type: KvType,
    n_batch: usize,
) -> Result<Plan, PlanError> {
    let bad = PlanError::BadContext(n_ctx);
    // A batch never needs more rows than the context holds; Gemma 3 has no batched forward pass
    // (its sliding-window rings would be overwritten within a batch), so it plans none.
    let n_batch = match c.arch {
        Arch::Gemma3 => 1,
        _ => n_batch.clamp(1, n_ctx.max(1)),
    };
    if n_ctx == 0 || n_ctx > 1 << 24 {
        return Err(bad);
    }
    if let Some(max) = c.max_ctx() {
        if n_ctx > max {
            return Err(PlanError::BeyondPositions {
                n_ctx,
                n_ctx_train: max,
            });
        }
    }
    if !kv_type.supports_head_dim(c.head_dim) {
        return Err(PlanError::KvHeadDim {
            kv_type,
            head_dim: c.head_dim,
        });
    }
    let ring = ring(c);
    let rows = ring.rows_before(c.n_layer, n_ctx).ok_or(bad)?;
    let row_bytes = kv_type.row_bytes(c.kv_dim()).ok_or(bad)?;
    let kv_bytes = 2 * padded(rows.checked_mul(row_bytes).ok_or(bad)?).ok_or(bad)?;
    let ring_rows = c.n_swa_layers() * ring.size.min(n_ctx);
    let kv_ring_bytes = 2 * ring_rows * row_bytes;
    let mut scratch_bytes = 0usize;
    for (n, sz) in state_sizes(c).into_iter().chain(batch_sizes(c, n_batch)) {
        scratch_bytes = scratch_bytes
            .checked_add(padded(n.checked_mul(sz).ok_or(bad)?).ok_or(bad)?)
            .ok_or(bad)?;
    }
    let sampler = padded(sampler_bytes(c.n_vocab)).ok_or(bad)?;
    let total_bytes = kv_bytes + scratch_bytes + sampler + ALIGN;
    Ok(Plan {
        n_ctx,
        kv_type,
        n_batch,
        kv_bytes,
        kv_ring_bytes,
        scratch_bytes,
        sampler_bytes: sampler,
        total_bytes,
    })
}

/// The KV layout of a config: rings of the sliding window for its sliding-window layers.
pub fn ring(c: &Config) -> Ring {
    match c.sliding_window > 0 && c.swa_pattern > 0 {
        true => Ring {
            size: c.sliding_window,
            pattern: c.swa_pattern,
        },
        false => Ring::NONE,
    }
}

/// Hands out aligned, typed sub-slices of one byte buffer.
struct Arena<'m> {
    rest: &'m mut [u8],
}

impl<'m> Arena<'m> {
    fn bytes(&mut self, n: usize) -> &'m mut [u8] {
        let skip = self.rest.as_ptr().align_offset(ALIGN).min(self.rest.len());
        let rest = core::mem::take(&mut self.rest);
        let (_, rest) = rest.split_at_mut(skip);
        let take = padded(n).unwrap_or(n).min(rest.len());
        let (head, tail) = rest.split_at_mut(take);
        self.rest = tail;
        &mut head[..n]
    }

    fn typed<T: bytemuck::Pod>(&mut self, n: usize) -> &'m mut [T] {
        let b = self.bytes(n * core::mem::size_of::<T>());
        // Aligned to 64 above, so the cast cannot fail on alignment or size.
        bytemuck::try_cast_slice_mut(b).unwrap_or_default()
    }
}

/// The KV cache, activation state and sampler buffer carved out of one caller buffer.
#[derive(Debug)]
pub struct Buffers<'m> {
    /// Key/value cache.
    pub kv: KvCache<'m>,
    /// Activation scratch.
    pub state: State<'m>,
    /// Sampler candidates (id, logit) pairs.
    pub candidates: &'m mut [Candidate],
    /// Batched-forward scratch (empty buffers when the plan's batch size is 1).
    pub batch: Batch<'m>,
}

/// Splits `mem` (at least `plan.total_bytes`) into the session's buffers. Allocates nothing.
pub fn carve<'m>(c: &Config, p: &Plan, mem: &'m mut [u8]) -> Result<Buffers<'m>, PlanError> {
    if mem.len() < p.total_bytes {
        return Err(PlanError::BufferTooSmall {
            needed: p.total_bytes,
            got: mem.len(),
        });
    }
    let mut a = Arena { rest: mem };
    let kv_elems = KvCache::elements_ring(c.n_layer, p.n_ctx, c.kv_dim(), ring(c)).unwrap_or(0);
    let (n_ctx, kv_dim) = (p.n_ctx, c.kv_dim());
    let kv = match p.kv_type {
        KvType::F16 => {
            let k: &mut [f16] = a.typed(kv_elems);
            let v: &mut [f16] = a.typed(kv_elems);
            KvCache::new(k, v, n_ctx, kv_dim).with_ring(ring(c))
        }
        KvType::F32 => {
            let k: &mut [f32] = a.typed(kv_elems);
            let v: &mut [f32] = a.typed(kv_elems);
            KvCache::new_f32(k, v, n_ctx, kv_dim).with_ring(ring(c))
        }
        KvType::Q8_0 => {
            let blocks = kv_elems / QK;
            let k: &mut [BlockQ8_0] = a.typed(blocks);
            let v: &mut [BlockQ8_0] = a.typed(blocks);
            KvCache::new_q8_0(k, v, n_ctx, kv_dim, c.head_dim).with_ring(ring(c))
        }
    };
    let s = state_sizes(c);
    let state = State {
        x: a.typed(s[0].0),
        xb: a.typed(s[1].0),
        xb2: a.typed(s[2].0),
        q: a.typed(s[3].0),
        k: a.typed(s[4].0),
        v: a.typed(s[5].0),
        hb: a.typed(s[6].0),
        hb2: a.typed(s[7].0),
        logits: a.typed(s[8].0),
        act: a.bytes(s[9].0),
    };
    let candidates: &mut [Candidate] = a.typed(c.n_vocab);
    let bs = batch_sizes(c, p.n_batch);
    let batch = Batch {
        n: if p.n_batch > 1 { p.n_batch } else { 0 },
        x: a.typed(bs[0].0),
        xb: a.typed(bs[1].0),
        q: a.typed(bs[2].0),
        k: a.typed(bs[3].0),
        v: a.typed(bs[4].0),
        hb: a.typed(bs[5].0),
        hb2: a.typed(bs[6].0),
        mm: a.typed(bs[7].0),
        act: a.bytes(bs[8].0),
    };
    Ok(Buffers {
        kv,
        state,
        candidates,
        batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "alloc")]
    use crate::kv::KvLayer;
    use crate::model::{Activation, Arch, RopeKind};

    /// SmolLM2-135M's shape: 30 layers, 3 KV heads of 64.
    fn smollm2() -> Config {
        Config {
            arch: Arch::Llama,
            n_vocab: 49152,
            n_embd: 576,
            n_layer: 30,
            n_head: 9,
            n_head_kv: 3,
            head_dim: 64,
            n_ff: 1536,
            n_ctx_train: 8192,
            norm_eps: 1e-5,
            rope_base: 100000.0,
            rope_dim: 64,
            rope_kind: RopeKind::Normal,
            activation: Activation::Silu,
            sliding_window: 0,
            swa_pattern: 0,
            rope_base_swa: 100000.0,
            attn_scale: 0.125,
            logit_softcap: 0.0,
        }
    }

    #[test]
    fn kv_bytes_are_exact_for_each_type() {
        let c = smollm2();
        let f16 = plan(&c, 100).unwrap();
        assert_eq!(plan_with(&c, 100, KvType::F16), Ok(f16));
        assert_eq!(f16.kv_type, KvType::F16);
        // 30 layers × 100 positions × 192 × 2 bytes = 1 152 000, a multiple of 64, for K and V.
        assert_eq!(f16.kv_bytes, 2 * 30 * 100 * 192 * 2);
        let f32 = plan_with(&c, 100, KvType::F32).unwrap();
        assert_eq!(f32.kv_type, KvType::F32);
        assert_eq!(f32.kv_bytes, 2 * 30 * 100 * 192 * 4);
        // Only the cache differs.
        assert_eq!(f32.scratch_bytes, f16.scratch_bytes);
        assert_eq!(f32.sampler_bytes, f16.sampler_bytes);
        assert_eq!(
            f32.total_bytes - f16.total_bytes,
            f32.kv_bytes - f16.kv_bytes
        );

        // A row size that is not a multiple of 64 bytes: each of K and V is padded once.
        let mut odd = c;
        odd.n_layer = 1;
        odd.n_head_kv = 1;
        odd.n_head = 1;
        odd.head_dim = 6;
        odd.rope_dim = 6;
        let p = plan_with(&odd, 3, KvType::F32).unwrap();
        assert_eq!(p.kv_bytes, 2 * 128); // 3 × 6 × 4 = 72 → 128
        let p = plan_with(&odd, 3, KvType::F16).unwrap();
        assert_eq!(p.kv_bytes, 2 * 64); // 3 × 6 × 2 = 36 → 64
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn carve_gives_the_planned_cache_type_in_exactly_total_bytes() {
        let c = smollm2();
        for ty in KvType::ALL {
            let p = plan_with(&c, 16, ty).unwrap();
            let mut big = alloc_bytes(p.total_bytes + 63);
            for off in [0, 1, 33, 63] {
                let mem = &mut big[off..off + p.total_bytes];
                let b = carve(&c, &p, mem).unwrap();
                assert_eq!(b.kv.kv_type(), ty);
                let n = 16 * c.kv_dim();
                match (ty, b.kv.layer(29, 16)) {
                    (KvType::F16, KvLayer::F16 { k, v }) => assert_eq!((k.len(), v.len()), (n, n)),
                    (KvType::F32, KvLayer::F32 { k, v }) => assert_eq!((k.len(), v.len()), (n, n)),
                    (KvType::Q8_0, KvLayer::Q8_0 { k, v }) => {
                        assert_eq!((k.len(), v.len()), (n / 32, n / 32))
                    }
                    (t, l) => panic!("{t:?} planned, {l:?} carved"),
                }
            }
            let mut small = alloc_bytes(p.total_bytes - 1);
            assert_eq!(
                carve(&c, &p, &mut small).map(|_| ()),
                Err(PlanError::BufferTooSmall {
                    needed: p.total_bytes,
                    got: p.total_bytes - 1
                })
            );
        }
    }

    #[test]
    fn q8_0_cache_is_at_most_0_55_of_f16_and_needs_whole_blocks_per_head() {
        let c = smollm2();
        for n_ctx in [1, 100, 2048, 8192] {
            let f16 = plan_with(&c, n_ctx, KvType::F16).unwrap();
            let q8 = plan_with(&c, n_ctx, KvType::Q8_0).unwrap();
            assert_eq!(q8.kv_type, KvType::Q8_0);
            // 30 layers × n_ctx × 6 blocks × 34 bytes, each of K and V padded to 64.
            assert_eq!(q8.kv_bytes, 2 * padded(30 * n_ctx * 6 * 34).unwrap());
            assert!(
                q8.kv_bytes as f64 <= 0.55 * f16.kv_bytes as f64,
                "{n_ctx}: {} vs {}",
                q8.kv_bytes,
                f16.kv_bytes
            );
            assert_eq!(q8.scratch_bytes, f16.scratch_bytes);
            assert_eq!(q8.total_bytes - q8.kv_bytes, f16.total_bytes - f16.kv_bytes);
        }
        let mut odd = c;
        odd.head_dim = 48;
        odd.rope_dim = 48;
        let e = plan_with(&odd, 16, KvType::Q8_0).unwrap_err();
        assert_eq!(
            e,
            PlanError::KvHeadDim {
                kv_type: KvType::Q8_0,
                head_dim: 48
            }
        );
        assert!(plan_with(&odd, 16, KvType::F16).is_ok());
        let mut wide = c;
        wide.head_dim = 1024;
        assert!(plan_with(&wide, 16, KvType::Q8_0).is_err());
    }

    #[test]
    fn overflowing_f32_cache_is_an_error() {
        let mut c = smollm2();
        c.n_layer = usize::MAX / (1 << 20);
        assert_eq!(
            plan_with(&c, 1 << 20, KvType::F32),
            Err(PlanError::BadContext(1 << 20))
        );
    }

    #[cfg(feature = "alloc")]
    fn alloc_bytes(n: usize) -> alloc::vec::Vec<u8> {
        alloc::vec![0u8; n]
    }
}
