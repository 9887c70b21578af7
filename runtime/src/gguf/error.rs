//! Typed errors of the GGUF reader: each names the part of the file that is wrong.

use core::fmt;

/// A name copied out of the file (key or tensor), cut to 48 bytes so errors stay `'static` and small.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    buf: [u8; 48],
    len: u8,
}

impl Name {
    /// Copies up to 48 bytes of `s` (cut on a char boundary).
    pub fn new(s: &str) -> Name {
        let mut end = s.len().min(48);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut buf = [0u8; 48];
        buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        Name {
            buf,
            len: end as u8,
        }
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The section of a GGUF file being read when it ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    /// Magic, version and counts.
    Header,
    /// A metadata key string.
    MetadataKey,
    /// A metadata value.
    MetadataValue,
    /// A tensor description.
    TensorInfo,
    /// The padding before tensor data.
    DataPadding,
}

/// Why a GGUF file was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GgufError {
    /// The file ends inside `section` at byte `offset`.
    Truncated {
        /// Section being read.
        section: Section,
        /// Byte offset where more bytes were needed.
        offset: u64,
    },
    /// The first four bytes are not `GGUF`.
    BadMagic([u8; 4]),
    /// Only versions 2 and 3 are read.
    UnsupportedVersion(u32),
    /// A count is larger than the file could hold or than the reader accepts.
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The count found in the file.
        count: u64,
        /// The largest count accepted here.
        max: u64,
    },
    /// A string is not UTF-8.
    InvalidUtf8 {
        /// Byte offset of the string.
        offset: u64,
    },
    /// A metadata value has an unknown type id.
    UnknownValueType {
        /// The key.
        key: Name,
        /// The type id found.
        ty: u32,
    },
    /// A bool byte is neither 0 nor 1.
    InvalidBool {
        /// The key.
        key: Name,
        /// The byte found.
        value: u8,
    },
    /// Arrays nested deeper than the reader accepts.
    NestingTooDeep {
        /// The key.
        key: Name,
    },
    /// The same key appears twice.
    DuplicateKey(Name),
    /// The same tensor name appears twice.
    DuplicateTensor(Name),
    /// `general.alignment` is zero, not a power of two, or not a u32.
    BadAlignment(u64),
    /// A tensor has zero or more than four dimensions.
    BadDims {
        /// The tensor.
        tensor: Name,
        /// Dimension count found.
        n_dims: u32,
    },
    /// A tensor has a zero dimension or an element count that overflows.
    BadShape {
        /// The tensor.
        tensor: Name,
    },
    /// A tensor's type id is not a known ggml type.
    UnknownTensorType {
        /// The tensor.
        tensor: Name,
        /// The type id found.
        ty: u32,
    },
    /// A tensor's row length is not a whole number of its type's blocks.
    NotBlockMultiple {
        /// The tensor.
        tensor: Name,
        /// Row length.
        ne0: u64,
        /// Block size of the type.
        block: u64,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    MisalignedTensor {
        /// The tensor.
        tensor: Name,
        /// Offset relative to the data section.
        offset: u64,
    },
    /// A tensor's data runs past the end of the file.
    TensorOutOfBounds {
        /// The tensor.
        tensor: Name,
        /// Offset relative to the data section.
        offset: u64,
        /// Size of the tensor's data in bytes.
        size: u64,
        /// Bytes available in the data section.
        data_len: u64,
    },
    /// A tensor of an interleaved type (`crate::quant::layout`) is not a matrix whose row count
    /// is a multiple of the interleave.
    BadInterleave {
        /// The tensor.
        tensor: Name,
        /// Rows per group of its type.
        interleave: u32,
    },
    /// A tensor has an edgelm interleaved type the file does not declare under
    /// `edgelm.layout.type_ids` with the same base type and interleave.
    UndeclaredLayout {
        /// The tensor.
        tensor: Name,
        /// The type id found.
        ty: u32,
    },
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufError::*;
        match self {
            Truncated { section, offset } => {
                write!(f, "GGUF file truncated in {section:?} at byte {offset}")
            }
            BadMagic(m) => write!(f, "not a GGUF file (magic bytes {m:02x?}, expected \"GGUF\")"),
            UnsupportedVersion(v) => write!(f, "unsupported GGUF version {v} (2 and 3 are read)"),
            TooMany { what, count, max } => {
                write!(f, "GGUF {what} count {count} is too large (at most {max} here)")
            }
            InvalidUtf8 { offset } => write!(f, "GGUF string at byte {offset} is not UTF-8"),
            UnknownValueType { key, ty } => {
                write!(f, "GGUF metadata key '{key}' has unknown value type {ty}")
            }
            InvalidBool { key, value } => {
                write!(f, "GGUF metadata key '{key}' has bool byte {value} (expected 0 or 1)")
            }
            NestingTooDeep { key } => write!(f, "GGUF metadata key '{key}' nests arrays too deeply"),
            DuplicateKey(k) => write!(f, "GGUF metadata key '{k}' appears twice"),
            DuplicateTensor(t) => write!(f, "GGUF tensor '{t}' appears twice"),
            BadAlignment(a) => write!(f, "GGUF general.alignment {a} is not a power of two"),
            BadDims { tensor, n_dims } => {
                write!(f, "tensor '{tensor}' has {n_dims} dimensions (1 to 4 allowed)")
            }
            BadShape { tensor } => {
                write!(f, "tensor '{tensor}' has a zero dimension or too many elements")
            }
            UnknownTensorType { tensor, ty } => {
                write!(f, "tensor '{tensor}' has unknown ggml type id {ty}")
            }
            NotBlockMultiple { tensor, ne0, block } => write!(
                f,
                "tensor '{tensor}' has rows of {ne0} elements, not a multiple of its block size {block}"
            ),
            MisalignedTensor { tensor, offset } => {
                write!(f, "tensor '{tensor}' data offset {offset} is not aligned")
            }
            TensorOutOfBounds {
                tensor,
                offset,
                size,
                data_len,
            } => write!(
                f,
                "tensor '{tensor}' data ({size} bytes at offset {offset}) runs past the end of the data section ({data_len} bytes)"
            ),
            BadInterleave { tensor, interleave } => write!(
                f,
                "tensor '{tensor}' has an interleaved type but is not a matrix of whole groups of {interleave} rows"
            ),
            UndeclaredLayout { tensor, ty } => write!(
                f,
                "tensor '{tensor}' has edgelm layout type id {ty}, which edgelm.layout.type_ids / base_types / interleave do not declare"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for GgufError {}
