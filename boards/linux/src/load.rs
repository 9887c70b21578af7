//! Opening a model file: the mmap boundary, then the runtime's zero-copy views.

use anyhow::{bail, Context, Result};
use edgelm::gguf::Gguf;
use edgelm::model::{Adapter, LoraDelta, ModelVec};
use memmap2::{Mmap, UncheckedAdvice};
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
        // Before the first read: pages the kernel reads in for us then come as 2 MiB folios
        // where the filesystem allows, mapped by one TLB entry each instead of 512. Decode walks
        // the whole model every token, 4 KiB pages missed the TLB on every new page of every
        // row stream. A failure (no THP in this kernel) only leaves 4 KiB pages.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
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

    /// Drops the header's pages (metadata and tensor index, up to the first tensor's page) from
    /// this process's resident set, for once the tokenizer and the model's views were built and
    /// nothing reads the metadata any more: 1.7 MB for SmolLM2's vocabulary and merges, which
    /// would otherwise count toward peak RSS through the whole run. (llama.cpp reads the header
    /// with `fread`, so these pages never count for it either.) The range stays mapped; a later
    /// read faults the same bytes back in.
    pub fn release_header(&self, g: &Gguf<'_>) {
        let len = g.data_offset().min(self.map.len()) & !4095;
        if len == 0 {
            return;
        }
        // The header and the first tensors share a 2 MiB folio, which this kernel maps whole on
        // the first tensor read (measured: the 1.7 MB back in the resident set at peak). A
        // separate mapping for the header (the advice splits it at `len`) bounds that to the
        // tensors' part; the header needs no large pages anyway.
        #[cfg(target_os = "linux")]
        let _ = self.map.advise_range(memmap2::Advice::NoHugePage, 0, len);
        // SAFETY: the map is a read-only MAP_SHARED file mapping (`Mmap::map`); MADV_DONTNEED only
        // drops its page-table entries, and a later access reads the page back from the file,
        // which like `open` we assume nobody rewrites. So references into the range (the `Gguf`
        // view) stay valid and keep seeing the same bytes. A failure only leaves the pages resident.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, 0, len)
        };
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

/// Parses a sampling value: a NaN or infinite one would silently turn every probability into
/// NaN, so it is refused by name.
pub fn parse_finite(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("not a finite number".into()),
        Err(e) => Err(e.to_string()),
    }
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
/// (a huge context would otherwise abort inside the allocator); `flag` is the option that sets
/// the context (`-c`; `bench`: `-d`).
pub fn session_memory(plan: &edgelm::plan::Plan, flag: &str) -> Result<Vec<u8>> {
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
                "context {} needs {} MiB of session memory, only {} MiB available: lower {flag}",
                plan.n_ctx,
                plan.total_bytes >> 20,
                avail >> 20
            );
        }
    }
    Ok(edgelm::session::alloc_memory(plan))
}

/// Uses `threads` threads for matrix products. The default is the physical cores this process
/// may use (capped at 4): with the spin-then-sleep pool, 2 threads measured 1.14-1.44× faster
/// generation than 1 on the 2-core host in quiet alternated runs, and no slower under load.
pub fn set_threads(threads: Option<usize>) {
    edgelm::set_threads(threads.unwrap_or_else(edgelm::threads::default_threads));
}

/// The `--lora FILE [--lora-scale S]` flags of `run` and `chat`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LoraArgs {
    /// LoRA adapter GGUF applied over the model at run time (repeatable; the adapters add up).
    #[arg(long = "lora", value_name = "FILE")]
    lora: Vec<PathBuf>,
    /// Scale of the --lora given just before it (default 1; 0 = no effect; negative allowed).
    #[arg(
        long = "lora-scale",
        value_name = "S",
        allow_negative_numbers = true,
        requires = "lora"
    )]
    lora_scale: Vec<f32>,
    /// `(file, scale)` in command-line order, filled by [`LoraArgs::resolve`].
    #[arg(skip)]
    adapters: Vec<(PathBuf, f32)>,
}

impl LoraArgs {
    /// Pairs each `--lora-scale` with the `--lora` before it: clap keeps the two flags' values
    /// apart, their indices in `m` (the subcommand's matches) say how they interleave.
    pub fn resolve(&mut self, m: &clap::ArgMatches) -> Result<()> {
        let at =
            |id: &str| -> Vec<usize> { m.indices_of(id).map(|i| i.collect()).unwrap_or_default() };
        let (files, scales) = (at("lora"), at("lora_scale"));
        let mut scale: Vec<Option<f32>> = vec![None; self.lora.len()];
        for (&s, &si) in self.lora_scale.iter().zip(&scales) {
            let Some(k) = files.iter().rposition(|&fi| fi < si) else {
                bail!("--lora-scale {s} must come after the --lora FILE it scales");
            };
            if scale[k].replace(s).is_some() {
                bail!(
                    "two --lora-scale values for --lora {}",
                    self.lora[k].display()
                );
            }
        }
        self.adapters = self
            .lora
            .iter()
            .zip(scale)
            .map(|(p, s)| (p.clone(), s.unwrap_or(1.0)))
            .collect();
        Ok(())
    }
}

/// LoRA adapter files mapped into memory, with their scales.
pub struct AdapterFiles {
    files: Vec<(ModelFile, f32)>,
}

impl AdapterFiles {
    /// Maps the adapters named on the command line (none is fine).
    pub fn open(args: &LoraArgs) -> Result<AdapterFiles> {
        let mut files = Vec::new();
        for (path, scale) in &args.adapters {
            if !path.exists() {
                bail!("LoRA adapter not found: {}", path.display());
            }
            files.push((ModelFile::open(path)?, *scale));
        }
        Ok(AdapterFiles { files })
    }

    /// `--verify` for each adapter file (see [`crate::cmd::verify::before_running`]).
    pub fn verify(&self, quiet: bool) -> Result<()> {
        for (f, _) in &self.files {
            crate::cmd::verify::before_running(f, &f.gguf()?, quiet)?;
        }
        Ok(())
    }

    /// Applies every adapter to `model` in command-line order, with deltas in `table` (which must
    /// outlive the model); returns a JSON summary per adapter.
    pub fn apply<'a>(
        &'a self,
        model: &mut ModelVec<'a>,
        model_path: &Path,
        table: &'a mut Vec<LoraDelta<'a>>,
    ) -> Result<Vec<serde_json::Value>> {
        let mut adapters = Vec::new();
        for (f, scale) in &self.files {
            let g = f.gguf()?;
            let a = Adapter::parse(&g)
                .with_context(|| format!("cannot use LoRA adapter {}", f.path.display()))?;
            adapters.push((a, *scale, &f.path));
        }
        table.resize(adapters.iter().map(|a| a.0.n_slots).sum(), LoraDelta::EMPTY);
        let mut rest = table.as_mut_slice();
        let mut summary = Vec::new();
        for (a, scale, path) in adapters {
            rest = model.apply_adapter(&a, scale, rest).with_context(|| {
                format!(
                    "cannot apply LoRA adapter {} to {}",
                    path.display(),
                    model_path.display()
                )
            })?;
            summary.push(serde_json::json!({
                "path": path, "scale": scale, "alpha": a.alpha,
                "tensors": a.n_pairs, "max_rank": a.max_rank, "ignored_tensors": a.n_ignored,
            }));
        }
        Ok(summary)
    }
}

/// One stderr line per applied adapter (from [`AdapterFiles::apply`]'s summary).
pub fn report_adapters(summary: &[serde_json::Value]) {
    for a in summary {
        let ignored = match a["ignored_tensors"].as_u64() {
            Some(n) if n > 0 => format!("; {n} norm tensors ignored, as llama.cpp does"),
            _ => String::new(),
        };
        eprintln!(
            "lora: {} ({} tensors, rank <= {}, alpha {}, scale {}{ignored})",
            a["path"].as_str().unwrap_or("?"),
            a["tensors"],
            a["max_rank"],
            a["alpha"],
            a["scale"]
        );
    }
}
