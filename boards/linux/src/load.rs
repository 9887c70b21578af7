//! Opening a model file: the mmap boundary, then the runtime's zero-copy views.

use anyhow::{bail, Context, Result};
use edgelm::gguf::Gguf;
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A model file mapped into memory; weights are read in place, never copied.
pub struct ModelFile {
    /// Path as given.
    pub path: PathBuf,
    map: Mmap,
}

impl ModelFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> Result<ModelFile> {
        if !path.exists() {
            bail!(
                "model file not found: {} (scripts/fetch-models downloads the default model)",
                path.display()
            );
        }
        let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        if f.metadata()?.is_dir() {
            bail!("{} is a directory, not a GGUF file", path.display());
        }
        // SAFETY: the file is mapped read-only and only read through this map; like llama.cpp we
        // assume nobody truncates or rewrites a model file while it is being run.
        let map =
            unsafe { Mmap::map(&f) }.with_context(|| format!("cannot map {}", path.display()))?;
        Ok(ModelFile {
            path: path.to_path_buf(),
            map,
        })
    }

    /// The GGUF view (validated).
    pub fn gguf(&self) -> Result<Gguf<'_>> {
        Gguf::parse(&self.map)
            .with_context(|| format!("{} is not a valid GGUF file", self.path.display()))
    }

    /// File size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// Parses `--kv-type`; an unknown name lists the supported ones.
pub fn parse_kv_type(s: &str) -> std::result::Result<edgelm::kv::KvType, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Session memory for `plan`, refused with a clear error when the machine cannot hold it
/// (a huge `-c` would otherwise abort inside the allocator).
pub fn session_memory(plan: &edgelm::plan::Plan) -> Result<Vec<u8>> {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    if let Some(avail) = available {
        if plan.total_bytes as u64 > avail {
            bail!(
                "context {} needs {} MiB of session memory, only {} MiB available: lower -c",
                plan.n_ctx,
                plan.total_bytes >> 20,
                avail >> 20
            );
        }
    }
    Ok(edgelm::session::alloc_memory(plan))
}

/// Uses `threads` threads for matrix-vector products. The default is 1: on this 2-core host,
/// splitting SmolLM2's small matrices over rayon's pool measured no faster (tg 45-62 tok/s
/// either way, alternated runs), so extra threads wait for a cheaper barrier.
pub fn set_threads(threads: Option<usize>) {
    edgelm::set_threads(threads.unwrap_or(1));
}
