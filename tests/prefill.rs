//! Batched prefill (weights × a matrix of prompt activations) gives exactly the numbers of
//! token-by-token evaluation on the real SmolLM2 file and its Q8_0 and Q4_0 conversions: every
//! logit of every prompt position, bit for bit, at batch sizes that do and do not divide the
//! prompt, at 1 and 2 threads, and the greedy continuation is unchanged. One test in this binary:
//! the thread count is process-wide.

use edgelm::gguf::Gguf;
use edgelm::kv::KvType;
use edgelm::model::ModelVec;
use edgelm::plan::plan_batch;
use edgelm::session::{alloc_memory, Session};
use edgelm::tokenizer::Tokenizer;
use edgelm_suite::{argmax, read, smollm2};

/// Logits (as bits) after each prompt token, then `n_gen` greedy tokens.
fn run(
    model: &ModelVec<'_>,
    prompt: &[u32],
    n_batch: usize,
    n_gen: usize,
) -> (Vec<Vec<u32>>, Vec<u32>) {
    let n_ctx = prompt.len() + n_gen;
    let p = plan_batch(&model.config, n_ctx, KvType::F16, n_batch).unwrap();
    let mut mem = alloc_memory(&p);
    let mut s = Session::with_batch(model, &mut mem, n_ctx, KvType::F16, n_batch).unwrap();
    let mut all = Vec::new();
    s.eval_batch(prompt, 0, |i, l| {
        assert_eq!(i, all.len());
        all.push(l.iter().map(|x| x.to_bits()).collect::<Vec<u32>>());
    })
    .unwrap();
    assert_eq!(all.len(), prompt.len());
    let mut gen = Vec::new();
    let mut next = argmax(s.logits());
    for _ in 0..n_gen {
        gen.push(next);
        next = argmax(s.eval(next).unwrap());
    }
    (all, gen)
}

#[path = "support/convert.rs"]
mod convert_support;

#[test]
fn batched_prefill_equals_token_by_token() {
    check(&read(&smollm2()), "SmolLM2 Q4_1 (PyPI)");
    // The Q4_1 file's one Q8_0 tensor, the output head, always goes through matrix × vector:
    // conversions take the Q8_0 and Q4_0 matrix-product kernels through a whole model.
    for quant in ["q8_0", "q4_0"] {
        let (_dir, path) = convert_support::convert_hf("smollm2-135m", quant, None);
        check(&read(&path), &format!("SmolLM2 {quant}"));
    }
}

/// Every prompt position's logits and the greedy continuation of `bytes`' model, batched against
/// token by token, at 1 and 2 threads.
fn check(bytes: &[u8], label: &str) {
    let g = Gguf::parse(bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let prompt = tok
        .encode("The quick brown fox jumps over the lazy dog. In the beginning, the universe was created; this made many people angry.", true, true);
    assert!(prompt.len() > 20, "{} tokens", prompt.len());
    for threads in [1, 2] {
        assert!(edgelm::set_threads(threads));
        let (want, want_gen) = run(&model, &prompt, 1, 8);
        for n_batch in [2, 7, 32] {
            let (got, gen) = run(&model, &prompt, n_batch, 8);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g == w,
                    "{label} -t {threads} -b {n_batch}: logits after prompt token {i} differ"
                );
            }
            assert_eq!(
                gen, want_gen,
                "{label} -t {threads} -b {n_batch}: greedy tokens"
            );
        }
        // eval_all (the CLI's path) leaves the same last logits.
        let n_ctx = prompt.len();
        let p = plan_batch(&model.config, n_ctx, KvType::F16, 16).unwrap();
        let mut mem = alloc_memory(&p);
        let mut s = Session::with_batch(&model, &mut mem, n_ctx, KvType::F16, 16).unwrap();
        let last: Vec<u32> = s
            .eval_all(&prompt)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert!(
            &last == want.last().unwrap(),
            "{label} -t {threads}: eval_all's logits"
        );
        assert_eq!(s.pos(), prompt.len());
    }
}
