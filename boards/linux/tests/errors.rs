//! Every error a user can reach from the command line, with the message it must show: the
//! file, flag or value at fault, and what to do about it. (cli.rs covers the run-time errors
//! next to the features; this file the rest.)

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::quant::GgmlType;
use edgelm_suite::smollm2;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn edgelm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("edgelm runs")
}

/// Runs and expects failure (exit code 1 for our errors, 2 for clap's usage errors) with a
/// message on stderr containing every `needles` entry, and no panic.
fn fails_with(args: &[&str], needles: &[&str]) {
    let o = edgelm(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "edgelm {args:?} should fail: {err}");
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "edgelm {args:?} exits with {:?}: {err}",
        o.status
    );
    for n in needles {
        assert!(err.contains(n), "stderr of {args:?} lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgelm-errors-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A one-block Llama model (zero weights) with `extra` metadata, written to a temp file: valid
/// for the runtime, but with no tokenizer unless `extra` adds one.
fn tiny_model(name: &str, extra: &[(&str, MetaValue)]) -> PathBuf {
    let (d, ff, vocab) = (32u64, 32u64, 8u64);
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str("llama".into()));
    for (k, v) in [
        ("llama.embedding_length", d),
        ("llama.block_count", 1),
        ("llama.feed_forward_length", ff),
        ("llama.attention.head_count", 4),
        ("llama.context_length", 64),
    ] {
        w.set(k, MetaValue::U32(v as u32));
    }
    for (k, v) in extra {
        w.set(k, v.clone());
    }
    let tensors: [(&str, &[u64]); 11] = [
        ("token_embd.weight", &[d, vocab]),
        ("output_norm.weight", &[d]),
        ("blk.0.attn_norm.weight", &[d]),
        ("blk.0.attn_q.weight", &[d, d]),
        ("blk.0.attn_k.weight", &[d, d]),
        ("blk.0.attn_v.weight", &[d, d]),
        ("blk.0.attn_output.weight", &[d, d]),
        ("blk.0.ffn_norm.weight", &[d]),
        ("blk.0.ffn_gate.weight", &[d, ff]),
        ("blk.0.ffn_up.weight", &[d, ff]),
        ("blk.0.ffn_down.weight", &[ff, d]),
    ];
    let mut data = Vec::new();
    for (n, dims) in tensors {
        w.add_tensor(n, GgmlType::F32, dims).unwrap();
        data.push(vec![0u8; 4 * dims.iter().product::<u64>() as usize]);
    }
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let p = tmp(name);
    std::fs::write(&p, w.to_bytes(&refs).unwrap()).unwrap();
    p
}

fn byte_tokenizer() -> Vec<(&'static str, MetaValue)> {
    vec![
        ("tokenizer.ggml.model", MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.pre", MetaValue::Str("gpt-2".into())),
        (
            "tokenizer.ggml.tokens",
            MetaValue::strings(["a", "b", "c", "d", "e", "f", "g", "h"]),
        ),
        ("tokenizer.ggml.merges", MetaValue::strings(["a b"])),
    ]
}

#[test]
fn missing_and_unreadable_model_files() {
    let missing = "/nonexistent/model.gguf";
    for args in [
        vec!["run", "-m", missing, "-p", "hi"],
        vec!["chat", "-m", missing],
        vec!["tokenize", "-m", missing, "hi"],
        vec!["inspect", missing],
        vec!["perplexity", "-m", missing, "-f", missing],
    ] {
        let mut needles = vec!["model file not found: /nonexistent/model.gguf"];
        // perplexity reads its text first.
        if args[0] == "perplexity" {
            needles = vec!["cannot read /nonexistent/model.gguf"];
        }
        fails_with(&args, &needles);
    }
    let dir = tmp("a-folder");
    std::fs::create_dir_all(&dir).unwrap();
    let ds = dir.to_str().unwrap();
    fails_with(
        &["run", "-m", ds, "-p", "hi"],
        &[ds, "is a directory, not a GGUF file"],
    );
    let empty = tmp("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    fails_with(
        &["inspect", empty.to_str().unwrap()],
        &["empty.gguf is not a valid GGUF file", "truncated in Header"],
    );
}

#[test]
fn not_a_gguf_file() {
    let junk = tmp("junk.bin");
    std::fs::write(&junk, b"PK\x03\x04 a zip file, not a model").unwrap();
    let js = junk.to_str().unwrap();
    for args in [
        vec!["inspect", js],
        vec!["tokenize", "-m", js, "hi"],
        vec!["chat", "-m", js],
    ] {
        fails_with(
            &args,
            &[
                "junk.bin is not a valid GGUF file",
                "not a GGUF file (magic bytes [50, 4b, 03, 04], expected \"GGUF\")",
            ],
        );
    }
    // A GGUF version this reader does not know.
    let v9 = tmp("v9.gguf");
    std::fs::write(&v9, b"GGUF\x09\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    fails_with(
        &["run", "-m", v9.to_str().unwrap(), "-p", "hi"],
        &["unsupported GGUF version 9 (2 and 3 are read)"],
    );
}

#[test]
fn unknown_or_missing_architecture() {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::Str("rwkv6".into()));
    let p = tmp("rwkv.gguf");
    std::fs::write(&p, w.to_bytes(&[]).unwrap()).unwrap();
    let ps = p.to_str().unwrap();
    for args in [
        vec!["run", "-m", ps, "-p", "hi"],
        vec!["chat", "-m", ps],
        vec!["perplexity", "-m", ps, "-f", "Cargo.toml"],
    ] {
        fails_with(
            &args,
            &[
                "cannot load",
                "unknown architecture 'rwkv6' (supported: llama, qwen2, gpt2, gemma3)",
            ],
        );
    }
    let p = tmp("no-arch.gguf");
    std::fs::write(&p, GgufWriter::new().to_bytes(&[]).unwrap()).unwrap();
    fails_with(
        &["run", "-m", p.to_str().unwrap(), "-p", "hi"],
        &["the file has no general.architecture key"],
    );
    // A hyper-parameter out of range names the key and the value.
    let p = tiny_model(
        "bad-heads.gguf",
        &[("llama.attention.head_count", MetaValue::U32(0))],
    );
    fails_with(
        &["run", "-m", p.to_str().unwrap(), "-p", "hi"],
        &["invalid model config: attention.head_count = 0"],
    );
}

#[test]
fn missing_tokenizer_and_chat_template() {
    let p = tiny_model("no-tokenizer.gguf", &[]);
    let ps = p.to_str().unwrap();
    fails_with(
        &["run", "-m", ps, "-p", "hi"],
        &[
            "cannot read the tokenizer of",
            "no-tokenizer.gguf",
            "missing tokenizer key tokenizer.ggml.model",
        ],
    );
    fails_with(
        &["tokenize", "-m", ps, "hi"],
        &["missing tokenizer key tokenizer.ggml.model"],
    );
    fails_with(
        &["chat", "-m", ps],
        &[
            "cannot read the tokenizer",
            "missing tokenizer key tokenizer.ggml.model",
        ],
    );
    let mut tok = byte_tokenizer();
    tok[0].1 = MetaValue::Str("wordpiece".into());
    let p = tiny_model("wordpiece.gguf", &tok);
    fails_with(
        &["run", "-m", p.to_str().unwrap(), "-p", "hi"],
        &["unsupported tokenizer model 'wordpiece'"],
    );
    let mut tok = byte_tokenizer();
    tok[1].1 = MetaValue::Str("tekken".into());
    let p = tiny_model("tekken.gguf", &tok);
    fails_with(
        &["tokenize", "-m", p.to_str().unwrap(), "hi"],
        &["unsupported pre-tokenizer 'tekken'"],
    );
    // With a tokenizer but no chat template, chat says what to use instead.
    let p = tiny_model("no-template.gguf", &byte_tokenizer());
    fails_with(
        &["chat", "-m", p.to_str().unwrap()],
        &["has no chat template (tokenizer.chat_template); use `edgelm run`"],
    );
    // A template that does not compile, and one that fails when rendered.
    let mut t = byte_tokenizer();
    t.push((
        "tokenizer.chat_template",
        MetaValue::Str("{% for m in messages %}{{ m.content }".into()),
    ));
    let p = tiny_model("bad-template.gguf", &t);
    fails_with(
        &["chat", "-m", p.to_str().unwrap()],
        &["the file's chat template does not compile"],
    );
    let mut t = byte_tokenizer();
    t.push((
        "tokenizer.chat_template",
        MetaValue::Str("{{ raise_exception('only user turns here') }}".into()),
    ));
    let p = tiny_model("raising-template.gguf", &t);
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(["chat", "-m", p.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("only user turns here"), "{err}");
}

#[test]
fn prompt_errors() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    fails_with(
        &["run", "-m", ms],
        &["give a prompt with -p TEXT or -f FILE"],
    );
    fails_with(
        &["run", "-m", ms, "-f", "/nonexistent/prompt.txt"],
        &["cannot read prompt file /nonexistent/prompt.txt"],
    );
    let bad = tmp("latin1.txt");
    std::fs::write(&bad, b"caf\xe9\n").unwrap();
    fails_with(
        &["run", "-m", ms, "-f", bad.to_str().unwrap()],
        &["prompt file", "latin1.txt is not UTF-8"],
    );
    fails_with(
        &["run", "-m", ms, "-p", "hi", "-f", bad.to_str().unwrap()],
        &["'--prompt <PROMPT>' cannot be used with '--file <PROMPT_FILE>'"],
    );
    // Longer than the context: the counts and the fix.
    let long = "word ".repeat(40).trim_end().to_string();
    fails_with(
        &["run", "-m", ms, "-p", &long, "-c", "16"],
        &["the prompt has 40 tokens, more than the context size 16 (raise -c)"],
    );
    // A chat turn that no longer fits the context.
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(["chat", "-m", ms, "-c", "24", "-n", "1", "--temp", "0"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(long.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no longer fits the context (24); raise -c"),
        "{err}"
    );
    // Perplexity text too short, and a context too small to score.
    fails_with(
        &["perplexity", "-m", ms, "-f", "Cargo.toml", "-c", "2"],
        &["context size 2 is too small for perplexity (need at least 4)"],
    );
}

#[test]
fn bad_flag_values() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    // A negative value is given as --flag=-N, else clap takes it for a flag.
    let run = |flag: &str, value: &str| -> Vec<String> {
        let mut v: Vec<String> = ["run", "-m", ms, "-p", "hi", flag]
            .map(String::from)
            .to_vec();
        if !flag.contains('=') {
            v.push(value.into());
        }
        v
    };
    for (flag, value, name) in [
        ("-n", "ten", "--n-predict <N_PREDICT>"),
        ("--ctx-size=-5", "-5", "--ctx-size <CTX>"),
        ("-c", "1k", "--ctx-size <CTX>"),
        ("-t", "two", "--threads <THREADS>"),
        ("--temp", "hot", "--temp <TEMP>"),
        ("--top-k=-1", "-1", "--top-k <TOP_K>"),
        ("--top-p", "most", "--top-p <TOP_P>"),
        ("--seed=-1", "-1", "--seed <SEED>"),
        ("--logprobs", "x", "--logprobs <LOGPROBS>"),
    ] {
        let args = run(flag, value);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, &[&format!("invalid value '{value}' for '{name}'")]);
    }
    // Sampling values that would make every probability NaN.
    for (flag, value, name) in [
        ("--temp", "nan", "--temp <TEMP>"),
        ("--top-p", "NaN", "--top-p <TOP_P>"),
        ("--min-p", "inf", "--min-p <MIN_P>"),
        (
            "--repeat-penalty",
            "-inf",
            "--repeat-penalty <REPEAT_PENALTY>",
        ),
    ] {
        let flag = format!("{flag}={value}");
        for cmd in [
            vec!["run", "-m", ms, "-p", "hi", &flag],
            vec!["chat", "-m", ms, &flag],
        ] {
            fails_with(
                &cmd,
                &[&format!(
                    "invalid value '{value}' for '{name}': not a finite number"
                )],
            );
        }
    }
    fails_with(
        &["run", "-m", ms, "-p", "hi", "--kv-type", "q4_0"],
        &[
            "invalid value 'q4_0' for '--kv-type <KV_TYPE>'",
            "supported: f16, f32",
        ],
    );
    fails_with(
        &["run", "-m", ms, "-p", "hi", "--no-such-flag"],
        &["unexpected argument '--no-such-flag' found"],
    );
    fails_with(
        &["run", "-p", "hi"],
        &[
            "the following required arguments were not provided",
            "--model <MODEL>",
        ],
    );
    fails_with(&["frobnicate"], &["unrecognized subcommand 'frobnicate'"]);
    fails_with(
        &["inspect", ms, "-c", "0"],
        &["context length 0 is zero or too large"],
    );
    fails_with(
        &[
            "perplexity",
            "-m",
            ms,
            "-f",
            "Cargo.toml",
            "--chunks",
            "many",
        ],
        &["invalid value 'many' for '--chunks <CHUNKS>'"],
    );
}
