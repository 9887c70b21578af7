//! GGUF v2/v3 reader over a byte slice: zero-copy, allocation-free, every field validated.
//!
//! `Gguf::parse` walks the whole header once and checks every count, string, shape and offset
//! against the buffer; afterwards lookups re-walk the (already checked) header instead of keeping
//! an index, so parsing needs no memory beyond the `Gguf` value itself.

mod error;
#[cfg(feature = "std")]
pub mod write;

pub use error::{GgufError, Name, Section};

use crate::quant::GgmlType;

/// The four magic bytes at the start of every GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when the file does not say.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// Most tensors accepted in one file (duplicate names are checked pairwise).
pub const MAX_TENSORS: u64 = 16_384;
/// Most metadata keys accepted in one file.
pub const MAX_KEYS: u64 = 16_384;
/// Most elements accepted in one metadata array.
pub const MAX_ARRAY_LEN: u64 = u32::MAX as u64;
/// Deepest array nesting accepted (an array of arrays is depth 2).
pub const MAX_DEPTH: u32 = 2;

/// Type id of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueType {
    /// u8
    U8,
    /// i8
    I8,
    /// u16
    U16,
    /// i16
    I16,
    /// u32
    U32,
    /// i32
    I32,
    /// f32
    F32,
    /// bool (one byte, 0 or 1)
    Bool,
    /// length-prefixed UTF-8 string
    Str,
    /// typed array
    Array,
    /// u64
    U64,
    /// i64
    I64,
    /// f64
    F64,
}

impl ValueType {
    /// From the id stored in the file.
    pub fn from_u32(v: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => Str,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The id stored in the file.
    pub const fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            Str => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Size of a fixed-size value, `None` for strings and arrays.
    pub const fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            Str | Array => None,
        }
    }

    /// Fewest bytes one value of this type takes (used to bound counts before reading).
    const fn min_size(self) -> usize {
        match self.fixed_size() {
            Some(n) => n,
            None => match self {
                ValueType::Str => 8,
                _ => 12,
            },
        }
    }
}

/// A metadata value borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
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
    Str(&'a str),
    /// array
    Array(Array<'a>),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

impl<'a> Value<'a> {
    /// Any integer value that fits in u64 without loss.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in u32 without loss.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// Any integer value that fits in i64 without loss.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// A float value (f32, or f64 narrowed).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// A bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A string value.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    /// An array value.
    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// A typed array borrowed from the file; its elements were validated by `Gguf::parse`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    elem: ValueType,
    len: usize,
    /// The encoded elements, exactly.
    bytes: &'a [u8],
    /// Absolute offset of `bytes` in the file, for error messages.
    base: usize,
}

impl<'a> Array<'a> {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            arr: *self,
            cur: Cursor {
                buf: self.bytes,
                pos: 0,
                base: self.base,
            },
            left: self.len,
        }
    }

    /// Element `i` of a fixed-size array in O(1) (strings and arrays: O(i)).
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len {
            return None;
        }
        match self.elem.fixed_size() {
            Some(sz) => {
                let mut cur = Cursor {
                    buf: self.bytes,
                    pos: i * sz,
                    base: self.base,
                };
                read_scalar(&mut cur, self.elem).ok()
            }
            None => self.iter().nth(i),
        }
    }

    /// The raw little-endian bytes of a fixed-size array (e.g. scores as f32).
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over an `Array`.
#[derive(Clone, Debug)]
pub struct ArrayIter<'a> {
    arr: Array<'a>,
    cur: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Elements were validated at parse time; a failure here would mean a reader bug, so the
        // iterator simply ends instead of panicking.
        match read_value_of(&mut self.cur, self.arr.elem, Name::new(""), MAX_DEPTH, true) {
            Ok(v) => Some(v),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// One tensor's description and its data, borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorInfo<'a> {
    /// Tensor name (llama.cpp naming, e.g. `blk.0.attn_q.weight`).
    pub name: &'a str,
    /// Element type.
    pub ty: GgmlType,
    /// Number of dimensions used in `dims`.
    pub n_dims: usize,
    /// Dimensions, innermost first (ggml `ne`); unused ones are 1.
    pub dims: [u64; 4],
    /// Offset of the data relative to the data section.
    pub offset: u64,
    /// The tensor's bytes.
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The dims in use.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..self.n_dims]
    }
}

/// A parsed GGUF file: a validated view over its bytes.
#[derive(Clone, Copy)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    n_kv: usize,
    n_tensors: usize,
    kv_start: usize,
    ti_start: usize,
    data_start: usize,
    alignment: usize,
}

impl core::fmt::Debug for Gguf<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gguf")
            .field("len", &self.bytes.len())
            .field("version", &self.version)
            .field("n_kv", &self.n_kv)
            .field("n_tensors", &self.n_tensors)
            .field("data_start", &self.data_start)
            .finish()
    }
}

#[derive(Clone, Debug)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the file.
    base: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn offset(&self) -> u64 {
        (self.base + self.pos) as u64
    }

    fn take(&mut self, n: usize, section: Section) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                section,
                offset: self.offset(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, section: Section) -> Result<[u8; N], GgufError> {
        let s = self.take(N, section)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, section: Section) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(section)?))
    }

    fn u64(&mut self, section: Section) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(section)?))
    }

    fn string(&mut self, section: Section) -> Result<&'a str, GgufError> {
        let at = self.offset();
        let len = self.u64(section)?;
        if len > self.remaining() as u64 {
            return Err(GgufError::Truncated {
                section,
                offset: self.offset(),
            });
        }
        let bytes = self.take(len as usize, section)?;
        core::str::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 { offset: at })
    }
}

fn read_scalar<'a>(cur: &mut Cursor<'a>, ty: ValueType) -> Result<Value<'a>, GgufError> {
    const S: Section = Section::MetadataValue;
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.array::<1>(S)?[0]),
        ValueType::I8 => Value::I8(cur.array::<1>(S)?[0] as i8),
        ValueType::Bool => Value::Bool(cur.array::<1>(S)?[0] != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(S)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(S)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(cur.array(S)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array(S)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array(S)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(cur.array(S)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(S)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(S)?)),
        ValueType::Str => Value::Str(cur.string(S)?),
        ValueType::Array => {
            return Err(GgufError::Truncated {
                section: S,
                offset: cur.offset(),
            })
        }
    })
}

/// Reads (and validates) one value of type `ty`; `depth` is how many array levels may still open.
fn read_value_of<'a>(
    cur: &mut Cursor<'a>,
    ty: ValueType,
    key: Name,
    depth: u32,
    validate: bool,
) -> Result<Value<'a>, GgufError> {
    const S: Section = Section::MetadataValue;
    match ty {
        ValueType::Bool => {
            let b = cur.array::<1>(S)?[0];
            if b > 1 {
                return Err(GgufError::InvalidBool { key, value: b });
            }
            Ok(Value::Bool(b == 1))
        }
        ValueType::Array => {
            if depth == 0 {
                return Err(GgufError::NestingTooDeep { key });
            }
            let raw = cur.u32(S)?;
            let elem =
                ValueType::from_u32(raw).ok_or(GgufError::UnknownValueType { key, ty: raw })?;
            let len = cur.u64(S)?;
            if len > MAX_ARRAY_LEN {
                return Err(GgufError::TooMany {
                    what: "array element",
                    count: len,
                    max: MAX_ARRAY_LEN,
                });
            }
            if len > (cur.remaining() / elem.min_size()) as u64 {
                return Err(GgufError::Truncated {
                    section: S,
                    offset: cur.offset() + cur.remaining() as u64,
                });
            }
            let len = len as usize;
            let start = cur.pos;
            match elem.fixed_size() {
                Some(sz) => {
                    if elem == ValueType::Bool && validate {
                        for _ in 0..len {
                            read_value_of(cur, elem, key, depth - 1, validate)?;
                        }
                    } else {
                        cur.take(len * sz, S)?;
                    }
                }
                None if elem == ValueType::Str && !validate => {
                    // Already validated by `parse`: skip strings by their lengths only.
                    for _ in 0..len {
                        let n = cur.u64(S)?;
                        let n = usize::try_from(n).map_err(|_| GgufError::Truncated {
                            section: S,
                            offset: cur.offset(),
                        })?;
                        cur.take(n, S)?;
                    }
                }
                None => {
                    for _ in 0..len {
                        read_value_of(cur, elem, key, depth - 1, validate)?;
                    }
                }
            }
            Ok(Value::Array(Array {
                elem,
                len,
                bytes: &cur.buf[start..cur.pos],
                base: cur.base + start,
            }))
        }
        _ => read_scalar(cur, ty),
    }
}

/// Reads one key/value pair; `validate` is off when re-walking a header `parse` already checked.
fn read_kv<'a>(cur: &mut Cursor<'a>, validate: bool) -> Result<(&'a str, Value<'a>), GgufError> {
    let key = cur.string(Section::MetadataKey)?;
    let raw = cur.u32(Section::MetadataValue)?;
    let name = Name::new(key);
    let ty = ValueType::from_u32(raw).ok_or(GgufError::UnknownValueType { key: name, ty: raw })?;
    let v = read_value_of(cur, ty, name, MAX_DEPTH, validate)?;
    Ok((key, v))
}

/// Raw tensor description as stored (before bounds checks against the data section).
struct RawTensor<'a> {
    name: &'a str,
    ty: GgmlType,
    n_dims: usize,
    dims: [u64; 4],
    offset: u64,
    size: u64,
}

fn read_tensor_info<'a>(cur: &mut Cursor<'a>) -> Result<RawTensor<'a>, GgufError> {
    const S: Section = Section::TensorInfo;
    let name = cur.string(S)?;
    let tensor = Name::new(name);
    let n_dims = cur.u32(S)?;
    if n_dims == 0 || n_dims > 4 {
        return Err(GgufError::BadDims { tensor, n_dims });
    }
    let mut dims = [1u64; 4];
    for d in dims.iter_mut().take(n_dims as usize) {
        *d = cur.u64(S)?;
    }
    let raw_ty = cur.u32(S)?;
    let offset = cur.u64(S)?;
    let ty =
        GgmlType::from_u32(raw_ty).ok_or(GgufError::UnknownTensorType { tensor, ty: raw_ty })?;
    // ggml keeps element counts in i64; anything beyond that cannot be a real tensor.
    let mut n: u64 = 1;
    for &d in &dims {
        if d == 0 {
            return Err(GgufError::BadShape { tensor });
        }
        n = n
            .checked_mul(d)
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or(GgufError::BadShape { tensor })?;
    }
    let block = ty.block_size() as u64;
    if dims[0] % block != 0 {
        return Err(GgufError::NotBlockMultiple {
            tensor,
            ne0: dims[0],
            block,
        });
    }
    let size = (n / block)
        .checked_mul(ty.block_bytes() as u64)
        .ok_or(GgufError::BadShape { tensor })?;
    let r = ty.interleave() as u64;
    if r > 1 && (n_dims < 2 || dims[1] % r != 0 || dims[2] != 1 || dims[3] != 1) {
        return Err(GgufError::BadInterleave {
            tensor,
            interleave: r as u32,
        });
    }
    Ok(RawTensor {
        name,
        ty,
        n_dims: n_dims as usize,
        dims,
        offset,
        size,
    })
}

impl<'a> Gguf<'a> {
    /// Validates `bytes` as a GGUF v2/v3 file and returns a view over it. Allocates nothing.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>, GgufError> {
        let mut cur = Cursor {
            buf: bytes,
            pos: 0,
            base: 0,
        };
        let magic: [u8; 4] = cur.array(Section::Header)?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = cur.u32(Section::Header)?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = cur.u64(Section::Header)?;
        let n_kv = cur.u64(Section::Header)?;
        // Absurd counts are refused outright; plausible ones that the bytes cannot hold are truncation.
        let max_kv_bytes = cur.remaining() as u64 / 12;
        let max_t_bytes = cur.remaining() as u64 / 28;
        for (what, count, max, fits, section) in [
            (
                "metadata key",
                n_kv,
                MAX_KEYS,
                max_kv_bytes,
                Section::MetadataKey,
            ),
            (
                "tensor",
                n_tensors,
                MAX_TENSORS,
                max_t_bytes,
                Section::TensorInfo,
            ),
        ] {
            if count > max {
                return Err(GgufError::TooMany { what, count, max });
            }
            if count > fits {
                return Err(GgufError::Truncated {
                    section,
                    offset: bytes.len() as u64,
                });
            }
        }
        let kv_start = cur.pos;
        let mut alignment = DEFAULT_ALIGNMENT;
        for i in 0..n_kv {
            let (key, v) = read_kv(&mut cur, true)?;
            // Keys are few; a pairwise check keeps parsing allocation-free.
            let mut prev = Cursor {
                buf: bytes,
                pos: kv_start,
                base: 0,
            };
            for _ in 0..i {
                let (k, _) = read_kv(&mut prev, false)?;
                if k == key {
                    return Err(GgufError::DuplicateKey(Name::new(key)));
                }
            }
            if key == "general.alignment" {
                let a = match v {
                    Value::U32(a) => a as u64,
                    _ => v.as_u64().unwrap_or(0),
                };
                if !matches!(v, Value::U32(_)) || a == 0 || !a.is_power_of_two() {
                    return Err(GgufError::BadAlignment(a));
                }
                alignment = a as usize;
            }
        }
        let ti_start = cur.pos;
        for _ in 0..n_tensors {
            read_tensor_info(&mut cur)?;
        }
        let pad = (alignment - cur.pos % alignment) % alignment;
        // A file with no tensors may end right after its header, padding or not.
        let data_start = if n_tensors == 0 && cur.remaining() < pad {
            bytes.len()
        } else {
            cur.take(pad, Section::DataPadding)?;
            cur.pos
        };
        let g = Gguf {
            bytes,
            version,
            n_kv: n_kv as usize,
            n_tensors: n_tensors as usize,
            kv_start,
            ti_start,
            data_start,
            alignment,
        };
        g.check_tensors()?;
        Ok(g)
    }

    fn check_tensors(&self) -> Result<(), GgufError> {
        let data_len = (self.bytes.len() - self.data_start) as u64;
        let mut cur = self.ti_cursor();
        // Whether each interleaved type is declared, looked up once per type: a lookup walks the
        // metadata (tens of thousands of vocabulary strings), and a repacked file has hundreds
        // of such tensors (per tensor, SmolLM2's load took 490 ms instead of 28).
        let mut declared = [None; GgmlType::INTERLEAVED.len()];
        for i in 0..self.n_tensors {
            let t = read_tensor_info(&mut cur)?;
            let tensor = Name::new(t.name);
            if t.offset % self.alignment as u64 != 0 {
                return Err(GgufError::MisalignedTensor {
                    tensor,
                    offset: t.offset,
                });
            }
            if t.offset
                .checked_add(t.size)
                .is_none_or(|end| end > data_len)
            {
                return Err(GgufError::TensorOutOfBounds {
                    tensor,
                    offset: t.offset,
                    size: t.size,
                    data_len,
                });
            }
            let layout_ok = |declared: &mut [Option<bool>]| {
                let k = GgmlType::INTERLEAVED.iter().position(|&x| x == t.ty)?;
                Some(*declared[k].get_or_insert_with(|| self.declares_layout(t.ty)))
            };
            if t.ty.interleave() > 1 && layout_ok(&mut declared) != Some(true) {
                return Err(GgufError::UndeclaredLayout {
                    tensor,
                    ty: t.ty.id(),
                });
            }
            let mut prev = self.ti_cursor();
            for _ in 0..i {
                if read_tensor_info(&mut prev)?.name == t.name {
                    return Err(GgufError::DuplicateTensor(tensor));
                }
            }
        }
        Ok(())
    }

    /// Whether the `edgelm.layout.*` arrays declare `ty` with its base type and interleave.
    fn declares_layout(&self, ty: GgmlType) -> bool {
        use crate::quant::layout::{KEY_BASE_TYPES, KEY_INTERLEAVE, KEY_TYPE_IDS};
        let arr = |k| self.get(k).and_then(|v| v.as_array());
        let (Some(ids), Some(bases), Some(rs)) =
            (arr(KEY_TYPE_IDS), arr(KEY_BASE_TYPES), arr(KEY_INTERLEAVE))
        else {
            return false;
        };
        let at = |a: &Array<'a>, i| a.get(i).and_then(|v| v.as_u32());
        (0..ids.len()).any(|i| {
            at(&ids, i) == Some(ty.id())
                && at(&bases, i) == Some(ty.base().id())
                && at(&rs, i) == Some(ty.interleave() as u32)
        })
    }

    fn ti_cursor(&self) -> Cursor<'a> {
        Cursor {
            buf: self.bytes,
            pos: self.ti_start,
            base: 0,
        }
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of tensor data in bytes.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Byte offset where the tensor data section starts.
    pub fn data_offset(&self) -> usize {
        self.data_start
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of metadata keys.
    pub fn n_metadata(&self) -> usize {
        self.n_kv
    }

    /// Number of tensors.
    pub fn n_tensors(&self) -> usize {
        self.n_tensors
    }

    /// Iterates over metadata `(key, value)` pairs in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let mut cur = Cursor {
            buf: self.bytes,
            pos: self.kv_start,
            base: 0,
        };
        (0..self.n_kv).map_while(move |_| read_kv(&mut cur, false).ok())
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A string value; `None` if absent or not a string.
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| v.as_str())
    }

    /// An integer value as u32; `None` if absent, not an integer, or out of range.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(|v| v.as_u32())
    }

    /// A float value; `None` if absent or not a float.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key).and_then(|v| v.as_f32())
    }

    /// The architecture name (`general.architecture`).
    pub fn architecture(&self) -> Option<&'a str> {
        self.get_str("general.architecture")
    }

    /// Iterates over tensors in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + 'a {
        let mut cur = self.ti_cursor();
        let bytes = self.bytes;
        let data_start = self.data_start;
        (0..self.n_tensors).map_while(move |_| {
            let t = read_tensor_info(&mut cur).ok()?;
            let start = data_start.checked_add(usize::try_from(t.offset).ok()?)?;
            let data = bytes.get(start..start.checked_add(usize::try_from(t.size).ok()?)?)?;
            Some(TensorInfo {
                name: t.name,
                ty: t.ty,
                n_dims: t.n_dims,
                dims: t.dims,
                offset: t.offset,
                data,
            })
        })
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_bad_magic() {
        assert!(matches!(
            Gguf::parse(b"GG"),
            Err(GgufError::Truncated {
                section: Section::Header,
                ..
            })
        ));
        assert_eq!(
            Gguf::parse(b"GGML\x03\0\0\0").unwrap_err(),
            GgufError::BadMagic(*b"GGML")
        );
    }
}
