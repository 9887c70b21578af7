//! The thread pool: what one dispatch costs (an empty job), and Q4_1 products at SmolLM2's shapes
//! on one thread against split over the pool, to place the size below which products stay on
//! one thread (`MIN_PARALLEL_BYTES` in runtime/src/model/ops.rs).
//!
//! A plain harness, not criterion: on a machine shared with other work, a mean drifts with the
//! neighbours' load, so the thread counts alternate in short blocks and each reports the best
//! block (what the code costs when it has the cores) and the median block.
//!
//! `cargo bench -p edgelm --bench threads [-- FILTER]`.

use edgelm::quant::{matvec_rows, quantize_row_with, GgmlType, Isa};
use edgelm::threads::Pool;
use std::hint::black_box;
use std::time::Instant;

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

/// Blocks per thread count, alternating.
const BLOCKS: usize = 30;

/// Runs `step(n)` for each `n` of `counts` in alternating blocks of ~2 ms; returns per `n` the
/// best and the median block's time per call, in µs.
fn alternate(counts: &[usize], mut step: impl FnMut(usize)) -> Vec<(f64, f64)> {
    // Calls per block, from one timed call (at least one).
    let t = Instant::now();
    step(counts[0]);
    let per_block = (2e-3 / t.elapsed().as_secs_f64().max(1e-7)).clamp(1.0, 20_000.0) as usize;
    let mut times = vec![Vec::new(); counts.len()];
    for _ in 0..BLOCKS {
        for (k, &n) in counts.iter().enumerate() {
            step(n);
            let t = Instant::now();
            for _ in 0..per_block {
                step(n);
            }
            times[k].push(t.elapsed().as_secs_f64() * 1e6 / per_block as f64);
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        })
        .collect()
}

fn report(name: &str, counts: &[usize], r: &[(f64, f64)]) {
    let cells: Vec<String> = counts
        .iter()
        .zip(r)
        .map(|(n, (best, med))| format!("t{n} best {best:8.3} med {med:8.3}"))
        .collect();
    let ratio = r[0].0 / r[1].0;
    println!(
        "{name:<16} {}   speedup(best) {ratio:.2}",
        cells.join("   ")
    );
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    println!("µs per call; {BLOCKS} alternating blocks of ~2 ms per thread count");

    if "empty".contains(&filter) || filter.is_empty() {
        let mut pools: Vec<Pool> = [1, 2, 3].map(|n| Pool::new(n).expect("threads")).into();
        let counts = [1, 2, 3];
        let r = alternate(&counts, |n| {
            pools[n - 1].run(&|i, n| {
                black_box((i, n));
            })
        });
        report("empty job", &counts, &r);
    }

    let (ty, cols) = (GgmlType::Q4_1, 576);
    let row = quantize(ty, &values(cols, 7));
    let act = quantize(ty.vec_dot_type(), &values(cols, 11));
    // Pools that live through the whole run, as the global one does in a program.
    let mut pools: Vec<Pool> = [1, 2].map(|n| Pool::new(n).expect("threads")).into();
    // 192: SmolLM2's K and V; 576: Q and O; 1536: gate and up.
    for rows in [16, 32, 64, 96, 128, 192, 384, 576, 1536] {
        let name = format!("{ty}/{rows}x{cols}");
        if !name.contains(&filter) {
            continue;
        }
        let w: Vec<u8> = row.iter().copied().cycle().take(row.len() * rows).collect();
        let mut out = vec![0f32; rows];
        let counts = [1, 2];
        let r = alternate(&counts, |n| {
            pools[n - 1].for_each_part([&mut out[..]], 8, |_, first, part| {
                matvec_rows(ty, cols, black_box(&w), black_box(&act), first, part)
            });
            black_box(&out);
        });
        report(&format!("{name} {}K", w.len() >> 10), &counts, &r);
    }
}
