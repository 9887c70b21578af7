//! LoRA adapters (Hu et al., 2021) applied at run time, read zero-copy from llama.cpp's adapter
//! GGUF (`general.type = adapter`, `adapter.type = lora`, tensors `<base>.lora_a` / `<base>.lora_b`).
//!
//! An adapted weight computes `y = W·x + s·B·(A·x)` with `s = scale·alpha/r` (just `scale` when
//! the file's alpha is 0), as llama.cpp's `build_lora_mm` does: `A·x` and `B·(A·x)` are ordinary
//! matrix-vector products in the adapter tensors' own types, the result is scaled, then added.
//! Each weight points to a chain of [`LoraDelta`]s in a table the caller provides (one entry per
//! adapted weight and adapter), so a model without adapters pays one pointer per weight.

use super::{LayerWeights, Model, Weight};
use crate::gguf::{Gguf, Name, TensorInfo};
use crate::quant::{self, GgmlType};
use core::fmt;

/// Largest rank an adapter may have: the rank-sized intermediate vectors live on the stack
/// (about `9 × MAX_LORA_RANK` bytes while a delta is added).
pub const MAX_LORA_RANK: usize = 256;

/// Output rows of `B` computed at once before they are added (a stack buffer, not an allocation).
const ROWS: usize = 64;

/// One adapter's low-rank update of one weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraDelta<'a> {
    /// `A`: `r` rows × the weight's inputs; for the token embedding, one `r`-vector per token
    /// (llama.cpp stores `token_embd.weight.lora_a` transposed).
    pub a: Weight<'a>,
    /// `B`: the weight's outputs × `r`.
    pub b: Weight<'a>,
    /// What `B·(A·x)` is multiplied by before it is added: `scale·alpha/r`, or `scale` if alpha is 0.
    pub scale: f32,
    /// The delta of the adapter applied before this one to the same weight, if any.
    pub next: Option<&'a LoraDelta<'a>>,
}

impl<'a> LoraDelta<'a> {
    /// A placeholder to fill a table with before [`Model::apply_adapter`].
    pub const EMPTY: LoraDelta<'a> = LoraDelta {
        a: Weight::EMPTY,
        b: Weight::EMPTY,
        scale: 0.0,
        next: None,
    };
}

/// Why an adapter file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoraError {
    /// `general.type` is not `adapter` (the value found, empty if absent).
    NotAdapter(Name),
    /// `adapter.type` is not `lora` (the value found, empty if absent).
    NotLora(Name),
    /// The adapter has no `general.architecture`.
    NoArchitecture,
    /// The adapter was made for another architecture.
    ArchMismatch {
        /// The adapter's `general.architecture`.
        adapter: Name,
        /// The model's.
        model: &'static str,
    },
    /// An activated LoRA (`adapter.alora.invocation_tokens`), which only applies after given tokens.
    Activated,
    /// `adapter.lora.alpha` is not a finite float.
    BadAlpha,
    /// The scale is not finite.
    BadScale,
    /// A tensor is neither `.lora_a`, `.lora_b` nor a norm weight.
    UnexpectedTensor(Name),
    /// A `.lora_a` without its `.lora_b`, or the other way round.
    MissingPartner(Name),
    /// The adapted tensor is not a weight this model's forward pass multiplies with.
    UnknownTarget(Name),
    /// A tensor's shape does not fit the base weight.
    BadShape {
        /// The adapter tensor.
        tensor: Name,
        /// Expected dims, innermost first.
        expected: [u64; 2],
        /// Dims found.
        got: [u64; 4],
    },
    /// `A` and `B` disagree on the rank.
    RankMismatch {
        /// The adapted tensor.
        tensor: Name,
        /// Rank from `lora_a`.
        a: u64,
        /// Rank from `lora_b`.
        b: u64,
    },
    /// The rank is 0 or above [`MAX_LORA_RANK`].
    BadRank {
        /// The adapted tensor.
        tensor: Name,
        /// Its rank.
        rank: u64,
    },
    /// A tensor's element type cannot be computed with.
    UnsupportedType {
        /// The adapter tensor.
        tensor: Name,
        /// Its type.
        ty: GgmlType,
    },
    /// The delta table has fewer free entries than the adapter has adapted weights.
    TableTooSmall {
        /// Entries needed.
        needed: usize,
        /// Entries given.
        got: usize,
    },
}

impl fmt::Display for LoraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoraError::*;
        match self {
            NotAdapter(t) if t.as_str().is_empty() => {
                write!(f, "not an adapter file (no general.type = 'adapter')")
            }
            NotAdapter(t) => write!(
                f,
                "not an adapter file (general.type is '{t}', expected 'adapter')"
            ),
            NotLora(t) => write!(f, "adapter.type is '{t}', only 'lora' is supported"),
            NoArchitecture => write!(f, "the adapter has no general.architecture key"),
            ArchMismatch { adapter, model } => write!(
                f,
                "the adapter is for architecture '{adapter}', the model is '{model}'"
            ),
            Activated => write!(
                f,
                "activated LoRA adapters (adapter.alora.invocation_tokens) are not supported"
            ),
            BadAlpha => write!(f, "adapter.lora.alpha is not a finite float"),
            BadScale => write!(f, "the adapter scale is not a finite number"),
            UnexpectedTensor(t) => write!(
                f,
                "adapter tensor '{t}' is neither .lora_a, .lora_b nor a norm weight"
            ),
            MissingPartner(t) => write!(f, "adapter tensor '{t}' has no lora_a/lora_b partner"),
            UnknownTarget(t) => write!(
                f,
                "the adapter changes '{t}', which this model does not multiply with (wrong base model?)"
            ),
            BadShape {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "adapter tensor '{tensor}' has shape {:?}, expected {:?} (wrong base model?)",
                &got[..],
                &expected[..]
            ),
            RankMismatch { tensor, a, b } => write!(
                f,
                "LoRA of '{tensor}': lora_a has rank {a}, lora_b has rank {b}"
            ),
            BadRank { tensor, rank } => write!(
                f,
                "LoRA of '{tensor}' has rank {rank}; supported ranks are 1 to {MAX_LORA_RANK}"
            ),
            UnsupportedType { tensor, ty } => write!(
                f,
                "adapter tensor '{tensor}' has type {} which cannot be computed",
                ty.name()
            ),
            TableTooSmall { needed, got } => write!(
                f,
                "LoRA delta table has {got} free entries, the adapter needs {needed}"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LoraError {}

/// A checked LoRA adapter file: header, tensor pairing and ranks (shapes against the model are
/// checked by [`Model::apply_adapter`]).
#[derive(Clone, Copy, Debug)]
pub struct Adapter<'a> {
    g: Gguf<'a>,
    /// `general.architecture`.
    pub arch: &'a str,
    /// `adapter.lora.alpha` (0 when absent).
    pub alpha: f32,
    /// Adapted weights (lora_a/lora_b pairs).
    pub n_pairs: usize,
    /// Table entries [`Model::apply_adapter`] takes: one per pair, three for a fused QKV (GPT-2),
    /// whose B splits into the Q, K and V rows.
    pub n_slots: usize,
    /// Norm-weight tensors in the file, ignored as llama.cpp ignores them.
    pub n_ignored: usize,
    /// Largest rank of any pair.
    pub max_rank: usize,
}

/// One adapted weight: the base tensor's name and its two factors.
struct Pair<'a> {
    base: &'a str,
    a: TensorInfo<'a>,
    b: TensorInfo<'a>,
}

impl Pair<'_> {
    /// The token embedding's adapter is stored transposed (rows are looked up per token).
    fn is_embedding(&self) -> bool {
        self.base == "token_embd.weight"
    }

    /// The rank, as llama.cpp takes it (`lora_b`'s innermost dim), after checking `lora_a` agrees.
    fn rank(&self) -> Result<u64, LoraError> {
        let a = match self.is_embedding() {
            true => self.a.dims[0],
            false => self.a.dims[1],
        };
        let b = self.b.dims[0];
        if a != b {
            return Err(LoraError::RankMismatch {
                tensor: Name::new(self.base),
                a,
                b,
            });
        }
        if b == 0 || b > MAX_LORA_RANK as u64 {
            return Err(LoraError::BadRank {
                tensor: Name::new(self.base),
                rank: b,
            });
        }
        Ok(b)
    }
}

const SUFFIX_A: &str = ".lora_a";
const SUFFIX_B: &str = ".lora_b";

/// The tensor called `base` + `suffix`, without building the name.
fn find<'a>(g: &Gguf<'a>, base: &str, suffix: &str) -> Option<TensorInfo<'a>> {
    g.tensors().find(|t| {
        t.name.len() == base.len() + suffix.len()
            && t.name.starts_with(base)
            && t.name.ends_with(suffix)
    })
}

impl<'a> Adapter<'a> {
    /// Checks that `g` is a LoRA adapter and pairs its tensors. Allocates nothing.
    pub fn parse(g: &Gguf<'a>) -> Result<Adapter<'a>, LoraError> {
        let general_type = g.get_str("general.type").unwrap_or("");
        if general_type != "adapter" {
            return Err(LoraError::NotAdapter(Name::new(general_type)));
        }
        let adapter_type = g.get_str("adapter.type").unwrap_or("");
        if adapter_type != "lora" {
            return Err(LoraError::NotLora(Name::new(adapter_type)));
        }
        let arch = g.architecture().ok_or(LoraError::NoArchitecture)?;
        if g.get("adapter.alora.invocation_tokens").is_some() {
            return Err(LoraError::Activated);
        }
        let alpha = match g.get("adapter.lora.alpha") {
            None => 0.0,
            Some(v) => v
                .as_f32()
                .filter(|a| a.is_finite())
                .ok_or(LoraError::BadAlpha)?,
        };
        let (mut n_pairs, mut n_slots, mut n_ignored) = (0, 0, 0);
        for t in g.tensors() {
            if let Some(base) = t.name.strip_suffix(SUFFIX_A) {
                if find(g, base, SUFFIX_B).is_none() {
                    return Err(LoraError::MissingPartner(Name::new(t.name)));
                }
                n_pairs += 1;
                n_slots += if base.ends_with(FUSED_QKV) { 3 } else { 1 };
            } else if let Some(base) = t.name.strip_suffix(SUFFIX_B) {
                if find(g, base, SUFFIX_A).is_none() {
                    return Err(LoraError::MissingPartner(Name::new(t.name)));
                }
            } else if t.name.ends_with("_norm.weight") {
                n_ignored += 1;
            } else {
                return Err(LoraError::UnexpectedTensor(Name::new(t.name)));
            }
        }
        let mut ad = Adapter {
            g: *g,
            arch,
            alpha,
            n_pairs,
            n_slots,
            n_ignored,
            max_rank: 0,
        };
        for p in ad.pairs() {
            for t in [&p.a, &p.b] {
                if t.n_dims > 2 {
                    return Err(LoraError::BadShape {
                        tensor: Name::new(t.name),
                        expected: [t.dims[0], t.dims[1]],
                        got: t.dims,
                    });
                }
                if !t.ty.is_supported() {
                    return Err(LoraError::UnsupportedType {
                        tensor: Name::new(t.name),
                        ty: t.ty,
                    });
                }
            }
            ad.max_rank = ad.max_rank.max(p.rank()? as usize);
        }
        Ok(ad)
    }

    /// The adapted weights, in file order of their `lora_a` tensors.
    fn pairs(&self) -> impl Iterator<Item = Pair<'a>> + 'a {
        let g = self.g;
        g.tensors().filter_map(move |a| {
            let base = a.name.strip_suffix(SUFFIX_A)?;
            let b = find(&g, base, SUFFIX_B)?;
            Some(Pair { base, a, b })
        })
    }

    /// A table with one free entry per adapted weight, for [`Model::apply_adapter`].
    #[cfg(feature = "alloc")]
    pub fn table<'t>(&self) -> alloc::vec::Vec<LoraDelta<'t>> {
        alloc::vec![LoraDelta::EMPTY; self.n_slots]
    }
}

/// `blk.{i}.{suffix}` split into the layer index and the suffix.
fn layer_name(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let dot = rest.find('.')?;
    let digits = &rest[..dot];
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let i = digits
        .bytes()
        .fold(0usize, |n, c| n * 10 + (c - b'0') as usize);
    Some((i, &rest[dot + 1..]))
}

/// The factors of `p` as weights, checked against the base weight `w`.
fn factors<'a>(p: &Pair<'a>, w: &Weight<'a>) -> Result<(Weight<'a>, Weight<'a>), LoraError> {
    let r = p.rank()?;
    let (rows, cols) = (w.rows as u64, w.cols as u64);
    // ggml dims, innermost first: A·x needs A = [cols, r], B = [r, rows]; the embedding's
    // A is looked up by token, [r, n_vocab], and its B maps to the embedding width, [r, cols].
    let (a_dims, b_dims) = match p.is_embedding() {
        true => ([r, rows], [r, cols]),
        false => ([cols, r], [r, rows]),
    };
    let mut out = [Weight::EMPTY; 2];
    for (o, (t, d)) in out.iter_mut().zip([(&p.a, a_dims), (&p.b, b_dims)]) {
        if t.dims[0] != d[0] || t.dims[1] != d[1] {
            return Err(LoraError::BadShape {
                tensor: Name::new(t.name),
                expected: d,
                got: t.dims,
            });
        }
        *o = Weight {
            ty: t.ty,
            rows: d[1] as usize,
            cols: d[0] as usize,
            data: t.data,
            lora: None,
        };
    }
    Ok((out[0], out[1]))
}

impl<'a, L: AsMut<[LayerWeights<'a>]>> Model<'a, L> {
    /// Applies a LoRA adapter at `scale` (1 = as trained, 0 = no effect): every weight it adapts
    /// gets a [`LoraDelta`] from `table`, added after the deltas of adapters applied before.
    /// Nothing is changed when an error is returned. Returns the unused rest of `table`, for the
    /// next adapter.
    ///
    /// The adapter may change any matrix the forward pass multiplies with, the token embedding
    /// and the output head included (also when the head is tied to the embedding: the two are
    /// adapted separately, as `token_embd.weight` and `output.weight`).
    pub fn apply_adapter(
        &mut self,
        adapter: &Adapter<'a>,
        scale: f32,
        table: &'a mut [LoraDelta<'a>],
    ) -> Result<&'a mut [LoraDelta<'a>], LoraError> {
        if adapter.arch != self.config.arch.name() {
            return Err(LoraError::ArchMismatch {
                adapter: Name::new(adapter.arch),
                model: self.config.arch.name(),
            });
        }
        if !scale.is_finite() {
            return Err(LoraError::BadScale);
        }
        if table.len() < adapter.n_slots {
            return Err(LoraError::TableTooSmall {
                needed: adapter.n_slots,
                got: table.len(),
            });
        }
        // Check every pair before touching any weight.
        for p in adapter.pairs() {
            match self.fused_qkv(p.base) {
                Some(fused) => factors(&p, &fused)?,
                None => {
                    let w = self
                        .target(p.base)
                        .ok_or(LoraError::UnknownTarget(Name::new(p.base)))?;
                    factors(&p, w)?
                }
            };
        }
        let mut free = table;
        for p in adapter.pairs() {
            if let Some(fused) = self.fused_qkv(p.base) {
                let Ok((a, b)) = factors(&p, &fused) else {
                    continue;
                };
                // The Q, K and V views each get A and their own rows of B.
                let s = lora_scale(adapter.alpha, scale, b.cols);
                let row = b.row_bytes();
                let (i, _) = layer_name(p.base).unwrap_or((0, ""));
                let mut first = 0;
                for part in ["attn_q.weight", "attn_k.weight", "attn_v.weight"] {
                    let Some(w) = self
                        .layers
                        .as_mut()
                        .get_mut(i)
                        .and_then(|l| l.matrix_mut(part))
                    else {
                        continue;
                    };
                    let rows = w.rows;
                    let bpart = Weight {
                        rows,
                        data: &b.data[first * row..(first + rows) * row],
                        ..b
                    };
                    first += rows;
                    let (slot, rest) = core::mem::take(&mut free).split_at_mut(1);
                    free = rest;
                    slot[0] = LoraDelta {
                        a,
                        b: bpart,
                        scale: s,
                        next: w.lora,
                    };
                    let slot: &'a LoraDelta<'a> = &slot[0];
                    w.lora = Some(slot);
                }
                continue;
            }
            let Some(w) = self.target(p.base) else {
                continue;
            };
            let Ok((a, b)) = factors(&p, w) else {
                continue;
            };
            let (slot, rest) = core::mem::take(&mut free).split_at_mut(1);
            free = rest;
            slot[0] = LoraDelta {
                a,
                b,
                scale: lora_scale(adapter.alpha, scale, b.cols),
                next: w.lora,
            };
            let slot: &'a LoraDelta<'a> = &slot[0];
            w.lora = Some(slot);
        }
        Ok(free)
    }

    /// GPT-2's fused `blk.N.attn_qkv.weight` (loaded as Q/K/V row views) as one weight, for checks.
    fn fused_qkv(&mut self, name: &str) -> Option<Weight<'a>> {
        let (i, suffix) = layer_name(name)?;
        if suffix != FUSED_QKV || self.config.arch != super::Arch::Gpt2 {
            return None;
        }
        let l = self.layers.as_mut().get_mut(i)?;
        let (q, k, v) = (l.wq, l.wk, l.wv);
        Some(Weight {
            rows: q.rows + k.rows + v.rows,
            ..q
        })
    }

    /// The weight called `name` in GGUF files, if the forward pass multiplies with it.
    fn target(&mut self, name: &str) -> Option<&mut Weight<'a>> {
        match name {
            "token_embd.weight" => Some(&mut self.tok_embd),
            "output.weight" => Some(&mut self.output),
            _ => {
                let (i, suffix) = layer_name(name)?;
                self.layers.as_mut().get_mut(i)?.matrix_mut(suffix)
            }
        }
    }
}

/// llama.cpp's rule (llama_adapter_lora_weight::get_scale), in its order of operations.
fn lora_scale(alpha: f32, scale: f32, rank: usize) -> f32 {
    match alpha != 0.0 {
        true => scale * alpha / rank as f32,
        false => scale,
    }
}

/// GPT-2's fused attention input projection.
const FUSED_QKV: &str = "attn_qkv.weight";

/// `out += s·B·(A·x)` for every delta in the chain; `act` is scratch for `x` quantized for `A`.
pub(crate) fn add_deltas(
    mut d: Option<&LoraDelta<'_>>,
    x: &[f32],
    act: &mut [u8],
    out: &mut [f32],
) {
    while let Some(l) = d {
        let mut t = [0f32; MAX_LORA_RANK];
        let t = &mut t[..l.a.rows.min(MAX_LORA_RANK)];
        let aty = l.a.ty.vec_dot_type();
        let n = aty.row_bytes(l.a.cols).unwrap_or(0);
        // Shapes were checked when the adapter was applied, so this only fails on a runtime bug.
        let _ = quant::quantize_act_row(aty, &x[..l.a.cols], &mut act[..n]);
        quant::matvec(l.a.ty, l.a.cols, l.a.data, &act[..n], t);
        add_scaled(l, t, out);
        d = l.next;
    }
}

/// The token embedding's deltas: `out += s·B·A[token]`.
pub(crate) fn add_embedding_deltas(mut d: Option<&LoraDelta<'_>>, token: usize, out: &mut [f32]) {
    while let Some(l) = d {
        let mut t = [0f32; MAX_LORA_RANK];
        let t = &mut t[..l.a.cols.min(MAX_LORA_RANK)];
        let _ = quant::dequantize_row(l.a.ty, l.a.row(token), t);
        add_scaled(l, t, out);
        d = l.next;
    }
}

/// `out += s·(B·t)`, rounded as ggml does: product, then scale, then add.
fn add_scaled(l: &LoraDelta<'_>, t: &[f32], out: &mut [f32]) {
    let b = &l.b;
    let aty = b.ty.vec_dot_type();
    let mut act = [0u8; 4 * MAX_LORA_RANK];
    let n = aty.row_bytes(t.len()).unwrap_or(0).min(act.len());
    let _ = quant::quantize_act_row(aty, t, &mut act[..n]);
    let mut y = [0f32; ROWS];
    for (i, o) in out[..b.rows].chunks_mut(ROWS).enumerate() {
        let y = &mut y[..o.len()];
        quant::matvec_rows(b.ty, b.cols, b.data, &act[..n], i * ROWS, y);
        for (o, &v) in o.iter_mut().zip(y.iter()) {
            *o += v * l.scale;
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::model::ops;
    use std::vec::Vec;

    #[test]
    fn layer_names() {
        assert_eq!(
            layer_name("blk.12.attn_q.weight"),
            Some((12, "attn_q.weight"))
        );
        assert_eq!(layer_name("blk..attn_q.weight"), None);
        assert_eq!(layer_name("blk.-1.attn_q.weight"), None);
        assert_eq!(layer_name("blk.1"), None);
        assert_eq!(layer_name("token_embd.weight"), None);
    }

    /// Deterministic values in [-0.5, 0.5) (splitmix64, counter-based).
    fn values(seed: u64, n: usize) -> Vec<f32> {
        (0..n as u64)
            .map(|i| {
                let mut z = seed
                    .wrapping_mul(0x1000_0000_01b3)
                    .wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// A `rows × cols` matrix of type `ty`: its bytes and the values they hold.
    fn matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let v = values(seed, rows * cols);
        let mut bytes = std::vec![0u8; rows * ty.row_bytes(cols).unwrap()];
        let mut back = std::vec![0f32; rows * cols];
        let rb = ty.row_bytes(cols).unwrap();
        for r in 0..rows {
            let (src, dst) = (&v[r * cols..][..cols], &mut bytes[r * rb..][..rb]);
            quant::quantize_row(ty, src, dst).unwrap();
            quant::dequantize_row(ty, dst, &mut back[r * cols..][..cols]).unwrap();
        }
        (bytes, back)
    }

    fn weight(ty: GgmlType, rows: usize, cols: usize, data: &[u8]) -> Weight<'_> {
        Weight {
            ty,
            rows,
            cols,
            data,
            lora: None,
        }
    }

    /// `m · x` in f64 for a row-major `rows × cols` matrix.
    fn mul(m: &[f32], cols: usize, x: &[f64]) -> Vec<f64> {
        m.chunks(cols)
            .map(|row| row.iter().zip(x).map(|(&a, &b)| a as f64 * b).sum())
            .collect()
    }

    /// A chain of two deltas (F32 at rank 8, then F16 / Q8_0 at rank 32) on an F32 weight gives
    /// `W·x + s1·B1·A1·x + s2·B2·A2·x`: exactly up to f32 rounding for the F32 factors, within
    /// the activation quantization error for the others.
    #[test]
    fn matvec_adds_the_chain_of_deltas() {
        let (rows, cols) = (96, 128);
        let (wd, wv) = matrix(GgmlType::F32, rows, cols, 1);
        let x64: Vec<f64> = values(2, cols).iter().map(|&v| v as f64).collect();
        let x: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let mut act = std::vec![0u8; 4 * cols];
        let base = mul(&wv, cols, &x64);
        for (ty2, tol) in [
            (GgmlType::F32, 1e-5),
            (GgmlType::F16, 2e-3),
            (GgmlType::Q8_0, 2e-2),
        ] {
            let (a1, a1v) = matrix(GgmlType::F32, 8, cols, 3);
            let (b1, b1v) = matrix(GgmlType::F32, rows, 8, 4);
            let (a2, a2v) = matrix(ty2, 32, cols, 5);
            let (b2, b2v) = matrix(ty2, rows, 32, 6);
            let d1 = LoraDelta {
                a: weight(GgmlType::F32, 8, cols, &a1),
                b: weight(GgmlType::F32, rows, 8, &b1),
                scale: 0.75,
                next: None,
            };
            let d2 = LoraDelta {
                a: weight(ty2, 32, cols, &a2),
                b: weight(ty2, rows, 32, &b2),
                scale: -1.5,
                next: Some(&d1),
            };
            let mut w = weight(GgmlType::F32, rows, cols, &wd);
            w.lora = Some(&d2);
            let mut out = std::vec![0f32; rows];
            ops::matvec(&w, &x, &mut act, &mut out);
            let t1 = mul(&a1v, cols, &x64);
            let t2 = mul(&a2v, cols, &x64);
            let (u1, u2) = (mul(&b1v, 8, &t1), mul(&b2v, 32, &t2));
            let mut max_delta = 0f64;
            for i in 0..rows {
                let delta = 0.75 * u1[i] - 1.5 * u2[i];
                max_delta = max_delta.max(delta.abs());
                let want = base[i] + delta;
                assert!(
                    (out[i] as f64 - want).abs() <= tol * (1.0 + want.abs()),
                    "{ty2}: row {i}: {} vs {want}",
                    out[i]
                );
            }
            // The deltas are large enough that leaving one out would fail the check above.
            assert!(max_delta > 0.5, "{max_delta}");
        }
    }

    /// The token embedding's delta is `s·B·A[token]`, with A stored one row per token.
    #[test]
    fn embedding_adds_its_delta() {
        let (vocab, dim, r) = (10, 64, 8);
        let (ed, ev) = matrix(GgmlType::F32, vocab, dim, 7);
        let (ad, av) = matrix(GgmlType::F16, vocab, r, 8);
        let (bd, bv) = matrix(GgmlType::F32, dim, r, 9);
        let d = LoraDelta {
            a: weight(GgmlType::F16, vocab, r, &ad),
            b: weight(GgmlType::F32, dim, r, &bd),
            scale: 2.0,
            next: None,
        };
        let mut e = weight(GgmlType::F32, vocab, dim, &ed);
        e.lora = Some(&d);
        let mut out = std::vec![0f32; dim];
        for token in [0, 3, 9] {
            ops::embed(&mut out, &e, token);
            let t: Vec<f64> = av[token * r..][..r].iter().map(|&v| v as f64).collect();
            let u = mul(&bv, r, &t);
            for i in 0..dim {
                let want = ev[token * dim + i] as f64 + 2.0 * u[i];
                assert!((out[i] as f64 - want).abs() < 1e-5, "{token} {i}");
            }
        }
    }
}
