//! GGUF v3 writer: header first, then tensor data streamed in order (used by the converter and tests).

use super::{ValueType, DEFAULT_ALIGNMENT, MAGIC};
use crate::quant::GgmlType;
use std::io::{self, Write};
use std::string::String;
use std::vec::Vec;

/// An owned metadata value to write.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MetaValue {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// string
    Str(String),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
    /// array of values, all of the given element type
    Array(ValueType, Vec<MetaValue>),
}

impl MetaValue {
    /// The stored type id.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::Str(_) => ValueType::Str,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
            MetaValue::Array(..) => ValueType::Array,
        }
    }

    /// An array of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> MetaValue {
        MetaValue::Array(
            ValueType::Str,
            items
                .into_iter()
                .map(|s| MetaValue::Str(s.into()))
                .collect(),
        )
    }

    fn encode(&self, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.push(*v as u8),
            MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::Bool(v) => out.push(*v as u8),
            MetaValue::Str(s) => put_str(out, s),
            MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::Array(elem, items) => {
                out.extend_from_slice(&elem.id().to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    if it.value_type() != *elem {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "GGUF array holds values of mixed types",
                        ));
                    }
                    it.encode(out)?;
                }
            }
        }
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A tensor announced in the header; its bytes are written later, in the same order.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// Data size in bytes.
    pub size: u64,
    /// Offset in the data section.
    pub offset: u64,
}

/// Builds a GGUF file: collect metadata and tensor specs, write the header, then stream tensor data.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    kv: Vec<(String, MetaValue)>,
    tensors: Vec<TensorSpec>,
    alignment: usize,
    data_size: u64,
}

impl GgufWriter {
    /// An empty file with the default alignment.
    pub fn new() -> GgufWriter {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            ..Default::default()
        }
    }

    /// Sets (or replaces) a metadata key; `general.alignment` also changes the data alignment.
    pub fn set(&mut self, key: &str, value: MetaValue) {
        if key == "general.alignment" {
            if let MetaValue::U32(a) = value {
                if a.is_power_of_two() {
                    self.alignment = a as usize;
                }
            }
        }
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kv.push((key.into(), value)),
        }
    }

    /// Announces a tensor; returns its data size. Fails if the shape does not fit the type.
    pub fn add_tensor(&mut self, name: &str, ty: GgmlType, dims: &[u64]) -> io::Result<u64> {
        let bad = |m: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                std::format!("tensor '{name}': {m}"),
            )
        };
        if dims.is_empty() || dims.len() > 4 {
            return Err(bad("needs 1 to 4 dimensions"));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(bad("added twice"));
        }
        let n: u64 = dims.iter().product();
        let row = ty
            .row_bytes(dims[0] as usize)
            .ok_or_else(|| bad("row length is not a multiple of the type's block size"))?;
        let size = row as u64 * (n / dims[0]);
        let offset = self.data_size;
        self.data_size = align(offset + size, self.alignment as u64);
        self.tensors.push(TensorSpec {
            name: name.into(),
            ty,
            dims: dims.to_vec(),
            size,
            offset,
        });
        Ok(size)
    }

    /// The tensors announced so far.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// The header bytes, padded so tensor data can follow at once.
    pub fn header_bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            put_str(&mut out, k);
            out.extend_from_slice(&v.value_type().id().to_le_bytes());
            v.encode(&mut out)?;
        }
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out.resize(align(out.len() as u64, self.alignment as u64) as usize, 0);
        Ok(out)
    }

    /// Writes the header, then each tensor's data (in announce order) as `data(i, &mut w)` supplies it.
    pub fn write<W: Write>(
        &self,
        w: &mut W,
        mut data: impl FnMut(usize, &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> io::Result<()> {
        w.write_all(&self.header_bytes()?)?;
        let zeros = [0u8; 64];
        for (i, t) in self.tensors.iter().enumerate() {
            let mut written = 0u64;
            data(i, &mut |chunk: &[u8]| {
                written += chunk.len() as u64;
                w.write_all(chunk)
            })?;
            if written != t.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    std::format!(
                        "tensor '{}': {} bytes written, {} expected",
                        t.name,
                        written,
                        t.size
                    ),
                ));
            }
            let mut pad = (align(t.size, self.alignment as u64) - t.size) as usize;
            while pad > 0 {
                let n = pad.min(zeros.len());
                w.write_all(&zeros[..n])?;
                pad -= n;
            }
        }
        Ok(())
    }

    /// The whole file in memory, with `data[i]` as tensor i's bytes.
    pub fn to_bytes(&self, data: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write(&mut out, |i, put| put(data.get(i).copied().unwrap_or(&[])))?;
        Ok(out)
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}
