//! Matrix × vector read speed on SmolLM2's matrix shapes, cold (a pool of copies larger than the
//! caches, walked in turn, as decode walks the model) and hot (one matrix, repeated).
//!
//! `cargo run --release -p edgelm --example cold_matvec -- q4_0 [--huge] [-t N]`: `--huge` asks for
//! 2 MiB pages, as `edgelm` asks for its model map; `-t` splits the rows over N threads as decode
//! does. Figures are GB/s of weight bytes.

mod common;

use edgelm::quant::{matvec_rows, quantize_act_row, quantize_row, GgmlType};
use std::time::Instant;

/// (rows, columns): K/V, Q/O, gate/up, down, and the tied output head.
const SHAPES: [(usize, usize); 5] = [
    (192, 576),
    (576, 576),
    (1536, 576),
    (576, 1536),
    (49152, 576),
];

/// Bytes of matrices the cold pass walks through: well past the last-level cache.
const POOL_BYTES: usize = 256 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ty = common::weight_type(&args);
    let huge = args.iter().any(|a| a == "--huge");
    let threads = args
        .iter()
        .position(|a| a == "-t")
        .and_then(|i| args.get(i + 1))
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    edgelm::set_threads(threads);
    // The rows of one product over the pool's threads, as decode splits them.
    let matvec = |ty: GgmlType, n: usize, w: &[u8], act: &[u8], out: &mut [f32]| {
        edgelm::threads::for_each_part([out], 8, |_, first, part| {
            matvec_rows(ty, n, w, act, first, part);
        });
    };
    let mut value = common::values();
    {
        let mut o = vec![0f32; 64];
        let t = Instant::now();
        for _ in 0..100_000 {
            edgelm::threads::for_each_part([&mut o[..]], 8, |_, _, p| p[0] += 1.0);
        }
        println!(
            "pool dispatch: {:.2} us per job",
            t.elapsed().as_secs_f64() * 10.0
        );
    }
    for (rows, n) in SHAPES {
        let (Some(row), Some(act_row)) = (ty.row_bytes(n), ty.vec_dot_type().row_bytes(n)) else {
            continue;
        };
        let bytes = rows * row;
        let mut one = vec![0u8; bytes];
        for r in one.chunks_exact_mut(row) {
            let x: Vec<f32> = (0..n).map(|_| value()).collect();
            quantize_row(ty, &x, r).expect("a weight type");
        }
        let copies = POOL_BYTES / bytes + 1;
        let mut pool = memmap2::MmapMut::map_anon(copies * bytes).expect("anonymous memory");
        let advice = if huge {
            memmap2::Advice::HugePage
        } else {
            memmap2::Advice::NoHugePage
        };
        let _ = pool.advise(advice);
        for c in pool.chunks_exact_mut(bytes) {
            c.copy_from_slice(&one);
        }
        let x: Vec<f32> = (0..n).map(|_| value()).collect();
        let mut act = vec![0u8; act_row];
        quantize_act_row(ty.vec_dot_type(), &x, &mut act).expect("an activation type");
        let mut out = vec![0f32; rows];
        let t = Instant::now();
        for _ in 0..3 {
            for m in pool.chunks_exact(bytes) {
                matvec(ty, n, m, &act, &mut out);
            }
        }
        let cold = (3 * copies * bytes) as f64 / t.elapsed().as_secs_f64() / 1e9;
        let reps = ((64 << 20) / bytes).max(4);
        let t = Instant::now();
        for _ in 0..reps {
            matvec(ty, n, &one, &act, &mut out);
        }
        let hot = (reps * bytes) as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "{ty:?} {rows}x{n} ({} KiB): cold {cold:.1} GB/s, hot {hot:.1} GB/s",
            bytes >> 10
        );
    }
}
