//! `edgelm bench`: llama-bench's two tests — prompt processing (ppN) and generation (tgN) — as
//! mean ± sd tokens/s, the bytes a decode step reads, and (`--membw`) memory read bandwidth, so a
//! run can be placed against its roofline.
//!
//! What is measured, and how it compares with llama-bench:
//! - ppN: a fresh context (position 0) fed N tokens: BOS when the model adds one, then a fixed
//!   pseudo-random sequence of ordinary vocabulary ids (splitmix64, fixed seed; control and
//!   end-of-generation ids skipped). llama-bench feeds BOS + `rand() % n_vocab` the same way.
//! - tgN: a fresh context, N single-token steps starting from BOS (or the first pseudo-random id),
//!   each step feeding the greedy (argmax) choice of the previous one. llama-bench also decodes N
//!   single tokens from an empty context, feeding random ids instead of the argmax.
//! - One warm-up run of each test, then `-r` timed repetitions; t/s is the mean ± sample standard
//!   deviation of the per-repetition tokens/s, as llama-bench reports it.
//! - Each thread count of a list runs in its own child process: the runtime's thread pool is set
//!   once per process.

use crate::load::ModelFile;
use anyhow::{bail, Context, Result};
use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::quant::GgmlType;
use edgelm::session::Session;
use edgelm::tokenizer::Tokenizer;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Barrier;
use std::time::Instant;

mod kernels;

/// Buffer read by `--membw` when no model gives the size.
const MEMBW_DEFAULT_BYTES: usize = 256 << 20;
/// MiB of weights of each type's matrix in `--kernels`: the size of a small model's weights, and
/// the types together (1.1 GiB) far more than any cache, so each is read from memory.
const KERNEL_MIB: u64 = 128;
/// Timed passes over the buffer per thread count (after one warm-up); the median is reported.
const MEMBW_PASSES: usize = 11;

/// A comma-separated list of thread counts, each at least 1.
#[derive(Clone, Debug)]
pub struct ThreadList(Vec<usize>);

fn parse_threads(s: &str) -> Result<ThreadList, String> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let n: usize = part
            .trim()
            .parse()
            .map_err(|_| format!("'{part}' is not a thread count (give e.g. -t 1,2)"))?;
        if n == 0 {
            return Err("thread counts must be at least 1".into());
        }
        if !v.contains(&n) {
            v.push(n);
        }
    }
    Ok(ThreadList(v))
}

/// Arguments of `edgelm bench`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file (without it, only --membw runs).
    #[arg(short = 'm', long)]
    model: Option<PathBuf>,
    /// Prompt tokens of the pp test (0 = skip it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 64)]
    n_prompt: usize,
    /// Generated tokens of the tg test (0 = skip it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    n_gen: usize,
    /// Comma-separated thread counts (default: 1 and every core, e.g. 1,2).
    #[arg(short = 't', long, value_name = "LIST", value_parser = parse_threads)]
    threads: Option<ThreadList>,
    /// Tokens already in the context when each test starts (llama-bench's -d): tests are named
    /// `pp64 @ d512`, `tg64 @ d512`.
    #[arg(short = 'd', long = "n-depth", default_value_t = 0)]
    n_depth: usize,
    /// Prompt tokens per batch in the pp test (llama-bench's -b; 1 = one at a time).
    #[arg(short = 'b', long = "batch-size", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Timed repetitions of each test (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Also measure memory read bandwidth (over a buffer the model file's size, or 256 MiB) and
    /// report each test's roofline fraction.
    #[arg(long)]
    membw: bool,
    /// Also measure each weight type's matrix × vector speed (GB/s of weights read, over a
    /// buffer the --membw size) and its ratio to Q4_1's: the figures of a board profile's
    /// `efficiency.by_type`.
    #[arg(long)]
    kernels: bool,
    /// MiB of weights per type in --kernels (small values only fit tests: the matrix must not
    /// stay in cache).
    #[arg(long, default_value_t = KERNEL_MIB, hide = true, value_parser = clap::value_parser!(u64).range(1..=4096))]
    kernel_mib: u64,
    /// Print a JSON list of rows instead of the table.
    #[arg(long)]
    json: bool,
}

/// Sizes of a model file that set what a decode step must read.
struct ModelFacts {
    /// `arch params type`, like llama-bench's model column.
    desc: String,
    /// Bytes of all tensors (llama-bench's "size").
    size_bytes: u64,
    /// Elements of all tensors.
    params: u64,
    /// Weight bytes one decode step reads (see [`weight_bytes_per_token`]).
    weights_per_token: u64,
    /// KV cache bytes per cached position (keys and values of every layer).
    kv_per_position: f64,
}

/// Weight bytes one decode step reads: every tensor once, except the token embedding (and GPT-2's
/// position embedding), of which only one row is read; a tied output head reads the whole token
/// embedding again for the logits.
pub(crate) fn weight_bytes_per_token(g: &Gguf<'_>) -> u64 {
    weight_bytes_by_type(g).iter().map(|e| e.1).sum()
}

/// [`weight_bytes_per_token`] split by tensor type: kernels of different types reach different
/// fractions of the bandwidth, so the planner weighs each type's bytes by its own figure.
pub(crate) fn weight_bytes_by_type(g: &Gguf<'_>) -> Vec<(GgmlType, u64)> {
    let mut by: Vec<(GgmlType, u64)> = Vec::new();
    let mut add = |ty: GgmlType, b: u64| match by.iter_mut().find(|e| e.0 == ty) {
        Some(e) => e.1 += b,
        None => by.push((ty, b)),
    };
    let mut tied = true;
    for t in g.tensors() {
        let bytes = t.data.len() as u64;
        add(
            t.ty,
            match t.name {
                // One row: the tensor's bytes over its row count (ggml's outermost dimension).
                "token_embd.weight" | "position_embd.weight" => bytes / t.dims[1].max(1),
                _ => bytes,
            },
        );
        if t.name == "output.weight" {
            tied = false;
        }
    }
    if tied {
        if let Some(t) = g.tensor("token_embd.weight") {
            add(t.ty, t.data.len() as u64);
        }
    }
    by
}

/// The type holding most bytes among matrices (a file's "quantization" in one word).
fn main_type(g: &Gguf<'_>) -> &'static str {
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    for t in g.tensors().filter(|t| t.n_dims >= 2) {
        *by_type.entry(t.ty.name()).or_default() += t.data.len() as u64;
    }
    by_type
        .into_iter()
        .max_by_key(|&(_, b)| b)
        .map_or("?", |(n, _)| n)
}

fn model_facts(g: &Gguf<'_>, model: &ModelVec<'_>) -> Result<ModelFacts> {
    let c = &model.config;
    let size_bytes = g.tensors().map(|t| t.data.len() as u64).sum();
    let params: u64 = g.tensors().map(|t| t.n_elements()).sum();
    // Every layer reads one f16 K and V row per attended position (sliding-window rings hold
    // fewer rows only past the window, longer than these tests).
    let row = edgelm::kv::KvType::F16.row_bytes(c.kv_dim()).unwrap_or(0);
    Ok(ModelFacts {
        desc: format!(
            "{} {} {}",
            c.arch.name(),
            human_count(params, ""),
            main_type(g)
        ),
        size_bytes,
        params,
        weights_per_token: weight_bytes_per_token(g),
        kv_per_position: (2 * c.n_layer * row) as f64,
    })
}

/// `134.52 M`-style counts.
fn human_count(n: u64, sep: &str) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e9 => format!("{:.2}{sep}B", n / 1e9),
        _ if n >= 1e6 => format!("{:.0}{sep}M", n / 1e6),
        _ => format!("{:.0}{sep}K", n / 1e3),
    }
}

/// Mean and sample standard deviation (0 for one sample), as llama-bench computes them.
fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    if x.len() < 2 {
        return (mean, 0.0);
    }
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// splitmix64: a fixed, portable pseudo-random sequence.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The pp prompt: BOS when the model adds one, then ordinary vocabulary ids from a fixed seed.
fn bench_tokens(tok: Option<&Tokenizer>, n_vocab: usize, n: usize) -> Vec<u32> {
    let mut ids = Vec::with_capacity(n);
    if let Some(bos) = tok.filter(|t| t.add_bos()).and_then(|t| t.bos()) {
        ids.push(bos);
    }
    let mut rng = SplitMix(0x6564_6765_6c6d);
    while ids.len() < n {
        let id = (rng.next() % n_vocab as u64) as u32;
        let special = tok.is_some_and(|t| t.is_control(id) || t.is_eog(id));
        if !special {
            ids.push(id);
        }
    }
    ids.truncate(n);
    ids
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Runs the pp and tg tests at the current thread count; one JSON row per test.
fn bench_model(a: &Args, threads: usize) -> Result<Vec<Value>> {
    let Some(path) = &a.model else {
        return Ok(Vec::new());
    };
    crate::load::set_threads(Some(threads));
    let file = ModelFile::open(path)?;
    let g = file.gguf()?;
    let model = ModelVec::load(&g).with_context(|| format!("cannot load {}", path.display()))?;
    let facts = model_facts(&g, &model)?;
    let tok = Tokenizer::from_gguf(&g).ok();
    let depth = a.n_depth;
    let n_ctx = depth
        .checked_add(a.n_prompt.max(a.n_gen).max(1))
        .context("-d is too large")?;
    let n_train = model.config.n_ctx_train;
    if n_train > 0 && n_ctx > n_train {
        eprintln!(
            "bench: warning: -d {depth} takes the tests to {n_ctx} positions, past the \
             {n_train} {} was trained for: its speed is measured, not its output",
            path.display()
        );
    }
    let n_batch = a.batch_size as usize;
    let kv = edgelm::kv::KvType::F16;
    let plan = edgelm::plan::plan_batch(&model.config, n_ctx, kv, n_batch)?;
    let mut mem = crate::load::session_memory(&plan, "-d")?;
    let mut s = Session::with_batch(&model, &mut mem, n_ctx, kv, n_batch)?;
    let prompt = bench_tokens(tok.as_ref(), model.config.n_vocab, a.n_prompt.max(1));
    let fill = bench_tokens(tok.as_ref(), model.config.n_vocab, depth.max(1));
    let bar = fill_bar(depth);
    let at = |name: String| {
        if depth > 0 {
            format!("{name} @ d{depth}")
        } else {
            name
        }
    };

    let mut rows = Vec::new();
    let mut test =
        |name: String, n: usize, n_prompt: usize, run: &mut dyn FnMut() -> Result<f64>| {
            run()?; // warm-up
            let mut samples = Vec::with_capacity(a.reps);
            for _ in 0..a.reps {
                let secs = run()?;
                samples.push(n as f64 / secs.max(1e-9));
            }
            let (mean, sd) = mean_sd(&samples);
            // Positions attended, averaged over the test's steps: step i reads depth + i + 1
            // cached rows.
            let kv = facts.kv_per_position * (depth as f64 + (n as f64 + 1.0) / 2.0);
            rows.push(json!({
            "test": name, "threads": threads, "tok_s_mean": mean, "tok_s_sd": sd,
            "bytes_per_token": facts.weights_per_token as f64 + kv,
            "weight_bytes_per_token": facts.weights_per_token, "kv_bytes_per_token": kv,
            "samples_tok_s": samples, "reps": a.reps, "n_prompt": n_prompt, "n_gen": n - n_prompt,
            "n_depth": depth,
            "n_batch": a.batch_size,
            "model": facts.desc, "file": path, "size_bytes": facts.size_bytes,
            "params": facts.params, "backend": "CPU",
            "isa": format!("{:?}", edgelm::quant::isa()),
        }));
            anyhow::Ok(())
        };
    if a.n_prompt > 0 {
        let name = at(format!("pp{}", a.n_prompt));
        test(name, a.n_prompt, a.n_prompt, &mut || {
            to_depth(&mut s, &fill[..depth], &bar)?;
            let t0 = Instant::now();
            s.eval_all(&prompt)?;
            Ok(t0.elapsed().as_secs_f64())
        })?;
    }
    if a.n_gen > 0 {
        let name = at(format!("tg{}", a.n_gen));
        test(name, a.n_gen, 0, &mut || {
            to_depth(&mut s, &fill[..depth], &bar)?;
            let t0 = Instant::now();
            let mut t = prompt[0];
            for _ in 0..a.n_gen {
                t = argmax(s.eval(t)?);
            }
            Ok(t0.elapsed().as_secs_f64())
        })?;
    }
    Ok(rows)
}

/// Tokens per step of the depth fill (the bar moves between steps; with the default -b 32 the
/// batches are those of one call).
const FILL_STEP: usize = 256;

/// The depth fill's progress on a terminal (a fill of thousands of tokens takes minutes, with
/// no other output until the tests' rows); hidden when stderr is not a terminal.
fn fill_bar(depth: usize) -> ProgressBar {
    if depth < FILL_STEP {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(depth as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tokens of depth, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Back to `fill.len()` cached tokens: a filled cache is kept between runs, unless a
/// sliding-window ring overwrote what the first positions need.
fn to_depth<'a, L: AsRef<[edgelm::model::LayerWeights<'a>]>>(
    s: &mut Session<'_, 'a, L>,
    fill: &[u32],
    bar: &ProgressBar,
) -> Result<()> {
    if s.truncate(fill.len()) < fill.len() {
        s.truncate(0);
        bar.reset();
        for step in fill.chunks(FILL_STEP) {
            s.eval_all(step)?;
            bar.inc(step.len() as u64);
        }
        bar.finish_and_clear();
    }
    Ok(())
}

/// Runs `edgelm bench --json` for one thread count in a child process and returns its rows.
fn bench_child(a: &Args, threads: usize) -> Result<Vec<Value>> {
    let Some(path) = &a.model else {
        return Ok(Vec::new());
    };
    let exe = std::env::current_exe().context("cannot find the edgelm executable")?;
    let out = Command::new(exe)
        .arg("bench")
        .arg("-m")
        .arg(path)
        .args(["-p", &a.n_prompt.to_string(), "-n", &a.n_gen.to_string()])
        .args(["-d", &a.n_depth.to_string()])
        .args([
            "-r",
            &a.reps.to_string(),
            "-t",
            &threads.to_string(),
            "-b",
            &a.batch_size.to_string(),
            "--json",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start the benchmark child process")?;
    if !out.status.success() {
        bail!("the benchmark at {threads} threads failed ({})", out.status);
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Sequential streams the bandwidth read interleaves, and how far ahead (u64 words: 256 bytes)
/// each is prefetched. One plain stream stopped short of what a core can read: eight, prefetched
/// as the decode kernels prefetch their rows, read 10% faster on Zen 4 (29–30 against 26.6–27.2
/// GB/s at one thread, alternating), and the kernels had been beating the one-stream figure.
const MEMBW_STREAMS: usize = 8;
const MEMBW_PREFETCH_WORDS: usize = 32;

/// Sum of `words` read as [`MEMBW_STREAMS`] interleaved sequential streams, in eight independent
/// lanes: no add waits on the one before, so the loop runs at load speed (and vectorizes); the
/// sum depends on every word, so no read can be skipped.
#[inline(never)]
fn sum_words(words: &[u64]) -> u64 {
    let q = words.len() / MEMBW_STREAMS / 8 * 8;
    let streams: [&[u64]; MEMBW_STREAMS] = std::array::from_fn(|k| &words[k * q..(k + 1) * q]);
    let mut acc = [0u64; 8];
    for i in (0..q).step_by(8) {
        for s in &streams {
            edgelm::quant::prefetch_read(s.as_ptr().wrapping_add(i + MEMBW_PREFETCH_WORDS));
            for (a, &w) in acc.iter_mut().zip(&s[i..i + 8]) {
                *a = a.wrapping_add(w);
            }
        }
    }
    let tail = words[MEMBW_STREAMS * q..]
        .iter()
        .fold(0u64, |s, &w| s.wrapping_add(w));
    acc.iter().fold(tail, |s, &a| s.wrapping_add(a))
}

/// Median read bandwidth in GB/s (1e9 bytes) over `buf` split among `threads` threads, and all
/// passes' figures.
fn read_bandwidth(buf: &[u64], threads: usize) -> (f64, Vec<f64>) {
    let parts: Vec<&[u64]> = buf.chunks(buf.len().div_ceil(threads).max(1)).collect();
    // One party per part: a short buffer may split into fewer parts than threads.
    let start = Barrier::new(parts.len().max(1));
    let end = Barrier::new(parts.len().max(1));
    let bytes = std::mem::size_of_val(buf) as f64;
    let mut gb_s = Vec::with_capacity(MEMBW_PASSES);
    std::thread::scope(|scope| {
        let mine = parts.first().copied().unwrap_or_default();
        for &part in parts.iter().skip(1) {
            let (start, end) = (&start, &end);
            scope.spawn(move || {
                for _ in 0..=MEMBW_PASSES {
                    start.wait();
                    black_box(sum_words(black_box(part)));
                    end.wait();
                }
            });
        }
        // This thread reads the first part and keeps time; pass 0 is the warm-up.
        for pass in 0..=MEMBW_PASSES {
            start.wait();
            let t0 = Instant::now();
            black_box(sum_words(black_box(mine)));
            end.wait();
            if pass > 0 {
                gb_s.push(bytes / t0.elapsed().as_secs_f64().max(1e-9) / 1e9);
            }
        }
    });
    (median(gb_s.clone()), gb_s)
}

/// `len` zeroed bytes of anonymous memory in 2 MiB pages where the kernel has them, as model
/// files are mapped (`load.rs`): `--membw` and `--kernels` then read through the same page size
/// as decode does.
pub(crate) fn huge_buffer(len: usize) -> Result<memmap2::MmapMut> {
    let m = memmap2::MmapMut::map_anon(len)
        .with_context(|| format!("cannot allocate a {} MiB buffer", len >> 20))?;
    #[cfg(target_os = "linux")]
    let _ = m.advise(memmap2::Advice::HugePage);
    Ok(m)
}

/// One `membw` row per thread count.
fn bench_membw(bytes: usize, threads: &[usize]) -> Result<Vec<Value>> {
    let mut buf = huge_buffer(bytes / 8 * 8)?;
    // SAFETY: the anonymous map is page-aligned and a whole number of words long (so the head and
    // tail are empty), and every bit pattern is a valid u64; `words` borrows `buf` mutably.
    let words = unsafe { buf.align_to_mut::<u64>().1 };
    // Written, not just allocated: untouched pages all map the one zero page and would read from cache.
    for (i, w) in words.iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let words = &*words;
    Ok(threads
        .iter()
        .map(|&t| {
            let (gb_s, samples) = read_bandwidth(words, t);
            json!({"test": "membw", "threads": t, "gb_s": gb_s, "buffer_bytes": words.len() * 8,
                   "passes": samples.len(), "samples_gb_s": samples})
        })
        .collect())
}

fn print_table(rows: &[Value], membw: bool) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut head = vec![
        "model", "size", "params", "backend", "threads", "test", "t/s", "MiB/tok",
    ];
    if membw {
        head.push("roofline");
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    for r in rows.iter().filter(|r| r["model"].is_string()) {
        let mut l = vec![
            r["model"].as_str().unwrap_or("?").to_string(),
            format!("{:.2} MiB", f(&r["size_bytes"]) / (1 << 20) as f64),
            human_count(r["params"].as_u64().unwrap_or(0), " "),
            r["backend"].as_str().unwrap_or("?").to_string(),
            r["threads"].to_string(),
            r["test"].as_str().unwrap_or("?").to_string(),
            format!("{:.2} ± {:.2}", f(&r["tok_s_mean"]), f(&r["tok_s_sd"])),
            format!("{:.2}", f(&r["bytes_per_token"]) / (1 << 20) as f64),
        ];
        if membw {
            l.push(match r["roofline_fraction"].as_f64() {
                Some(x) => format!("{:.0}%", 100.0 * x),
                None => "-".into(),
            });
        }
        lines.push(l);
    }
    if !lines.is_empty() {
        let width: Vec<usize> = (0..head.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        // Text columns left-aligned, numbers right-aligned, as llama-bench's markdown.
        let left = |i: usize| i == 0 || i == 3;
        let row = |cells: Vec<String>| {
            let c: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, s)| match left(i) {
                    true => format!("{s:<w$}", w = width[i]),
                    false => format!("{s:>w$}", w = width[i]),
                })
                .collect();
            println!("| {} |", c.join(" | "));
        };
        row(head.iter().map(|s| s.to_string()).collect());
        let rule: Vec<String> = width
            .iter()
            .enumerate()
            .map(|(i, &w)| match left(i) {
                true => "-".repeat(w),
                false => format!("{}:", "-".repeat(w - 1)),
            })
            .collect();
        println!("| {} |", rule.join(" | "));
        for l in lines {
            row(l);
        }
    }
    for r in rows.iter().filter(|r| r["test"] == "membw") {
        println!(
            "memory read bandwidth, {} thread(s): {:.1} GB/s (median of {} passes over {:.1} MiB)",
            r["threads"],
            f(&r["gb_s"]),
            r["passes"],
            f(&r["buffer_bytes"]) / (1 << 20) as f64
        );
    }
}

pub fn main(a: Args) -> Result<()> {
    if a.model.is_none() && !a.membw && !a.kernels {
        bail!("give a model with -m FILE (or --membw or --kernels alone to measure the machine)");
    }
    if a.model.is_some() && a.n_prompt == 0 && a.n_gen == 0 && !a.membw && !a.kernels {
        bail!("nothing to measure: -p 0 and -n 0 skip both tests");
    }
    if a.reps == 0 {
        bail!("-r must be at least 1");
    }
    let threads = match &a.threads {
        Some(ThreadList(t)) => t.clone(),
        None => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if n > 1 {
                vec![1, n]
            } else {
                vec![1]
            }
        }
    };
    let mut rows = Vec::new();
    if a.model.is_some() && (a.n_prompt > 0 || a.n_gen > 0) {
        if let [t] = threads[..] {
            rows.extend(bench_model(&a, t)?);
        } else {
            for &t in &threads {
                rows.extend(bench_child(&a, t)?);
            }
        }
    }
    if a.membw {
        let bytes = match &a.model {
            Some(m) => ModelFile::open(m)?.len(),
            None => MEMBW_DEFAULT_BYTES,
        };
        let mut ts = vec![1];
        ts.extend(threads.iter().filter(|&&t| t != 1));
        let bw = bench_membw(bytes.max(1 << 20), &ts)?;
        // Roofline: the fraction of the measured bandwidth the run's bytes per token use.
        for r in rows.iter_mut() {
            let gb_s = bw
                .iter()
                .find(|b| b["threads"] == r["threads"])
                .and_then(|b| b["gb_s"].as_f64());
            let (Some(gb_s), Some(tok_s), Some(bpt)) = (
                gb_s,
                r["tok_s_mean"].as_f64(),
                r["bytes_per_token"].as_f64(),
            ) else {
                continue;
            };
            r["roofline_fraction"] = json!(tok_s * bpt / (gb_s * 1e9));
            r["membw_gb_s"] = json!(gb_s);
        }
        rows.extend(bw);
    }
    if a.kernels {
        rows.extend(kernels::bench((a.kernel_mib as usize) << 20, &threads)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows, a.membw);
        kernels::print(&rows);
    }
    Ok(())
}
