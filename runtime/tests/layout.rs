//! Row-interleaved layouts (`edgelm::quant::layout`): the interleave is a lossless permutation,
//! the interleaved kernels give bit for bit the plain kernels' results at every level this CPU
//! has (and so the SIMD levels agree with the scalar one as the plain kernels do), and the GGUF
//! reader accepts interleaved tensors only when the file declares their types.

#[cfg(feature = "std")]
use edgelm::gguf::write::{GgufWriter, MetaValue};
#[cfg(feature = "std")]
use edgelm::gguf::{Gguf, GgufError, ValueType};
use edgelm::quant::layout::{self, Target};
use edgelm::quant::{
    matmul_with, matvec_rows, matvec_with, quantize_act_row, quantize_row, GgmlType, Isa,
};

/// Deterministic values in [-1, 1) (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    }
}

/// `rows` rows of `cols` random weights quantized as `base`.
fn plain(base: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = base.row_bytes(cols).unwrap();
    let mut out = vec![0u8; rows * rb];
    for (r, o) in out.chunks_exact_mut(rb).enumerate() {
        // Rows of different magnitudes, so the scales differ between rows of a group.
        let x: Vec<f32> = rng.vec(cols).iter().map(|v| v * (1.0 + r as f32)).collect();
        quantize_row(base, &x, o).unwrap();
    }
    out
}

fn act(ty: GgmlType, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let aty = ty.vec_dot_type();
    let mut a = vec![0u8; aty.row_bytes(cols).unwrap()];
    quantize_act_row(aty, &rng.vec(cols), &mut a).unwrap();
    a
}

#[test]
fn interleave_is_a_permutation_and_deinterleave_its_inverse() {
    let mut rng = Rng(7);
    for ty in GgmlType::INTERLEAVED {
        let (rows, cols) = (8, 96);
        let src = plain(ty.base(), rows, cols, &mut rng);
        let mut il = vec![0u8; src.len()];
        layout::interleave(ty, cols, &src, &mut il).unwrap();
        assert_ne!(il, src, "{ty}");
        let (mut a, mut b) = (src.clone(), il.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "{ty}: same bytes, moved");
        let mut back = vec![0u8; src.len()];
        layout::deinterleave(ty, cols, &il, &mut back).unwrap();
        assert_eq!(back, src, "{ty}");
        // Row 1's scale is the second f16 of the first x4 block.
        assert_eq!(il[2..4], src[ty.row_bytes(cols).unwrap()..][..2], "{ty}");
        // Not whole groups: refused.
        let rb = ty.row_bytes(cols).unwrap();
        let mut short = vec![0u8; 3 * rb];
        assert!(layout::interleave(ty, cols, &src[..3 * rb], &mut short).is_err());
    }
    let mut d = [0u8; 64];
    assert!(layout::interleave(GgmlType::Q8_0, 32, &[0; 64], &mut d).is_err());
}

#[test]
fn interleaved_kernels_equal_the_plain_ones_bit_for_bit_at_every_level() {
    let mut rng = Rng(11);
    let levels: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    for ty in GgmlType::INTERLEAVED {
        // 576: SmolLM2's width (18 blocks); 96: an odd block count; 1536: its FFN width; 4096:
        // longer than the activation chunks of the blockwise Q4_0 kernels.
        for cols in [32, 96, 576, 1536, 4096] {
            let rows = 12;
            let w = plain(ty.base(), rows, cols, &mut rng);
            let mut il = vec![0u8; w.len()];
            layout::interleave(ty, cols, &w, &mut il).unwrap();
            let a = act(ty, cols, &mut rng);
            let mut scalar = vec![0f32; rows];
            matvec_with(Isa::Scalar, ty.base(), cols, &w, &a, &mut scalar);
            for &isa in &levels {
                let mut want = vec![0f32; rows];
                let mut got = vec![0f32; rows];
                matvec_with(isa, ty.base(), cols, &w, &a, &mut want);
                matvec_with(isa, ty, cols, &il, &a, &mut got);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{ty} {cols} cols at {isa}");
                for (g, s) in got.iter().zip(&scalar) {
                    assert!(
                        (g - s).abs() <= 1e-4 * s.abs().max(1.0),
                        "{ty} {isa}: {g} vs {s}"
                    );
                }
            }
            // Threads take row ranges starting on a group.
            let mut whole = vec![0f32; rows];
            matvec_with(edgelm::quant::isa(), ty, cols, &il, &a, &mut whole);
            let mut part = vec![0f32; 8];
            matvec_rows(ty, cols, &il, &a, 4, &mut part);
            assert_eq!(part, whole[4..12], "{ty}");
        }
    }
}

/// A prompt's matrix product over an interleaved matrix gives every column the plain
/// matrix-vector bits (the interleaved groups go back to plain rows for the plain tiles).
#[test]
fn interleaved_matrix_products_equal_the_plain_matrix_vector_ones() {
    let mut rng = Rng(12);
    let levels: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    for ty in GgmlType::INTERLEAVED {
        for cols in [96, 576] {
            let (rows, n) = (12, 11);
            let w = plain(ty.base(), rows, cols, &mut rng);
            let mut il = vec![0u8; w.len()];
            layout::interleave(ty, cols, &w, &mut il).unwrap();
            let acts: Vec<Vec<u8>> = (0..n).map(|_| act(ty, cols, &mut rng)).collect();
            for &isa in &levels {
                let mut got = vec![0f32; rows * n];
                matmul_with(isa, ty, cols, &il, &acts.concat(), n, &mut got);
                for (c, a) in acts.iter().enumerate() {
                    let mut want = vec![0f32; rows];
                    matvec_with(isa, ty.base(), cols, &w, a, &mut want);
                    for r in 0..rows {
                        assert_eq!(
                            got[r * n + c].to_bits(),
                            want[r].to_bits(),
                            "{ty} {cols} cols at {isa}: row {r} column {c}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn targets_interleave_matrices_of_whole_groups_but_not_embeddings() {
    let t = Target::from_name("x86-avx2").unwrap();
    assert_eq!(
        t.type_for("blk.0.attn_q.weight", GgmlType::Q4_1, &[576, 576]),
        GgmlType::Q4_1_X4
    );
    assert_eq!(
        t.type_for("blk.0.attn_k.weight", GgmlType::Q8_0, &[576, 6]),
        GgmlType::Q8_0
    );
    assert_eq!(
        t.type_for("token_embd.weight", GgmlType::Q8_0, &[576, 49152]),
        GgmlType::Q8_0
    );
    assert_eq!(
        t.type_for("output_norm.weight", GgmlType::F32, &[576]),
        GgmlType::F32
    );
    assert_eq!(
        t.type_for("blk.0.ffn_down.weight", GgmlType::Q6_K, &[1536, 576]),
        GgmlType::Q6_K
    );
    assert_eq!(
        Target::None.type_for("x", GgmlType::Q4_0_X4, &[64, 8]),
        GgmlType::Q4_0
    );
    for t in Target::ALL {
        assert_eq!(Target::from_name(t.name()), Some(t));
    }
    assert_eq!(Target::from_name("avx2"), None);
    for ty in GgmlType::INTERLEAVED {
        assert_eq!(GgmlType::from_u32(ty.id()), Some(ty));
        assert_eq!(ty.id(), layout::ID_BASE + ty.base().id());
        assert_eq!(ty.row_bytes(64), ty.base().row_bytes(64));
    }
}

/// A file with one Q8_0_X4 tensor of `rows` rows, declaring its type when `declare` is set.
#[cfg(feature = "std")]
fn file(rows: u64, declare: bool) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str("llama".into()));
    if declare {
        let a = |v: u32| MetaValue::Array(ValueType::U32, vec![MetaValue::U32(v)]);
        w.set(layout::KEY_TYPE_IDS, a(1032));
        w.set(layout::KEY_BASE_TYPES, a(8));
        w.set(layout::KEY_INTERLEAVE, a(4));
    }
    // The writer checks only the row length: the reader must catch the rest.
    w.add_tensor("m", GgmlType::Q8_0_X4, &[32, rows]).unwrap();
    let bytes = vec![0u8; 34 * rows as usize];
    w.to_bytes(&[&bytes]).unwrap()
}

#[cfg(feature = "std")]
#[test]
fn the_reader_checks_interleaved_tensors() {
    let ok = file(8, true);
    let g = Gguf::parse(&ok).unwrap();
    assert_eq!(g.tensor("m").unwrap().ty, GgmlType::Q8_0_X4);
    let e = Gguf::parse(&file(8, false)).unwrap_err();
    assert!(
        matches!(e, GgufError::UndeclaredLayout { ty: 1032, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("edgelm.layout.type_ids"), "{e}");
    let e = Gguf::parse(&file(6, true)).unwrap_err();
    assert!(
        matches!(e, GgufError::BadInterleave { interleave: 4, .. }),
        "{e}"
    );
}
