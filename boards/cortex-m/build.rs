//! Links the GGUF image into the firmware and sizes its memory: reads the model named by
//! `EDGELM_FW_MODEL` with the runtime crate on the host, computes the runtime's plan for
//! `EDGELM_FW_CTX` positions (the plan is not a const fn), and writes the sizes as constants the
//! firmware's static buffer is declared with. The firmware checks at run time that the runtime's
//! own plan on the target equals them.

use edgelm::gguf::Gguf;
use edgelm::model::Config;
use edgelm::plan::plan;
use std::fmt::Write as _;
use std::path::PathBuf;

fn env_or(key: &str, default: &str) -> String {
    println!("cargo:rerun-if-env-changed={key}");
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

fn fail(msg: String) -> ! {
    eprintln!("edgelm-firmware build: {msg}");
    std::process::exit(1)
}

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory-mps2-an386.x", out.join("memory.x"))
        .unwrap_or_else(|e| fail(format!("memory-mps2-an386.x: {e}")));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");

    let model = env_or("EDGELM_FW_MODEL", "");
    if model.is_empty() {
        fail("set EDGELM_FW_MODEL to the GGUF to link in (scripts/test-firmware makes one)".into());
    }
    println!("cargo:rerun-if-changed={model}");
    let bytes = std::fs::read(&model).unwrap_or_else(|e| fail(format!("{model}: {e}")));
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| fail(format!("{model}: {e}")));
    let c = Config::from_gguf(&g).unwrap_or_else(|e| fail(format!("{model}: {e}")));
    let n_ctx: usize = env_or("EDGELM_FW_CTX", "128")
        .parse()
        .unwrap_or_else(|e| fail(format!("EDGELM_FW_CTX: {e}")));
    let n_predict: usize = env_or("EDGELM_FW_N", "32")
        .parse()
        .unwrap_or_else(|e| fail(format!("EDGELM_FW_N: {e}")));
    let heap: usize = env_or("EDGELM_FW_HEAP", "262144")
        .parse()
        .unwrap_or_else(|e| fail(format!("EDGELM_FW_HEAP: {e}")));
    let prompt = env_or("EDGELM_FW_PROMPT", "Once upon a time");
    let p = plan(&c, n_ctx).unwrap_or_else(|e| fail(format!("{model}: plan for -c {n_ctx}: {e}")));

    std::fs::copy(&model, out.join("model.gguf"))
        .unwrap_or_else(|e| fail(format!("copy {model}: {e}")));
    let mut s = String::new();
    let _ = writeln!(s, "/// Bytes of the linked GGUF image.");
    let _ = writeln!(s, "pub const IMAGE_BYTES: usize = {};", bytes.len());
    let _ = writeln!(s, "/// Transformer blocks (the layer table's length).");
    let _ = writeln!(s, "pub const N_LAYER: usize = {};", c.n_layer);
    let _ = writeln!(s, "/// Context positions the buffer is planned for.");
    let _ = writeln!(s, "pub const N_CTX: usize = {n_ctx};");
    let _ = writeln!(s, "/// Tokens to generate.");
    let _ = writeln!(s, "pub const N_PREDICT: usize = {n_predict};");
    let _ = writeln!(
        s,
        "/// The host plan's total bytes: KV cache + scratch + sampler."
    );
    let _ = writeln!(s, "pub const PLAN_BYTES: usize = {};", p.total_bytes);
    let _ = writeln!(s, "/// Bytes of the tokenizer heap.");
    let _ = writeln!(s, "pub const HEAP_BYTES: usize = {heap};");
    let _ = writeln!(s, "/// The prompt.");
    let _ = writeln!(s, "pub const PROMPT: &str = {prompt:?};");
    std::fs::write(out.join("image.rs"), s).unwrap_or_else(|e| fail(format!("image.rs: {e}")));
}
