//! edgelm on a Cortex-M4F (qemu's mps2-an386): the GGUF image is linked into flash and read in
//! place; the KV cache and scratch live in one static buffer whose size build.rs took from the
//! runtime's plan. The generated text goes to UART0; the log (prompt ids, generated ids, plan)
//! and the exit status go through semihosting, which is how scripts/test-firmware reads them.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod generate;

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicUsize, Ordering};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint, hprintln};
use embedded_alloc::LlffHeap;

/// Constants build.rs derived from the model image (N_LAYER, N_CTX, PLAN_BYTES, ...).
mod image {
    include!(concat!(env!("OUT_DIR"), "/image.rs"));
}
use image::*;

/// Alignment for the image and the buffer: GGUF tensor data is aligned to 32 within the file,
/// and the runtime's plan carves 64-byte aligned slices.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// The model, in flash: an immutable static lands in `.rodata`, which cortex-m-rt's link.x places
/// in FLASH, and it is only ever read through a shared reference (never copied to RAM).
static MODEL: Aligned<[u8; IMAGE_BYTES]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.gguf")));

/// KV cache + scratch + sampler candidates: exactly the plan's bytes, in `.bss`.
static mut MEM: Aligned<[u8; PLAN_BYTES]> = Aligned([0; PLAN_BYTES]);

/// A heap that remembers its high-water mark, so the log can state what the tokenizer needs.
struct PeakHeap {
    heap: LlffHeap,
    peak: AtomicUsize,
}

// SAFETY: every call is forwarded to `LlffHeap`, a correct allocator; the peak is bookkeeping only.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { self.heap.alloc(layout) };
        self.peak.fetch_max(self.heap.used(), Ordering::Relaxed);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

/// The tokenizer's tables (vocabulary index, merges) and the generator's small strings; the
/// forward pass, KV cache and sampler never allocate.
#[global_allocator]
static HEAP: PeakHeap = PeakHeap {
    heap: LlffHeap::empty(),
    peak: AtomicUsize::new(0),
};
static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("edgelm-fw: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[entry]
fn main() -> ! {
    // SAFETY: runs once, first thing, before any allocation; HEAP_MEM is used by nothing else.
    unsafe { HEAP.heap.init(addr_of_mut!(HEAP_MEM) as usize, HEAP_BYTES) };
    // SAFETY: `main` runs once and never returns, so this is the only reference to MEM ever made.
    let mem: &'static mut [u8] = unsafe { &mut (*addr_of_mut!(MEM)).0 };
    let image: &'static [u8] = &MODEL.0;
    hprintln!(
        "edgelm-fw: image {} B at {:#010x} (flash), buffer {} B at {:#010x} (ram), n_ctx {}",
        image.len(),
        image.as_ptr() as usize,
        mem.len(),
        mem.as_ptr() as usize,
        N_CTX
    );

    let mut uart = console::CmsdkUart::uart0();
    let mut ids = [0u32; N_PREDICT];
    let on_prompt = |p: &[u32]| {
        hprint!("prompt_tokens:");
        for id in p {
            hprint!(" {}", id);
        }
        hprintln!("");
    };
    let r = generate::run::<N_LAYER, _>(
        image, mem, N_CTX, PROMPT, N_PREDICT, &mut uart, on_prompt, &mut ids,
    );
    match r {
        Ok(rep) => {
            // The UART text may not end a line; on a shared terminal the log starts a fresh one.
            hprintln!("");
            hprint!("tokens:");
            for id in &ids[..rep.n_gen] {
                hprint!(" {}", id);
            }
            hprintln!("");
            hprintln!(
                "plan: kv {} scratch {} sampler {} total {} (static buffer {})",
                rep.plan.kv_bytes,
                rep.plan.scratch_bytes,
                rep.plan.sampler_bytes,
                rep.plan.total_bytes,
                PLAN_BYTES
            );
            hprintln!(
                "heap: peak {} B of {} (tokenizer tables), {} B still used",
                HEAP.peak.load(Ordering::Relaxed),
                HEAP_BYTES,
                HEAP.heap.used()
            );
            hprintln!("stop: {:?}", rep.stop);
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(e) => {
            hprintln!("edgelm-fw: error: {}", e);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {}
}
