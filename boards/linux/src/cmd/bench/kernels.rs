//! `edgelm bench --kernels`: each weight type's matrix × vector speed, in GB/s of weights read,
//! and its ratio to Q4_1's — the figures a board profile's `efficiency.by_type` holds.
//!
//! Decode reads every weight once per token, so a type's speed per weight byte is what sets its
//! share of the token time. One matrix per type, 2048 columns and as many rows as fill the
//! buffer (the `--membw` size), so it streams from memory as a model's weights do; products are
//! split over the runtime's own thread pool by rows, as the forward pass splits them.

use anyhow::{Context, Result};
use edgelm::quant::{self, GgmlType};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Instant;

/// Columns of every matrix: a whole number of blocks of every type, the FFN width of 270M models.
const COLS: usize = 2048;
/// Distinct rows quantized; the matrix repeats them (quantizing 256 MiB would take minutes).
const DISTINCT_ROWS: usize = 64;
/// Timed passes per type and thread count (after one warm-up); the median is reported.
const PASSES: usize = 31;
/// The types measured: those the converter writes and the PyPI files hold.
const TYPES: [GgmlType; 9] = [
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];
/// The type whose speed the ratios are relative to: profiles calibrate `by_threads` on it.
const REFERENCE: GgmlType = GgmlType::Q4_1;

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

fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    x.get(x.len() / 2).copied().unwrap_or(0.0)
}

/// A `rows` × [`COLS`] matrix of `ty`: [`DISTINCT_ROWS`] quantized rows, repeated.
fn matrix(ty: GgmlType, rows: usize) -> Result<memmap2::MmapMut> {
    let rb = ty
        .row_bytes(COLS)
        .context("2048 columns are whole blocks")?;
    let mut distinct = vec![0u8; rb * DISTINCT_ROWS];
    for (i, row) in distinct.chunks_exact_mut(rb).enumerate() {
        quant::quantize_row(ty, &values(COLS, 7 + i as u64), row)
            .map_err(|e| anyhow::anyhow!("quantizing a {ty} row: {e:?}"))?;
    }
    let mut w = super::huge_buffer(rb * rows)?;
    for chunk in w.chunks_mut(distinct.len()) {
        chunk.copy_from_slice(&distinct[..chunk.len()]);
    }
    Ok(w)
}

/// One type's matrix, quantized activation and output.
struct Case {
    ty: GgmlType,
    w: memmap2::MmapMut,
    act: Vec<u8>,
    out: Vec<f32>,
}

impl Case {
    fn new(ty: GgmlType, bytes: usize, x: &[f32]) -> Result<Case> {
        let rb = ty
            .row_bytes(COLS)
            .context("2048 columns are whole blocks")?;
        let n_rows = (bytes / rb)
            .max(DISTINCT_ROWS)
            .next_multiple_of(DISTINCT_ROWS);
        let aty = ty.vec_dot_type();
        let mut act = vec![0u8; aty.row_bytes(COLS).context("activation row")?];
        quant::quantize_act_row(aty, x, &mut act)
            .map_err(|e| anyhow::anyhow!("quantizing a {aty} activation row: {e:?}"))?;
        Ok(Case {
            ty,
            w: matrix(ty, n_rows)?,
            act,
            out: vec![0f32; n_rows],
        })
    }

    /// Seconds for `out = W · act` on the global pool (its current thread count).
    fn time(&mut self) -> f64 {
        let (ty, w, act) = (self.ty, &self.w[..], &self.act);
        let t0 = Instant::now();
        edgelm::threads::for_each_part([&mut self.out[..]], 8, |_, first, part| {
            quant::matvec_rows(ty, COLS, w, act, first, part);
        });
        black_box(&self.out);
        t0.elapsed().as_secs_f64().max(1e-9)
    }
}

/// One `kernel` row per type and thread count, with `vs_q4_1`: its speed over Q4_1's. The types
/// take turns within each pass, so a machine whose speed drifts (shared hosts do) moves them
/// together and the ratios hold.
pub fn bench(bytes: usize, threads: &[usize]) -> Result<Vec<Value>> {
    let x = values(COLS, 1);
    let mut cases = TYPES
        .iter()
        .map(|&ty| Case::new(ty, bytes, &x))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for &t in threads {
        if !edgelm::threads::set(t) {
            anyhow::bail!("cannot start {t} threads");
        }
        let mut secs = vec![Vec::with_capacity(PASSES); cases.len()];
        for pass in 0..=PASSES {
            for (c, s) in cases.iter_mut().zip(secs.iter_mut()) {
                let dt = c.time();
                if pass > 0 {
                    s.push(dt);
                }
            }
        }
        let gb_s: Vec<f64> = cases
            .iter()
            .zip(secs)
            .map(|(c, s)| c.w.len() as f64 / median(s) / 1e9)
            .collect();
        let reference = cases
            .iter()
            .zip(&gb_s)
            .find(|(c, _)| c.ty == REFERENCE)
            .map_or(1.0, |(_, &g)| g);
        for (c, g) in cases.iter().zip(gb_s) {
            rows.push(
                json!({"test": "kernel", "type": c.ty.name().to_lowercase(), "threads": t,
                             "gb_s": g, "vs_q4_1": g / reference.max(1e-9),
                             "weight_bytes": c.w.len(), "passes": PASSES}),
            );
        }
    }
    edgelm::threads::set(1);
    Ok(rows)
}

/// The `kernel` rows as a table: GB/s and the ratio to Q4_1 at each thread count.
pub fn print(rows: &[Value]) {
    let k: Vec<&Value> = rows.iter().filter(|r| r["test"] == "kernel").collect();
    if k.is_empty() {
        return;
    }
    println!("| type | threads | GB/s | vs q4_1 |");
    println!("| ---- | ------: | ---: | ------: |");
    for r in k {
        println!(
            "| {} | {} | {:.2} | {:.3} |",
            r["type"].as_str().unwrap_or("?"),
            r["threads"],
            r["gb_s"].as_f64().unwrap_or(0.0),
            r["vs_q4_1"].as_f64().unwrap_or(0.0)
        );
    }
}
