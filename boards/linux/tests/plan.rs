//! `edgelm plan` on the real SmolLM2 file and the committed board profiles: the --json contract,
//! fits / does not fit, the suggestions, and clear errors for bad or unknown profiles.

use edgelm_suite::smollm2;
use serde_json::Value;
use std::process::{Command, Output};

fn edgelm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgelm"))
        .args(args)
        .output()
        .expect("edgelm runs")
}

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "--json"];
    all.extend(args);
    let o = edgelm(&all);
    assert!(
        o.status.success(),
        "edgelm {all:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = edgelm(args);
    assert!(!o.status.success(), "edgelm {args:?} should fail");
    let err = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr of {args:?} lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

const BOARDS: [&str; 7] = [
    "host",
    "jetson-orin-nano",
    "rp2350",
    "rpi-zero-2w",
    "rpi4",
    "rpi5",
    "stm32h7",
];

#[test]
fn json_shape_and_fits_on_every_profile() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    let file_bytes = std::fs::metadata(&m).unwrap().len();
    for board in BOARDS {
        let j = plan_json(&["-m", ms, "--board", board, "-c", "512"]);
        // The contract's keys and types.
        assert!(j["fits"].is_boolean(), "{board}: {j}");
        for k in ["ram_bytes", "storage_bytes", "threads"] {
            assert!(j[k].is_u64(), "{board}: {k} in {j}");
        }
        assert!(j["pred_tok_s"].as_f64().unwrap() > 0.0, "{board}");
        let layout = j["layout"].as_str().unwrap();
        assert!(
            [
                "none",
                "x86-avx2",
                "x86-avx512",
                "arm-neon",
                "arm-dotprod",
                "arm-i8mm"
            ]
            .contains(&layout),
            "{board}: {layout}"
        );
        assert_eq!(j["storage_bytes"], file_bytes, "{board}");
        assert_eq!(j["board"], board);
        // Exact bytes: the runtime's own plan (checked against inspect's).
        let session = j["session_bytes"].as_u64().unwrap();
        let o = edgelm(&["inspect", ms, "-c", "512", "--json"]);
        let inspect: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(session, inspect["memory"]["total_bytes"].as_u64().unwrap());
        let ram = j["ram_bytes"].as_u64().unwrap();
        if j["kind"] == "mcu" {
            assert_eq!(ram, session, "{board}: weights stay in flash");
        } else {
            assert_eq!(
                ram,
                session + file_bytes,
                "{board}: weights in the page cache"
            );
        }
        let t = j["threads"].as_u64().unwrap();
        assert!(t >= 1 && t <= j["cpu"]["cores"].as_u64().unwrap());
        for s in [&j["sources"]["bandwidth"], &j["sources"]["efficiency"]] {
            assert!(
                !s.as_str().unwrap().is_empty(),
                "{board}: every figure has a source"
            );
        }
    }
    let layout = |b: &str| plan_json(&["-m", ms, "--board", b])["layout"].clone();
    assert_eq!(layout("rpi4"), "arm-neon");
    assert_eq!(layout("rpi5"), "arm-dotprod");
    assert_eq!(layout("jetson-orin-nano"), "arm-dotprod");
    assert_eq!(layout("stm32h7"), "none");
    assert_eq!(layout("rp2350"), "none");
}

#[test]
fn smollm2_fits_linux_boards_but_not_microcontrollers() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    for board in ["rpi5", "rpi4", "rpi-zero-2w", "jetson-orin-nano", "host"] {
        let j = plan_json(&["-m", ms, "--board", board]);
        assert_eq!(j["fits"], true, "{board}: {j}");
        assert_eq!(j["suggestions"], serde_json::json!([]), "{board}");
    }
    // A 92 MB file in 2 MB of flash and a 4096-position cache in 512 KB of SRAM: no.
    for board in ["stm32h7", "rp2350"] {
        let j = plan_json(&["-m", ms, "--board", board]);
        assert_eq!(j["fits"], false, "{board}");
        assert!(
            j["storage_bytes"].as_u64().unwrap() > j["storage_available_bytes"].as_u64().unwrap()
        );
        let s = j["suggestions"].as_array().unwrap();
        // Each suggestion was checked: none of them makes a 135M model fit a microcontroller.
        assert!(!s.is_empty());
        assert!(s.iter().all(|s| s["fits"] == false), "{board}: {s:?}");
        assert!(s.iter().any(|s| s["change"] == "--kv-type q8_0"));
    }
    // The Zero 2 W's 352 MB usable at the model's full 8192 context with an f32 cache (361 MiB):
    // no; int8 KV (96 MiB) would fit, and so would a shorter context.
    let j = plan_json(&[
        "-m",
        ms,
        "--board",
        "rpi-zero-2w",
        "-c",
        "8192",
        "--kv-type",
        "f32",
    ]);
    assert_eq!(j["fits"], false, "{j}");
    let s = j["suggestions"].as_array().unwrap();
    let kv = s.iter().find(|s| s["change"] == "--kv-type q8_0").unwrap();
    assert_eq!(kv["fits"], true);
    assert!(kv["ram_bytes"].as_u64().unwrap() < j["ram_bytes"].as_u64().unwrap());
    let ctx = s
        .iter()
        .find(|s| s["change"].as_str().unwrap().starts_with("-c "))
        .unwrap();
    assert_eq!(ctx["fits"], true);
    // int8 KV halves the session's cache and so the RAM needed.
    let f16 = plan_json(&["-m", ms, "--board", "rpi5", "-c", "4096"]);
    let q8 = plan_json(&[
        "-m",
        ms,
        "--board",
        "rpi5",
        "-c",
        "4096",
        "--kv-type",
        "q8_0",
    ]);
    assert!(q8["ram_bytes"].as_u64().unwrap() < f16["ram_bytes"].as_u64().unwrap());
    assert_eq!(q8["kv_type"], "q8_0");
    // A faster board predicts more tokens per second for the same file.
    let tok_s = |b: &str| {
        plan_json(&["-m", ms, "--board", b])["pred_tok_s"]
            .as_f64()
            .unwrap()
    };
    assert!(tok_s("rpi5") > tok_s("rpi4") && tok_s("rpi4") > tok_s("rpi-zero-2w"));
}

#[test]
fn a_short_context_fits_a_board_where_the_full_one_does_not() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    // A profile with the weights' RAM plus 8 MiB: the planner's longest fitting context must fit
    // and one position more must not.
    let dir = std::env::temp_dir().join(format!("edgelm-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file_bytes = std::fs::metadata(&m).unwrap().len();
    let rpi5 = std::fs::read_to_string(edgelm_suite::repo_root().join("boards/profiles/rpi5.toml"))
        .unwrap();
    let ram = file_bytes + (8 << 20) + (384 << 20);
    let tight = rpi5.replace("ram_bytes = 8589934592", &format!("ram_bytes = {ram}"));
    assert_ne!(tight, rpi5);
    let p = dir.join("tight.toml");
    std::fs::write(&p, tight).unwrap();
    let ps = p.to_str().unwrap();
    let j = plan_json(&["-m", ms, "--board", ps, "-c", "8192"]);
    assert_eq!(j["fits"], false);
    assert_eq!(j["board"], "tight");
    let s = j["suggestions"].as_array().unwrap();
    let c = s
        .iter()
        .find_map(|s| s["change"].as_str()?.strip_prefix("-c ").map(String::from))
        .expect("a context suggestion");
    assert_eq!(
        plan_json(&["-m", ms, "--board", ps, "-c", &c])["fits"],
        true
    );
    let more = (c.parse::<usize>().unwrap() + 1).to_string();
    assert_eq!(
        plan_json(&["-m", ms, "--board", ps, "-c", &more])["fits"],
        false
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_or_bad_profiles_are_clear_errors() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    fails_with(
        &["plan", "-m", ms, "--board", "rpi9"],
        &[
            "unknown board 'rpi9'",
            "known boards:",
            "rpi5",
            "stm32h7",
            "host",
        ],
    );
    let dir = std::env::temp_dir().join(format!("edgelm-plan-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nkind = \"linux\"\n[cpu]\ncores = \"four\"\n",
    )
    .unwrap();
    fails_with(
        &["plan", "-m", ms, "--board", bad.to_str().unwrap()],
        &["board profile", "bad.toml", "is not valid", "known boards:"],
    );
    let rpi5 = std::fs::read_to_string(edgelm_suite::repo_root().join("boards/profiles/rpi5.toml"))
        .unwrap();
    std::fs::write(&bad, rpi5.replace("arm-dotprod", "arm-sve")).unwrap();
    fails_with(
        &["plan", "-m", ms, "--board", bad.to_str().unwrap()],
        &["cpu.layout \"arm-sve\" is not one of", "arm-i8mm"],
    );
    fails_with(
        &["plan", "-m", "/nonexistent.gguf", "--board", "rpi5"],
        &["model file not found"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn prediction_weighs_types_and_adds_the_per_layer_cost() {
    let m = smollm2();
    let ms = m.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("edgelm-plan-eff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rpi5 = std::fs::read_to_string(edgelm_suite::repo_root().join("boards/profiles/rpi5.toml"))
        .unwrap();
    let old = "by_threads = { 1 = 0.9, 2 = 0.9, 4 = 0.9 }";
    assert!(rpi5.contains(old));
    let profile = |extra: &str| {
        let p = dir.join("eff.toml");
        std::fs::write(&p, rpi5.replace(old, &format!("{old}\n{extra}"))).unwrap();
        plan_json(&["-m", ms, "--board", p.to_str().unwrap(), "-c", "512"])
    };
    let by_threads = |j: &Value| -> Vec<f64> {
        j["pred_tok_s_by_threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["tok_s"].as_f64().unwrap())
            .collect()
    };
    let base = profile("");
    let j = profile("by_type = { q4_1 = 0.5, q8_0 = 2.0 }\nlayer_us = { 1 = 100.0, 4 = 50.0 }");
    let layers = j["n_layers"].as_f64().unwrap();
    assert_eq!(layers, 30.0);
    // Seconds per token from the plain roofline, then each type's bytes rescaled by its factor.
    let types = j["weight_types"].as_array().unwrap();
    let bpt = j["bytes_per_token"].as_f64().unwrap();
    let weighted: f64 = bpt
        - types
            .iter()
            .map(|t| {
                t["bytes_per_token"].as_f64().unwrap()
                    * (1.0 - 1.0 / t["efficiency"].as_f64().unwrap())
            })
            .sum::<f64>();
    let eff = |ty: &str| {
        types.iter().find(|t| t["type"] == ty).unwrap()["efficiency"]
            .as_f64()
            .unwrap()
    };
    assert_eq!((eff("q4_1"), eff("q8_0"), eff("f32")), (0.5, 2.0, 1.0));
    for ((&b, &p), us) in by_threads(&base)
        .iter()
        .zip(&by_threads(&j))
        .zip([100.0, 0.0, 50.0])
    {
        let want = 1.0 / (weighted / bpt / b + layers * us * 1e-6);
        assert!((p - want).abs() < 1e-9 * want, "{p} vs {want}");
    }
    // Per thread count, `by_type_threads` overrides `by_type` where it has the type.
    let t = profile("by_type = { q4_1 = 0.5 }\nby_type_threads = { 2 = { q4_1 = 0.25 } }");
    let q4_1 = t["weight_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["type"] == "q4_1")
        .unwrap();
    let at: Vec<(u64, f64)> = q4_1["efficiency_by_threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["threads"].as_u64().unwrap(),
                e["efficiency"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(at, [(1, 0.5), (2, 0.25), (4, 0.5)]);
    let share = q4_1["bytes_per_token"].as_f64().unwrap() / bpt;
    for ((&b, &p), e) in by_threads(&base)
        .iter()
        .zip(&by_threads(&t))
        .zip([0.5, 0.25, 0.5])
    {
        let want = 1.0 / ((1.0 - share + share / e) / b);
        assert!((p - want).abs() < 1e-9 * want, "{p} vs {want}");
    }
    let bad = |extra: &str, needles: &[&str]| {
        let p = dir.join("bad-eff.toml");
        std::fs::write(&p, rpi5.replace(old, &format!("{old}\n{extra}"))).unwrap();
        fails_with(&["plan", "-m", ms, "--board", p.to_str().unwrap()], needles);
    };
    bad(
        "layer_us = { 8 = 1.0 }",
        &["efficiency.layer_us: 8 threads on a 4-core board"],
    );
    bad(
        "layer_us = { 1 = -1.0 }",
        &["efficiency.layer_us: -1 at 1 threads"],
    );
    bad(
        "by_type = { q9_9 = 1.0 }",
        &["efficiency.by_type: \"q9_9\" is not a ggml type name"],
    );
    bad(
        "by_type_threads = { x = { q4_1 = 1.0 } }",
        &["efficiency.by_type_threads: key \"x\" is not a thread count"],
    );
    bad(
        "by_type_threads = { 2 = { q4_1 = 0.0 } }",
        &["efficiency.by_type_threads.2: 0 for q4_1 must be a positive number"],
    );
    std::fs::remove_dir_all(&dir).ok();
}
