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
#[cfg(feature = "threads")]
pub mod threads;
#[cfg(feature = "alloc")]
pub mod tokenizer;
pub mod verify;

/// Sets how many threads matrix-vector products use (1 until called; may be called again to
/// resize); false if the OS refused the threads, which leaves one. See [`threads`].
#[cfg(feature = "threads")]
pub fn set_threads(n: usize) -> bool {
    threads::set(n)
}
