//! Writes a GGUF file atomically, with per-tensor checksums recorded under `edgelm.checksum.*`.

use crate::error::{io, ConvertError, Result};
use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::ValueType;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// Key of the per-tensor checksums (u64 array in tensor order).
pub const CHECKSUM_KEY: &str = "edgelm.checksum.tensors";

/// Refuses to start when the output exists and `force` is off.
pub fn check_output(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        return Err(ConvertError::Exists {
            path: out.to_path_buf(),
        });
    }
    if out.is_dir() {
        return Err(ConvertError::Config {
            path: out.to_path_buf(),
            msg: "is a directory, not a file name".into(),
        });
    }
    Ok(())
}

/// Writes header and tensors to a temp file beside `out`, then renames it: a failed or interrupted
/// run leaves no `out` behind. `data(i, put)` supplies tensor `i`'s bytes. Returns the file size.
pub fn atomic(
    out: &Path,
    w: &mut GgufWriter,
    mut data: impl FnMut(usize, &mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> Result<()>,
) -> Result<u64> {
    let n = w.tensors().len();
    // The checksums are known only after the data is written; a fixed-size placeholder keeps the
    // header's length, so it can be patched in place at the end.
    w.set(
        "edgelm.checksum.algorithm",
        MetaValue::Str("xxh3_64".into()),
    );
    w.set(CHECKSUM_KEY, sums(&vec![0; n]));
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let mut hashes = vec![0u64; n];
    let mut failure = None;
    let mut write_err = None;
    {
        let mut f = BufWriter::with_capacity(1 << 20, tmp.as_file());
        let r = w.write(&mut f, |i, put| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            let mut hashed = |b: &[u8]| {
                h.update(b);
                put(b)
                    .inspect_err(|e| write_err = Some(std::io::Error::new(e.kind(), e.to_string())))
            };
            if let Err(e) = data(i, &mut hashed) {
                // A failed write (full disk) is about the output, not the input the producer names.
                failure = Some(match write_err.take() {
                    Some(source) => ConvertError::Io {
                        path: out.to_path_buf(),
                        source,
                    },
                    None => e,
                });
                return Err(std::io::Error::other("conversion failed"));
            }
            hashes[i] = h.digest();
            Ok(())
        });
        if let Some(e) = failure.take() {
            return Err(e);
        }
        r.map_err(io(out))?;
        f.flush().map_err(io(out))?;
    }
    w.set(CHECKSUM_KEY, sums(&hashes));
    let header = w.header_bytes().map_err(io(out))?;
    let mut f = tmp.as_file();
    f.seek(SeekFrom::Start(0)).map_err(io(out))?;
    f.write_all(&header).map_err(io(out))?;
    f.sync_all().map_err(io(out))?;
    let size = f.metadata().map_err(io(out))?.len();
    tmp.persist(out).map_err(|e| io(out)(e.error))?;
    Ok(size)
}

fn sums(h: &[u64]) -> MetaValue {
    MetaValue::Array(
        ValueType::U64,
        h.iter().map(|&x| MetaValue::U64(x)).collect(),
    )
}
