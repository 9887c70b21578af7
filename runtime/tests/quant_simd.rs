//! Every SIMD kernel level this CPU has against the portable scalar kernels (which
//! `tests/quant.rs` checks bit for bit against ggml).
//!
//! Dot products: the integer parts are exact at every level; the float parts (per-block scales,
//! float rows) are summed in a different order, so a level may differ from the scalar result by
//! at most 1e-5 of the sum of the magnitudes of the terms, Σ |a_i| · (|w_i| + max |w| over w_i's
//! 32-element window): the window term covers the block offsets (Q4_1's min, Q4_K's mins) whose
//! products cancel in w_i but are rounded separately. Activation quantizers: identical bytes.

use edgelm::quant::{
    blockwise_dot, dequantize_row, isa, matmul_with, matvec, matvec_with, quantize_act_row_with,
    quantize_row, quantize_row_with, vec_dot, GgmlType, Isa,
};

use GgmlType::*;

/// Weight types with a dot product.
const WEIGHTS: [GgmlType; 13] = [
    F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
];

/// Relative bound of a SIMD dot product against the scalar one (see the module docs).
const DOT_BOUND: f64 = 1e-5;

/// Deterministic values in [-1, 1) (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// The SIMD levels to test: every one this CPU has. A machine without any runs nothing here,
/// which `a_simd_level_is_tested_on_x86_with_avx2` catches where it matters.
fn levels() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|&l| l != Isa::Scalar && l.is_available())
        .collect()
}

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).expect("whole blocks")];
    quantize_row_with(Isa::Scalar, ty, x, &mut out).expect("quantize");
    out
}

fn dequantize(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, q, &mut out).expect("dequantize");
    out
}

fn f16_bytes(v: f32) -> [u8; 2] {
    let mut b = [0u8; 2];
    quantize_row(F16, &[v], &mut b).expect("f16");
    b
}

/// Byte offsets of the f16 scale fields in a block, and the block size.
fn scale_fields(ty: GgmlType) -> (&'static [usize], usize) {
    match ty {
        Q4_0 => (&[0], 18),
        Q4_1 => (&[0, 2], 20),
        Q5_0 => (&[0], 22),
        Q5_1 => (&[0, 2], 24),
        Q8_0 => (&[0], 34),
        Q2_K => (&[80, 82], 84),
        Q3_K => (&[108], 110),
        Q4_K => (&[0, 2], 144),
        Q5_K => (&[0, 2], 176),
        Q6_K => (&[208], 210),
        _ => (&[], 0),
    }
}

/// Random bytes for every quant bit (every 4-, 5-, 6-bit and 8-bit value, every packed K-quant
/// scale), with finite f16 scales so the dot product is a number.
fn random_blocks(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut w = rng.bytes(ty.row_bytes(n).expect("whole blocks"));
    let (fields, size) = scale_fields(ty);
    for block in w.chunks_exact_mut(size) {
        for &f in fields {
            block[f..f + 2].copy_from_slice(&f16_bytes(rng.next_f32() * 0.05));
        }
    }
    w
}

/// Lengths that cover one block, an odd number of blocks (the kernels pair blocks), and the
/// model shapes; for float rows also lengths that leave a remainder after every vector width.
fn lengths(ty: GgmlType) -> Vec<usize> {
    match ty.block_size() {
        1 => vec![
            1, 7, 8, 15, 16, 31, 33, 63, 64, 65, 100, 129, 576, 1000, 1536, 4096,
        ],
        32 => vec![32, 64, 96, 160, 576, 1536, 4096],
        _ => vec![256, 512, 768, 1280, 1536, 4096],
    }
}

/// Σ |a_i| · (|w_i| + max |w| over the aligned 32-element window holding i).
fn magnitude(w: &[f32], a: &[f32]) -> f64 {
    let mut sum = 0.0f64;
    for (wc, ac) in w.chunks(32).zip(a.chunks(32)) {
        let wmax = wc.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
        for (&wi, &ai) in wc.iter().zip(ac) {
            sum += f64::from(ai.abs()) * (f64::from(wi.abs()) + wmax);
        }
    }
    sum
}

/// Checks every row of `w` at every level against the scalar kernels.
fn check_rows(ty: GgmlType, n: usize, w: &[u8], act: &[u8], what: &str) {
    let rows = w.len() / ty.row_bytes(n).expect("whole blocks");
    let mut want = vec![0f32; rows];
    matvec_with(Isa::Scalar, ty, n, w, act, &mut want);
    let af = dequantize(ty.vec_dot_type(), act, n);
    let wf = dequantize(ty, w, n * rows);
    for level in levels() {
        let mut got = vec![0f32; rows];
        matvec_with(level, ty, n, w, act, &mut got);
        for (r, (&g, &s)) in got.iter().zip(&want).enumerate() {
            let bound = DOT_BOUND * magnitude(&wf[r * n..(r + 1) * n], &af);
            let diff = (f64::from(g) - f64::from(s)).abs();
            assert!(
                diff <= bound,
                "{ty} {what} n={n} row {r} at {level}: {g:e} vs scalar {s:e}, diff {diff:e} > {bound:e}"
            );
        }
    }
}

/// The types every SIMD level runs in the blockwise order ([`blockwise_dot`]).
const BLOCKWISE: [GgmlType; 1] = [Q4_0];

/// Matrix × vector products taller than the kernels' row panels (a megabyte of rows, over
/// which the eight-row kernels spread their streams): every row still gets the reference's bits,
/// in the whole panels, the last partial one and the rows past the last group of eight, also
/// when rows are longer than one prepared activation chunk (2048 elements).
#[test]
fn blockwise_matvec_is_bit_exact_past_a_panel() {
    let mut rng = Rng(0xB10C_3153_0000_0002);
    for ty in BLOCKWISE {
        for (n, rows) in [(576, 2 * 3232 + 13), (2080, 2 * 896 + 13)] {
            let w = random_blocks(&mut rng, ty, n * rows);
            let wr = ty.row_bytes(n).unwrap();
            let act = quantize(ty.vec_dot_type(), &rng.vec(n, 3.0));
            let want: Vec<u32> = (0..rows)
                .map(|r| blockwise_dot(ty, n, &w[r * wr..], &act).unwrap().to_bits())
                .collect();
            for level in levels() {
                let mut got = vec![0f32; rows];
                matvec_with(level, ty, n, &w, &act, &mut got);
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                assert_eq!(bits, want, "{ty} matvec n={n} rows={rows} at {level}");
            }
        }
    }
}

/// For the blockwise types, every SIMD level gives exactly the blockwise reference's bits, in
/// matrix × vector products (every row count: four-row groups and the rest) and in matrix
/// products of every column count up to 40 (tiles of columns and the rest), so a prompt's
/// columns equal the token-by-token results.
#[test]
fn blockwise_types_are_bit_exact_at_every_level() {
    let mut rng = Rng(0xB10C_3153_0000_0001);
    for ty in BLOCKWISE {
        for n in lengths(ty) {
            for rows in [1, 3, 4, 5, 8, 13, 19] {
                let w = random_blocks(&mut rng, ty, n * rows);
                let wr = ty.row_bytes(n).unwrap();
                let ar = ty.vec_dot_type().row_bytes(n).unwrap();
                let cols_max = if n > 1536 { 9 } else { 40 };
                let act: Vec<u8> = (0..cols_max)
                    .flat_map(|_| quantize(ty.vec_dot_type(), &rng.vec(n, 3.0)))
                    .collect();
                let want: Vec<Vec<u32>> = (0..cols_max)
                    .map(|c| {
                        (0..rows)
                            .map(|r| {
                                blockwise_dot(ty, n, &w[r * wr..], &act[c * ar..])
                                    .unwrap()
                                    .to_bits()
                            })
                            .collect()
                    })
                    .collect();
                for level in levels() {
                    let mut got = vec![0f32; rows];
                    matvec_with(level, ty, n, &w, &act[..ar], &mut got);
                    let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(bits, want[0], "{ty} matvec n={n} rows={rows} at {level}");
                    for cols in 1..=cols_max {
                        let mut out = vec![0f32; rows * cols];
                        matmul_with(level, ty, n, &w, &act[..cols * ar], cols, &mut out);
                        for r in 0..rows {
                            for c in 0..cols {
                                assert_eq!(
                                    out[r * cols + c].to_bits(),
                                    want[c][r],
                                    "{ty} matmul n={n} rows={rows} cols={cols} row {r} column {c} at {level}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn dot_products_match_scalar_at_every_level() {
    let mut rng = Rng(0x5EED_0F5E_ED0F_5EED);
    for ty in WEIGHTS {
        let at = ty.vec_dot_type();
        for n in lengths(ty) {
            for scale in [1.0f32, 1e-3, 300.0] {
                let act = quantize(at, &rng.vec(n, scale));
                // Three rows of quantized weights, one with an offset so the mins matter.
                let mut w = quantize(ty, &rng.vec(n, scale));
                w.extend(quantize(ty, &rng.vec(n, 1.0 / scale)));
                let shifted: Vec<f32> = rng.vec(n, 1.0).iter().map(|v| v * 0.1 + 0.5).collect();
                w.extend(quantize(ty, &shifted));
                check_rows(ty, n, &w, &act, &format!("quantized x{scale}"));
            }
            if ty.block_size() > 1 {
                let act = quantize(at, &rng.vec(n, 1.0));
                let w: Vec<u8> = (0..3)
                    .flat_map(|_| random_blocks(&mut rng, ty, n))
                    .collect();
                check_rows(ty, n, &w, &act, "random bytes");
            }
        }
    }
}

#[test]
fn model_shaped_rows_match_scalar() {
    // The activation row is reused across many rows: cover a few hundred of them.
    let mut rng = Rng(99);
    for ty in [Q4_1, Q8_0, Q4_0, Q4_K, Q6_K, Q5_0, Q5_K, Q5_1, F16] {
        let n = if ty.block_size() == 256 { 1536 } else { 576 };
        let act = quantize(ty.vec_dot_type(), &rng.vec(n, 2.0));
        let w: Vec<u8> = (0..37)
            .flat_map(|_| quantize(ty, &rng.vec(n, 0.1)))
            .collect();
        check_rows(ty, n, &w, &act, "37 rows");
    }
}

/// Activation rows with the values that take special paths: all zeros, ties between +max and
/// -max, NaN and infinity, subnormals, huge values, halfway cases of the rounding.
fn special_rows(rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    let mut rows = vec![
        rng.vec(n, 1.0),
        rng.vec(n, 1e-30),
        rng.vec(n, 3e38),
        vec![0.0; n],
        vec![-0.0; n],
        (0..n).map(|i| (i % 7) as f32 - 3.0).collect(),
        (0..n).map(|i| ((i % 255) as f32 - 127.0) * 0.5).collect(),
    ];
    let mut ties = rng.vec(n, 1.0);
    for i in (0..n).step_by(16) {
        ties[i] = if i % 32 == 0 { 2.0 } else { -2.0 };
    }
    rows.push(ties.clone());
    for v in ties.iter_mut().step_by(32) {
        *v = -*v;
    }
    rows.push(ties);
    for special in [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e-40, -1e-45] {
        let mut x = rng.vec(n, 1.0);
        for i in (5..n).step_by(97) {
            x[i] = special;
        }
        rows.push(x);
    }
    // A NaN as the last value of a block: the reference's running max resets after a NaN.
    let mut x = rng.vec(n, 1.0);
    x[31] = f32::NAN;
    rows.push(x);
    // Values whose scaled quants land exactly on .5 (127 * k / 254).
    rows.push((0..n).map(|i| (i % 255) as f32 / 254.0 * 127.0).collect());
    rows
}

#[test]
fn activation_quantizers_are_byte_identical_at_every_level() {
    let mut rng = Rng(0xACE);
    for ty in [Q8_0, Q8_1, Q8_K] {
        for n in [256, 512, 1536, 4096] {
            for (k, x) in special_rows(&mut rng, n).iter().enumerate() {
                let want = quantize(ty, x);
                for level in levels() {
                    let mut got = vec![0u8; want.len()];
                    quantize_row_with(level, ty, x, &mut got).expect("quantize");
                    if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
                        let b = ty.block_bytes();
                        panic!(
                            "{ty} n={n} row {k} at {level}: byte {i} of block {}: {:?} vs {:?}",
                            i / b,
                            &got[i / b * b..(i / b + 1) * b],
                            &want[i / b * b..(i / b + 1) * b]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn run_time_activation_quantizers_are_byte_identical_at_every_level() {
    let mut rng = Rng(0xBEE);
    for ty in [Q8_0, Q8_1] {
        for n in [256, 576, 1536] {
            let mut rows = special_rows(&mut rng, n);
            // Blocks whose largest magnitude is subnormal: 127 / amax overflows for the smallest.
            rows.push((0..n).map(|i| [1e-45, -1e-45, 0.0, 3e-39][i % 4]).collect());
            rows.push((0..n).map(|i| [1e-45, 0.0][i % 2]).collect());
            for (k, x) in rows.iter().enumerate() {
                let mut want = vec![0u8; ty.row_bytes(n).expect("whole blocks")];
                quantize_act_row_with(Isa::Scalar, ty, x, &mut want).expect("quantize");
                for level in levels() {
                    let mut got = vec![0u8; want.len()];
                    quantize_act_row_with(level, ty, x, &mut got).expect("quantize");
                    if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
                        let b = ty.block_bytes();
                        panic!(
                            "{ty} n={n} row {k} at {level}: byte {i} of block {}: {:?} vs {:?}",
                            i / b,
                            &got[i / b * b..(i / b + 1) * b],
                            &want[i / b * b..(i / b + 1) * b]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn public_functions_use_the_detected_level() {
    assert!(isa().is_available());
    let mut rng = Rng(3);
    let n = 1536;
    for ty in WEIGHTS {
        let x = rng.vec(n, 1.0);
        let at = ty.vec_dot_type();
        let mut act = vec![0u8; at.row_bytes(n).expect("whole blocks")];
        quantize_row(at, &x, &mut act).expect("quantize");
        assert_eq!(act, quantize(at, &x), "{ty}: activation bytes");
        let rb = ty.row_bytes(n).expect("whole blocks");
        let w: Vec<u8> = (0..5)
            .flat_map(|_| quantize(ty, &rng.vec(n, 1.0)))
            .collect();
        let mut got = vec![0f32; 5];
        matvec(ty, n, &w, &act, &mut got);
        let mut want = vec![0f32; 5];
        matvec_with(isa(), ty, n, &w, &act, &mut want);
        assert_eq!(got, want, "{ty}: matvec at {}", isa());
        // Whatever the rows are grouped into, each row is the same as on its own.
        for (r, &g) in got.iter().enumerate() {
            let one = vec_dot(ty, n, &w[r * rb..(r + 1) * rb], &act);
            assert_eq!(g.to_bits(), one.to_bits(), "{ty}: row {r}");
        }
    }
}

#[test]
fn unavailable_levels_fall_back_to_scalar() {
    let mut rng = Rng(11);
    let n = 256;
    let act = quantize(Q8_K, &rng.vec(n, 1.0));
    let w = quantize(Q4_K, &rng.vec(n, 1.0));
    let mut want = [0f32];
    matvec_with(Isa::Scalar, Q4_K, n, &w, &act, &mut want);
    for level in Isa::ALL.into_iter().filter(|l| !l.is_available()) {
        let mut got = [0f32];
        matvec_with(level, Q4_K, n, &w, &act, &mut got);
        assert_eq!(got[0].to_bits(), want[0].to_bits(), "{level}");
    }
}

/// Run-time detection needs std; without it the levels are what the build targets statically.
#[test]
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn a_simd_level_is_tested_on_x86_with_avx2() {
    if std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        assert!(levels().contains(&Isa::Avx2));
        assert_ne!(isa(), Isa::Scalar);
    }
}

#[test]
#[cfg(target_arch = "aarch64")]
fn a_simd_level_is_tested_on_aarch64() {
    // Advanced SIMD is part of the aarch64 baseline.
    assert!(levels().contains(&Isa::Neon));
    assert_ne!(isa(), Isa::Scalar);
}

/// The Q8_0 value accumulation of attention over a q8_0 KV cache: every level gives the scalar
/// reference's bits (each element is one fused multiply-add of an exact product), and the
/// reference is `y + s · dequantize(x)` up to that single rounding.
#[test]
fn q8_0_value_accumulation_matches_scalar_bit_for_bit() {
    use edgelm::quant::blocks::BlockQ8_0;
    use edgelm::quant::{mad_q8_0, mad_q8_0_with};
    let mut rng = Rng(21);
    for n in [32usize, 64, 128, 256] {
        let x = quantize(Q8_0, &rng.vec(n, 3.0));
        let blocks: &[BlockQ8_0] = bytemuck::cast_slice(&x);
        let deq = dequantize(Q8_0, &x, n);
        for s in [1.0f32, 0.37, -2.5e-3, 1e-20] {
            let y0 = rng.vec(n, 1.0);
            let mut want = y0.clone();
            mad_q8_0_with(Isa::Scalar, &mut want, blocks, s);
            for (i, (&w, (&y, &v))) in want.iter().zip(y0.iter().zip(&deq)).enumerate() {
                let exact = y as f64 + s as f64 * v as f64;
                assert!(
                    (w as f64 - exact).abs() <= f32::EPSILON as f64 * exact.abs().max(1e-30),
                    "n={n} s={s} i={i}: {w} vs {exact}"
                );
            }
            for level in levels() {
                let mut got = y0.clone();
                mad_q8_0_with(level, &mut got, blocks, s);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{level}, n={n}, s={s}");
            }
            let mut got = y0.clone();
            mad_q8_0(&mut got, blocks, s);
            assert_eq!(got, want, "detected level {}", isa());
        }
    }
}

/// Reports the levels this CPU has, and pins them when `EDGELM_EXPECT_ISA` names them
/// (comma-separated, in `Isa::ALL` order; scripts/test-arm sets it for each emulated CPU), so that
/// a run meant for a CPU without a level cannot pass on a CPU that silently lacks or has it.
#[test]
#[cfg(feature = "std")]
fn detected_levels_are_the_expected_ones() {
    let names: Vec<&str> = levels().iter().map(|l| l.name()).collect();
    let got = names.join(",");
    eprintln!("SIMD levels tested against scalar: [{got}], best {}", isa());
    #[cfg(target_arch = "aarch64")]
    {
        let i8mm = std::arch::is_aarch64_feature_detected!("i8mm");
        eprintln!("CPU has i8mm: {i8mm} (no i8mm kernels exist: it takes the dotprod ones)");
        if let Ok(want) = std::env::var("EDGELM_EXPECT_I8MM") {
            assert_eq!(i8mm, want == "1", "i8mm detected: {i8mm}, expected {want}");
        }
    }
    if let Ok(want) = std::env::var("EDGELM_EXPECT_ISA") {
        assert_eq!(got, want, "detected levels [{got}], expected [{want}]");
    }
}

/// The types whose kernels every SIMD architecture has, and their results on the golden rows.
const ACROSS: [GgmlType; 6] = [Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K];

/// Eight rows of each type in [`ACROSS`] and one activation row, from a fixed seed: random
/// bytes (every quant value), with scales of mixed sign and size.
fn golden_rows(ty: GgmlType) -> (usize, Vec<u8>, Vec<u8>) {
    let mut rng = Rng(0xA11C_E5EE_D000_0001 ^ u64::from(ty.id()));
    let n = 512;
    let w: Vec<u8> = (0..8)
        .flat_map(|_| random_blocks(&mut rng, ty, n))
        .collect();
    let act = quantize(ty.vec_dot_type(), &rng.vec(n, 3.0));
    (n, w, act)
}

/// The bits of each SIMD level's results on [`golden_rows`], made on x86-64 (AVX2 and AVX-512
/// agree): `EDGELM_PRINT_GOLDEN=1 cargo test -p edgelm --test quant_simd across -- --nocapture`.
const GOLDEN: [[u32; 8]; 6] = [
    // Q4_0 (blockwise: `blockwise_dot`'s bits)
    [
        0x40bc_0888,
        0x40de_45ac,
        0x3dd8_bc65,
        0x40e8_b2b6,
        0x4033_286e,
        0x40d5_356b,
        0x3d62_a43c,
        0x4130_8175,
    ],
    // Q4_1
    [
        0xbf1e_5a42,
        0x4131_6cda,
        0xc096_bd38,
        0x4108_7cba,
        0x4145_13ee,
        0xbf38_ed48,
        0xc113_7e34,
        0xc057_8219,
    ],
    // Q5_0
    [
        0x40aa_831d,
        0xc11d_1eee,
        0xc18b_1ba2,
        0xc0ff_150d,
        0x409b_0bf2,
        0xc041_47fc,
        0xc13f_96eb,
        0x4116_71a9,
    ],
    // Q8_0
    [
        0x3fdb_7cc0,
        0xc19e_6120,
        0xc148_2d58,
        0x428c_a426,
        0x4308_a081,
        0xc15a_b8ca,
        0x431c_1568,
        0xc338_a2ee,
    ],
    // Q4_K
    [
        0xc2e8_e2eb,
        0xc3b0_8599,
        0xc2b1_f7d3,
        0xc300_c076,
        0x4239_b37c,
        0xc2a1_c199,
        0x43ce_cbb7,
        0xc14c_4bd7,
    ],
    // Q6_K
    [
        0xc47b_cea0,
        0xc497_e157,
        0xc436_bd80,
        0xc48f_35ed,
        0xc4bc_7d92,
        0x442e_6326,
        0x4573_871c,
        0x442e_3fcc,
    ],
];

/// Every SIMD level, x86 or ARM, gives the same bits on the same rows: the ARM kernels sum in
/// the x86 kernels' order, so a board's logits equal the host's (and llama.cpp's x86 ones for
/// the 32-element types, whose order is ggml's AVX2 order).
#[test]
fn simd_levels_agree_across_architectures() {
    let print = std::env::var_os("EDGELM_PRINT_GOLDEN").is_some();
    for (ty, want) in ACROSS.into_iter().zip(GOLDEN) {
        let (n, w, act) = golden_rows(ty);
        for level in levels() {
            let mut got = [0f32; 8];
            matvec_with(level, ty, n, &w, &act, &mut got);
            let bits = got.map(f32::to_bits);
            if print {
                println!("{ty} {level}: {bits:x?}");
                continue;
            }
            assert_eq!(bits, want, "{ty} at {level}: {got:?}");
        }
    }
}
