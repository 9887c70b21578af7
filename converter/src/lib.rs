//! Converts Hugging Face checkpoints (optionally with a PEFT LoRA merged in) to quantized GGUF files
//! that edgelm and llama.cpp both load, and PEFT adapters to GGUF LoRA adapters.
//!
//! Tensors stream from the memory-mapped safetensors a block of rows at a time, so memory stays
//! near one block whatever the model's size; the output appears only once complete (temp + rename).

pub mod arch;
pub mod checkpoint;
pub mod error;
pub mod lora;
pub mod recipe;
pub mod repack;
pub mod tokenizer;
mod write;

pub use error::{ConvertError, Result};
pub use recipe::Quant;
pub use repack::{repack, RepackOptions, RepackReport};

use arch::{Job, Source};
use checkpoint::{Checkpoint, TensorRef};
use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::quant::{quantize_row, GgmlType};
use lora::{Delta, PeftAdapter};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The converter's version, recorded in every file it writes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `edgelm convert` does.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The Hugging Face model folder.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// Output type or recipe.
    pub quant: Quant,
    /// A PEFT adapter folder to merge before quantizing.
    pub lora: Option<PathBuf>,
    /// Multiplies the adapter's alpha/r.
    pub lora_scale: f32,
    /// Tensor layout: plain GGUF, or rows interleaved for a target's kernels.
    pub layout: edgelm::quant::layout::Target,
    /// Overwrite an existing output.
    pub force: bool,
}

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct Report {
    /// GGUF architecture.
    pub arch: String,
    /// The file written.
    pub output: PathBuf,
    /// Its size.
    pub file_bytes: u64,
    /// Tensors written.
    pub tensors: usize,
    /// Weights written (elements).
    pub params: u64,
    /// Tensor count per ggml type.
    pub types: BTreeMap<String, usize>,
    /// Weights changed by a merged LoRA adapter.
    pub lora_tensors: usize,
    /// Checkpoint tensors deliberately left out.
    pub ignored: Vec<String>,
}

/// Progress callback: `(tensors done, tensors total, name of the tensor just written)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize, &str) + Sync);

/// Converts the checkpoint `o.input` into the GGUF file `o.output`.
pub fn convert(o: &ConvertOptions, progress: Progress<'_>) -> Result<Report> {
    write::check_output(&o.output, o.force)?;
    let ck = Checkpoint::open(&o.input)?;
    let plan = arch::plan(&ck)?;
    let tok = tokenizer::convert(&ck.dir, &ck.config, plan.vocab_size)?;
    let adapter = o.lora.as_deref().map(PeftAdapter::open).transpose()?;

    // Check every source tensor before writing anything: a bad checkpoint fails in a second.
    let mut used = HashSet::new();
    for j in &plan.jobs {
        if let Some(n) = j.source.hf_name() {
            ck.tensor(n)?
                .check_shape(&j.hf_shape(), "from config.json")?;
            used.insert(n.to_string());
        }
    }
    if let Some(a) = &adapter {
        a.check_all_used(&used)?;
    }

    let mut w = GgufWriter::new();
    let name = ck
        .config
        .get("_name_or_path")
        .and_then(|v| v.as_str())
        .and_then(|s| s.rsplit('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| ck.dir.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    w.set("general.architecture", MetaValue::Str(plan.arch.into()));
    w.set("general.name", MetaValue::Str(name));
    w.set("general.file_type", MetaValue::U32(o.quant.file_type()));
    w.set("general.quantization_version", MetaValue::U32(2));
    for (k, v) in plan.kv.iter().chain(&tok) {
        w.set(k, v.clone());
    }
    w.set("edgelm.converter.version", MetaValue::Str(VERSION.into()));
    w.set("edgelm.source", MetaValue::Str(display_name(&ck.dir)));
    w.set("edgelm.quant", MetaValue::Str(o.quant.name().into()));
    if let Some(a) = &adapter {
        w.set("edgelm.lora.source", MetaValue::Str(display_name(&a.dir)));
        w.set("edgelm.lora.scale", MetaValue::F32(o.lora_scale));
    }

    let mut types = BTreeMap::new();
    let mut params = 0u64;
    let mut job_types = Vec::with_capacity(plan.jobs.len());
    for j in &plan.jobs {
        let ty = recipe::type_for(o.quant, j, plan.n_layer, plan.tied);
        let ty = o.layout.type_for(&j.name, ty, &j.dims());
        w.add_tensor(&j.name, ty, &j.dims())
            .map_err(error::io(&o.output))?;
        *types.entry(ty.name().to_string()).or_insert(0) += 1;
        params += (j.rows * j.cols) as u64;
        job_types.push(ty);
    }

    for (k, v) in repack::layout_keys(o.layout, &job_types) {
        w.set(&k, v);
    }
    let n = plan.jobs.len();
    let mut lora_tensors = 0;
    let file_bytes = write::atomic(&o.output, &mut w, |i, put| {
        let job = &plan.jobs[i];
        let src = job.source.hf_name().map(|n| ck.tensor(n)).transpose()?;
        let delta = match (&adapter, job.source.hf_name()) {
            (Some(a), Some(hf)) if !job.vector => a.delta(hf, job.rows, job.cols, o.lora_scale)?,
            _ => None,
        };
        lora_tensors += delta.is_some() as usize;
        emit(
            job,
            job_types[i],
            src.as_ref(),
            delta.as_ref(),
            &o.input,
            put,
        )?;
        if let Some(t) = src {
            t.release();
        }
        progress(i + 1, n, &job.name);
        Ok(())
    })?;
    Ok(Report {
        arch: plan.arch.into(),
        output: o.output.clone(),
        file_bytes,
        tensors: n,
        params,
        types,
        lora_tensors,
        ignored: plan.ignored,
    })
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Rows per block: about 4 MiB of f32, so memory does not grow with the model.
fn block_rows(cols: usize) -> usize {
    ((1 << 20) / cols.max(1)).max(1)
}

/// Produces one tensor's bytes, a block of rows at a time.
fn emit(
    job: &Job,
    ty: GgmlType,
    src: Option<&TensorRef<'_>>,
    delta: Option<&Delta>,
    dir: &Path,
    put: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let (rows, cols) = (job.rows, job.cols);
    let row_bytes = ty.row_bytes(cols).unwrap_or(0);
    // Interleaved groups are whole within a block (their row count divides the tensor's).
    let step = block_rows(cols).next_multiple_of(ty.interleave());
    let mut buf = vec![0f32; step.min(rows) * cols];
    let mut out = vec![0u8; step.min(rows) * row_bytes];
    let mut groups = Vec::new();
    let mut col = Vec::new();
    for r0 in (0..rows).step_by(step) {
        let r1 = (r0 + step).min(rows);
        let (buf, out) = (
            &mut buf[..(r1 - r0) * cols],
            &mut out[..(r1 - r0) * row_bytes],
        );
        match (&job.source, src) {
            (Source::Values(v), _) => buf.copy_from_slice(&v[r0 * cols..r1 * cols]),
            (Source::Transposed(_), Some(t)) => {
                // Conv1D stores [in, out]: read each input row's slice of our rows and scatter it.
                col.resize(r1 - r0, 0.0);
                for i in 0..cols {
                    t.read(i * rows + r0, &mut col);
                    for (k, &x) in col.iter().enumerate() {
                        buf[k * cols + i] = x;
                    }
                }
            }
            (Source::Rows(_), Some(t)) => t.read(r0 * cols, buf),
            (Source::Permuted(..), Some(t)) => {
                buf.par_chunks_mut(cols).enumerate().for_each(|(k, row)| {
                    t.read(job.source.src_row(r0 + k, rows) * cols, row);
                });
            }
            _ => unreachable!("a checkpoint source always has its tensor"),
        }
        if let Some(d) = delta {
            buf.par_chunks_mut(cols).enumerate().for_each(|(k, row)| {
                d.add_row(job.source.src_row(r0 + k, rows), row);
            });
        }
        if let Some(index) = buf.iter().position(|x| !x.is_finite()) {
            let file = src
                .map(|t| t.path.to_path_buf())
                .unwrap_or_else(|| dir.into());
            return Err(ConvertError::NonFinite {
                path: file,
                tensor: src.map_or(job.name.clone(), |t| t.name.to_string()),
                index: r0 * cols + index,
                value: buf[index],
            });
        }
        out.par_chunks_mut(row_bytes)
            .zip(buf.par_chunks(cols))
            .for_each(|(o, x)| {
                // Sizes come from the same row_bytes, so this cannot fail.
                let _ = quantize_row(ty.base(), x, o);
            });
        if ty.interleave() > 1 {
            groups.resize(out.len(), 0);
            // Whole groups of rows of the base type, so this cannot fail.
            let _ = edgelm::quant::layout::interleave(ty, cols, out, &mut groups);
            put(&groups).map_err(error::io(dir))?;
            continue;
        }
        put(out).map_err(error::io(dir))?;
    }
    Ok(())
}

/// What `edgelm convert-lora` does.
#[derive(Clone, Debug)]
pub struct ConvertLoraOptions {
    /// The PEFT adapter folder.
    pub adapter: PathBuf,
    /// The base model's GGUF (names, shapes and head counts come from it).
    pub base: PathBuf,
    /// The adapter GGUF to write.
    pub output: PathBuf,
    /// Type of the A/B tensors: f32, f16 or q8_0.
    pub quant: Quant,
    /// Overwrite an existing output.
    pub force: bool,
}

/// Rewrites a PEFT adapter as a GGUF LoRA adapter for the base model `o.base`.
pub fn convert_lora(o: &ConvertLoraOptions, progress: Progress<'_>) -> Result<Report> {
    write::check_output(&o.output, o.force)?;
    if !matches!(o.quant, Quant::F32 | Quant::F16 | Quant::Bf16 | Quant::Q8_0) {
        return Err(ConvertError::Quant(format!(
            "{} (adapters are written as f32, f16, bf16 or q8_0)",
            o.quant.name()
        )));
    }
    let adapter = PeftAdapter::open(&o.adapter)?;
    let base_file = std::fs::File::open(&o.base).map_err(error::io(&o.base))?;
    // SAFETY: read-only mapping of the base model; only metadata and tensor shapes are read.
    let map = unsafe { memmap2::Mmap::map(&base_file) }.map_err(error::io(&o.base))?;
    let bad = |msg: String| ConvertError::Adapter {
        path: o.base.clone(),
        msg,
    };
    let g =
        edgelm::gguf::Gguf::parse(&map).map_err(|e| bad(format!("not a readable GGUF: {e}")))?;
    let arch = g
        .get_str("general.architecture")
        .ok_or_else(|| bad("no general.architecture".into()))?
        .to_string();
    let heads = |k: &str| g.get_u32(&format!("{arch}.attention.{k}")).unwrap_or(0) as usize;
    let (n_head, n_head_kv) = (heads("head_count"), heads("head_count_kv"));
    let n_head_kv = if n_head_kv == 0 { n_head } else { n_head_kv };

    struct Pair {
        name: String,
        a: Vec<f32>,
        b: Vec<f32>,
        r: usize,
        rows: usize,
        cols: usize,
    }
    let mut pairs = Vec::new();
    for hf in adapter.targets() {
        let m =
            arch::map_name(&arch, hf, n_head, n_head_kv).ok_or_else(|| ConvertError::Adapter {
                path: o.adapter.clone(),
                msg: format!("{hf} is not a weight edgelm maps for architecture {arch}"),
            })?;
        let t = g.tensor(&m.name).ok_or_else(|| {
            bad(format!(
                "the adapter changes {hf} ({}), which this base model does not have",
                m.name
            ))
        })?;
        let (cols, rows) = match t.shape() {
            &[c, r] => (c as usize, r as usize),
            _ => return Err(bad(format!("{} is not a matrix", m.name))),
        };
        let Some(lora::Factors { a, mut b, r }) = adapter.factors(hf, rows, cols)? else {
            continue;
        };
        if let Some(h) = m.permute {
            let orig = b.clone();
            for o in 0..rows {
                let s = arch::permuted_row(o, rows, h);
                b[o * r..(o + 1) * r].copy_from_slice(&orig[s * r..(s + 1) * r]);
            }
        }
        pairs.push(Pair {
            name: m.name,
            a,
            b,
            r,
            rows,
            cols,
        });
    }

    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str(arch.clone()));
    w.set("general.type", MetaValue::Str("adapter".into()));
    w.set("general.name", MetaValue::Str(display_name(&o.adapter)));
    w.set("adapter.type", MetaValue::Str("lora".into()));
    w.set("adapter.lora.alpha", MetaValue::F32(adapter.gguf_alpha()));
    w.set("edgelm.converter.version", MetaValue::Str(VERSION.into()));
    w.set("edgelm.source", MetaValue::Str(display_name(&o.adapter)));
    w.set("edgelm.base", MetaValue::Str(display_name(&o.base)));
    let mut types = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut params = 0u64;
    for p in &pairs {
        // A is r rows of `cols` inputs; B is `rows` rows of r.
        for (suffix, data, n_rows, n_cols) in
            [("lora_a", &p.a, p.r, p.cols), ("lora_b", &p.b, p.rows, p.r)]
        {
            let job = Job::matrix(
                format!("{}.{suffix}", p.name),
                n_rows,
                n_cols,
                arch::Role::Attn,
                Source::Values(data.clone()),
            );
            let ty = recipe::type_for(o.quant, &job, 0, false);
            w.add_tensor(&job.name, ty, &job.dims())
                .map_err(error::io(&o.output))?;
            *types.entry(ty.name().to_string()).or_insert(0) += 1;
            params += (n_rows * n_cols) as u64;
            jobs.push((job, ty));
        }
    }
    drop(pairs);
    let n = jobs.len();
    let file_bytes = write::atomic(&o.output, &mut w, |i, put| {
        let (job, ty) = &jobs[i];
        emit(job, *ty, None, None, &o.adapter, put)?;
        progress(i + 1, n, &job.name);
        Ok(())
    })?;
    Ok(Report {
        arch,
        output: o.output.clone(),
        file_bytes,
        tensors: n,
        params,
        types,
        lora_tensors: n / 2,
        ignored: Vec::new(),
    })
}
