//! GGUF reader: round trips through the writer, and a corpus of broken files that each give their typed error.
#![cfg(feature = "std")]

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::{Gguf, GgufError, Section, Value, ValueType};
use edgelm::quant::GgmlType;

fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str("llama".into()));
    w.set("general.alignment", MetaValue::U32(32));
    w.set("llama.block_count", MetaValue::U32(2));
    w.set("llama.rope.freq_base", MetaValue::F32(10000.0));
    w.set("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
    w.set(
        "tokenizer.ggml.tokens",
        MetaValue::strings(["<s>", "a", "é"]),
    );
    w.set(
        "tokenizer.ggml.scores",
        MetaValue::Array(
            ValueType::F32,
            vec![
                MetaValue::F32(0.0),
                MetaValue::F32(-1.5),
                MetaValue::F32(-2.0),
            ],
        ),
    );
    w.add_tensor("norm.weight", GgmlType::F32, &[4, 2]).unwrap();
    w.add_tensor("blk.0.attn_q.weight", GgmlType::Q8_0, &[32, 2])
        .unwrap();
    let a: Vec<u8> = (0..32u8).collect();
    let b: Vec<u8> = (0..68u8).map(|x| x.wrapping_mul(7)).collect();
    let bytes = w.to_bytes(&[&a, &b]).unwrap();
    (bytes, vec![a, b])
}

/// Byte offset of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern present")
}

/// Offset of the field after a tensor-info name: (n_dims, first dim, type, offset) positions.
fn tensor_fields(bytes: &[u8], name: &str) -> (usize, usize, usize, usize) {
    let n_dims_at = find(bytes, name.as_bytes()) + name.len();
    let n_dims = u32::from_le_bytes(bytes[n_dims_at..n_dims_at + 4].try_into().unwrap()) as usize;
    let dim0 = n_dims_at + 4;
    let ty = dim0 + 8 * n_dims;
    (n_dims_at, dim0, ty, ty + 4)
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn round_trip() {
    let (bytes, data) = sample();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.n_tensors(), 2);
    assert_eq!(g.architecture(), Some("llama"));
    assert_eq!(g.get_u32("llama.block_count"), Some(2));
    assert_eq!(g.get_f32("llama.rope.freq_base"), Some(10000.0));
    assert_eq!(
        g.get("tokenizer.ggml.add_bos_token"),
        Some(Value::Bool(true))
    );
    let toks = g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
    let toks: Vec<&str> = toks.iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(toks, ["<s>", "a", "é"]);
    let scores = g.get("tokenizer.ggml.scores").unwrap().as_array().unwrap();
    assert_eq!(scores.get(1), Some(Value::F32(-1.5)));
    assert_eq!(scores.get(3), None);
    let t = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(t.ty, GgmlType::Q8_0);
    assert_eq!(t.shape(), &[32, 2]);
    assert_eq!(t.data, &data[1][..]);
    assert_eq!(g.tensor("norm.weight").unwrap().data, &data[0][..]);
    assert_eq!(t.offset % 32, 0);
    assert!(g.tensor("missing").is_none());
    // Data lives inside the input buffer: zero-copy.
    let base = bytes.as_ptr() as usize;
    assert!((t.data.as_ptr() as usize) >= base && (t.data.as_ptr() as usize) < base + bytes.len());
}

#[test]
fn version_2_is_read() {
    let (mut bytes, _) = sample();
    put_u32(&mut bytes, 4, 2);
    assert_eq!(Gguf::parse(&bytes).unwrap().version(), 2);
}

#[test]
fn every_truncation_is_a_typed_error() {
    let (bytes, _) = sample();
    let g = Gguf::parse(&bytes).unwrap();
    let kv_end = find(&bytes, b"norm.weight") - 8;
    let end = g.data_offset() + 32 + 68; // the last tensor's data ends here; only padding follows
    for len in 0..end {
        let err = Gguf::parse(&bytes[..len]).unwrap_err();
        match err {
            GgufError::Truncated { section, offset } => {
                assert!(offset as usize <= len, "len {len}: offset {offset}");
                let expected = if len < 24 {
                    Section::Header
                } else if len < kv_end {
                    // inside metadata: key or value
                    assert!(
                        matches!(section, Section::MetadataKey | Section::MetadataValue),
                        "len {len}: {section:?}"
                    );
                    section
                } else if len < g.data_offset() - 32 {
                    assert!(
                        matches!(section, Section::TensorInfo | Section::DataPadding),
                        "len {len}: {section:?}"
                    );
                    section
                } else {
                    section
                };
                assert_eq!(section, expected, "len {len}");
            }
            GgufError::TensorOutOfBounds { .. } => {
                assert!(len >= g.data_offset(), "len {len}: {err}")
            }
            other => panic!("len {len}: unexpected {other}"),
        }
    }
}

#[test]
fn bad_magic_and_version() {
    let (mut bytes, _) = sample();
    bytes[4] = 1;
    assert_eq!(
        Gguf::parse(&bytes).unwrap_err(),
        GgufError::UnsupportedVersion(1)
    );
    bytes[0] = b'X';
    assert_eq!(
        Gguf::parse(&bytes).unwrap_err(),
        GgufError::BadMagic(*b"XGUF")
    );
}

#[test]
fn huge_counts() {
    let (bytes, _) = sample();
    let mut b = bytes.clone();
    put_u64(&mut b, 8, u64::MAX);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::TooMany {
            what: "tensor",
            count: u64::MAX,
            ..
        })
    ));
    let mut b = bytes.clone();
    put_u64(&mut b, 16, u64::MAX - 1);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::TooMany {
            what: "metadata key",
            ..
        })
    ));
    // A string length near u64::MAX.
    let mut b = bytes.clone();
    put_u64(&mut b, 24, u64::MAX);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::Truncated {
            section: Section::MetadataKey,
            ..
        })
    ));
    // An array length near u64::MAX.
    let mut b = bytes.clone();
    let at = find(&b, b"tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".len() + 8;
    put_u64(&mut b, at, u64::MAX);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::TooMany {
            what: "array element",
            ..
        })
    ));
}

#[test]
fn tensor_offsets() {
    let (bytes, _) = sample();
    let (_, _, _, off) = tensor_fields(&bytes, "blk.0.attn_q.weight");
    let mut b = bytes.clone();
    put_u64(&mut b, off, 1 << 40);
    assert!(
        matches!(Gguf::parse(&b), Err(GgufError::TensorOutOfBounds { offset, .. }) if offset == 1 << 40)
    );
    let mut b = bytes.clone();
    put_u64(&mut b, off, u64::MAX - 31);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    let mut b = bytes.clone();
    put_u64(&mut b, off, 33);
    let e = Gguf::parse(&b).unwrap_err();
    assert!(matches!(e, GgufError::MisalignedTensor { offset: 33, .. }));
    assert_eq!(
        e.to_string(),
        "tensor 'blk.0.attn_q.weight' data offset 33 is not aligned"
    );
}

#[test]
fn tensor_types_and_shapes() {
    let (bytes, _) = sample();
    let (nd, dim0, ty, _) = tensor_fields(&bytes, "blk.0.attn_q.weight");
    let mut b = bytes.clone();
    put_u32(&mut b, ty, 77);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::UnknownTensorType { ty: 77, .. })
    ));
    let mut b = bytes.clone();
    put_u32(&mut b, nd, 5);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::BadDims { n_dims: 5, .. })
    ));
    let mut b = bytes.clone();
    put_u32(&mut b, nd, 0);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::BadDims { n_dims: 0, .. })
    ));
    let mut b = bytes.clone();
    put_u64(&mut b, dim0, 0);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::BadShape { .. })));
    let mut b = bytes.clone();
    put_u64(&mut b, dim0 + 8, u64::MAX / 2);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::BadShape { .. })));
    let mut b = bytes.clone();
    put_u64(&mut b, dim0, 33);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::NotBlockMultiple {
            ne0: 33,
            block: 32,
            ..
        })
    ));
    // A shape that is valid but larger than the data present.
    let mut b = bytes.clone();
    put_u64(&mut b, dim0 + 8, 1000);
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
}

#[test]
fn metadata_errors() {
    let (bytes, _) = sample();
    // Non-UTF-8 key.
    let mut b = bytes.clone();
    let at = find(&b, b"llama.block_count");
    b[at] = 0xff;
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::InvalidUtf8 { .. })
    ));
    // Non-UTF-8 string inside an array.
    let mut b = bytes.clone();
    let at = find(&b, "é".as_bytes());
    b[at] = 0xc3;
    b[at + 1] = 0x28;
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::InvalidUtf8 { .. })
    ));
    // Unknown value type.
    let mut b = bytes.clone();
    let at = find(&b, b"llama.block_count") + "llama.block_count".len();
    put_u32(&mut b, at, 99);
    let e = Gguf::parse(&b).unwrap_err();
    assert!(matches!(e, GgufError::UnknownValueType { ty: 99, .. }));
    assert_eq!(
        e.to_string(),
        "GGUF metadata key 'llama.block_count' has unknown value type 99"
    );
    // Bool byte 2.
    let mut b = bytes.clone();
    let at = find(&b, b"tokenizer.ggml.add_bos_token") + "tokenizer.ggml.add_bos_token".len() + 4;
    b[at] = 2;
    assert!(matches!(
        Gguf::parse(&b),
        Err(GgufError::InvalidBool { value: 2, .. })
    ));
    // Duplicate key.
    let mut b = bytes.clone();
    let at = find(&b, b"llama.rope.freq_base");
    b[at..at + "llama.block_count".len()].copy_from_slice(b"llama.block_count");
    // keep the length consistent: "llama.rope.freq_base" is longer, so patch the length and
    // drop the rest of the old name (the key's type and value follow it)
    put_u64(&mut b, at - 8, "llama.block_count".len() as u64);
    b.drain(at + "llama.block_count".len()..at + "llama.rope.freq_base".len());
    assert_eq!(
        Gguf::parse(&b).unwrap_err().to_string(),
        "GGUF metadata key 'llama.block_count' appears twice"
    );
    // Bad alignment.
    let mut b = bytes.clone();
    let at = find(&b, b"general.alignment") + "general.alignment".len() + 4;
    put_u32(&mut b, at, 3);
    assert_eq!(Gguf::parse(&b).unwrap_err(), GgufError::BadAlignment(3));
}

#[test]
fn duplicates_and_nesting() {
    let mut w = GgufWriter::new();
    w.set("a", MetaValue::U32(1));
    w.set("b", MetaValue::U32(2));
    let mut bytes = w.to_bytes(&[]).unwrap();
    let at = find(&bytes, b"b");
    bytes[at] = b'a';
    assert_eq!(
        Gguf::parse(&bytes).unwrap_err().to_string(),
        "GGUF metadata key 'a' appears twice"
    );

    let mut w = GgufWriter::new();
    w.add_tensor("x", GgmlType::F32, &[1]).unwrap();
    w.add_tensor("y", GgmlType::F32, &[1]).unwrap();
    let mut bytes = w.to_bytes(&[&[0; 4], &[0; 4]]).unwrap();
    let at = find(&bytes, b"y");
    bytes[at] = b'x';
    assert!(matches!(Gguf::parse(&bytes), Err(GgufError::DuplicateTensor(n)) if n.as_str() == "x"));

    let inner = MetaValue::Array(ValueType::U8, vec![MetaValue::U8(1)]);
    let mid = MetaValue::Array(ValueType::Array, vec![inner]);
    let mut w = GgufWriter::new();
    w.set("ok", mid.clone());
    assert!(Gguf::parse(&w.to_bytes(&[]).unwrap()).is_ok());
    w.set("deep", MetaValue::Array(ValueType::Array, vec![mid]));
    assert!(matches!(
        Gguf::parse(&w.to_bytes(&[]).unwrap()),
        Err(GgufError::NestingTooDeep { .. })
    ));
}

#[test]
fn empty_file_without_padding() {
    let w = GgufWriter::new();
    let bytes = w.to_bytes(&[]).unwrap();
    // header is 24 bytes, padded to 32; both lengths parse.
    assert!(Gguf::parse(&bytes[..24]).is_ok());
    assert!(Gguf::parse(&bytes).is_ok());
}

/// Random byte flips in a valid file never panic (parse either succeeds or gives an error).
#[test]
fn flipped_bytes_never_panic() {
    let (bytes, _) = sample();
    let mut state = 0x9e3779b97f4a7c15u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut b = bytes.clone();
        let at = (state as usize) % b.len();
        b[at] ^= (state >> 32) as u8 | 1;
        if let Ok(g) = Gguf::parse(&b) {
            for (_, v) in g.metadata() {
                if let Value::Array(a) = v {
                    a.iter().count();
                }
            }
            for t in g.tensors() {
                assert!(t.data.len() as u64 <= b.len() as u64);
            }
        }
    }
}
