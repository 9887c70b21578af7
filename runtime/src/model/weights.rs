//! Weight views into the GGUF bytes, checked against the config's shapes at load time.

use super::{Config, LoraDelta, ModelError};
use crate::gguf::{Gguf, Name, TensorInfo};
use crate::quant::GgmlType;

/// A weight matrix of `rows` output rows × `cols` inputs, stored row-major in its ggml type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weight<'a> {
    /// Element type.
    pub ty: GgmlType,
    /// Output rows (ggml `ne1`).
    pub rows: usize,
    /// Inputs per row (ggml `ne0`).
    pub cols: usize,
    /// `rows × row_bytes(cols)` bytes.
    pub data: &'a [u8],
    /// LoRA updates added to this weight's products (see [`super::lora`]).
    pub lora: Option<&'a LoraDelta<'a>>,
}

impl<'a> Weight<'a> {
    /// A placeholder for tables filled in at load time.
    pub const EMPTY: Weight<'static> = Weight {
        ty: GgmlType::F32,
        rows: 0,
        cols: 0,
        data: &[],
        lora: None,
    };

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }
}

/// A vector of f32 or f16 values (norm weights, biases).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vector<'a> {
    /// F32 or F16.
    pub ty: GgmlType,
    /// The raw little-endian bytes.
    pub data: &'a [u8],
}

impl Vector<'_> {
    /// A placeholder for tables filled in at load time.
    pub const EMPTY: Vector<'static> = Vector {
        ty: GgmlType::F32,
        data: &[],
    };

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.ty.block_bytes()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Element `i` as f32.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self.ty {
            GgmlType::F16 => {
                half::f16::from_bits(u16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]]))
                    .to_f32()
            }
            _ => f32::from_le_bytes([
                self.data[4 * i],
                self.data[4 * i + 1],
                self.data[4 * i + 2],
                self.data[4 * i + 3],
            ]),
        }
    }

    /// Iterates over the elements as f32.
    pub fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The weights of one transformer block; fields an architecture does not use stay `None`/empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerWeights<'a> {
    /// Norm before attention.
    pub attn_norm: Vector<'a>,
    /// Query projection.
    pub wq: Weight<'a>,
    /// Key projection.
    pub wk: Weight<'a>,
    /// Value projection.
    pub wv: Weight<'a>,
    /// Query bias.
    pub bq: Option<Vector<'a>>,
    /// Key bias.
    pub bk: Option<Vector<'a>>,
    /// Value bias.
    pub bv: Option<Vector<'a>>,
    /// Attention output projection.
    pub wo: Weight<'a>,
    /// Norm before the feed-forward block.
    pub ffn_norm: Vector<'a>,
    /// Feed-forward gate projection (SwiGLU).
    pub w_gate: Weight<'a>,
    /// Feed-forward up projection.
    pub w_up: Weight<'a>,
    /// Feed-forward down projection.
    pub w_down: Weight<'a>,
    /// Attention norm bias (LayerNorm).
    pub attn_norm_b: Option<Vector<'a>>,
    /// Attention output bias.
    pub bo: Option<Vector<'a>>,
    /// Feed-forward norm bias (LayerNorm).
    pub ffn_norm_b: Option<Vector<'a>>,
    /// Feed-forward up-projection bias.
    pub b_up: Option<Vector<'a>>,
    /// Feed-forward down-projection bias.
    pub b_down: Option<Vector<'a>>,
    /// Per-head RMSNorm of the queries (Gemma 3).
    pub q_norm: Option<Vector<'a>>,
    /// Per-head RMSNorm of the keys (Gemma 3).
    pub k_norm: Option<Vector<'a>>,
    /// Norm of the attention block's output before the residual add (Gemma 3).
    pub post_attn_norm: Option<Vector<'a>>,
    /// Norm of the feed-forward block's output before the residual add (Gemma 3).
    pub post_ffn_norm: Option<Vector<'a>>,
}

impl LayerWeights<'_> {
    /// A placeholder for tables filled in at load time.
    pub const EMPTY: LayerWeights<'static> = LayerWeights {
        attn_norm: Vector::EMPTY,
        wq: Weight::EMPTY,
        wk: Weight::EMPTY,
        wv: Weight::EMPTY,
        bq: None,
        bk: None,
        bv: None,
        wo: Weight::EMPTY,
        ffn_norm: Vector::EMPTY,
        w_gate: Weight::EMPTY,
        w_up: Weight::EMPTY,
        w_down: Weight::EMPTY,
        attn_norm_b: None,
        bo: None,
        ffn_norm_b: None,
        b_up: None,
        b_down: None,
        q_norm: None,
        k_norm: None,
        post_attn_norm: None,
        post_ffn_norm: None,
    };
}

impl<'a> LayerWeights<'a> {
    /// The matrix called `blk.N.{suffix}` in GGUF files, if this layer multiplies with it (LoRA
    /// adapters name their targets this way; a matrix field added above needs its line here).
    pub fn matrix_mut(&mut self, suffix: &str) -> Option<&mut Weight<'a>> {
        let w = match suffix {
            "attn_q.weight" => &mut self.wq,
            "attn_k.weight" => &mut self.wk,
            "attn_v.weight" => &mut self.wv,
            "attn_output.weight" => &mut self.wo,
            "ffn_gate.weight" => &mut self.w_gate,
            "ffn_up.weight" => &mut self.w_up,
            "ffn_down.weight" => &mut self.w_down,
            _ => return None,
        };
        // Fields an architecture does not use stay empty.
        (w.rows > 0).then_some(w)
    }
}

/// Looks up tensors by name and checks them against the config.
pub(crate) struct Loader<'g, 'a> {
    pub g: &'g Gguf<'a>,
    pub c: &'g Config,
}

/// `blk.{layer}.{suffix}` in a stack buffer.
pub(crate) struct LayerName {
    buf: [u8; 80],
    len: usize,
}

impl LayerName {
    pub fn new(layer: usize, suffix: &str) -> LayerName {
        let mut n = LayerName {
            buf: [0; 80],
            len: 0,
        };
        n.push(b"blk.");
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = layer;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        n.push(&digits[i..]);
        n.push(b".");
        n.push(suffix.as_bytes());
        n
    }

    fn push(&mut self, s: &[u8]) {
        let k = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + k].copy_from_slice(&s[..k]);
        self.len += k;
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<'a> Loader<'_, 'a> {
    pub fn has(&self, name: &str) -> bool {
        self.g.tensor(name).is_some()
    }

    fn get(&self, name: &str) -> Result<TensorInfo<'a>, ModelError> {
        self.g
            .tensor(name)
            .ok_or(ModelError::MissingTensor(Name::new(name)))
    }

    /// A `rows × cols` matrix (ggml dims `[cols, rows]`) of a type the kernels compute with.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Weight<'a>, ModelError> {
        let t = self.get(name)?;
        if t.n_dims > 2 || t.dims[0] != cols as u64 || t.dims[1] != rows as u64 {
            return Err(ModelError::BadShape {
                tensor: Name::new(name),
                expected: [cols as u64, rows as u64],
                got: t.dims,
            });
        }
        if !t.ty.is_supported() {
            return Err(ModelError::UnsupportedType {
                tensor: Name::new(name),
                ty: t.ty,
            });
        }
        Ok(Weight {
            ty: t.ty,
            rows,
            cols,
            data: t.data,
            lora: None,
        })
    }

    /// A matrix read a row at a time (embeddings): its rows must be contiguous, not interleaved.
    pub fn embedding(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Weight<'a>, ModelError> {
        let m = self.matrix(name, rows, cols)?;
        if m.ty.interleave() > 1 {
            return Err(ModelError::UnsupportedType {
                tensor: Name::new(name),
                ty: m.ty,
            });
        }
        Ok(m)
    }

    /// A vector of `n` f32/f16 values.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vector<'a>, ModelError> {
        let t = self.get(name)?;
        if t.n_dims != 1 || t.dims[0] != n as u64 {
            return Err(ModelError::BadShape {
                tensor: Name::new(name),
                expected: [n as u64, 0],
                got: t.dims,
            });
        }
        if !matches!(t.ty, GgmlType::F32 | GgmlType::F16) {
            return Err(ModelError::UnsupportedType {
                tensor: Name::new(name),
                ty: t.ty,
            });
        }
        Ok(Vector {
            ty: t.ty,
            data: t.data,
        })
    }

    /// A vector that may be absent.
    pub fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vector<'a>>, ModelError> {
        match self.has(name) {
            true => self.vector(name, n).map(Some),
            false => Ok(None),
        }
    }

    /// Layer matrix `blk.{layer}.{suffix}`.
    pub fn lmatrix(
        &self,
        layer: usize,
        suffix: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Weight<'a>, ModelError> {
        self.matrix(LayerName::new(layer, suffix).as_str(), rows, cols)
    }

    /// Layer vector `blk.{layer}.{suffix}`.
    pub fn lvector(&self, layer: usize, suffix: &str, n: usize) -> Result<Vector<'a>, ModelError> {
        self.vector(LayerName::new(layer, suffix).as_str(), n)
    }

    /// Optional layer vector `blk.{layer}.{suffix}`.
    pub fn opt_lvector(
        &self,
        layer: usize,
        suffix: &str,
        n: usize,
    ) -> Result<Option<Vector<'a>>, ModelError> {
        self.opt_vector(LayerName::new(layer, suffix).as_str(), n)
    }
}
