//! Matrix × matrix kernels against the matrix-vector ones: every column of `matmul` must be
//! bit-identical to `matvec` of that column, at every kernel level this CPU has (so batched
//! prompt processing gives exactly the logits of token-by-token evaluation), and the SIMD levels
//! must agree with the scalar level the way `quant_simd.rs` checks for `matvec`.

use edgelm::quant::{matmul_rows, matmul_with, matvec_with, quantize_row_with, GgmlType, Isa};

use GgmlType::*;

/// Weight types with a dot product.
const WEIGHTS: [GgmlType; 13] = [
    F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
];

/// Deterministic values in [-1, 1) (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (u >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).expect("whole blocks")];
    quantize_row_with(Isa::Scalar, ty, x, &mut out).expect("quantize");
    out
}

fn levels() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|l| l.is_available()).collect()
}

/// `rows` weight rows and `cols` activation columns of `n` elements, quantized.
fn problem(rng: &mut Rng, ty: GgmlType, n: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let mut w = Vec::new();
    for r in 0..rows {
        // Every third row offset, so that the mins of Q4_1 / Q5_1 / K-quants matter.
        let off = if r % 3 == 2 { 0.5 } else { 0.0 };
        let v: Vec<f32> = rng.vec(n, 0.3).iter().map(|x| x + off).collect();
        w.extend(quantize(ty, &v));
    }
    let mut act = Vec::new();
    for _ in 0..cols {
        act.extend(quantize(ty.vec_dot_type(), &rng.vec(n, 2.0)));
    }
    (w, act)
}

/// `matmul` at `level`, and `matvec` at `level` of each column, bit for bit.
fn check(level: Isa, ty: GgmlType, n: usize, w: &[u8], act: &[u8], rows: usize, cols: usize) {
    let act_row = ty.vec_dot_type().row_bytes(n).expect("whole blocks");
    let mut got = vec![0f32; rows * cols];
    matmul_with(level, ty, n, w, act, cols, &mut got);
    for c in 0..cols {
        let mut want = vec![0f32; rows];
        matvec_with(
            level,
            ty,
            n,
            w,
            &act[c * act_row..(c + 1) * act_row],
            &mut want,
        );
        for r in 0..rows {
            let g = got[r * cols + c];
            assert_eq!(
                g.to_bits(),
                want[r].to_bits(),
                "{ty} at {level}, n={n}, {rows}×{cols}: row {r} column {c}: {g:e} vs matvec {:e}",
                want[r]
            );
        }
    }
}

#[test]
fn every_column_equals_its_matvec_at_every_level() {
    let mut rng = Rng(0x3A7_3A7);
    for ty in WEIGHTS {
        let n = ty.block_size().max(32) * if ty.block_size() == 256 { 2 } else { 5 };
        // Row counts around the 4-row groups and column counts around the column tiles.
        for (rows, cols) in [(1, 1), (4, 4), (7, 5), (9, 3), (8, 8), (13, 11), (3, 1)] {
            let (w, act) = problem(&mut rng, ty, n, rows, cols);
            for level in levels() {
                check(level, ty, n, &w, &act, rows, cols);
            }
        }
    }
}

#[test]
fn model_shapes_and_row_ranges() {
    // SmolLM2's widths, a batch that is not a multiple of the tile, and a threads-style split
    // into row ranges starting on multiples of 8.
    let mut rng = Rng(42);
    for ty in [Q4_1, Q8_0, Q4_0, Q4_K, Q6_K, Q5_0, F16, F32] {
        let n = if ty.block_size() == 256 { 1536 } else { 576 };
        let (rows, cols) = (40, 13);
        let (w, act) = problem(&mut rng, ty, n, rows, cols);
        for level in levels() {
            check(level, ty, n, &w, &act, rows, cols);
        }
        let mut whole = vec![0f32; rows * cols];
        matmul_with(edgelm::quant::isa(), ty, n, &w, &act, cols, &mut whole);
        for (first, len) in [(0, 8), (8, 16), (24, 16)] {
            let mut part = vec![0f32; len * cols];
            matmul_rows(ty, n, &w, &act, cols, first, &mut part);
            assert_eq!(
                part,
                whole[first * cols..(first + len) * cols],
                "{ty} rows {first}.."
            );
        }
    }
}

#[test]
fn simd_matmul_agrees_with_scalar() {
    // The SIMD levels sum the float parts in another order than the scalar one; the bound is
    // quant_simd.rs's, here on the sum of magnitudes bounded by n · max|w| · max|a|.
    let mut rng = Rng(7);
    for ty in WEIGHTS {
        let n = ty.block_size().max(32) * if ty.block_size() == 256 { 2 } else { 6 };
        let (rows, cols) = (9, 6);
        let (w, act) = problem(&mut rng, ty, n, rows, cols);
        let mut want = vec![0f32; rows * cols];
        matmul_with(Isa::Scalar, ty, n, &w, &act, cols, &mut want);
        for level in levels() {
            let mut got = vec![0f32; rows * cols];
            matmul_with(level, ty, n, &w, &act, cols, &mut got);
            for (i, (g, s)) in got.iter().zip(&want).enumerate() {
                let bound = 1e-5 * n as f64 * 2.0 * 1.0 * 2.0;
                assert!(
                    (f64::from(*g) - f64::from(*s)).abs() <= bound,
                    "{ty} at {level}: element {i}: {g:e} vs scalar {s:e}"
                );
            }
        }
    }
}

#[test]
fn wide_batches_and_long_rows() {
    // More columns than one prepared chunk of the Q8_0 tiles (16) with an odd one left over, and
    // rows at and past the longest they prepare (2048 elements) and past the longest whose block
    // scales the AVX2 tiles keep (8192), for every 32-element type.
    let mut rng = Rng(0x51DE);
    for ty in [Q8_0, Q4_0, Q4_1, Q5_0, Q5_1] {
        for n in [2048, 2080, 8224] {
            let (rows, cols) = (9, 37);
            let (w, act) = problem(&mut rng, ty, n, rows, cols);
            for level in levels() {
                check(level, ty, n, &w, &act, rows, cols);
            }
        }
    }
}
