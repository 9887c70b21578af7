//! The `edgelm` command end to end on the real SmolLM2 file: JSON contracts and clear errors.

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm_suite::smollm2;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn edgelm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(args)
        .output()
        .expect("edgelm runs")
}

fn ok_json(args: &[&str]) -> Value {
    let o = edgelm(args);
    assert!(
        o.status.success(),
        "edgelm {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Runs and expects failure with a message containing every `needles` entry.
fn fails_with(args: &[&str], needles: &[&str]) {
    let o = edgelm(args);
    assert!(!o.status.success(), "edgelm {args:?} should fail");
    let err = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr of {args:?} lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("edgelm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn run_json_greedy() {
    let m = smollm2();
    let j = ok_json(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "4",
        "--temp",
        "0",
        "--json",
        "--logprobs",
        "3",
        "-c",
        "64",
    ]);
    assert_eq!(
        j["prompt_tokens"],
        serde_json::json!([504, 3575, 282, 4649, 314])
    );
    assert_eq!(j["tokens"][0], 7042);
    assert!(j["text"].as_str().unwrap().starts_with(" Paris"));
    for k in ["load_ms", "prompt_tok_s", "gen_tok_s"] {
        assert!(j["timings"][k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(j["peak_rss_bytes"].as_u64().unwrap() > 50 << 20);
    let lp = j["logprobs"].as_array().unwrap();
    assert_eq!(lp.len(), 4);
    for (step, tok) in lp.iter().zip(j["tokens"].as_array().unwrap()) {
        let c = step.as_array().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(&c[0]["id"], tok, "greedy picks the top candidate");
        let l: Vec<f64> = c.iter().map(|x| x["logprob"].as_f64().unwrap()).collect();
        assert!(l[0] <= 0.0 && l[0] >= l[1] && l[1] >= l[2]);
    }
}

#[test]
fn run_streams_text_and_same_seed_same_text() {
    let m = smollm2();
    let args = [
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "Once upon a time",
        "-n",
        "12",
        "--seed",
        "42",
        "-c",
        "64",
    ];
    let a = edgelm(&args);
    let b = edgelm(&args);
    assert!(a.status.success());
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout, "same seed, same text");
    assert!(String::from_utf8_lossy(&a.stderr).contains("tok/s"));
    let c = edgelm(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "3",
        "--temp",
        "0",
    ]);
    assert!(String::from_utf8_lossy(&c.stdout).starts_with(" Paris"));
}

#[test]
fn same_tokens_at_any_thread_count() {
    let m = smollm2();
    let run = |t: &str| {
        ok_json(&[
            "run",
            "-m",
            m.to_str().unwrap(),
            "-p",
            "Once upon a time",
            "-n",
            "24",
            "--temp",
            "0",
            "-t",
            t,
            "--json",
        ])["tokens"]
            .clone()
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn stop_string_ends_generation() {
    let m = smollm2();
    let j = ok_json(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "16",
        "--temp",
        "0",
        "--stop",
        ".",
        "--json",
    ]);
    assert_eq!(j["text"], " Paris");
    assert_eq!(j["stop"], "StopString");
}

#[test]
fn tokenize_json() {
    let m = smollm2();
    let j = ok_json(&[
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "The capital of France is",
        "--json",
    ]);
    assert_eq!(j["ids"], serde_json::json!([504, 3575, 282, 4649, 314]));
    assert_eq!(j["pieces"][1], " capital");
    let j = ok_json(&[
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "<|im_start|>user",
        "--json",
    ]);
    assert_eq!(j["ids"][0], 1, "special tokens are parsed");
}

#[test]
fn inspect_json_has_plan() {
    let m = smollm2();
    let j = ok_json(&["inspect", m.to_str().unwrap(), "-c", "128", "--json"]);
    assert_eq!(j["architecture"], "llama");
    assert_eq!(j["hparams"]["n_layer"], 30);
    assert_eq!(j["memory"]["kv_bytes"], 2 * 30 * 128 * 192 * 2);
    assert!(
        j["memory"]["total_bytes"].as_u64().unwrap() > j["memory"]["kv_bytes"].as_u64().unwrap()
    );
    assert_eq!(j["tensors"].as_array().unwrap().len(), 272);
    assert!(j["types"]["Q4_1"]["tensors"].as_u64().unwrap() > 100);
}

#[test]
fn perplexity_json() {
    let m = smollm2();
    let text = edgelm_suite::repo_root().join("tests/data/text/reference.txt");
    let j = ok_json(&[
        "perplexity",
        "-m",
        m.to_str().unwrap(),
        "-f",
        text.to_str().unwrap(),
        "-c",
        "64",
        "--chunks",
        "2",
        "--json",
    ]);
    let ppl = j["ppl"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < 200.0, "{ppl}");
    assert_eq!(j["tokens"], 2 * 31);
}

#[test]
fn chat_two_turns_from_stdin() {
    let m = smollm2();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args([
            "chat",
            "-m",
            m.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "8",
            "-c",
            "256",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello!\nWhat is 2+2?\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "{out}"
    );
}

#[test]
fn clear_errors() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    fails_with(
        &["run", "-m", "/nonexistent/model.gguf", "-p", "hi"],
        &["model file not found", "fetch-models"],
    );
    // A truncated copy of the real file.
    let bytes = std::fs::read(&m).unwrap();
    let cut = tmp("truncated.gguf");
    std::fs::write(&cut, &bytes[..1000]).unwrap();
    fails_with(
        &["run", "-m", cut.to_str().unwrap(), "-p", "hi"],
        &["not a valid GGUF file", "truncated"],
    );
    fails_with(&["inspect", cut.to_str().unwrap()], &["truncated"]);
    // Not a GGUF at all.
    let junk = tmp("junk.gguf");
    std::fs::write(&junk, b"hello world, not a model").unwrap();
    fails_with(
        &["run", "-m", junk.to_str().unwrap(), "-p", "hi"],
        &["not a GGUF file"],
    );
    // Prompt longer than the context.
    let long = "word ".repeat(200);
    fails_with(
        &["run", "-m", ms, "-p", &long, "-c", "32"],
        &["more than the context size"],
    );
    // A context no machine here can hold.
    fails_with(
        &["run", "-m", ms, "-p", "hi", "-c", "16000000"],
        &["lower -c"],
    );
    fails_with(
        &["run", "-m", ms, "-p", "hi", "-c", "0"],
        &["context length 0"],
    );
    // Non-UTF-8 prompt file.
    let bad = tmp("bad.txt");
    std::fs::write(&bad, [0x66, 0xff, 0xfe, 0x0a]).unwrap();
    fails_with(
        &["run", "-m", ms, "-f", bad.to_str().unwrap()],
        &["not UTF-8"],
    );
    fails_with(
        &["perplexity", "-m", ms, "-f", bad.to_str().unwrap()],
        &["not UTF-8"],
    );
    // An architecture we do not run.
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str("mamba".into()));
    let arch = tmp("mamba.gguf");
    std::fs::write(&arch, w.to_bytes(&[]).unwrap()).unwrap();
    fails_with(
        &["run", "-m", arch.to_str().unwrap(), "-p", "hi"],
        &["unknown architecture 'mamba'", "llama"],
    );
    // Too little text for perplexity.
    let short = tmp("short.txt");
    std::fs::write(&short, "Just a few words.").unwrap();
    fails_with(
        &[
            "perplexity",
            "-m",
            ms,
            "-f",
            short.to_str().unwrap(),
            "-c",
            "128",
        ],
        &["needs at least 128"],
    );
    assert!(Path::new(ms).exists());
}

/// A LoRA adapter for SmolLM2 (F16 factors on Q, V and FFN-down of every 3rd layer) in a temp file.
fn lora_file(name: &str, arch: &str, amp: f32) -> std::path::PathBuf {
    use edgelm::quant::GgmlType;
    use edgelm_suite::lora::{make_adapter, targets};
    let bytes = std::fs::read(smollm2()).unwrap();
    let base = edgelm::gguf::Gguf::parse(&bytes).unwrap();
    let t = targets(
        &(0..30).step_by(3).collect::<Vec<_>>(),
        &[
            ("attn_q.weight", GgmlType::F16, 8),
            ("attn_v.weight", GgmlType::F16, 8),
            ("ffn_down.weight", GgmlType::F16, 8),
        ],
    );
    let p = tmp(name);
    std::fs::write(&p, make_adapter(&base, arch, 16.0, amp, 7, &t).bytes).unwrap();
    p
}

#[test]
fn run_with_lora_adapters() {
    let m = smollm2();
    let a = lora_file("lora-a.gguf", "llama", 0.25);
    let b = lora_file("lora-b.gguf", "llama", 0.125);
    let (ms, as_, bs) = (
        m.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-m",
            ms,
            "-p",
            "The capital of France is",
            "-n",
            "12",
            "--temp",
            "0",
            "--json",
            "--logprobs",
            "2",
            "-c",
            "64",
        ];
        args.extend_from_slice(extra);
        ok_json(&args)
    };
    let base = run(&[]);
    assert_eq!(base["lora"], serde_json::json!([]));
    let with = run(&["--lora", as_]);
    let l = &with["lora"][0];
    assert_eq!(l["path"], as_);
    assert_eq!(l["scale"], 1.0);
    assert_eq!(l["tensors"], 30);
    assert_eq!(l["max_rank"], 8);
    assert_eq!(l["alpha"], 16.0);
    assert_ne!(
        with["tokens"], base["tokens"],
        "the adapter changes the text"
    );
    // Scale 0 is the base model, logprobs and all.
    let off = run(&["--lora", as_, "--lora-scale", "0"]);
    assert_eq!(off["tokens"], base["tokens"]);
    assert_eq!(off["logprobs"], base["logprobs"]);
    // --lora-scale belongs to the --lora before it; the same output at any thread count.
    let two = |t: &str| {
        run(&[
            "--lora",
            as_,
            "--lora-scale",
            "0.5",
            "--lora",
            bs,
            "--lora-scale",
            "-1",
            "-t",
            t,
        ])
    };
    let (t1, t2) = (two("1"), two("2"));
    assert_eq!(t1["lora"][0]["scale"], 0.5);
    assert_eq!(t1["lora"][1]["scale"], -1.0);
    assert_eq!(t1["lora"][1]["path"], bs);
    assert_eq!(t1["tokens"], t2["tokens"]);
    assert_eq!(t1["logprobs"], t2["logprobs"]);
    assert_ne!(t1["tokens"], with["tokens"]);
    // Without --json the adapters are reported on stderr.
    let o = edgelm(&[
        "run", "-m", ms, "-p", "Hi", "-n", "2", "-c", "32", "--lora", as_,
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("lora: ") && err.contains("30 tensors"),
        "{err}"
    );
}

#[test]
fn chat_with_lora() {
    let m = smollm2();
    let a = lora_file("lora-chat.gguf", "llama", 0.125);
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args([
            "chat",
            "-m",
            m.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "8",
            "-c",
            "256",
            "--lora",
            a.to_str().unwrap(),
            "--lora-scale",
            "0.5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"Hello!\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("scale 0.5"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
}

#[test]
fn lora_errors() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    let ok = lora_file("lora-ok.gguf", "llama", 0.125);
    let oks = ok.to_str().unwrap();
    fails_with(
        &[
            "run",
            "-m",
            ms,
            "-p",
            "hi",
            "--lora",
            "/nonexistent/adapter.gguf",
        ],
        &["LoRA adapter not found: /nonexistent/adapter.gguf"],
    );
    fails_with(
        &["run", "-m", ms, "-p", "hi", "--lora", ms],
        &[
            "cannot use LoRA adapter",
            "not an adapter file (general.type is 'model', expected 'adapter')",
        ],
    );
    let junk = tmp("lora-junk.gguf");
    std::fs::write(&junk, b"not a gguf").unwrap();
    fails_with(
        &["chat", "-m", ms, "--lora", junk.to_str().unwrap()],
        &["not a valid GGUF file"],
    );
    let qwen = lora_file("lora-qwen.gguf", "qwen2", 0.125);
    fails_with(
        &[
            "run",
            "-m",
            ms,
            "-p",
            "hi",
            "--lora",
            qwen.to_str().unwrap(),
        ],
        &[
            "cannot apply LoRA adapter",
            "the adapter is for architecture 'qwen2', the model is 'llama'",
        ],
    );
    fails_with(
        &[
            "run",
            "-m",
            ms,
            "-p",
            "hi",
            "--lora-scale",
            "2",
            "--lora",
            oks,
        ],
        &["--lora-scale 2 must come after the --lora FILE it scales"],
    );
    fails_with(
        &[
            "run",
            "-m",
            ms,
            "-p",
            "hi",
            "--lora",
            oks,
            "--lora-scale",
            "2",
            "--lora-scale",
            "3",
        ],
        &["two --lora-scale values for --lora"],
    );
    fails_with(
        &[
            "run",
            "-m",
            ms,
            "-p",
            "hi",
            "--lora",
            oks,
            "--lora-scale",
            "nan",
        ],
        &["scale is not a finite number"],
    );
}

/// `convert` and `convert-lora` end to end: JSON contract, a model that runs, and refused inputs.
#[test]
fn convert_and_convert_lora() {
    let hf = edgelm_suite::model_file("hf/cerebras-111m-2l");
    let lora = edgelm_suite::model_file("hf/cerebras-111m-2l-lora");
    let out = tmp("c111.gguf");
    let _ = std::fs::remove_file(&out);
    let (hf_s, out_s) = (hf.to_str().unwrap(), out.to_str().unwrap());
    let j = ok_json(&["convert", hf_s, "-o", out_s, "--quant", "q8_0", "--json"]);
    for k in [
        "output",
        "arch",
        "quant",
        "file_bytes",
        "tensors",
        "params",
        "bits_per_weight",
        "types",
        "lora_tensors",
        "ignored",
        "seconds",
        "peak_rss_bytes",
    ] {
        assert!(j.get(k).is_some(), "convert --json lacks {k}: {j}");
    }
    assert_eq!(j["arch"], "gpt2");
    assert_eq!(j["types"]["Q8_0"], 10);
    let r = ok_json(&[
        "run", "-m", out_s, "-p", "Hello", "-n", "4", "--temp", "0", "--json",
    ]);
    assert_eq!(r["tokens"].as_array().unwrap().len(), 4);

    // An existing output is kept unless --force.
    fails_with(
        &["convert", hf_s, "-o", out_s],
        &["already exists", "--force"],
    );
    fails_with(
        &["convert", hf_s, "-o", out_s, "--quant", "q5_k_s", "--force"],
        &["q5_k_s", "q4_k_m"],
    );
    fails_with(
        &["convert", "/nonexistent/model", "-o", out_s, "--force"],
        &["/nonexistent/model", "missing"],
    );

    let ad = tmp("c111-lora.gguf");
    let _ = std::fs::remove_file(&ad);
    let ad_s = ad.to_str().unwrap();
    let j = ok_json(&[
        "convert-lora",
        lora.to_str().unwrap(),
        "--base",
        out_s,
        "-o",
        ad_s,
        "--json",
    ]);
    assert_eq!(j["lora_tensors"], 8);
    let r = ok_json(&[
        "run", "-m", out_s, "--lora", ad_s, "-p", "Hello", "-n", "4", "--temp", "0", "--json",
    ]);
    assert_eq!(r["lora"][0]["tensors"], 8);
    // The SmolLM2 adapter does not fit a GPT-2 base.
    let smol_lora = edgelm_suite::model_file("hf/smollm2-135m-lora");
    fails_with(
        &[
            "convert-lora",
            smol_lora.to_str().unwrap(),
            "--base",
            out_s,
            "-o",
            ad_s,
            "--force",
        ],
        &["model.layers.0", "gpt2"],
    );
}

#[test]
fn bench_json_rows_and_roofline() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    // Two thread counts: each runs in its own child process.
    let j = ok_json(&[
        "bench", "-m", ms, "-p", "8", "-n", "8", "-r", "1", "-t", "1,2", "--membw", "--json",
    ]);
    let rows = j.as_array().unwrap();
    let tests: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["test"].as_str().unwrap().into(),
                r["threads"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("pp8", 1),
        ("tg8", 1),
        ("pp8", 2),
        ("tg8", 2),
        ("membw", 1),
        ("membw", 2),
    ];
    assert_eq!(
        tests,
        want.map(|(t, n)| (t.to_string(), n)).to_vec(),
        "rows: {j}"
    );
    // Bytes per decode step, from the file's tensors: SmolLM2's head is tied to the Q8_0
    // embedding, so every tensor is read once, the embedding once more for one row; plus the f16
    // KV cache (30 layers × K and V × 192 values × 2 bytes) over the 4.5 positions an 8-step test
    // attends on average.
    let bytes = edgelm_suite::read(&m);
    let g = edgelm::gguf::Gguf::parse(&bytes).unwrap();
    let all: u64 = g.tensors().map(|t| t.data.len() as u64).sum();
    let embd = g.tensor("token_embd.weight").unwrap().data.len() as u64;
    assert!(g.tensor("output.weight").is_none());
    let kv = 30.0 * 2.0 * 192.0 * 2.0 * 4.5;
    let expect = (all + embd / 49152) as f64 + kv;
    for r in &rows[..4] {
        let keys = [
            "test",
            "threads",
            "tok_s_mean",
            "tok_s_sd",
            "bytes_per_token",
        ];
        for k in keys {
            assert!(r.get(k).is_some(), "row lacks {k}: {r}");
        }
        assert!(r["tok_s_mean"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["tok_s_sd"].as_f64().unwrap() >= 0.0, "{r}");
        let bpt = r["bytes_per_token"].as_f64().unwrap();
        assert!((bpt - expect).abs() < 1.0, "{bpt} vs {expect}");
        assert_eq!(r["size_bytes"].as_u64().unwrap(), all);
        assert!(r["roofline_fraction"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in &rows[4..] {
        assert!(r["gb_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(
            r["buffer_bytes"].as_u64().unwrap(),
            bytes.len() as u64 / 8 * 8
        );
    }
    // The table: llama-bench's columns, t/s as mean ± sd.
    let o = edgelm(&[
        "bench", "-m", ms, "-p", "4", "-n", "0", "-r", "2", "-t", "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.starts_with("| model"), "{table}");
    for col in ["size", "params", "backend", "threads", "test", "t/s"] {
        assert!(table.lines().next().unwrap().contains(col), "{table}");
    }
    let cells: Vec<&str> = table
        .lines()
        .nth(2)
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(cells[6], "pp4", "{table}");
    assert!(cells[7].contains(" ± "), "{table}");
    assert!(!table.contains("tg"), "-n 0 skips tg: {table}");
}

/// `-d N`: N tokens already cached when each test starts (llama-bench's depth), named as
/// llama-bench names them; the KV bytes count the cached rows too.
#[test]
fn bench_depth() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    let j = ok_json(&[
        "bench", "-m", ms, "-p", "4", "-n", "4", "-d", "8", "-r", "1", "-t", "1", "--json",
    ]);
    let rows = j.as_array().unwrap();
    let tests: Vec<&str> = rows.iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(tests, ["pp4 @ d8", "tg4 @ d8"], "{j}");
    let per_pos = 30.0 * 2.0 * 192.0 * 2.0;
    for r in rows {
        assert_eq!(r["n_depth"].as_u64(), Some(8), "{r}");
        assert!(r["tok_s_mean"].as_f64().unwrap() > 0.0, "{r}");
        let kv = r["kv_bytes_per_token"].as_f64().unwrap();
        assert!((kv - per_pos * (8.0 + 2.5)).abs() < 1e-6, "{r}");
    }
}

#[test]
fn bench_membw_alone() {
    let o = edgelm(&["bench", "--membw", "-t", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let gb_s: f64 = out
        .split(" GB/s")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no GB/s figure in {out:?}"));
    assert!(gb_s > 0.0, "{out}");
    assert!(out.contains("256.0 MiB"), "{out}");
}

#[test]
fn bench_kernels_json() {
    let o = edgelm(&[
        "bench",
        "--kernels",
        "--kernel-mib",
        "1",
        "-t",
        "1,2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let types = [
        "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k",
    ];
    assert_eq!(rows.len(), 2 * types.len(), "{rows:?}");
    for t in [1, 2] {
        for ty in types {
            let r = rows
                .iter()
                .find(|r| r["type"] == ty && r["threads"] == t)
                .unwrap_or_else(|| panic!("no {ty} row at {t} threads: {rows:?}"));
            assert_eq!(r["test"], "kernel");
            assert!(r["gb_s"].as_f64().unwrap() > 0.0, "{r}");
            let vs = r["vs_q4_1"].as_f64().unwrap();
            assert!(vs > 0.0 && (ty != "q4_1" || vs == 1.0), "{r}");
        }
    }
}

#[test]
fn bench_errors() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    fails_with(&["bench", "-m", ms, "-t", "0"], &["at least 1"]);
    fails_with(
        &["bench", "-m", ms, "-t", "a,b"],
        &["'a' is not a thread count"],
    );
    fails_with(
        &["bench", "-m", ms, "-t", "1,,2"],
        &["'' is not a thread count"],
    );
    fails_with(&["bench", "-m", ms, "-r", "0"], &["-r must be at least 1"]);
    fails_with(
        &["bench", "-m", ms, "-p", "0", "-n", "0"],
        &["nothing to measure"],
    );
    fails_with(
        &["bench"],
        &["give a model with -m FILE", "--membw", "--kernels"],
    );
    fails_with(
        &["bench", "-m", "/nonexistent/model.gguf"],
        &["model file not found"],
    );
}

#[test]
fn kv_type_flag() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    let run = |kv: Option<&str>| {
        let mut args = vec![
            "run",
            "-m",
            ms,
            "-p",
            "The capital of France is",
            "-n",
            "4",
            "--temp",
            "0",
            "--json",
            "-c",
            "32",
        ];
        if let Some(kv) = kv {
            args.extend(["--kv-type", kv]);
        }
        ok_json(&args)
    };
    // f16 is the default; both caches continue " Paris.\n\n" (llama.cpp's f16 and f32 runs too).
    for (kv, name) in [(None, "f16"), (Some("f16"), "f16"), (Some("f32"), "f32")] {
        let j = run(kv);
        assert_eq!(j["kv_type"], name);
        assert_eq!(
            j["tokens"],
            serde_json::json!([7042, 30, 198, 198]),
            "{kv:?}"
        );
        assert_eq!(j["n_ctx"], 32);
    }
    let j = ok_json(&["inspect", ms, "-c", "128", "--kv-type", "f32", "--json"]);
    assert_eq!(j["memory"]["kv_type"], "f32");
    assert_eq!(j["memory"]["kv_bytes"], 2 * 30 * 128 * 192 * 4);
    let j = ok_json(&["inspect", ms, "-c", "128", "--json"]);
    assert_eq!(j["memory"]["kv_type"], "f16");
    let text = edgelm_suite::repo_root().join("tests/data/text/reference.txt");
    let ts = text.to_str().unwrap();
    let ppl = |kv: &str| {
        let j = ok_json(&[
            "perplexity",
            "-m",
            ms,
            "-f",
            ts,
            "-c",
            "64",
            "--chunks",
            "2",
            "--json",
            "--kv-type",
            kv,
        ]);
        assert_eq!(j["kv_type"], kv);
        j["ppl"].as_f64().unwrap()
    };
    let (p16, p32, p8) = (ppl("f16"), ppl("f32"), ppl("q8_0"));
    // Different numerics, same model: within the ~1% llama.cpp's own settings move perplexity.
    assert!(
        p16 != p32 && (p32 / p16 - 1.0).abs() < 0.05,
        "{p16} vs {p32}"
    );
    assert!(p16 != p8 && (p8 / p16 - 1.0).abs() < 0.05, "{p16} vs {p8}");
    let j = ok_json(&["inspect", ms, "-c", "128", "--kv-type", "q8_0", "--json"]);
    assert_eq!(j["memory"]["kv_type"], "q8_0");
    assert_eq!(j["memory"]["kv_bytes"], 2 * 30 * 128 * 6 * 34);
    // The greedy run continues as with f16.
    let j = run(Some("q8_0"));
    assert_eq!(j["kv_type"], "q8_0");
    assert_eq!(j["tokens"], serde_json::json!([7042, 30, 198, 198]));
    for cmd in [
        vec!["run", "-m", ms, "-p", "hi", "--kv-type", "q4_0"],
        vec!["chat", "-m", ms, "--kv-type", "F32"],
        vec!["perplexity", "-m", ms, "-f", ts, "--kv-type", "f64"],
        vec!["inspect", ms, "--kv-type", "bf16"],
    ] {
        fails_with(&cmd, &["unknown KV cache type (supported: f16, f32, q8_0)"]);
    }
}

/// A write that fails midway (here a file-size limit standing in for a full disk) is an error that
/// names the output, and leaves neither the output nor a temp file behind.
#[test]
fn convert_write_failure_leaves_nothing() {
    let hf = edgelm_suite::model_file("hf/cerebras-111m-2l");
    let dir = tmp("fsize");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("x.gguf");
    let _ = std::fs::remove_file(&out);
    // 8 MiB is enough for the header but not for the 41 MiB of Q4_K_M weights.
    let script = format!(
        "ulimit -f 16384; trap '' XFSZ; exec {} convert {} -o {} --quant q4_k_m",
        env!("CARGO_BIN_EXE_edgelm"),
        hf.display(),
        out.display()
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "must fail: {err}");
    assert!(
        err.contains(out.to_str().unwrap()) && err.contains("large"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn repack_round_trip_and_errors() {
    let m = smollm2();
    let m_s = m.to_str().unwrap();
    let x4 = tmp("smol-x4.gguf");
    let back = tmp("smol-back.gguf");
    let (x4_s, back_s) = (x4.to_str().unwrap(), back.to_str().unwrap());
    let j = ok_json(&[
        "repack",
        m_s,
        "-o",
        x4_s,
        "--layout",
        "arm-dotprod",
        "--force",
        "--json",
    ]);
    for k in [
        "output",
        "layout",
        "file_bytes",
        "tensors",
        "changed",
        "types",
        "seconds",
    ] {
        assert!(j.get(k).is_some(), "repack --json lacks {k}: {j}");
    }
    assert_eq!(j["layout"], "arm-dotprod");
    assert_eq!(j["changed"], 210);
    assert_eq!(j["types"]["Q4_1_X4"], 210);
    assert_eq!(j["types"]["Q8_0"], 1);

    // The repacked file runs, with the plain file's tokens at 1 and 2 threads.
    let run = |f: &str, t: &str| {
        ok_json(&[
            "run",
            "-m",
            f,
            "-p",
            "The capital of France is",
            "-n",
            "8",
            "--temp",
            "0",
            "-t",
            t,
            "-c",
            "64",
            "--json",
        ])["tokens"]
            .clone()
    };
    let want = run(m_s, "1");
    assert_eq!(run(x4_s, "1"), want);
    assert_eq!(run(x4_s, "2"), want);
    let i = ok_json(&["inspect", x4_s, "--json"]);
    assert!(i.to_string().contains("Q4_1_X4"), "{i}");

    // Back to plain: every tensor's bytes as in the original.
    let j = ok_json(&[
        "repack", x4_s, "-o", back_s, "--layout", "none", "-f", "--json",
    ]);
    assert_eq!(j["types"]["Q4_1"], 210);
    let (a, b) = (std::fs::read(&m).unwrap(), std::fs::read(&back).unwrap());
    let (ga, gb) = (
        edgelm::gguf::Gguf::parse(&a).unwrap(),
        edgelm::gguf::Gguf::parse(&b).unwrap(),
    );
    for (x, y) in ga.tensors().zip(gb.tensors()) {
        assert_eq!((x.name, x.ty), (y.name, y.ty));
        assert!(x.data == y.data, "{}", x.name);
    }
    assert_eq!(ga.n_tensors(), gb.n_tensors());

    fails_with(
        &["repack", m_s, "-o", x4_s, "--layout", "avx2", "-f"],
        &["unknown layout \"avx2\"", "x86-avx2", "arm-i8mm"],
    );
    fails_with(
        &[
            "convert",
            "/nonexistent/model",
            "-o",
            x4_s,
            "--layout",
            "neon",
            "-f",
        ],
        &["unknown layout \"neon\"", "arm-neon"],
    );
    fails_with(
        &["repack", m_s, "-o", x4_s, "--layout", "x86-avx2"],
        &["already exists", "--force"],
    );
    fails_with(
        &[
            "repack",
            "/nonexistent.gguf",
            "-o",
            back_s,
            "--layout",
            "none",
            "-f",
        ],
        &["/nonexistent.gguf"],
    );
}
