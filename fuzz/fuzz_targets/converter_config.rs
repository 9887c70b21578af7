//! The converter's reading of a checkpoint: config.json (any JSON, or none) and a safetensors
//! file, then the architecture plan and the shape checks `convert` makes before writing.
//! Input: a 2-byte little-endian length, that many bytes of config.json, then the safetensors.
#![no_main]

use edgelm_converter::arch;
use edgelm_converter::checkpoint::{Checkpoint, StFile};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (config, st) = rest.split_at(n);
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(config) else {
        return;
    };
    let dir = Path::new("fuzz-checkpoint");
    let shards = match StFile::from_bytes(&dir.join("model.safetensors"), st) {
        Ok(f) => vec![f],
        Err(_) => Vec::new(),
    };
    let ck = Checkpoint::from_parts(dir, config, shards);
    let Ok(plan) = arch::plan(&ck) else { return };
    assert_eq!(
        plan.n_layer > 0,
        plan.jobs.iter().any(|j| j.layer.is_some())
    );
    for j in &plan.jobs {
        let _ = (j.dims(), j.hf_shape());
        if let Some(name) = j.source.hf_name() {
            if let Ok(t) = ck.tensor(name) {
                if t.check_shape(&j.hf_shape(), "from config.json").is_ok() && j.rows > 0 {
                    // The first and last GGUF rows' sources, as the converter reads them.
                    for r in [0, j.rows - 1] {
                        let src = j.source.src_row(r, j.rows);
                        assert!(src < j.rows, "{}: row {r} -> {src}", j.name);
                    }
                }
            }
        }
    }
});
