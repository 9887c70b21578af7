//! The KV cache element type on the real SmolLM2 file: an f32 cache with f32 attention against the
//! default f16 cache (llama.cpp's flash-attention numerics), the float64 numpy forward and
//! llama.cpp's own f32-cache run (tests/reference/smollm2-q4_1/).

use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::{Gguf, Value as Meta};
use edgelm::kv::KvType;
use edgelm::model::ModelVec;
use edgelm::quant::{dequantize_row, GgmlType};
use edgelm_suite::{
    argmax, floats, ids, logprob, read, reference, smollm2, teacher_forced, teacher_forced_logits,
    teacher_forced_logits_f32kv,
};

/// Argmax per position and log-probability of the next token, from full logits.
fn argmax_logprobs(logits: &[Vec<f32>], tokens: &[u32]) -> (Vec<u32>, Vec<f64>) {
    assert_eq!(logits.len(), tokens.len());
    let am = logits.iter().map(|l| argmax(l)).collect();
    let lp = logits
        .iter()
        .zip(&tokens[1..])
        .map(|(l, &t)| logprob(l, t))
        .collect();
    (am, lp)
}

/// Mean, 99th percentile and max of |a − b|.
fn stats(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    assert_eq!(a.len(), b.len());
    let mut d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    d.sort_by(f64::total_cmp);
    (mean, d[d.len() * 99 / 100], d[d.len() - 1])
}

fn agreement(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

fn line(name: &str, s: (f64, f64, f64), agree: usize) {
    eprintln!("  {name:28} {:.2e} {:.2e} {:.2e}  {agree}", s.0, s.1, s.2);
}

#[test]
fn f32_cache_on_smollm2_q4_1_stays_within_llama_cpps_noise() {
    let np = reference("smollm2-q4_1/teacher_forced_numpy_f64.json");
    let ll32 = reference("smollm2-q4_1/teacher_forced_f32kv_nofa.json");
    let tokens = ids(&np["tokens"]);
    assert_eq!(tokens, ids(&ll32["tokens"]));
    let bytes = read(&smollm2());
    let g = Gguf::parse(&bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();

    let (am16, lp16) = teacher_forced(&model, &tokens);
    let (am32, lp32) = argmax_logprobs(&teacher_forced_logits_f32kv(&model, &tokens), &tokens);
    let (np_am, np_lp) = (ids(&np["argmax"]), floats(&np["logprob_next"]));
    let (ll_am, ll_lp) = (ids(&ll32["argmax"]), floats(&ll32["logprob_next"]));
    let n = tokens.len();
    let s_ff = stats(&lp32, &lp16);
    let s16 = stats(&lp16, &np_lp);
    let s32 = stats(&lp32, &np_lp);
    let s_ll = stats(&lp32, &ll_lp);
    eprintln!(
        "SmolLM2 Q4_1, |Δ logprob_next| over {} predictions (mean, p99, max), argmax agreement of {n}:",
        n - 1
    );
    line("f32 KV vs f16 KV", s_ff, agreement(&am32, &am16));
    line("f16 KV vs numpy f64", s16, agreement(&am16, &np_am));
    line("f32 KV vs numpy f64", s32, agreement(&am32, &np_am));
    line("f32 KV vs llama.cpp f32 KV", s_ll, agreement(&am32, &ll_am));
    let ppl = |lp: &[f64]| (-lp.iter().sum::<f64>() / lp.len() as f64).exp();
    let (p16, p32, pnp) = (ppl(&lp16), ppl(&lp32), ppl(&np_lp));
    eprintln!("  perplexity: f16 KV {p16:.4}, f32 KV {p32:.4}, numpy f64 {pnp:.4}");

    // The weight kernels round activations to Q8_1 as llama.cpp does, which moves log-probabilities
    // by ~0.05 nats on average (see the README there); the cache type only reshuffles that noise.
    // So these are the statistical bounds llama.cpp's own f16 and f32 settings meet against each
    // other and numpy (measured on x86-64: f32 vs f16 mean 0.060, 488/512; f32 vs numpy 0.051,
    // 497/512; f16 vs numpy 0.053, 490/512; f32 vs llama.cpp f32 0.060, 494/512). The exact
    // comparison is the dequantized test below.
    let at_least_95 = |agree: usize| agree * 100 >= 95 * n;
    assert!(
        s_ff.0 < 0.1 && at_least_95(agreement(&am32, &am16)),
        "f32 vs f16 {s_ff:?}"
    );
    assert!(
        s32.0 < 0.08 && at_least_95(agreement(&am32, &np_am)),
        "f32 vs numpy {s32:?}"
    );
    assert!(
        s_ll.0 < 0.1 && at_least_95(agreement(&am32, &ll_am)),
        "f32 vs llama.cpp {s_ll:?}"
    );
    // Window perplexity: llama.cpp default 19.6586, f32 KV 19.6139, numpy 19.5369.
    assert!((p32 / pnp - 1.0).abs() < 0.01, "{p32} vs {pnp}");
}

/// `g` with every tensor dequantized to F32 (exactly: the numbers the numpy forward computes with)
/// and its scalar metadata. F32 weights take f32 activations, so nothing is quantized on the way.
fn dequantized(g: &Gguf<'_>) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        let v = match v {
            Meta::U32(x) => MetaValue::U32(x),
            Meta::F32(x) => MetaValue::F32(x),
            Meta::Bool(x) => MetaValue::Bool(x),
            Meta::Str(x) => MetaValue::Str(x.into()),
            _ => continue,
        };
        w.set(k, v);
    }
    let mut data: Vec<Vec<u8>> = Vec::new();
    for t in g.tensors() {
        let mut v = vec![0f32; t.n_elements() as usize];
        dequantize_row(t.ty, t.data, &mut v).unwrap();
        w.add_tensor(t.name, GgmlType::F32, &t.dims[..t.n_dims])
            .unwrap();
        data.push(v.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    let data: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    w.to_bytes(&data).unwrap()
}

/// With the weights' quantization noise out of the way (dequantized to F32 exactly, so activations
/// stay f32), the f32 cache is the float64 forward up to f32 rounding, and the f16 cache is not.
#[test]
fn f32_cache_on_dequantized_smollm2_matches_float64() {
    let np = reference("smollm2-q4_1/teacher_forced_numpy_f64.json");
    let bytes = read(&smollm2());
    let file = dequantized(&Gguf::parse(&bytes).unwrap());
    drop(bytes);
    let g = Gguf::parse(&file).unwrap();
    let model = ModelVec::load(&g).unwrap();
    assert!(model.layers().iter().all(|l| l.wq.ty == GgmlType::F32));
    assert_eq!(model.output.ty, GgmlType::F32);
    // Causal attention: the first n positions do not depend on the tokens after them.
    let n = 256;
    let tokens = &ids(&np["tokens"])[..n];
    let np_lp = &floats(&np["logprob_next"])[..n - 1];
    let np_am = &ids(&np["argmax"])[..n];
    let (am16, lp16) = argmax_logprobs(&teacher_forced_logits(&model, tokens, KvType::F16), tokens);
    let (am32, lp32) = argmax_logprobs(&teacher_forced_logits(&model, tokens, KvType::F32), tokens);
    let s16 = stats(&lp16, np_lp);
    let s32 = stats(&lp32, np_lp);
    let s_ff = stats(&lp32, &lp16);
    eprintln!(
        "SmolLM2 dequantized to F32, |Δ logprob_next| over {} predictions (mean, p99, max), argmax agreement of {n}:",
        n - 1
    );
    line("f16 KV vs numpy f64", s16, agreement(&am16, np_am));
    line("f32 KV vs numpy f64", s32, agreement(&am32, np_am));
    line("f32 KV vs f16 KV", s_ff, agreement(&am32, &am16));
    // Measured on x86-64: f32 KV at most 1.3e-5 from float64 (whose file is rounded to 1e-6), f16
    // KV 1.1e-2 (README: K/V rounded to f16 alone moves the float64 forward by up to 7.4e-3; the
    // f16 flash-attention accumulator adds to that).
    assert!(s32.2 < 1e-4, "f32 KV is {:.2e} from float64", s32.2);
    assert!(
        s16.2 > 1e-3 && s16.2 > 100.0 * s32.2,
        "f16 {s16:?} vs f32 {s32:?}"
    );
    assert!(s_ff.2 < 3e-2, "f32 and f16 caches {:.2e} apart", s_ff.2);
    assert_eq!(agreement(&am32, np_am), n);
}

/// Length of the common prefix of two token lists.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The q8_0 cache (`--kv-type q8_0`) on the real SmolLM2 file: against our f16 cache, and against
/// llama.cpp's own q8_0 cache with flash attention (`teacher_forced_q8kv.json`), whose numerics
/// it mirrors: keys dotted with a Q8_0 query in integers, values accumulated in f32.
#[test]
fn q8_0_cache_on_smollm2_q4_1_matches_llama_cpps_q8_0_cache() {
    let llq8 = reference("smollm2-q4_1/teacher_forced_q8kv.json");
    let ll16 = reference("smollm2-q4_1/teacher_forced.json");
    let tokens = ids(&llq8["tokens"]);
    assert_eq!(tokens, ids(&ll16["tokens"]));
    let bytes = read(&smollm2());
    let g = Gguf::parse(&bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();
    let n = tokens.len();

    let (am16, lp16) = argmax_logprobs(
        &teacher_forced_logits(&model, &tokens, KvType::F16),
        &tokens,
    );
    let (am8, lp8) = argmax_logprobs(
        &teacher_forced_logits(&model, &tokens, KvType::Q8_0),
        &tokens,
    );
    let (ll_am, ll_lp) = (ids(&llq8["argmax"]), floats(&llq8["logprob_next"]));
    let s_ll = stats(&lp8, &ll_lp);
    let s_16 = stats(&lp8, &lp16);
    let first = lp8
        .iter()
        .zip(&ll_lp)
        .position(|(a, b)| (a - b).abs() > 2e-6)
        .unwrap_or(n - 1);
    eprintln!(
        "SmolLM2 Q4_1, |Δ logprob_next| over {} predictions (mean, p99, max), argmax agreement of {n}:",
        n - 1
    );
    line(
        "q8_0 KV vs llama.cpp q8_0 KV",
        s_ll,
        agreement(&am8, &ll_am),
    );
    line("q8_0 KV vs f16 KV", s_16, agreement(&am8, &am16));
    let ppl = |lp: &[f64]| (-lp.iter().sum::<f64>() / lp.len() as f64).exp();
    let (p8, p16, pll) = (ppl(&lp8), ppl(&lp16), ppl(&ll_lp));
    eprintln!(
        "  identical to llama.cpp (6 decimals) for the first {first} predictions; perplexity: q8_0 KV {p8:.4}, f16 KV {p16:.4}, llama.cpp q8_0 KV {pll:.4}"
    );
    // llama.cpp's numerics (its Hadamard rotations included) while its KV view stays under 512
    // cells, as for the f16 cache in tests/agreement.rs. Measured on x86-64: identical for all 511
    // predictions, perplexity 19.5686 for both; against our f16 cache mean |Δ| 0.058, 493/512
    // argmax, perplexity 19.5686 vs 19.5361 (+0.17%): within the 0.060 llama.cpp's own f16 and
    // f32 settings differ by (see above).
    assert!(first >= 256, "first difference from llama.cpp at {first}");
    assert!(agreement(&am8, &ll_am) * 100 >= 98 * n);
    assert!((p8 / pll - 1.0).abs() < 0.005, "{p8} vs llama.cpp {pll}");
    assert!((p8 / p16 - 1.0).abs() < 0.02, "{p8} vs f16 {p16}");
    assert!(s_16.0 < 0.08 && agreement(&am8, &am16) * 100 >= 95 * n);

    // Greedy continuations of the reference prompts: q8_0 against f16, 16 tokens each.
    let r = reference("smollm2-q4_1/greedy.json");
    let prompts = r["prompts"].as_array().unwrap();
    let (mut same, mut prefix) = (0, 0);
    for p in prompts {
        let prompt = ids(&p["prompt_tokens"]);
        let g16 = edgelm_suite::greedy_with(&model, &prompt, 16, KvType::F16);
        let g8 = edgelm_suite::greedy_with(&model, &prompt, 16, KvType::Q8_0);
        // The f16 run is the reference's llama.cpp continuation (tests/agreement.rs).
        assert_eq!(g16, ids(&p["generated"]), "{}", p["name"]);
        let c = common_prefix(&g8, &g16);
        eprintln!(
            "  greedy {:14} q8_0 = f16 for {c:2}/16 tokens",
            p["name"].as_str().unwrap()
        );
        same += usize::from(c == 16);
        prefix += c;
    }
    eprintln!(
        "  greedy: {same}/{} prompts identical for 16 tokens, {prefix}/{} tokens before the first difference",
        prompts.len(),
        16 * prompts.len()
    );
    // Measured: 4/8 identical, 93/128 tokens before the first difference (the code prompt's first
    // token is a near tie). llama.cpp's own f16 and f32 caches: 5/8 and 103/128 (greedy.json).
    assert!(
        same * 2 >= prompts.len(),
        "{same} of {} identical",
        prompts.len()
    );
    assert!(
        prefix * 2 >= 16 * prompts.len(),
        "{prefix} tokens in common"
    );
}
