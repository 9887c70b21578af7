//! Locating the real model files the tests run against.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$EDGELM_MODELS`, else `~/.cache/edgelm/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EDGELM_MODELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").expect("HOME is set (or set EDGELM_MODELS)");
    PathBuf::from(home).join(".cache/edgelm/models")
}

/// A file under `vocab/`.
pub fn vocab_path(name: &str) -> PathBuf {
    models_dir().join("vocab").join(name)
}

/// The bytes of a model file; fails (never skips) when it is missing.
pub fn load(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nrun scripts/fetch-models (it installs the test files into $EDGELM_MODELS, default ~/.cache/edgelm/models)",
            path.display()
        )
    })
}
