//! matvec and activation quantization at the shapes of the real models, scalar against the
//! level chosen at run time (`best`), and against every level this CPU has when
//! `EDGELM_BENCH_LEVELS=all`. Throughput is in weight bytes read.
//!
//! `cargo bench -p edgelm --bench kernels -- 'Q4_1/'` runs one type.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgelm::quant::{isa, matvec_with, quantize_row_with, GgmlType, Isa};
use std::hint::black_box;
use std::time::Duration;

use GgmlType::*;

/// (rows, cols): SmolLM2-135M's attention (576×576), FFN up/gate (1536×576) and down
/// (576×1536) and its output head (49152×576); for the K-quants, whose rows must be whole
/// super-blocks, the FFN down shapes of SmolLM2 and Gemma 3 270M (640×2048).
fn shapes(ty: GgmlType) -> &'static [(usize, usize)] {
    if ty.block_size() == 256 {
        &[(576, 1536), (640, 2048)]
    } else {
        &[(576, 576), (1536, 576), (576, 1536), (49152, 576)]
    }
}

/// The levels to compare: scalar and the detected one, or all with `EDGELM_BENCH_LEVELS=all`.
fn levels() -> Vec<(String, Isa)> {
    let all = std::env::var("EDGELM_BENCH_LEVELS").is_ok_and(|v| v == "all");
    let mut out = vec![("scalar".to_string(), Isa::Scalar)];
    if all {
        for l in Isa::ALL
            .into_iter()
            .filter(|&l| l != Isa::Scalar && l.is_available())
        {
            out.push((l.name().to_string(), l));
        }
    } else if isa() != Isa::Scalar {
        out.push((format!("best-{}", isa().name()), isa()));
    }
    out
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).expect("whole blocks")];
    quantize_row_with(Isa::Scalar, ty, x, &mut out).expect("quantize");
    out
}

fn bench_matvec(c: &mut Criterion) {
    let types = [Q4_1, Q8_0, Q4_0, Q4_K, Q6_K, Q5_0, Q5_K, Q5_1, F16, F32];
    for ty in types {
        for &(rows, cols) in shapes(ty) {
            // Quantizing 49152 rows with the reference K-quant search is slow; one row repeated
            // reads the same bytes from memory as distinct rows would.
            let row = quantize(ty, &values(cols, 7));
            let w: Vec<u8> = row.iter().copied().cycle().take(row.len() * rows).collect();
            let act = quantize(ty.vec_dot_type(), &values(cols, 11));
            let mut out = vec![0f32; rows];
            let mut g = c.benchmark_group(format!("{ty}/{rows}x{cols}"));
            g.throughput(Throughput::Bytes(w.len() as u64));
            for (name, level) in levels() {
                g.bench_function(BenchmarkId::from_parameter(name), |b| {
                    b.iter(|| {
                        matvec_with(level, ty, cols, black_box(&w), black_box(&act), &mut out);
                        black_box(&out);
                    })
                });
            }
            g.finish();
        }
    }
}

fn bench_quantize(c: &mut Criterion) {
    for ty in [Q8_0, Q8_1, Q8_K] {
        for n in if ty == Q8_K {
            [1536, 2048]
        } else {
            [576, 1536]
        } {
            let x = values(n, 5);
            let mut y = vec![0u8; ty.row_bytes(n).expect("whole blocks")];
            let mut g = c.benchmark_group(format!("quantize-{ty}/{n}"));
            g.throughput(Throughput::Elements(n as u64));
            for (name, level) in levels() {
                g.bench_function(BenchmarkId::from_parameter(name), |b| {
                    b.iter(|| {
                        quantize_row_with(level, ty, black_box(&x), &mut y).expect("quantize");
                        black_box(&y);
                    })
                });
            }
            g.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_matvec, bench_quantize
}
criterion_main!(benches);
