//! Speed ratios of the kernel levels that hold up on a busy machine: the levels take turns, many
//! rounds, and each keeps its fastest round (interference only ever adds time).
//!
//! `cargo bench -p edgelm --bench ratios [-- FILTER]`; FILTER matches "TYPE/ROWSxCOLS".

use edgelm::quant::{matvec_with, quantize_row_with, GgmlType, Isa};
use std::hint::black_box;
use std::time::{Duration, Instant};

use GgmlType::*;

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

/// Fastest time of `f` over `rounds` turns, each turn long enough to time (`reps` calls).
fn race(levels: &[Isa], rounds: usize, mut f: impl FnMut(Isa)) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; levels.len()];
    // Calibrate repetitions so a turn takes ~2 ms on the slowest level.
    let t = Instant::now();
    f(levels[0]);
    let one = t.elapsed().max(Duration::from_nanos(50));
    for _ in 0..rounds {
        for (i, &l) in levels.iter().enumerate() {
            let reps = if l == Isa::Scalar {
                1
            } else {
                (2_000_000 / one.as_nanos().max(1) as usize).clamp(1, 1000)
            };
            let reps = reps
                .max((Duration::from_millis(2).as_nanos() / one.as_nanos()) as usize)
                .min(1000);
            let t = Instant::now();
            for _ in 0..reps {
                f(l);
            }
            best[i] = best[i].min(t.elapsed() / reps as u32);
        }
    }
    best
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let levels: Vec<Isa> = Isa::ALL.into_iter().filter(|l| l.is_available()).collect();
    let names: Vec<&str> = levels.iter().map(|l| l.name()).collect();
    println!("{:22} {}", "matvec (µs)", names.join(" / "));
    let cases: &[(GgmlType, &[(usize, usize)])] = &[
        (Q4_1, &[(576, 576), (1536, 576), (576, 1536), (49152, 576)]),
        (Q8_0, &[(576, 576), (1536, 576), (576, 1536), (49152, 576)]),
        (Q4_0, &[(576, 576), (1536, 576), (576, 1536), (49152, 576)]),
        (Q4_K, &[(576, 1536), (640, 2048)]),
        (Q6_K, &[(576, 1536), (640, 2048)]),
        (Q5_0, &[(576, 576), (1536, 576), (576, 1536)]),
        (Q5_K, &[(576, 1536), (640, 2048)]),
        (Q5_1, &[(576, 576), (1536, 576), (576, 1536)]),
        (F16, &[(576, 576), (1536, 576), (576, 1536)]),
        (F32, &[(576, 576), (1536, 576)]),
    ];
    for &(ty, shapes) in cases {
        for &(rows, cols) in shapes {
            let label = format!("{ty}/{rows}x{cols}");
            if !label.contains(&filter) {
                continue;
            }
            let row = quantize(ty, &values(cols, 7));
            let w: Vec<u8> = row.iter().copied().cycle().take(row.len() * rows).collect();
            let act = quantize(ty.vec_dot_type(), &values(cols, 11));
            let mut out = vec![0f32; rows];
            let t = race(&levels, 15, |l| {
                matvec_with(l, ty, cols, black_box(&w), black_box(&act), &mut out);
                black_box(&out);
            });
            report(&label, &t);
        }
    }
    if "smollm2-token".contains(&filter) || filter.is_empty() {
        smollm2_token(&levels);
    }
    for ty in [Q8_0, Q8_1, Q8_K] {
        let n = 1536;
        let label = format!("quantize-{ty}/{n}");
        if !label.contains(&filter) {
            continue;
        }
        let x = values(n, 5);
        let mut y = vec![0u8; ty.row_bytes(n).expect("whole blocks")];
        let t = race(&levels, 15, |l| {
            quantize_row_with(l, ty, black_box(&x), &mut y).expect("quantize");
            black_box(&y);
        });
        report(&label, &t);
    }
}

/// Every matvec of one SmolLM2-135M decode step, with its activation quantization: 30 layers of
/// Q4_1 q, k, v, o (576→576, 576→192 ×2, 576→576), gate and up (576→1536) and down (1536→576),
/// then the Q8_0 output head (576→49152). Each matrix has its own memory (96 MB in all, as the
/// real file), so caches hold what they would in a real run. Attention and norms are not in it.
fn smollm2_token(levels: &[Isa]) {
    let layer: [(usize, usize); 7] = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let mut mats: Vec<(GgmlType, usize, usize, Vec<u8>)> = Vec::new();
    for l in 0..30 {
        for (k, &(rows, cols)) in layer.iter().enumerate() {
            let row = quantize(Q4_1, &values(cols, (l * 7 + k) as u64 + 1));
            let w = row.iter().copied().cycle().take(row.len() * rows).collect();
            mats.push((Q4_1, rows, cols, w));
        }
    }
    let head = quantize(Q8_0, &values(576, 3));
    let head = head
        .iter()
        .copied()
        .cycle()
        .take(head.len() * 49152)
        .collect();
    mats.push((Q8_0, 49152, 576, head));
    let x576 = values(576, 9);
    let x1536 = values(1536, 10);
    let mut act = vec![0u8; 2048];
    let mut out = vec![0f32; 49152];
    let t = race(levels, 5, |l| {
        for (ty, rows, cols, w) in &mats {
            let at = ty.vec_dot_type();
            let x = if *cols == 576 { &x576 } else { &x1536 };
            let a = &mut act[..at.row_bytes(*cols).expect("whole blocks")];
            quantize_row_with(l, at, x, a).expect("quantize");
            matvec_with(l, *ty, *cols, w, a, &mut out[..*rows]);
        }
        black_box(&out);
    });
    report("smollm2-token", &t);
}

fn report(label: &str, t: &[Duration]) {
    let scalar = t[0].as_secs_f64();
    let cells: Vec<String> = t
        .iter()
        .map(|d| {
            let us = d.as_secs_f64() * 1e6;
            format!("{us:9.2} ({:4.1}x)", scalar / d.as_secs_f64())
        })
        .collect();
    println!("{label:22} {}", cells.join(" "));
}
