//! Matrix product speed on a prompt-shaped problem held in cache: `rows` × 576 weights (SmolLM2's
//! width) times 64 activation columns, repeated, so the figure is the tile kernels' own speed and
//! `perf record` / `callgrind` of it show only them.
//!
//! `cargo run --release -p edgelm --example hot_matmul -- q8_0|q4_1|q4_0 [reps] [rows]`; prints
//! µs per product and a checksum (the same for every kernel change that keeps the bits).

mod common;

use edgelm::quant::{matmul, quantize_act_row, quantize_row};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ty = common::weight_type(&args);
    let reps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    // 256 rows (150 KiB of Q8_0) stay in a 512 KiB L2 with the activations.
    let rows: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let (n, cols) = (576, 64);
    let mut value = common::values();
    let (Some(row), Some(act_row)) = (ty.row_bytes(n), ty.vec_dot_type().row_bytes(n)) else {
        return;
    };
    let mut w = vec![0u8; rows * row];
    for r in w.chunks_exact_mut(row) {
        let x: Vec<f32> = (0..n).map(|_| value()).collect();
        quantize_row(ty, &x, r).expect("a weight type");
    }
    let mut act = vec![0u8; cols * act_row];
    for a in act.chunks_exact_mut(act_row) {
        let x: Vec<f32> = (0..n).map(|_| value()).collect();
        quantize_act_row(ty.vec_dot_type(), &x, a).expect("an activation type");
    }
    let mut out = vec![0f32; rows * cols];
    let t = Instant::now();
    for _ in 0..reps {
        matmul(ty, n, &w, &act, cols, &mut out);
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / reps.max(1) as f64;
    let sum: f64 = out.iter().map(|&v| f64::from(v)).sum();
    println!("{ty:?} {rows}x{n} x {cols}: {us:.1} us per product (checksum {sum:.6})");
}
