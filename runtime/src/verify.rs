//! Integrity of a model file: the per-tensor checksums `edgelm convert` records under
//! `edgelm.checksum.*`, checked against the tensor bytes.
//!
//! The converter stores `edgelm.checksum.algorithm = "xxh3_64"` and `edgelm.checksum.tensors`, one
//! u64 per tensor in tensor-info order, each the xxh3-64 of exactly that tensor's bytes (alignment
//! padding excluded). Checking needs no allocation, so firmware can verify a model in flash
//! before trusting it. Files from elsewhere (llama.cpp, PyPI) have no checksums; they are reported
//! as [`Verified::NoChecksums`], not as an error.

use crate::gguf::{Array, Gguf, Name, TensorInfo, Value, ValueType};
use core::fmt;

/// Key naming the hash function.
pub const ALGORITHM_KEY: &str = "edgelm.checksum.algorithm";
/// Key of the per-tensor checksums (u64 array in tensor order).
pub const TENSORS_KEY: &str = "edgelm.checksum.tensors";
/// The one hash function read (and written by the converter).
pub const ALGORITHM: &str = "xxh3_64";

/// The checksum of one tensor's bytes, as the converter computes it.
pub fn tensor_hash(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

/// Why a file failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// `edgelm.checksum.algorithm` names a hash this reader does not know.
    UnknownAlgorithm(Name),
    /// A checksum key holds a value of the wrong type.
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold.
        expected: &'static str,
        /// The value type found.
        found: ValueType,
        /// The element type found, when the value is an array.
        found_elem: Option<ValueType>,
    },
    /// One of the two checksum keys is present without the other.
    MissingKey {
        /// The key that is missing.
        missing: &'static str,
        /// The key that is present.
        present: &'static str,
    },
    /// The number of checksums differs from the number of tensors.
    WrongCount {
        /// Checksums in the file.
        checksums: usize,
        /// Tensors in the file.
        tensors: usize,
    },
    /// A tensor's bytes do not hash to the recorded checksum.
    Mismatch {
        /// Tensor index (tensor-info order).
        index: usize,
        /// Tensor name (cut to 48 bytes).
        tensor: Name,
        /// The checksum the file records.
        expected: u64,
        /// The hash of the tensor's bytes.
        actual: u64,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::UnknownAlgorithm(a) => write!(
                f,
                "unsupported checksum algorithm '{a}' in {ALGORITHM_KEY} (only {ALGORITHM} is read)"
            ),
            VerifyError::WrongType {
                key,
                expected,
                found,
                found_elem,
            } => {
                write!(f, "{key} must be {expected}, found ")?;
                match found_elem {
                    Some(e) => write!(f, "an array of {e:?}"),
                    None => write!(f, "a {found:?}"),
                }
            }
            VerifyError::MissingKey { missing, present } => {
                write!(f, "{present} is present but {missing} is missing")
            }
            VerifyError::WrongCount { checksums, tensors } => write!(
                f,
                "{TENSORS_KEY} has {checksums} checksum{} for {tensors} tensor{}",
                if *checksums == 1 { "" } else { "s" },
                if *tensors == 1 { "" } else { "s" },
            ),
            VerifyError::Mismatch {
                tensor,
                expected,
                actual,
                ..
            } => write!(
                f,
                "tensor '{tensor}': checksum mismatch (file says {expected:016x}, data hashes to {actual:016x})"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VerifyError {}

/// A file's recorded checksums, validated: u64 values, one per tensor.
#[derive(Clone, Copy, Debug)]
pub struct Checksums<'a> {
    values: Array<'a>,
}

fn wrong_type(key: &'static str, expected: &'static str, v: &Value<'_>) -> VerifyError {
    let (found, found_elem) = match v {
        Value::Array(a) => (ValueType::Array, Some(a.elem_type())),
        Value::U8(_) => (ValueType::U8, None),
        Value::I8(_) => (ValueType::I8, None),
        Value::U16(_) => (ValueType::U16, None),
        Value::I16(_) => (ValueType::I16, None),
        Value::U32(_) => (ValueType::U32, None),
        Value::I32(_) => (ValueType::I32, None),
        Value::F32(_) => (ValueType::F32, None),
        Value::Bool(_) => (ValueType::Bool, None),
        Value::Str(_) => (ValueType::Str, None),
        Value::U64(_) => (ValueType::U64, None),
        Value::I64(_) => (ValueType::I64, None),
        _ => (ValueType::F64, None),
    };
    VerifyError::WrongType {
        key,
        expected,
        found,
        found_elem,
    }
}

impl<'a> Checksums<'a> {
    /// The checksums recorded in `g`; `Ok(None)` when the file has none (neither key).
    pub fn of(g: &Gguf<'a>) -> Result<Option<Checksums<'a>>, VerifyError> {
        let (algo, sums) = match (g.get(ALGORITHM_KEY), g.get(TENSORS_KEY)) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(VerifyError::MissingKey {
                    missing: TENSORS_KEY,
                    present: ALGORITHM_KEY,
                })
            }
            (None, Some(_)) => {
                return Err(VerifyError::MissingKey {
                    missing: ALGORITHM_KEY,
                    present: TENSORS_KEY,
                })
            }
            (Some(a), Some(s)) => (a, s),
        };
        let algo = algo
            .as_str()
            .ok_or_else(|| wrong_type(ALGORITHM_KEY, "a string", &algo))?;
        if algo != ALGORITHM {
            return Err(VerifyError::UnknownAlgorithm(Name::new(algo)));
        }
        let values = match sums.as_array() {
            Some(a) if a.elem_type() == ValueType::U64 => a,
            _ => return Err(wrong_type(TENSORS_KEY, "an array of U64", &sums)),
        };
        if values.len() != g.n_tensors() {
            return Err(VerifyError::WrongCount {
                checksums: values.len(),
                tensors: g.n_tensors(),
            });
        }
        Ok(Some(Checksums { values }))
    }

    /// Number of checksums (= tensors).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a file without tensors.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The recorded checksum of tensor `index`.
    pub fn expected(&self, index: usize) -> Option<u64> {
        self.values.get(index).and_then(|v| v.as_u64())
    }

    /// Checks tensor `index` (`t`, from [`Gguf::tensors`]) against its recorded checksum.
    pub fn check(&self, index: usize, t: &TensorInfo<'_>) -> Result<(), VerifyError> {
        let actual = tensor_hash(t.data);
        let expected = self.expected(index).ok_or(VerifyError::WrongCount {
            checksums: self.len(),
            tensors: index + 1,
        })?;
        if actual != expected {
            return Err(VerifyError::Mismatch {
                index,
                tensor: Name::new(t.name),
                expected,
                actual,
            });
        }
        Ok(())
    }
}

/// What a successful verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Every tensor matched its checksum.
    Ok {
        /// Tensors checked.
        tensors: usize,
        /// Tensor bytes hashed.
        bytes: u64,
    },
    /// The file records no checksums: nothing could be checked (it may still be run).
    NoChecksums,
}

/// Checks every tensor of `g` against the recorded checksums; the first bad tensor is the error.
pub fn verify(g: &Gguf<'_>) -> Result<Verified, VerifyError> {
    let Some(sums) = Checksums::of(g)? else {
        return Ok(Verified::NoChecksums);
    };
    let mut bytes = 0u64;
    let mut tensors = 0usize;
    for (i, t) in g.tensors().enumerate() {
        sums.check(i, &t)?;
        bytes += t.data.len() as u64;
        tensors += 1;
    }
    Ok(Verified::Ok { tensors, bytes })
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::gguf::write::{GgufWriter, MetaValue};
    use crate::quant::GgmlType;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    const A: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    const B: [u8; 8] = [0xaa; 8];

    fn u64s(v: &[u64]) -> MetaValue {
        MetaValue::Array(
            ValueType::U64,
            v.iter().map(|&x| MetaValue::U64(x)).collect(),
        )
    }

    /// Two F32 tensors, `a` (4 elements) and `b` (2), with checksum keys as `keys` sets them.
    fn file(keys: &[(&str, MetaValue)]) -> Vec<u8> {
        let mut w = GgufWriter::new();
        w.set("general.architecture", MetaValue::Str("llama".into()));
        for (k, v) in keys {
            w.set(k, v.clone());
        }
        w.add_tensor("a", GgmlType::F32, &[4]).unwrap();
        w.add_tensor("blk.0.ffn_up.weight", GgmlType::F32, &[2])
            .unwrap();
        w.to_bytes(&[&A, &B]).unwrap()
    }

    fn good() -> Vec<u8> {
        file(&[
            (ALGORITHM_KEY, MetaValue::Str(ALGORITHM.into())),
            (TENSORS_KEY, u64s(&[tensor_hash(&A), tensor_hash(&B)])),
        ])
    }

    fn err(bytes: &[u8]) -> VerifyError {
        verify(&Gguf::parse(bytes).unwrap()).unwrap_err()
    }

    #[test]
    fn matching_file_verifies() {
        let b = good();
        assert_eq!(
            verify(&Gguf::parse(&b).unwrap()),
            Ok(Verified::Ok {
                tensors: 2,
                bytes: 24
            })
        );
    }

    #[test]
    fn streaming_and_one_shot_hashes_agree() {
        // The converter hashes tensors chunk by chunk.
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&A[..5]);
        h.update(&A[5..]);
        assert_eq!(h.digest(), tensor_hash(&A));
    }

    #[test]
    fn one_flipped_bit_names_the_tensor() {
        let mut b = good();
        let g = Gguf::parse(&b).unwrap();
        let at = g.data_offset() + g.tensor("blk.0.ffn_up.weight").unwrap().offset as usize + 3;
        b[at] ^= 0x10;
        let e = err(&b);
        let VerifyError::Mismatch {
            index,
            tensor,
            expected,
            actual,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!((index, tensor.as_str()), (1, "blk.0.ffn_up.weight"));
        assert_eq!(expected, tensor_hash(&B));
        assert_ne!(actual, expected);
        let msg = e.to_string();
        assert!(
            msg.starts_with("tensor 'blk.0.ffn_up.weight': checksum mismatch (file says "),
            "{msg}"
        );
        assert!(
            msg.contains(&std::format!("data hashes to {actual:016x})")),
            "{msg}"
        );
    }

    #[test]
    fn no_checksums_is_not_an_error() {
        let b = file(&[]);
        assert_eq!(verify(&Gguf::parse(&b).unwrap()), Ok(Verified::NoChecksums));
    }

    #[test]
    fn malformed_checksum_metadata_is_a_clear_error() {
        let algo = (ALGORITHM_KEY, MetaValue::Str(ALGORITHM.into()));
        let cases: Vec<(Vec<(&str, MetaValue)>, &str)> = vec![
            (
                vec![algo.clone(), (TENSORS_KEY, u64s(&[tensor_hash(&A)]))],
                "edgelm.checksum.tensors has 1 checksum for 2 tensors",
            ),
            (
                vec![algo.clone(), (TENSORS_KEY, u64s(&[1, 2, 3]))],
                "edgelm.checksum.tensors has 3 checksums for 2 tensors",
            ),
            (
                vec![
                    algo.clone(),
                    (
                        TENSORS_KEY,
                        MetaValue::Array(ValueType::U32, vec![MetaValue::U32(1), MetaValue::U32(2)]),
                    ),
                ],
                "edgelm.checksum.tensors must be an array of U64, found an array of U32",
            ),
            (
                vec![algo.clone(), (TENSORS_KEY, MetaValue::U64(7))],
                "edgelm.checksum.tensors must be an array of U64, found a U64",
            ),
            (
                vec![
                    (ALGORITHM_KEY, MetaValue::Str("sha256".into())),
                    (TENSORS_KEY, u64s(&[1, 2])),
                ],
                "unsupported checksum algorithm 'sha256' in edgelm.checksum.algorithm (only xxh3_64 is read)",
            ),
            (
                vec![(ALGORITHM_KEY, MetaValue::U32(3)), (TENSORS_KEY, u64s(&[1, 2]))],
                "edgelm.checksum.algorithm must be a string, found a U32",
            ),
            (
                vec![(TENSORS_KEY, u64s(&[1, 2]))],
                "edgelm.checksum.tensors is present but edgelm.checksum.algorithm is missing",
            ),
            (
                vec![algo],
                "edgelm.checksum.algorithm is present but edgelm.checksum.tensors is missing",
            ),
        ];
        for (keys, want) in cases {
            assert_eq!(err(&file(&keys)).to_string(), want);
        }
    }
}
