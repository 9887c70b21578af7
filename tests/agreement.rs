//! Agreement with llama.cpp on the real SmolLM2 file, from reference outputs committed under
//! tests/reference/smollm2-q4_1/ (made by scripts/reference/smollm2_reference.py).

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::plan::plan;
use edgelm::session::{alloc_memory, Session};
use edgelm_suite::{argmax, ids, read, reference, smollm2, teacher_forced};
use serde_json::Value;

/// Our logits over the reference text, one token at a time.
fn teacher_forced_logprobs(tokens: &[u32]) -> (Vec<u32>, Vec<f64>) {
    let bytes = read(&smollm2());
    let g = Gguf::parse(&bytes).unwrap();
    teacher_forced(&ModelVec::load(&g).unwrap(), tokens)
}

/// Argmax agreement, our perplexity, llama.cpp's, the largest |Δ logprob_next|, and the first
/// position where they differ beyond the reference's 6-decimal rounding.
fn compare(r: &Value, am: &[u32], lp: &[f64]) -> (f64, f64, f64, f64, usize) {
    let ref_am = ids(&r["argmax"]);
    let ref_lp: Vec<f64> = r["logprob_next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let agree = am.iter().zip(&ref_am).filter(|(a, b)| a == b).count() as f64 / am.len() as f64;
    let ppl = (-lp.iter().sum::<f64>() / lp.len() as f64).exp();
    let ref_ppl = (-ref_lp.iter().sum::<f64>() / ref_lp.len() as f64).exp();
    let max_d = lp
        .iter()
        .zip(&ref_lp)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let first = lp
        .iter()
        .zip(&ref_lp)
        .position(|(a, b)| (a - b).abs() > 2e-6)
        .unwrap_or(lp.len());
    (agree, ppl, ref_ppl, max_d, first)
}

/// Teacher forcing over 512 tokens of the reference text against llama.cpp decoding the same
/// tokens one at a time (its generation path, which is how the runtime evaluates them).
#[test]
fn teacher_forced_argmax_and_perplexity_match_llama_cpp() {
    // On the threaded path: the pool gives the same bits at any thread count (tests/threads.rs),
    // so this also checks parity with llama.cpp at 2 threads; the other tests run at whatever
    // count is set when they start, which changes nothing in their results.
    assert!(edgelm::set_threads(2));
    let r = reference("smollm2-q4_1/teacher_forced.json");
    let tokens = ids(&r["tokens"]);
    assert!(tokens.len() >= 256);
    let (am, lp) = teacher_forced_logprobs(&tokens);
    let (agree, ppl, ref_ppl, max_d, exact) = compare(&r, &am, &lp);
    eprintln!(
        "teacher-forced, {} tokens, vs llama.cpp token by token: argmax agreement {:.2}%, ppl {ppl:.4} vs {ref_ppl:.4} ({:+.4}%), max |dlogprob| {max_d:.2e}, identical for the first {exact} predictions",
        tokens.len(),
        100.0 * agree,
        100.0 * (ppl / ref_ppl - 1.0)
    );
    // llama.cpp's whole-sequence batch takes another attention kernel; llama.cpp itself agrees
    // with its token-by-token run on 492/512 positions. Reported for the record, loosely bounded.
    let b = reference("smollm2-q4_1/teacher_forced_batched.json");
    let (b_agree, _, b_ppl, b_max, _) = compare(&b, &am, &lp);
    eprintln!(
        "  vs llama.cpp's batched prompt path: argmax agreement {:.2}%, ppl vs {b_ppl:.4} ({:+.3}%), max |dlogprob| {b_max:.3}",
        100.0 * b_agree,
        100.0 * (ppl / b_ppl - 1.0)
    );
    assert!(agree >= 0.98, "argmax agreement {agree}");
    assert!(
        (ppl / ref_ppl - 1.0).abs() <= 0.01,
        "ppl {ppl} vs {ref_ppl}"
    );
    assert!(b_agree >= 0.94 && (ppl / b_ppl - 1.0).abs() <= 0.01);
    // On x86-64 Linux (glibc's libm) our numerics are llama.cpp's bit for bit while its KV view
    // stays under 512 cells (it pads the view to 256; from 512 on, with two threads, it splits
    // attention over the KV range and merges partial sums in another order).
    if cfg!(target_arch = "x86_64") && cfg!(target_os = "linux") {
        assert!(
            exact >= 255,
            "logits differ from llama.cpp's from position {exact}"
        );
    }
}

/// Greedy continuations of several prompts: ours equal llama.cpp's, or diverge only at a near-tie
/// (llama.cpp's top two within 0.15 in log-probability) and never before the 8th token otherwise.
#[test]
fn greedy_continuations_match_llama_cpp() {
    let r = reference("smollm2-q4_1/greedy.json");
    let bytes = read(&smollm2());
    let g = Gguf::parse(&bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();
    let tok = edgelm::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let prompts = r["prompts"].as_array().unwrap();
    assert!(prompts.len() >= 5);
    let mut exact = 0;
    for p in prompts {
        let name = p["name"].as_str().unwrap();
        let prompt_ids = ids(&p["prompt_tokens"]);
        assert_eq!(
            tok.encode(p["prompt"].as_str().unwrap(), true, true),
            prompt_ids,
            "{name}: tokens"
        );
        let want = ids(&p["generated"]);
        let n_ctx = prompt_ids.len() + want.len() + 1;
        let plan = plan(&model.config, n_ctx).unwrap();
        let mut mem = alloc_memory(&plan);
        let mut s = Session::new(&model, &mut mem, n_ctx).unwrap();
        let mut logits = s.eval_all(&prompt_ids).unwrap().to_vec();
        let mut got = Vec::new();
        for (step, &w) in want.iter().enumerate() {
            let t = argmax(&logits);
            got.push(t);
            if t != w {
                let top = p["steps"][step]["top5"].as_array().unwrap();
                let lp = |id: u32| {
                    top.iter()
                        .find(|c| c[0] == id)
                        .map(|c| c[1].as_f64().unwrap())
                };
                let gap = lp(w).unwrap() - lp(t).unwrap_or(f64::NEG_INFINITY);
                eprintln!("{name}: diverges at step {step} ({t} vs llama.cpp {w}), llama.cpp gap {gap:.4}");
                assert!(
                    gap <= 0.15,
                    "{name}: step {step}: we chose {t}, llama.cpp {w} (gap {gap})"
                );
                break;
            }
            logits = s.eval(t).unwrap().to_vec();
        }
        if got == want {
            exact += 1;
        }
        eprintln!("{name}: {:?}", tok.decode(&got, false));
    }
    eprintln!(
        "greedy: {exact}/{} prompts identical for {} tokens",
        prompts.len(),
        r["n_generate"]
    );
    let capital = &prompts.iter().find(|p| p["name"] == "capital").unwrap()["generated"];
    assert_eq!(tok.decode(&ids(capital)[..1], false), " Paris");
}

/// Perplexity by llama-perplexity's method on the reference text, within 1% of llama.cpp's.
#[test]
fn perplexity_matches_llama_cpp() {
    let r = reference("smollm2-q4_1/perplexity.json");
    let text = edgelm_suite::reference_text();
    let bytes = read(&smollm2());
    let g = Gguf::parse(&bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();
    let tok = edgelm::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let tokens = tok.encode(&text, true, false);
    assert_eq!(
        tokens.len() as u64,
        r["n_text_tokens"].as_u64().unwrap(),
        "text tokens"
    );
    let res = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["ctx"] == 128)
        .unwrap();
    let n_ctx = 128;
    let (ppl, count) = edgelm_suite::perplexity(&model, &tokens, n_ctx);
    let want = res["ppl"].as_f64().unwrap();
    eprintln!(
        "perplexity -c {n_ctx}: ours {ppl:.4} vs llama.cpp {want:.4} ({:+.3}%) over {count} tokens",
        100.0 * (ppl / want - 1.0)
    );
    assert_eq!(count as u64, res["scored_tokens"].as_u64().unwrap());
    assert!((ppl / want - 1.0).abs() <= 0.01);
}
