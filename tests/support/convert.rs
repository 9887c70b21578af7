//! Converting the Hugging Face test checkpoints, for the test binaries that need converted files
//! (`#[path]`-included: the converter is a dev-dependency, out of reach of the support library).

use edgelm_converter::{convert, ConvertOptions, Quant};
use edgelm_suite::model_file;
use std::path::PathBuf;

/// Converts test checkpoint `name` (a folder under `hf/`) into a temp dir.
pub fn convert_hf(name: &str, quant: &str, lora: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{name}-{quant}.gguf"));
    let o = ConvertOptions {
        input: model_file(&format!("hf/{name}")),
        output: out.clone(),
        quant: Quant::parse(quant).unwrap(),
        lora: lora.map(|l| model_file(&format!("hf/{l}"))),
        lora_scale: 1.0,
        layout: edgelm::quant::layout::Target::None,
        force: false,
    };
    convert(&o, &|_, _, _| {}).unwrap_or_else(|e| panic!("convert {name} {quant}: {e}"));
    (dir, out)
}
