//! `edgelm verify` and `run --verify` on a converted model with one flipped bit, and on the PyPI
//! SmolLM2 file, which records no checksums.

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::{Gguf, ValueType};
use edgelm::quant::GgmlType;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgelm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(args)
        .output()
        .expect("edgelm runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o.stdout)))
}

fn tmp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgelm-verify-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Converts the small GPT-2 test checkpoint to Q8_0 with the `edgelm convert` command.
fn converted(dir: &Path) -> PathBuf {
    let hf = edgelm_suite::model_file("hf/cerebras-111m-2l");
    let out = dir.join("c111-q8_0.gguf");
    let o = edgelm(&[
        "convert",
        hf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quant",
        "q8_0",
        "--force",
    ]);
    assert!(o.status.success(), "convert: {}", text(&o.stderr));
    out
}

#[test]
fn flipped_bit_is_named_and_run_verify_refuses() {
    let dir = tmp_dir();
    let good = converted(&dir);
    let good_s = good.to_str().unwrap();

    let o = edgelm(&["verify", good_s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("all 28 tensors match their xxh3_64 checksums"));
    let j = json(&edgelm(&["verify", good_s, "--json"]));
    assert_eq!(j["status"], "ok");
    assert_eq!(j["algorithm"], "xxh3_64");
    assert_eq!(j["tensors"], j["checked"]);
    assert_eq!(j["mismatches"], serde_json::json!([]));
    assert!(j["bytes"].as_u64().unwrap() > 30 << 20);

    // One bit of one weight flipped, in the middle of blk.1.ffn_up.weight's bytes.
    let mut bytes = std::fs::read(&good).unwrap();
    let (at, index) = {
        let g = Gguf::parse(&bytes).unwrap();
        let index = g
            .tensors()
            .position(|t| t.name == "blk.1.ffn_up.weight")
            .unwrap();
        let t = g.tensor("blk.1.ffn_up.weight").unwrap();
        (
            g.data_offset() + t.offset as usize + t.data.len() / 2,
            index,
        )
    };
    bytes[at] ^= 0x04;
    let bad = dir.join("c111-flipped.gguf");
    std::fs::write(&bad, &bytes).unwrap();
    let bad_s = bad.to_str().unwrap();

    let o = edgelm(&["verify", bad_s]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("tensor 'blk.1.ffn_up.weight': checksum mismatch (file says "),
        "{err}"
    );
    assert!(err.contains(", data hashes to "), "{err}");
    assert!(
        !err.contains("more tensors"),
        "only one tensor is bad: {err}"
    );

    let o = edgelm(&["verify", bad_s, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["status"], "mismatch");
    let m = j["mismatches"].as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["name"], "blk.1.ffn_up.weight");
    assert_eq!(m[0]["index"], index);
    assert_ne!(m[0]["expected"], m[0]["actual"]);
    assert!(j["error"]
        .as_str()
        .unwrap()
        .starts_with("tensor 'blk.1.ffn_up.weight'"));

    let run = |m: &str, verify: bool| {
        let mut args = vec!["run", "-m", m, "-p", "Hello", "-n", "2", "--temp", "0"];
        if verify {
            args.push("--verify");
        }
        edgelm(&args)
    };
    let o = run(bad_s, true);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "failed verification, not running it: tensor 'blk.1.ffn_up.weight': checksum mismatch"
        ),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing generated");
    // Without --verify the damaged file still loads (the check costs a full read, so it is opt-in).
    assert!(run(bad_s, false).status.success());
    let o = run(good_s, true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("verify: all 28 tensors match"));

    // chat --verify refuses too, before reading any turn.
    let o = Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(["chat", "-m", bad_s, "--verify", "-n", "2"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("tensor 'blk.1.ffn_up.weight': checksum mismatch"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_without_checksums_runs_and_verify_says_so() {
    let m = edgelm_suite::smollm2();
    let ms = m.to_str().unwrap();
    let o = edgelm(&["verify", ms]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no checksums recorded"),
        "{}",
        text(&o.stdout)
    );
    let o = edgelm(&["verify", ms, "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let j = json(&o);
    assert_eq!(j["status"], "no_checksums");
    assert_eq!(j["checked"], 0);

    let o = edgelm(&[
        "run",
        "-m",
        ms,
        "-p",
        "The capital of France is",
        "-n",
        "2",
        "--temp",
        "0",
        "-c",
        "32",
        "--verify",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with(" Paris"));
    assert!(text(&o.stderr).contains("records no checksums; --verify checked nothing"));
}

#[test]
fn malformed_checksum_metadata_is_a_clear_error() {
    let dir = tmp_dir().join("meta");
    std::fs::create_dir_all(&dir).unwrap();
    let data = [0u8; 16];
    let cases: [(&str, MetaValue, &str); 2] = [
        (
            "count.gguf",
            MetaValue::Array(ValueType::U64, vec![MetaValue::U64(1)]),
            "edgelm.checksum.tensors has 1 checksum for 2 tensors",
        ),
        (
            "type.gguf",
            MetaValue::Array(ValueType::I32, vec![MetaValue::I32(1), MetaValue::I32(2)]),
            "edgelm.checksum.tensors must be an array of U64, found an array of I32",
        ),
    ];
    for (name, sums, want) in cases {
        let mut w = GgufWriter::new();
        w.set("general.architecture", MetaValue::Str("llama".into()));
        w.set(
            "edgelm.checksum.algorithm",
            MetaValue::Str("xxh3_64".into()),
        );
        w.set("edgelm.checksum.tensors", sums);
        w.add_tensor("a", GgmlType::F32, &[2]).unwrap();
        w.add_tensor("b", GgmlType::F32, &[2]).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, w.to_bytes(&[&data[..8], &data[8..]]).unwrap()).unwrap();
        let ps = p.to_str().unwrap();
        let o = edgelm(&["verify", ps]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o.stderr).contains(want), "{}", text(&o.stderr));
        let o = edgelm(&["verify", ps, "--json"]);
        assert_eq!(o.status.code(), Some(1));
        let j = json(&o);
        assert_eq!(j["status"], "invalid");
        assert_eq!(j["error"], want);
        let o = edgelm(&["run", "-m", ps, "-p", "hi", "--verify"]);
        assert!(text(&o.stderr).contains(want), "{}", text(&o.stderr));
    }
    let o = edgelm(&["verify", "/nonexistent/x.gguf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("model file not found"));
    let _ = std::fs::remove_dir_all(&dir);
}
