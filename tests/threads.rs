//! Threads change the speed, never the numbers: SmolLM2's full logits are bit-identical at 1, 2
//! and 3 threads (rows are split in contiguous parts, and each row is one dot product whatever
//! thread computes it). One test in this binary: the thread count is process-wide.

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::plan::plan;
use edgelm::session::{alloc_memory, Session};
use edgelm::tokenizer::Tokenizer;
use edgelm_suite::{argmax, read, smollm2};

/// The logits after each prompt token and each of `n_gen` greedy tokens, as bits.
fn logits_at(model: &ModelVec<'_>, prompt: &[u32], n_gen: usize, threads: usize) -> Vec<Vec<u32>> {
    assert!(edgelm::set_threads(threads));
    assert_eq!(edgelm::threads::current(), threads);
    let n_ctx = prompt.len() + n_gen;
    let p = plan(&model.config, n_ctx).unwrap();
    let mut mem = alloc_memory(&p);
    let mut s = Session::new(model, &mut mem, n_ctx).unwrap();
    let mut all = Vec::new();
    let mut next = 0;
    for i in 0..n_ctx {
        let t = if i < prompt.len() { prompt[i] } else { next };
        let logits = s.eval(t).unwrap();
        next = argmax(logits);
        all.push(logits.iter().map(|x| x.to_bits()).collect());
    }
    all
}

#[test]
fn logits_are_bit_identical_at_1_2_and_3_threads() {
    let bytes = read(&smollm2());
    let g = Gguf::parse(&bytes).unwrap();
    let model = ModelVec::load(&g).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let prompt = tok.encode(
        "The history of the printing press begins in the fifteenth century, when Johannes \
         Gutenberg combined movable metal type with a screw press.",
        true,
        false,
    );
    assert!(prompt.len() >= 24, "{} prompt tokens", prompt.len());
    let one = logits_at(&model, &prompt, 24, 1);
    assert_eq!(one[0].len(), model.config.n_vocab);
    for threads in [2, 3] {
        let other = logits_at(&model, &prompt, 24, threads);
        for (pos, (a, b)) in one.iter().zip(&other).enumerate() {
            let diff = a.iter().zip(b).position(|(x, y)| x != y);
            assert!(
                diff.is_none(),
                "-t {threads}: position {pos}, logit {diff:?} differs from -t 1"
            );
        }
        assert_eq!(one.len(), other.len());
    }
    assert!(edgelm::set_threads(1));
}
