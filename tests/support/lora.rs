//! Test LoRA adapters with deterministic random factors, and base files with the adapters merged
//! into the weights in f32: the reference the run-time adapter path is checked against.
//!
//! The factors come from a counter-based splitmix64 that scripts/reference/lora_reference.py
//! reproduces exactly, so llama.cpp can run the same adapter bytes.

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::{Gguf, Value};
use edgelm::quant::{dequantize_row, quantize_row, GgmlType};

/// `n` values in [-0.5, 0.5): splitmix64 of `seed·2⁴⁰ + i`, top 24 bits.
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = (seed << 40)
                .wrapping_add(i)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// One adapted weight: which base tensor, the factors' type and rank.
#[derive(Clone, Debug)]
pub struct Target {
    /// Base tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Type of `lora_a` and `lora_b`.
    pub ty: GgmlType,
    /// Rank.
    pub rank: usize,
}

/// `(name, type, rank)` for each of `suffixes` in each of `layers`.
pub fn targets(layers: &[usize], suffixes: &[(&str, GgmlType, usize)]) -> Vec<Target> {
    let mut t = Vec::new();
    for &l in layers {
        for &(s, ty, rank) in suffixes {
            t.push(Target {
                name: format!("blk.{l}.{s}"),
                ty,
                rank,
            });
        }
    }
    t
}

/// The factors of one adapted weight, as the values their stored bytes hold.
#[derive(Clone, Debug)]
pub struct Factors {
    /// Base tensor name.
    pub name: String,
    /// Rank.
    pub rank: usize,
    /// `A`, `rank` rows × `n_in`.
    pub a: Vec<f32>,
    /// `B`, `n_out` rows × `rank`.
    pub b: Vec<f32>,
}

/// An adapter file and what it holds.
pub struct TestAdapter {
    /// The GGUF bytes.
    pub bytes: Vec<u8>,
    /// `adapter.lora.alpha`.
    pub alpha: f32,
    /// The factors, in file order.
    pub factors: Vec<Factors>,
    /// [`fnv1a`] of the tensor bytes in file order.
    pub checksum: u64,
}

/// FNV-1a of the adapter's tensor bytes, to check that another generator made the same file.
pub fn fnv1a(chunks: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for c in chunks {
        for &b in *c {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Rows of `cols` values quantized to `ty`: the bytes, and the values they hold.
fn store(ty: GgmlType, v: &[f32], cols: usize) -> (Vec<u8>, Vec<f32>) {
    let rb = ty.row_bytes(cols).expect("row fits the type's blocks");
    let rows = v.len() / cols;
    let mut bytes = vec![0u8; rows * rb];
    let mut back = vec![0f32; v.len()];
    for r in 0..rows {
        let dst = &mut bytes[r * rb..][..rb];
        quantize_row(ty, &v[r * cols..][..cols], dst).unwrap();
        dequantize_row(ty, dst, &mut back[r * cols..][..cols]).unwrap();
    }
    (bytes, back)
}

/// The dims `[n_in, n_out]` of base tensor `name`; a tied model's `output.weight` is its
/// token embedding.
fn base_dims(base: &Gguf<'_>, name: &str) -> (usize, usize) {
    let t = base
        .tensor(name)
        .or_else(|| (name == "output.weight").then(|| base.tensor("token_embd.weight"))?)
        .unwrap_or_else(|| panic!("base has no {name}"));
    (t.dims[0] as usize, t.dims[1] as usize)
}

/// The token embedding's factors use llama.cpp's layout: `lora_a` `[r, n_vocab]` (one r-vector
/// per token), `lora_b` `[r, n_embd]`.
fn is_embedding(name: &str) -> bool {
    name == "token_embd.weight"
}

/// An adapter for `base` (its shapes) with factors `amp · values(seed + 2i (+1))`, in the layout
/// llama.cpp reads. `amp` should be a power of two so that other generators get the same values.
pub fn make_adapter(
    base: &Gguf<'_>,
    arch: &str,
    alpha: f32,
    amp: f32,
    seed: u64,
    targets: &[Target],
) -> TestAdapter {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str(arch.into()));
    w.set("general.type", MetaValue::Str("adapter".into()));
    w.set("adapter.type", MetaValue::Str("lora".into()));
    w.set("adapter.lora.alpha", MetaValue::F32(alpha));
    let (mut data, mut factors) = (Vec::new(), Vec::new());
    for (i, t) in targets.iter().enumerate() {
        let (n_in, n_out, r) = match base_dims(base, &t.name) {
            (d, v) if is_embedding(&t.name) => (v, d, t.rank),
            (i, o) => (i, o, t.rank),
        };
        let scaled =
            |s: u64, n: usize| -> Vec<f32> { values(s, n).into_iter().map(|v| v * amp).collect() };
        // A: [n_in, r] (the embedding's: [r, n_vocab]); B: [r, n_out].
        let a_dims = match is_embedding(&t.name) {
            true => [r as u64, n_in as u64],
            false => [n_in as u64, r as u64],
        };
        let (ab, a) = store(
            t.ty,
            &scaled(seed + 2 * i as u64, r * n_in),
            a_dims[0] as usize,
        );
        let (bb, b) = store(t.ty, &scaled(seed + 2 * i as u64 + 1, n_out * r), r);
        w.add_tensor(&format!("{}.lora_a", t.name), t.ty, &a_dims)
            .unwrap();
        w.add_tensor(
            &format!("{}.lora_b", t.name),
            t.ty,
            &[r as u64, n_out as u64],
        )
        .unwrap();
        data.push(ab);
        data.push(bb);
        factors.push(Factors {
            name: t.name.clone(),
            rank: r,
            a,
            b,
        });
    }
    let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    TestAdapter {
        bytes: w.to_bytes(&refs).unwrap(),
        alpha,
        factors,
        checksum: fnv1a(&refs),
    }
}

/// The scalar metadata of `g` (arrays, i.e. the tokenizer, are left out: tests feed token ids).
fn scalar_meta(g: &Gguf<'_>, w: &mut GgufWriter) {
    for (k, v) in g.metadata() {
        let m = match v {
            Value::U8(x) => MetaValue::U8(x),
            Value::I8(x) => MetaValue::I8(x),
            Value::U16(x) => MetaValue::U16(x),
            Value::I16(x) => MetaValue::I16(x),
            Value::U32(x) => MetaValue::U32(x),
            Value::I32(x) => MetaValue::I32(x),
            Value::F32(x) => MetaValue::F32(x),
            Value::Bool(x) => MetaValue::Bool(x),
            Value::Str(x) => MetaValue::Str(x.into()),
            Value::U64(x) => MetaValue::U64(x),
            Value::I64(x) => MetaValue::I64(x),
            Value::F64(x) => MetaValue::F64(x),
            _ => continue,
        };
        w.set(k, m);
    }
}

/// A copy of `base` in which the tensors named in `f32` are stored as F32, plus
/// `Σ scale·(alpha/r)·B·A` of each `(adapter, scale)` (computed in f64, rounded once). Naming
/// `output.weight` for a tied model writes the head as its own tensor.
pub fn merged(base: &Gguf<'_>, f32: &[&str], adapters: &[(&TestAdapter, f32)]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    scalar_meta(base, &mut w);
    let mut data = Vec::new();
    let mut list: Vec<(&str, edgelm::gguf::TensorInfo<'_>)> =
        base.tensors().map(|t| (t.name, t)).collect();
    if base.tensor("output.weight").is_none() && f32.contains(&"output.weight") {
        list.push(("output.weight", base.tensor("token_embd.weight").unwrap()));
    }
    for (name, t) in list {
        if !f32.contains(&name) {
            w.add_tensor(name, t.ty, t.shape()).unwrap();
            data.push(t.data.to_vec());
            continue;
        }
        let (n_in, n_out) = (t.dims[0] as usize, t.dims[1] as usize);
        let mut wv = vec![0f32; n_in * n_out];
        let rb = t.ty.row_bytes(n_in).unwrap();
        for r in 0..n_out {
            dequantize_row(t.ty, &t.data[r * rb..][..rb], &mut wv[r * n_in..][..n_in]).unwrap();
        }
        let mut acc: Vec<f64> = wv.iter().map(|&v| v as f64).collect();
        for (ad, scale) in adapters {
            for f in ad.factors.iter().filter(|f| f.name == name) {
                let s = match ad.alpha {
                    0.0 => *scale as f64,
                    a => *scale as f64 * a as f64 / f.rank as f64,
                };
                let r = f.rank;
                for o in 0..n_out {
                    for i in 0..n_in {
                        // Row o, column i of B·A; the embedding's A is stored one row per token
                        // (its rows are the base's rows, `o`) and B maps to the columns.
                        let d: f64 = match is_embedding(name) {
                            true => (0..r)
                                .map(|k| f.b[i * r + k] as f64 * f.a[o * r + k] as f64)
                                .sum(),
                            false => (0..r)
                                .map(|k| f.b[o * r + k] as f64 * f.a[k * n_in + i] as f64)
                                .sum(),
                        };
                        acc[o * n_in + i] += s * d;
                    }
                }
            }
        }
        let bytes: Vec<u8> = acc.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
        w.add_tensor(name, GgmlType::F32, t.shape()).unwrap();
        data.push(bytes);
    }
    let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    w.to_bytes(&refs).unwrap()
}
