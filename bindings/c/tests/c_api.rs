//! The C API from C: `examples/generate.c` linked against the staticlib with the system compiler
//! runs the real SmolLM2 file and must print the tokens and text the Rust API generates;
//! `tests/errors.c`, linked against the cdylib, checks each error's status and message.

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::sampler::SamplerParams;
use edgelm::session::{alloc_memory, GenOptions, Generator, Session};
use edgelm::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cargo put this package's libraries: the profile folder above this test's `deps/`.
/// `cargo test --workspace` builds only the rlib of this crate for its tests, so the static and
/// shared libraries are built here with the same profile (a no-op when they are current).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target = dir.parent().unwrap();
    let mut build = Command::new(env!("CARGO"));
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "edgelm-c",
            "--lib",
            "--target-dir",
        ])
        .arg(target)
        .current_dir(manifest());
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p edgelm-c failed");
    for f in ["libedgelm_c.a", "libedgelm_c.so"] {
        assert!(
            dir.join(f).exists(),
            "{} missing after cargo build",
            dir.join(f).display()
        );
    }
    dir
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `src` with `cc` and the given link arguments into a temp dir; returns the binary.
fn cc(src: &str, out: &Path, link: &[String]) -> PathBuf {
    let bin = out.join(Path::new(src).file_stem().unwrap());
    let o = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(manifest().join("include"))
        .arg(manifest().join(src))
        .args(link)
        .arg("-o")
        .arg(&bin)
        .output()
        .expect("the system C compiler `cc` runs");
    assert!(
        o.status.success(),
        "cc {src} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin
}

/// The Rust API's tokens and text for the same prompt, context and sampler as generate.c.
fn rust_generate(prompt: &str, n: usize, params: SamplerParams) -> (Vec<u32>, String) {
    let bytes = std::fs::read(edgelm_suite::smollm2()).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let p = edgelm::plan::plan(&model.config, 128).unwrap();
    let mut mem = alloc_memory(&p);
    let mut s = Session::new(&model, &mut mem, 128).unwrap();
    let opts = GenOptions {
        max_tokens: Some(n),
        ..Default::default()
    };
    let mut gen = Generator::new(&mut s, &tok, params, opts);
    gen.prompt(&tok.encode(prompt, true, true)).unwrap();
    let (mut ids, mut text) = (Vec::new(), String::new());
    while let Some(step) = gen.next_token().unwrap() {
        ids.extend(step.id);
        text.push_str(&step.text);
    }
    (ids, text)
}

/// Runs generate.c; returns (token ids, stdout text, stderr).
fn c_generate(bin: &Path, prompt: &str, n: usize, sampling: &[&str]) -> (Vec<u32>, String, String) {
    let o = Command::new(bin)
        .arg(edgelm_suite::smollm2())
        .arg(prompt)
        .arg(n.to_string())
        .args(sampling)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "generate.c failed: {err}");
    let ids = err
        .lines()
        .find_map(|l| l.strip_prefix("tokens:"))
        .unwrap_or_else(|| panic!("no tokens line: {err}"))
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    (ids, String::from_utf8(o.stdout).unwrap(), err)
}

#[test]
fn c_example_matches_the_rust_api() {
    let dir = tempfile::tempdir().unwrap();
    let libs = lib_dir();
    let static_lib = libs.join("libedgelm_c.a").display().to_string();
    let link: Vec<String> = [
        static_lib.as_str(),
        "-lpthread",
        "-ldl",
        "-lm",
        "-lrt",
        "-lgcc_s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bin = cc("examples/generate.c", dir.path(), &link);

    let prompt = "The capital of France is";
    let (want_ids, want_text) = rust_generate(prompt, 16, SamplerParams::greedy());
    let (ids, text, err) = c_generate(&bin, prompt, 16, &[]);
    eprintln!("C greedy: {ids:?} {text:?}");
    assert_eq!(ids, want_ids, "greedy tokens, C vs Rust");
    assert_eq!(text, want_text);
    assert!(text.starts_with(" Paris"), "{text:?}");
    // The plan the C program printed is the Rust plan.
    let g_bytes = std::fs::read(edgelm_suite::smollm2()).unwrap();
    let model = ModelVec::load(&Gguf::parse(&g_bytes).unwrap()).unwrap();
    let p = edgelm::plan::plan(&model.config, 128).unwrap();
    assert!(
        err.contains(&format!("plan: {} bytes", p.total_bytes)),
        "{err}"
    );

    // Sampling with a seed: the same tokens as the Rust sampler with the same settings.
    let params = SamplerParams {
        temp: 0.8,
        seed: 42,
        ..Default::default()
    };
    let (want_ids, want_text) = rust_generate("Once upon a time", 24, params);
    let (ids, text, _) = c_generate(&bin, "Once upon a time", 24, &["0.8", "42"]);
    eprintln!("C sampled: {ids:?} {text:?}");
    assert_eq!(ids, want_ids, "sampled tokens (seed 42), C vs Rust");
    assert_eq!(text, want_text);
}

#[test]
fn c_error_paths_return_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let libs = lib_dir();
    let link = vec![
        format!("-L{}", libs.display()),
        "-ledgelm_c".to_string(),
        format!("-Wl,-rpath,{}", libs.display()),
    ];
    let bin = cc("tests/errors.c", dir.path(), &link);
    let o = Command::new(&bin)
        .arg(edgelm_suite::smollm2())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "errors.c crashed: {out}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = |name: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
            .to_string()
    };
    for (name, status, msg) in [
        (
            "junk",
            2,
            "not a valid GGUF file: not a GGUF file (magic bytes",
        ),
        ("null_data", 1, "data is NULL"),
        (
            "truncated",
            2,
            "not a valid GGUF file: GGUF file truncated in TensorInfo",
        ),
        ("load", 0, ""),
        ("verify", 0, ""),
        ("plan_zero_ctx", 4, "context length 0 is zero or too large"),
        ("plan_bad_kv", 1, "unknown KV cache type 7"),
        ("plan", 0, ""),
        (
            "small_buffer",
            4,
            "session memory too small: 1024 bytes given",
        ),
        ("session", 0, ""),
        ("next_before_feed", 8, "feed at least one token"),
        (
            "bad_token",
            6,
            "token id 1073741824 is outside the vocabulary (49152 tokens)",
        ),
        ("not_utf8", 1, "text is not UTF-8"),
        ("too_long", 5, "10 tokens do not fit the context of 8"),
        (
            "truncated_piece",
            7,
            "output buffer of 2 bytes is too small",
        ),
        ("null_session", 1, "session is NULL"),
    ] {
        let l = line(name);
        assert!(
            l.starts_with(&format!("{name} status={status} msg=")) && l.contains(msg),
            "{name}: got {l:?}"
        );
    }
    assert_eq!(line("junk_model_null"), "junk_model_null=1");
    // The PyPI file records no checksums: verify succeeds without checking anything.
    assert_eq!(line("verify_checked"), "verify_checked=0");
    assert_eq!(line("piece_needed"), "piece_needed=6");
}
