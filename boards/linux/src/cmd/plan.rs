//! `edgelm plan -m FILE --board NAME [-c CTX] [--kv-type T] [--json]`: whether a model fits a
//! board, how fast it should decode there, and what to change when it does not fit.
//!
//! - Memory: the runtime's own plan (`plan_with`) gives the exact session bytes (KV cache, scratch,
//!   sampler). On a Linux board the weights are mmapped and must stay in the page cache, so RAM
//!   must hold the file too; on a microcontroller (`kind = "mcu"`) they are read in place from
//!   flash, so RAM holds the session only and flash holds the file.
//! - Speed: a bandwidth roofline times a measured efficiency: bytes one decode step reads (the
//!   weights `edgelm bench` counts, plus the KV rows attended, averaged over a 64-token generation
//!   as `bench -n 64` measures) ÷ the board's read bandwidth at a thread count, times the fraction
//!   of that roofline the profile says is reached (`by_threads`, scaled per weight type by
//!   `by_type`, or by `by_type_threads` at the thread counts it has), plus a fixed cost per layer
//!   (`layer_us`) where the profile measured one. The thread count predicted fastest is chosen.
//!   `scripts/check-planner --calibrate` measures the host's figures and checks the predictions
//!   against `edgelm bench`.
//! - Board profiles are TOML files in `boards/profiles/` (or any path to a `.toml` file); every
//!   figure carries its source.

use crate::cmd::bench::weight_bytes_by_type;
use crate::load::ModelFile;
use anyhow::{bail, Context, Result};
use edgelm::gguf::Gguf;
use edgelm::kv::KvType;
use edgelm::model::Config;
use edgelm::plan::plan_with;
use edgelm::quant::GgmlType;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `edgelm plan`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    model: PathBuf,
    /// Board profile: a name from boards/profiles (rpi5, rpi4, rpi-zero-2w, jetson-orin-nano,
    /// stm32h7, rp2350, host) or a path to a .toml profile.
    #[arg(long)]
    board: String,
    /// Context length to plan for (default: the model's training context, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// KV cache element type: f16 (default), f32 or q8_0.
    #[arg(long = "kv-type", default_value = "f16", value_parser = crate::load::parse_kv_type)]
    kv_type: KvType,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The layouts `edgelm repack --layout` knows; a profile must name one of them.
pub const LAYOUTS: [&str; 6] = [
    "none",
    "x86-avx2",
    "x86-avx512",
    "arm-neon",
    "arm-dotprod",
    "arm-i8mm",
];

/// A board profile (`boards/profiles/NAME.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Human-readable name.
    pub name: String,
    /// `linux` (weights in the page cache) or `mcu` (weights read in place from flash).
    pub kind: String,
    /// Processor.
    pub cpu: Cpu,
    /// RAM.
    pub memory: Memory,
    /// Where the model file lives.
    pub storage: Storage,
    /// Read bandwidth by thread count.
    pub bandwidth: Bandwidth,
    /// Fraction of the roofline reached, by thread count.
    pub efficiency: Efficiency,
    /// How the host figures were measured (host profile only).
    #[serde(default)]
    pub measured: Option<Measured>,
}

/// The processor of a board.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// Target architecture.
    pub arch: String,
    /// Core name.
    pub core: String,
    /// Cores.
    pub cores: usize,
    /// Clock in MHz.
    pub clock_mhz: u32,
    /// ISA features the kernels care about.
    pub isa: Vec<String>,
    /// Best weight layout for `edgelm repack --layout`.
    pub layout: String,
    /// Where these figures come from.
    pub source: String,
}

/// RAM of a board.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// RAM (for microcontrollers: the largest contiguous region).
    pub ram_bytes: u64,
    /// RAM the OS or firmware keeps for itself.
    pub reserved_bytes: u64,
    /// Where these figures come from.
    pub source: String,
}

/// Storage for the model file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Bytes available for the model.
    pub bytes: u64,
    /// What it is.
    pub kind: String,
    /// Where these figures come from.
    pub source: String,
}

/// Memory read bandwidth.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// GB/s (1e9 bytes) by thread count.
    pub read_gb_s: BTreeMap<String, f64>,
    /// Where these figures come from.
    pub source: String,
}

/// Roofline efficiency.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Efficiency {
    /// Fraction of bytes-per-token ÷ bandwidth reached, by thread count.
    pub by_threads: BTreeMap<String, f64>,
    /// Each weight type's efficiency relative to `by_threads` (lowercase ggml type names, e.g.
    /// `q8_0 = 1.2`): kernels do more or less work per byte by type. Missing types count 1.0; an
    /// interleaved type without its own figure takes its base type's.
    #[serde(default)]
    pub by_type: BTreeMap<String, f64>,
    /// `by_type` measured at each thread count (`{ 1 = { q8_0 = 1.3, … }, 2 = { … } }`), which
    /// it overrides there: a memory-bound type's lead over a compute-bound one shrinks once
    /// more threads share the memory.
    #[serde(default)]
    pub by_type_threads: BTreeMap<String, BTreeMap<String, f64>>,
    /// Microseconds per layer per token that do not scale with weight bytes (attention, norms,
    /// activation quantizing, thread syncs), by thread count; missing counts 0. Small models
    /// have many thin layers, and this is what sets a 30-layer and a 3-layer model of the same
    /// bytes apart.
    #[serde(default)]
    pub layer_us: BTreeMap<String, f64>,
    /// Where these figures come from.
    pub source: String,
}

impl Efficiency {
    /// The relative efficiency of weights of type `ty`.
    fn of_type(&self, ty: GgmlType) -> f64 {
        Self::lookup(&self.by_type, ty).unwrap_or(1.0)
    }

    /// The relative efficiency of weights of type `ty` at `threads` threads.
    fn of_type_at(&self, ty: GgmlType, threads: usize) -> f64 {
        self.by_type_threads
            .get(&threads.to_string())
            .and_then(|m| Self::lookup(m, ty))
            .unwrap_or_else(|| self.of_type(ty))
    }

    fn lookup(m: &BTreeMap<String, f64>, ty: GgmlType) -> Option<f64> {
        let get = |t: GgmlType| m.get(&t.name().to_lowercase()).copied();
        get(ty).or_else(|| get(ty.base()))
    }
}

/// When and how a profile's figures were measured.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    /// Date (UTC).
    pub date: String,
    /// Commands run.
    pub commands: Vec<String>,
    /// Anything a reader must know about the figures.
    #[serde(default)]
    pub note: String,
}

/// The folder holding the profiles: `$EDGELM_BOARDS`, else `boards/profiles` of the source tree
/// this binary was built from, else `boards/profiles` under the current directory.
fn profiles_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EDGELM_BOARDS") {
        return PathBuf::from(d);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    if built.is_dir() {
        return built;
    }
    PathBuf::from("boards/profiles")
}

/// Names of the profiles in `dir`, sorted.
pub fn known_boards(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Reads and checks a profile given by name or path.
pub fn load_profile(board: &str) -> Result<(String, Profile)> {
    let dir = profiles_dir();
    let known = || {
        let k = known_boards(&dir);
        if k.is_empty() {
            format!("no profiles found in {}", dir.display())
        } else {
            format!(
                "known boards: {} (or a path to a .toml profile)",
                k.join(", ")
            )
        }
    };
    let as_path = Path::new(board);
    let path = if board.ends_with(".toml") || board.contains('/') {
        as_path.to_path_buf()
    } else {
        dir.join(format!("{board}.toml"))
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => bail!(
            "unknown board '{board}' ({}: {e}); {}",
            path.display(),
            known()
        ),
    };
    let p: Profile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "board profile {} is not valid: {}; {}",
            path.display(),
            e.to_string().trim(),
            known()
        )
    })?;
    check_profile(&p).with_context(|| format!("board profile {} is not valid", path.display()))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(board)
        .to_string();
    Ok((name, p))
}

fn check_profile(p: &Profile) -> Result<()> {
    if p.kind != "linux" && p.kind != "mcu" {
        bail!("kind must be \"linux\" or \"mcu\", not {:?}", p.kind);
    }
    if !LAYOUTS.contains(&p.cpu.layout.as_str()) {
        bail!(
            "cpu.layout {:?} is not one of {}",
            p.cpu.layout,
            LAYOUTS.join(", ")
        );
    }
    if p.cpu.cores == 0 {
        bail!("cpu.cores must be at least 1");
    }
    if p.memory.reserved_bytes >= p.memory.ram_bytes {
        bail!("memory.reserved_bytes must be less than memory.ram_bytes");
    }
    for (what, table) in [
        ("bandwidth.read_gb_s", &p.bandwidth.read_gb_s),
        ("efficiency.by_threads", &p.efficiency.by_threads),
    ] {
        for (k, &v) in table {
            let t: usize = k
                .parse()
                .map_err(|_| anyhow::anyhow!("{what}: key {k:?} is not a thread count"))?;
            if t == 0 || t > p.cpu.cores {
                bail!("{what}: {t} threads on a {}-core board", p.cpu.cores);
            }
            if !(v.is_finite() && v > 0.0) {
                bail!("{what}: {v} at {t} threads must be a positive number");
            }
        }
    }
    for (k, &v) in &p.efficiency.layer_us {
        let t: usize = k
            .parse()
            .map_err(|_| anyhow::anyhow!("efficiency.layer_us: key {k:?} is not a thread count"))?;
        if t == 0 || t > p.cpu.cores {
            bail!(
                "efficiency.layer_us: {t} threads on a {}-core board",
                p.cpu.cores
            );
        }
        if !(v.is_finite() && v >= 0.0) {
            bail!("efficiency.layer_us: {v} at {t} threads must be a number, 0 or more");
        }
    }
    let by_type = |what: &str, m: &BTreeMap<String, f64>| -> Result<()> {
        for (k, &v) in m {
            if !GgmlType::ALL
                .iter()
                .any(|t| t.name().eq_ignore_ascii_case(k))
            {
                bail!("efficiency.{what}: {k:?} is not a ggml type name");
            }
            if !(v.is_finite() && v > 0.0) {
                bail!("efficiency.{what}: {v} for {k} must be a positive number");
            }
        }
        Ok(())
    };
    by_type("by_type", &p.efficiency.by_type)?;
    for (k, m) in &p.efficiency.by_type_threads {
        if k.parse::<usize>().map_or(true, |t| t == 0) {
            bail!("efficiency.by_type_threads: key {k:?} is not a thread count");
        }
        by_type(&format!("by_type_threads.{k}"), m)?;
    }
    if thread_figures(p).is_empty() {
        bail!("no thread count has both a bandwidth.read_gb_s and an efficiency.by_threads figure");
    }
    Ok(())
}

/// (threads, GB/s, efficiency, µs per layer) for each thread count with the first two figures.
fn thread_figures(p: &Profile) -> Vec<(usize, f64, f64, f64)> {
    let mut v: Vec<(usize, f64, f64, f64)> = p
        .bandwidth
        .read_gb_s
        .iter()
        .filter_map(|(k, &bw)| {
            let t: usize = k.parse().ok()?;
            let e = *p.efficiency.by_threads.get(k)?;
            let us = p.efficiency.layer_us.get(k).copied().unwrap_or(0.0);
            Some((t, bw, e, us))
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

/// Bytes a model needs on a board with a context and cache type.
#[derive(Clone, Copy, Debug)]
struct Need {
    /// RAM: the session plan, plus the weights on Linux.
    ram: u64,
    /// Storage: the model file.
    storage: u64,
    /// The session plan alone.
    session: u64,
}

fn need(c: &Config, file_bytes: u64, ctx: usize, kv: KvType, mcu: bool) -> Result<Need> {
    let p = plan_with(c, ctx, kv)?;
    let session = p.total_bytes as u64;
    Ok(Need {
        ram: session + if mcu { 0 } else { file_bytes },
        storage: file_bytes,
        session,
    })
}

fn fits(n: &Need, ram_avail: u64, storage: u64) -> bool {
    n.ram <= ram_avail && n.storage <= storage
}

/// Approximate file bytes of the model requantized to `ty`: every 2-D tensor whose rows are whole
/// blocks of `ty` takes its bytes per element (as `edgelm convert --quant` would write it), the
/// rest keeps its size; metadata (tokenizer) is kept as is.
fn requantized_bytes(g: &Gguf<'_>, file_bytes: u64, ty: GgmlType) -> u64 {
    let mut delta: i64 = 0;
    for t in g.tensors() {
        if t.n_dims < 2 || t.ty == ty {
            continue;
        }
        let cols = t.dims[0] as usize;
        let rows = (t.n_elements() / t.dims[0].max(1)) as usize;
        if let Some(rb) = ty.row_bytes(cols) {
            delta += (rb * rows) as i64 - t.data.len() as i64;
        }
    }
    (file_bytes as i64 + delta).max(0) as u64
}

/// Decode bytes per token: the weights `edgelm bench` counts (scaled when requantized), and the
/// KV rows attended, averaged over a 64-token generation.
fn bytes_per_token(weights: &[(GgmlType, u64)], c: &Config, kv: KvType) -> Result<(f64, f64)> {
    // KV bytes per position from the plan itself (any element type, padding amortized).
    let n = 4096.min(c.max_ctx().unwrap_or(4096));
    let per_pos = plan_with(c, n, kv)?.kv_bytes as f64 / n as f64;
    let kv_bytes = per_pos * (64.0 + 1.0) / 2.0;
    let raw: f64 = weights.iter().map(|&(_, b)| b as f64).sum();
    Ok((raw + kv_bytes, kv_bytes))
}

/// Predicted tok/s at each thread count, and the best, for `layers` layers: a token takes the
/// roofline time of its bytes, each type's weights divided by that type's relative efficiency
/// at the thread count, ÷ efficiency, plus the per-layer cost.
fn predict(
    p: &Profile,
    weights: &[(GgmlType, u64)],
    kv_bytes: f64,
    layers: usize,
) -> (Vec<(usize, f64)>, usize, f64) {
    let preds: Vec<(usize, f64)> = thread_figures(p)
        .into_iter()
        .map(|(t, bw, e, us)| {
            let weighted: f64 = weights
                .iter()
                .map(|&(ty, b)| b as f64 / p.efficiency.of_type_at(ty, t))
                .sum::<f64>()
                + kv_bytes;
            let secs = weighted / (e * bw * 1e9) + layers as f64 * us * 1e-6;
            (t, 1.0 / secs)
        })
        .collect();
    let best = preds
        .iter()
        .copied()
        .fold((1, 0.0), |b, x| if x.1 > b.1 { x } else { b });
    (preds, best.0, best.1)
}

pub fn main(a: Args) -> Result<()> {
    let (board, prof) = load_profile(&a.board)?;
    let f = ModelFile::open(&a.model)?;
    let g = f.gguf()?;
    let c = Config::from_gguf(&g).with_context(|| format!("cannot plan {}", a.model.display()))?;
    let ctx = a.ctx.unwrap_or(c.n_ctx_train.min(4096));
    let mcu = prof.kind == "mcu";
    let file_bytes = f.len() as u64;
    let ram_avail = prof.memory.ram_bytes - prof.memory.reserved_bytes;
    let storage = prof.storage.bytes;
    let n = need(&c, file_bytes, ctx, a.kv_type, mcu)?;
    let ok = fits(&n, ram_avail, storage);
    let weights = weight_bytes_by_type(&g);
    let (bpt, kv_bytes) = bytes_per_token(&weights, &c, a.kv_type)?;
    let (preds, threads, pred) = predict(&prof, &weights, kv_bytes, c.n_layer);

    // What would make it fit, each checked with the same rules.
    let mut suggestions: Vec<Value> = Vec::new();
    if !ok {
        if a.kv_type != KvType::Q8_0 {
            if let Ok(q) = need(&c, file_bytes, ctx, KvType::Q8_0, mcu) {
                suggestions.push(json!({
                    "change": "--kv-type q8_0", "ram_bytes": q.ram, "storage_bytes": q.storage,
                    "fits": fits(&q, ram_avail, storage),
                }));
            }
        }
        // The longest context that fits, by bisection over the exact plan.
        let (mut lo, mut hi) = (0usize, ctx);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            match need(&c, file_bytes, mid, a.kv_type, mcu) {
                Ok(m) if fits(&m, ram_avail, storage) => lo = mid,
                _ => hi = mid - 1,
            }
        }
        if lo > 0 && lo < ctx {
            let m = need(&c, file_bytes, lo, a.kv_type, mcu)?;
            suggestions.push(json!({
                "change": format!("-c {lo}"), "ram_bytes": m.ram, "storage_bytes": m.storage,
                "fits": true,
            }));
        } else {
            suggestions.push(json!({
                "change": "shorter context", "fits": false,
                "why": "even one position does not fit: the weights or scratch alone are too large",
            }));
        }
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
            let bytes = requantized_bytes(&g, file_bytes, ty);
            if bytes >= file_bytes {
                continue;
            }
            let q = Need {
                ram: n.session + if mcu { 0 } else { bytes },
                storage: bytes,
                session: n.session,
            };
            let qt = ty.name().to_lowercase();
            suggestions.push(json!({
                "change": format!("edgelm convert --quant {qt} (smaller quant)"),
                "ram_bytes": q.ram, "storage_bytes": q.storage, "fits": fits(&q, ram_avail, storage),
            }));
        }
    }

    let out = json!({
        "fits": ok,
        "ram_bytes": n.ram,
        "storage_bytes": n.storage,
        "pred_tok_s": pred,
        "threads": threads,
        "layout": prof.cpu.layout,
        "board": board,
        "board_name": prof.name,
        "kind": prof.kind,
        "model": a.model,
        "n_ctx": ctx,
        "kv_type": a.kv_type.name(),
        "session_bytes": n.session,
        "ram_available_bytes": ram_avail,
        "storage_available_bytes": storage,
        "bytes_per_token": bpt,
        "n_layers": c.n_layer,
        "weight_types": weights.iter().map(|&(ty, b)| json!({
            "type": ty.name().to_lowercase(), "bytes_per_token": b,
            "efficiency": prof.efficiency.of_type(ty),
            "efficiency_by_threads": preds.iter().map(|&(t, _)| json!({
                "threads": t, "efficiency": prof.efficiency.of_type_at(ty, t),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pred_tok_s_by_threads": preds.iter().map(|&(t, s)| json!({"threads": t, "tok_s": s})).collect::<Vec<_>>(),
        "suggestions": suggestions,
        "cpu": {
            "arch": prof.cpu.arch, "core": prof.cpu.core, "cores": prof.cpu.cores,
            "clock_mhz": prof.cpu.clock_mhz, "isa": prof.cpu.isa,
        },
        "measured": prof.measured.as_ref().map(|m| json!({"date": m.date, "commands": m.commands, "note": m.note})),
        "sources": {
            "cpu": prof.cpu.source, "memory": prof.memory.source, "storage": prof.storage.source,
            "bandwidth": prof.bandwidth.source, "efficiency": prof.efficiency.source,
        },
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!("board:    {board} — {} ({})", prof.name, prof.cpu.core);
    println!(
        "model:    {} (-c {ctx}, --kv-type {})",
        a.model.display(),
        a.kv_type
    );
    let where_weights = if mcu {
        "read in place from flash"
    } else {
        "mmapped, kept in the page cache"
    };
    println!(
        "RAM:      {:.1} MiB needed of {:.1} MiB available (session {:.2} MiB; weights {where_weights})",
        mib(n.ram),
        mib(ram_avail),
        mib(n.session)
    );
    println!(
        "storage:  {:.1} MiB needed of {:.1} MiB ({})",
        mib(n.storage),
        mib(storage),
        prof.storage.kind
    );
    println!("fits:     {}", if ok { "yes" } else { "NO" });
    println!(
        "decode:   {pred:.1} tok/s predicted at {threads} thread(s) ({:.2} MiB read per token; bandwidth × efficiency: {})",
        bpt / (1u64 << 20) as f64,
        preds
            .iter()
            .map(|(t, s)| format!("{t}t {s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "layout:   {} (edgelm repack --layout {})",
        prof.cpu.layout, prof.cpu.layout
    );
    for s in &suggestions {
        println!(
            "  try {}: {}",
            s["change"].as_str().unwrap_or("?"),
            if s["fits"] == true {
                format!(
                    "fits (RAM {:.1} MiB, storage {:.1} MiB)",
                    mib(s["ram_bytes"].as_u64().unwrap_or(0)),
                    mib(s["storage_bytes"].as_u64().unwrap_or(0))
                )
            } else {
                "still does not fit".to_string()
            }
        );
    }
    Ok(())
}
