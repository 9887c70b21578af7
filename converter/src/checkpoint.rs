//! A Hugging Face checkpoint folder: config.json and memory-mapped safetensors shards.
//!
//! Tensors are read a block of rows at a time straight from the mapping, and the pages of a finished
//! tensor are handed back to the kernel, so the converter's memory stays near one block, not the model.

use crate::error::{io, ConvertError, Result};
use memmap2::Mmap;
use safetensors::Dtype;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One memory-mapped safetensors file.
pub struct StFile {
    /// Where it is.
    pub path: PathBuf,
    map: Mmap,
    tensors: HashMap<String, Meta>,
}

#[derive(Clone, Debug)]
struct Meta {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A tensor in a safetensors file, borrowed from the mapping.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    /// Its name in the file.
    pub name: &'a str,
    /// The file.
    pub path: &'a Path,
    /// Shape, outermost first (PyTorch order).
    pub shape: &'a [usize],
    dtype: Dtype,
    bytes: &'a [u8],
    map: &'a Mmap,
    start: usize,
}

impl StFile {
    /// Maps `path` and reads its header.
    pub fn open(path: &Path) -> Result<StFile> {
        let file = File::open(path).map_err(io(path))?;
        // SAFETY: the mapping is read-only; a file changed by another process while we convert gives
        // wrong numbers in the output (as any reader would), never unsoundness in safe code, since
        // every access below is bounds-checked against the header read here.
        let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
        let tensors = index(path, &map)?;
        Ok(StFile {
            path: path.to_path_buf(),
            map,
            tensors,
        })
    }

    /// A safetensors file held in memory, read as if it were at `path` (which only names it in
    /// errors): the bytes are copied into an anonymous mapping. For tests and fuzzing.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<StFile> {
        let tensors = index(path, bytes)?;
        // An anonymous mapping cannot be empty; a valid file is never shorter than its 8-byte header.
        let mut map = memmap2::MmapMut::map_anon(bytes.len().max(1)).map_err(io(path))?;
        map[..bytes.len()].copy_from_slice(bytes);
        let map = map.make_read_only().map_err(io(path))?;
        Ok(StFile {
            path: path.to_path_buf(),
            map,
            tensors,
        })
    }

    /// The tensor named `name`, if the file holds it.
    pub fn get(&self, name: &str) -> Option<TensorRef<'_>> {
        let (k, m) = self.tensors.get_key_value(name)?;
        Some(TensorRef {
            name: k,
            path: &self.path,
            shape: &m.shape,
            dtype: m.dtype,
            bytes: &self.map[m.start..m.end],
            map: &self.map,
            start: m.start,
        })
    }

    /// Every tensor name in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }
}

impl TensorRef<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that the dtype is one we convert.
    pub fn check_dtype(&self) -> Result<()> {
        match self.dtype {
            Dtype::F32 | Dtype::F16 | Dtype::BF16 => Ok(()),
            d => Err(ConvertError::Dtype {
                path: self.path.to_path_buf(),
                tensor: self.name.to_string(),
                dtype: format!("{d:?}"),
            }),
        }
    }

    /// Checks the shape against what config.json implies.
    pub fn check_shape(&self, expected: &[usize], why: &'static str) -> Result<()> {
        if self.shape != expected {
            return Err(ConvertError::Shape {
                path: self.path.to_path_buf(),
                tensor: self.name.to_string(),
                found: self.shape.to_vec(),
                expected: expected.to_vec(),
                why,
            });
        }
        self.check_dtype()
    }

    /// Elements `[start, start + out.len())` of the flattened tensor, as f32.
    pub fn read(&self, start: usize, out: &mut [f32]) {
        let size = self.dtype.bitsize() / 8;
        let src = &self.bytes[start * size..(start + out.len()) * size];
        match self.dtype {
            Dtype::F16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            Dtype::BF16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            _ => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }

    /// The whole tensor as f32 (for vectors and small adapter matrices).
    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        self.read(0, &mut v);
        v
    }

    /// Drops this tensor's pages from our resident set; they stay in the page cache.
    pub fn release(&self) {
        // Page-aligned inner range: neighbouring tensors keep their pages.
        let page = 4096;
        let start = self.start.div_ceil(page) * page;
        let end = (self.start + self.bytes.len()) / page * page;
        if end > start {
            // SAFETY: MADV_DONTNEED on a private read-only file mapping only drops our page-table
            // entries; later reads fault the same file contents back in, so no data can change.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

/// Reads and checks a safetensors header: every tensor's data range must lie in `data` and hold
/// exactly its shape's elements.
fn index(path: &Path, data: &[u8]) -> Result<HashMap<String, Meta>> {
    let bad = |msg: String| ConvertError::Safetensors {
        path: path.to_path_buf(),
        msg,
    };
    // safetensors' own size check adds the last offset to the header length unchecked, which
    // panics in debug builds on offsets near u64::MAX: offsets past the file are refused first.
    let header = data
        .first_chunk::<8>()
        .and_then(|n| usize::try_from(u64::from_le_bytes(*n)).ok())
        .and_then(|n| data.get(8..n.checked_add(8)?));
    if let Some(Ok(Value::Object(m))) = header.map(serde_json::from_slice::<Value>) {
        let past = |v: &Value| {
            v["data_offsets"].as_array().is_some_and(|o| {
                o.iter()
                    .any(|x| x.as_u64().is_some_and(|x| x > data.len() as u64))
            })
        };
        if let Some((name, _)) = m.iter().find(|(_, v)| past(v)) {
            return Err(bad(format!("tensor {name}: data range out of the file")));
        }
    }
    let (header_len, meta) =
        safetensors::SafeTensors::read_metadata(data).map_err(|e| bad(e.to_string()))?;
    let base = 8 + header_len;
    let mut tensors = HashMap::new();
    for (name, info) in meta.tensors() {
        let (s, e) = info.data_offsets;
        // Offsets are whatever the header says (near u64::MAX too): adding the header's length
        // must not wrap around to a range inside the file.
        let out = || bad(format!("tensor {name}: data range out of the file"));
        let (Some(start), Some(end)) = (base.checked_add(s), base.checked_add(e)) else {
            return Err(out());
        };
        let elems: usize = info.shape.iter().product();
        if end > data.len() || start > end || (end - start) != elems * info.dtype.bitsize() / 8 {
            return Err(out());
        }
        tensors.insert(
            name.clone(),
            Meta {
                dtype: info.dtype,
                shape: info.shape.clone(),
                start,
                end,
            },
        );
    }
    Ok(tensors)
}

/// A Hugging Face model folder: config.json plus one or more safetensors shards.
pub struct Checkpoint {
    /// The folder.
    pub dir: PathBuf,
    /// config.json, parsed.
    pub config: Value,
    /// The shards, in index order.
    pub shards: Vec<StFile>,
    where_is: HashMap<String, usize>,
}

impl Checkpoint {
    /// Opens `dir`: config.json, then model.safetensors or the shards model.safetensors.index.json names.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        if !dir.is_dir() {
            return Err(ConvertError::Missing {
                path: dir.to_path_buf(),
                what: "a Hugging Face model folder",
            });
        }
        let config = read_json(&dir.join("config.json"), "the model's config.json")?;
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let idx = read_json(&index, "the shard index")?;
            let map = idx
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| ConvertError::Json {
                    path: index.clone(),
                    msg: "no \"weight_map\" object".into(),
                })?;
            let mut names: Vec<&str> = map.values().filter_map(Value::as_str).collect();
            names.sort_unstable();
            names.dedup();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            return Err(ConvertError::Missing {
                path: single,
                what: "weights (model.safetensors or model.safetensors.index.json)",
            });
        };
        let mut shards = Vec::new();
        for f in &files {
            if !f.is_file() {
                return Err(ConvertError::Missing {
                    path: f.clone(),
                    what: "a shard named by model.safetensors.index.json",
                });
            }
            shards.push(StFile::open(f)?);
        }
        Ok(Checkpoint::from_parts(dir, config, shards))
    }

    /// A checkpoint from an already parsed config.json and opened shards (`dir` names it in
    /// errors). For tests and fuzzing; [`Checkpoint::open`] reads them from a folder.
    pub fn from_parts(dir: &Path, config: Value, shards: Vec<StFile>) -> Checkpoint {
        let mut where_is = HashMap::new();
        for (i, s) in shards.iter().enumerate() {
            for n in s.names() {
                where_is.insert(n.to_string(), i);
            }
        }
        Checkpoint {
            dir: dir.to_path_buf(),
            config,
            shards,
            where_is,
        }
    }

    /// True if some shard holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.where_is.contains_key(name)
    }

    /// The tensor `name`, or an error naming the folder.
    pub fn tensor(&self, name: &str) -> Result<TensorRef<'_>> {
        self.where_is
            .get(name)
            .and_then(|&i| self.shards[i].get(name))
            .ok_or_else(|| ConvertError::MissingTensor {
                tensor: name.to_string(),
                path: self.dir.clone(),
            })
    }

    /// Every tensor name in the checkpoint.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.where_is.keys().map(String::as_str)
    }

    /// The path of config.json (for error messages).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path, what: &'static str) -> Result<Value> {
    if !path.is_file() {
        return Err(ConvertError::Missing {
            path: path.to_path_buf(),
            what,
        });
    }
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| ConvertError::Json {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Reads an optional JSON file: `None` when absent.
pub fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if path.is_file() {
        read_json(path, "").map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header whose tensors' offsets run up to just below 2^64 (sizes that fit no file): adding
    /// the header length to them overflowed (a panic in debug builds, in safetensors' check too).
    #[test]
    fn offsets_near_u64_max_are_out_of_the_file() {
        let mut header = String::from("{");
        let big = 1u64 << 60;
        let mut at = 0u64;
        for i in 0..15 {
            header += &format!(
                "\"t{i:02}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{at},{}]}},",
                big / 4,
                at + big
            );
            at += big;
        }
        let last = big - 104;
        header += &format!(
            "\"t15\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{at},{}]}},",
            last / 4,
            at + last
        );
        at += last;
        header += &format!(
            "\"wrapped\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[{at},{}]}}}}",
            at + 8
        );
        assert_eq!(at, u64::MAX - 103);
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header.as_bytes());
        file.extend_from_slice(&[0; 64]);
        let e = StFile::from_bytes(Path::new("x.safetensors"), &file)
            .err()
            .expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("x.safetensors") && msg.contains("data range out of the file"),
            "{msg}"
        );
    }
}
