//! matvec over plain rows against the same rows interleaved by four (`quant::layout`), at the
//! detected level and SmolLM2-135M's shapes, alternated inside one run. Throughput is in weight
//! bytes read (the same for both layouts).
//!
//! `cargo bench -p edgelm --bench layout -- 'Q4_1'` runs one type.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgelm::quant::{isa, layout, matvec_with, quantize_act_row, quantize_row, GgmlType};
use std::hint::black_box;
use std::time::Duration;

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

fn bench(c: &mut Criterion) {
    let level = isa();
    for ty in GgmlType::INTERLEAVED {
        let base = ty.base();
        let mut g = c.benchmark_group(format!("{}/{}", base.name(), level.name()));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(2));
        // Attention (576×576), FFN up/gate (1536×576), FFN down (576×1536).
        for (rows, cols) in [(576, 576), (1536, 576), (576, 1536)] {
            let rb = base.row_bytes(cols).unwrap();
            let mut w = vec![0u8; rows * rb];
            for (r, o) in w.chunks_exact_mut(rb).enumerate() {
                quantize_row(base, &values(cols, r as u64 + 1), o).unwrap();
            }
            let mut il = vec![0u8; w.len()];
            layout::interleave(ty, cols, &w, &mut il).unwrap();
            let aty = base.vec_dot_type();
            let mut act = vec![0u8; aty.row_bytes(cols).unwrap()];
            quantize_act_row(aty, &values(cols, 99), &mut act).unwrap();
            let mut out = vec![0f32; rows];
            g.throughput(Throughput::Bytes(w.len() as u64));
            let shape = format!("{rows}x{cols}");
            for (name, t, data) in [("plain", base, &w), ("x4", ty, &il)] {
                g.bench_with_input(BenchmarkId::new(name, &shape), data, |b, data| {
                    b.iter(|| matvec_with(level, t, cols, black_box(data), &act, &mut out))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
