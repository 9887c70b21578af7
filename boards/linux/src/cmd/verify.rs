//! `edgelm verify FILE [--json]`: check every tensor against the checksums the converter recorded.
//!
//! Exit codes: 0 every tensor matches; 1 a tensor does not match, the checksum metadata is
//! malformed, or the file cannot be read; 3 the file has no checksums (nothing was checked; the
//! file may still be run). 2 stays clap's usage error.

use crate::load::ModelFile;
use anyhow::Result;
use edgelm::verify::{Checksums, VerifyError, ALGORITHM};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Exit code of a file that records no checksums.
pub const EXIT_NO_CHECKSUMS: i32 = 3;

/// Arguments of `edgelm verify`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF file.
    file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// One tensor whose bytes do not match.
struct Bad {
    index: usize,
    name: String,
    expected: u64,
    actual: u64,
}

/// Returns the process exit code.
pub fn main(a: Args) -> Result<i32> {
    let f = ModelFile::open(&a.file)?;
    let g = f.gguf()?;
    let path = a.file.display().to_string();
    let t0 = Instant::now();
    let sums = match Checksums::of(&g) {
        Ok(s) => s,
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    json!({"file": path, "status": "invalid", "algorithm": null,
                           "tensors": g.n_tensors(), "checked": 0, "bytes": 0,
                           "mismatches": [], "error": e.to_string(), "seconds": 0.0})
                );
            }
            eprintln!("error: {path}: {e}");
            return Ok(1);
        }
    };
    let Some(sums) = sums else {
        if a.json {
            println!(
                "{}",
                json!({"file": path, "status": "no_checksums", "algorithm": null,
                       "tensors": g.n_tensors(), "checked": 0, "bytes": 0,
                       "mismatches": [], "error": null, "seconds": 0.0})
            );
        } else {
            println!(
                "{path}: no checksums recorded (no edgelm.checksum.tensors): nothing verified; \
                 files written by `edgelm convert` carry them"
            );
        }
        return Ok(EXIT_NO_CHECKSUMS);
    };
    // Every tensor is checked (not only up to the first bad one), so a report shows the extent.
    let mut bad = Vec::new();
    let mut bytes = 0u64;
    for (i, t) in g.tensors().enumerate() {
        bytes += t.data.len() as u64;
        if let Err(VerifyError::Mismatch {
            expected, actual, ..
        }) = sums.check(i, &t)
        {
            bad.push(Bad {
                index: i,
                name: t.name.to_string(),
                expected,
                actual,
            });
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let n = g.n_tensors();
    let first_msg = bad.first().map(|b| {
        format!(
            "tensor '{}': checksum mismatch (file says {:016x}, data hashes to {:016x})",
            b.name, b.expected, b.actual
        )
    });
    if a.json {
        let mism: Vec<_> = bad
            .iter()
            .map(|b| {
                json!({"index": b.index, "name": b.name,
                       "expected": format!("{:016x}", b.expected),
                       "actual": format!("{:016x}", b.actual)})
            })
            .collect();
        println!(
            "{}",
            json!({"file": path, "status": if bad.is_empty() { "ok" } else { "mismatch" },
                   "algorithm": ALGORITHM, "tensors": n, "checked": n, "bytes": bytes,
                   "mismatches": mism, "error": first_msg, "seconds": seconds})
        );
    }
    match first_msg {
        None => {
            if !a.json {
                println!(
                    "{path}: all {n} tensors match their {ALGORITHM} checksums ({:.1} MiB in {:.2} s)",
                    bytes as f64 / (1 << 20) as f64,
                    seconds
                );
            }
            Ok(0)
        }
        Some(msg) => {
            let more = match bad.len() {
                1 => String::new(),
                k => format!(" ({} more tensors do not match either)", k - 1),
            };
            eprintln!("error: {path}: {msg}{more}");
            Ok(1)
        }
    }
}

/// `--verify` of `run` and `chat`: refuses a file whose tensors do not match, notes one without
/// checksums (it still runs); `quiet` drops the line saying all matched.
pub fn before_running(f: &ModelFile, g: &edgelm::gguf::Gguf<'_>, quiet: bool) -> Result<()> {
    let path = f.path.display();
    let t0 = Instant::now();
    match edgelm::verify::verify(g) {
        Ok(edgelm::verify::Verified::Ok { tensors, .. }) => {
            if !quiet {
                eprintln!(
                    "verify: all {tensors} tensors match their checksums ({:.2} s)",
                    t0.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Ok(edgelm::verify::Verified::NoChecksums) => {
            eprintln!("note: {path} records no checksums; --verify checked nothing");
            Ok(())
        }
        Err(e) => anyhow::bail!("{path} failed verification, not running it: {e}"),
    }
}
