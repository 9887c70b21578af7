//! edgelm: run small language models from GGUF bytes, zero-copy, with caller-provided memory.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod gguf;
pub mod kv;
pub mod model;
pub mod plan;
pub mod quant;
pub mod sampler;
pub mod session;
#[cfg(feature = "alloc")]
pub mod tokenizer;

/// Sets how many threads matrix-vector products use, once per process; false if already set.
#[cfg(feature = "threads")]
pub fn set_threads(n: usize) -> bool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .build_global()
        .is_ok()
}
