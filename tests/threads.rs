//! Threads change the speed, never the numbers: SmolLM2's full logits are bit-identical at 1, 2
//! and 3 threads (rows are split in contiguous parts, and each row is one dot product whatever
//! thread computes it); and a threaded forward allocates nothing. One test in this binary: the
//! thread count and the allocation counter are process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::plan::plan;
use edgelm::session::{alloc_memory, Session};
use edgelm::tokenizer::Tokenizer;
use edgelm_suite::{argmax, read, smollm2};

/// The system allocator, counting allocations on every thread.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The logits after each prompt token and each of `n_gen` greedy tokens, as bits.
fn logits_at(model: &ModelVec<'_>, prompt: &[u32], n_gen: usize, threads: usize) -> Vec<Vec<u32>> {
    assert!(edgelm::set_threads(threads));
    assert_eq!(edgelm::threads::current(), threads);
    let n_ctx = prompt.len() + n_gen;
    let p = plan(&model.config, n_ctx).unwrap();
    let mut mem = alloc_memory(&p);
    let mut s = Session::new(model, &mut mem, n_ctx).unwrap();
    let mut all = vec![vec![0u32; model.config.n_vocab]; n_ctx];
    let mut next = 0;
    let mut before = ALLOCATIONS.load(Ordering::Relaxed);
    for (i, bits) in all.iter_mut().enumerate() {
        let t = if i < prompt.len() { prompt[i] } else { next };
        let logits = s.eval(t).unwrap();
        next = argmax(logits);
        for (b, x) in bits.iter_mut().zip(logits) {
            *b = x.to_bits();
        }
        if i == 0 {
            // New workers set up their thread-locals when they first run (after `set_threads`
            // returns, whenever the OS schedules them); the first token has run on every worker.
            before = ALLOCATIONS.load(Ordering::Relaxed);
        }
    }
    // The pool hands jobs over without allocating (rayon's did).
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        before,
        "-t {threads}: allocations"
    );
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
