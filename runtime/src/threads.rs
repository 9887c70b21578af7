//! A persistent pool of worker threads that splits matrix-vector products by rows.
//!
//! A decode step of a small model runs a couple of hundred products of 10–300 µs each, so handing
//! one to other threads must cost about a microsecond, not the tens of microseconds it takes to
//! wake a sleeping thread. Workers therefore poll a generation counter for a while after each job
//! ([`SPIN`]: pausing, and after a few µs also yielding the core now and then) and only then sleep
//! on a condition variable; the caller waits for the workers' parts the same way. An idle pool
//! costs no CPU once that spin is over. Allocation-free per job; nothing but `std`.
//!
//! A job has one part per thread, and each thread, the caller included, takes the next part not
//! yet taken until none is left. On a dedicated core every thread takes one; when the OS has
//! descheduled a worker (a busy machine), the caller takes its part instead of waiting for it.
//!
//! Results do not depend on the thread count: [`split`] gives each part contiguous rows, and
//! every output row is the same single dot product whatever thread computes it.

use core::cell::UnsafeCell;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::any::Any;
use std::borrow::ToOwned;
use std::boxed::Box;
use std::format;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::{self, JoinHandle};
use std::vec::Vec;

/// Polls of a shared counter before a waiting thread sleeps. A poll is one `pause` (14 ns on this
/// Sapphire Rapids host, up to ~40 ns on Skylake-X) or, after [`PURE_SPIN`], every
/// [`YIELD_EVERY`]th a yield (~0.3 µs), so this is ~0.5–1 ms: longer than the gaps between the
/// products of one token and between tokens, far shorter than a turn in a chat.
const SPIN: u32 = 20_000;
/// Polls that only pause (~3.5 µs): the wait for the other threads' last rows is usually shorter.
const PURE_SPIN: u32 = 256;
/// After [`PURE_SPIN`], one poll in this many yields the core: when the OS has put two of the
/// pool's threads on one core (other programs busy on the rest), a thread that only spins would
/// keep the other, whose part it waits for, off the core for a whole time slice.
const YIELD_EVERY: u32 = 32;

/// Waits between two polls of a shared counter (the `k`th poll).
#[inline]
fn backoff(k: u32) {
    if k >= PURE_SPIN && k.is_multiple_of(YIELD_EVERY) {
        thread::yield_now();
    } else {
        core::hint::spin_loop();
    }
}

/// A job's closure, type-erased so that workers can hold it; valid only while its `run` lasts.
#[derive(Clone, Copy)]
struct Job {
    data: *const (),
    call: unsafe fn(*const (), usize, usize),
}

/// The no-op job a pool starts with, before any [`Pool::run`].
unsafe fn no_job(_: *const (), _: usize, _: usize) {}

/// Calls the `F` that `data` points to as thread `i` of `n`.
///
/// # Safety
/// `data` must point to a live `F`.
unsafe fn call<F: Fn(usize, usize) + Sync>(data: *const (), i: usize, n: usize) {
    // SAFETY: the caller guarantees `data` points to a live `F`; `F: Sync`, so a shared
    // reference may be used from this thread.
    let f = unsafe { &*data.cast::<F>() };
    f(i, n);
}

/// State shared by the caller of [`Pool::run`] and the workers.
struct Shared {
    /// Threads including the caller.
    n: usize,
    /// Bumped once per job (and once at shutdown) to start the workers.
    gen: AtomicUsize,
    /// The current job; see the `Sync` impl for who may touch it when.
    job: UnsafeCell<Job>,
    /// The next part to take; `n` and beyond: none left.
    next: AtomicUsize,
    /// Parts finished in the current job.
    finished: AtomicUsize,
    shutdown: AtomicBool,
    /// The first panic of the current job's parts, re-raised by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Workers sleeping (or about to) on `wake`.
    sleepers: AtomicUsize,
    wake_lock: Mutex<()>,
    wake: Condvar,
    /// The caller sleeps (or is about to) on `done`.
    caller_asleep: AtomicBool,
    done_lock: Mutex<()>,
    done: Condvar,
}

// SAFETY: `job` is the only field that is not `Sync`, and its accesses never overlap. A thread
// reads it only after taking a part (index < n) from `next`; that read-modify-write reads the
// value `Pool::run` stored (Release) after writing `job`, or a later increment of it, so the
// write happens before the read. `Pool::run` (exclusive: it takes `&mut Pool`) writes `job` only
// when every part of the previous job has been taken (`next` ≥ n, so a late increment takes
// none and reads nothing) and finished: `finished` = n seen with Acquire, each part's thread
// having incremented it (Release) after its last use of the job. The closure the job points to
// is `Sync` and outlives the job (see `Pool::run`).
unsafe impl Sync for Shared {}
// SAFETY: the raw pointer in `job` is the only non-`Send` field; it is only dereferenced under
// the protocol above, from whatever thread, which `F: Sync` allows.
unsafe impl Send for Shared {}

/// Locks `m`; a panic elsewhere while it was held leaves nothing inconsistent here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Waits (spinning, then sleeping) until the generation differs from `seen`; returns it.
    fn wait_job(&self, seen: usize) -> usize {
        for k in 0..SPIN {
            let g = self.gen.load(Ordering::Acquire);
            if g != seen {
                return g;
            }
            backoff(k);
        }
        let mut guard = lock(&self.wake_lock);
        // Announce the sleep before the last look at `gen`; the caller bumps `gen` before it
        // looks at `sleepers` (both SeqCst), so one of the two sees the other.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let g = loop {
            let g = self.gen.load(Ordering::SeqCst);
            if g != seen {
                break g;
            }
            guard = self
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        g
    }

    /// Wakes sleeping workers; holding `wake_lock` means none is between its check and its wait.
    fn wake_all(&self) {
        let _g = lock(&self.wake_lock);
        self.wake.notify_all();
    }

    /// Waits (spinning, then sleeping) until every part of the current job has finished.
    fn wait_done(&self) {
        for k in 0..SPIN {
            if self.finished.load(Ordering::Acquire) == self.n {
                return;
            }
            backoff(k);
        }
        let mut guard = lock(&self.done_lock);
        // As in `wait_job`: the last part counts itself in `finished` before it looks at this.
        self.caller_asleep.store(true, Ordering::SeqCst);
        while self.finished.load(Ordering::SeqCst) != self.n {
            guard = self
                .done
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.caller_asleep.store(false, Ordering::Relaxed);
    }

    /// Takes and runs parts of the current job until none is left.
    fn take_parts(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Acquire);
            if i >= self.n {
                return;
            }
            // SAFETY: taking part `i` < n synchronized with the store that published this job,
            // and it is not rewritten before this part counts itself in `finished` (see the
            // `Sync` impl of `Shared`).
            let job = unsafe { *self.job.get() };
            // The job's data is the caller's, who re-raises the panic; the job does not touch
            // the pool's own state, which stays consistent.
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `job.data` points to the closure of the `Pool::run` that published the
                // job, which does not return before this part counts itself in `finished`.
                unsafe { (job.call)(job.data, i, self.n) }
            }));
            if let Err(p) = r {
                lock(&self.panic).get_or_insert(p);
            }
            // The last touch of the job: from here the caller may return and free it.
            if self.finished.fetch_add(1, Ordering::SeqCst) + 1 == self.n
                && self.caller_asleep.load(Ordering::SeqCst)
            {
                let _g = lock(&self.done_lock);
                self.done.notify_one();
            }
        }
    }

    /// A worker's life: take parts of each job until shutdown.
    fn work(&self) {
        let mut seen = 0;
        loop {
            seen = self.wait_job(seen);
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            self.take_parts();
        }
    }
}

/// `threads() - 1` worker threads plus the thread that calls [`Pool::run`].
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n - 1` worker threads (none for `n` ≤ 1); fails if the OS refuses a thread.
    pub fn new(n: usize) -> io::Result<Pool> {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            n,
            gen: AtomicUsize::new(0),
            job: UnsafeCell::new(Job {
                data: core::ptr::null(),
                call: no_job,
            }),
            // No part to take before the first job.
            next: AtomicUsize::new(n),
            finished: AtomicUsize::new(n),
            shutdown: AtomicBool::new(false),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            caller_asleep: AtomicBool::new(false),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
        });
        let mut pool = Pool {
            shared,
            workers: Vec::with_capacity(n - 1),
        };
        for i in 1..n {
            let s = Arc::clone(&pool.shared);
            // On failure `pool` drops here, which stops the workers already started.
            let h = thread::Builder::new()
                .name(format!("edgelm-{i}"))
                .spawn(move || s.work())?;
            pool.workers.push(h);
        }
        Ok(pool)
    }

    /// Threads a job runs on, the caller included.
    pub fn threads(&self) -> usize {
        self.shared.n
    }

    /// Runs `f(i, n)` for every part `i` in `0..n` (`n` = [`Pool::threads`]), each exactly once,
    /// on the pool's threads and this one, and returns when all have returned. A panic in any
    /// part is re-raised here, after all parts have finished.
    pub fn run<F: Fn(usize, usize) + Sync>(&mut self, f: &F) {
        let s = &*self.shared;
        let n = s.n;
        if n == 1 {
            f(0, 1);
            return;
        }
        // SAFETY: no thread reads `job` now: every part of the previous job was taken and
        // finished (the previous `run` waited for `finished` = n), or there was none; `&mut
        // self` excludes another `run`. `f` outlives the job: this function does not return,
        // even by unwinding, before every part is finished (`wait_done` below; the parts'
        // panics are caught, and nothing else between here and there unwinds).
        unsafe {
            *s.job.get() = Job {
                data: (f as *const F).cast(),
                call: call::<F>,
            };
        }
        s.finished.store(0, Ordering::Relaxed);
        // Opens the parts and publishes `job` and `finished` to whoever takes one.
        s.next.store(0, Ordering::Release);
        // SeqCst pairs with `sleepers` in `wait_job`.
        s.gen.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            s.wake_all();
        }
        s.take_parts();
        s.wait_done();
        if let Some(p) = lock(&s.panic).take() {
            panic::resume_unwind(p);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        s.gen.fetch_add(1, Ordering::SeqCst);
        s.wake_all();
        for h in self.workers.drain(..) {
            // Workers catch their jobs' panics, so they only end by returning.
            let _ = h.join();
        }
    }
}

/// The part of `0..len` that thread `i` of `n` takes: contiguous, starting at a multiple of
/// `align`; the parts of `i` in `0..n` tile `0..len` in order and differ by at most `align`.
pub fn split(len: usize, i: usize, n: usize, align: usize) -> Range<usize> {
    let (n, align) = (n.max(1), align.max(1));
    let units = len.div_ceil(align);
    let (per, extra) = (units / n, units % n);
    // The last `extra` parts take one unit more, so that the short last unit goes to one of them.
    let first_long = n - extra;
    let start = (i * per + i.saturating_sub(first_long)) * align;
    let end = start + (per + usize::from(i >= first_long)) * align;
    start.min(len)..end.min(len)
}

/// The process-wide pool behind [`crate::set_threads`]; `None` means one thread.
static POOL: Mutex<Option<Pool>> = Mutex::new(None);
/// The global pool's thread count, readable without the lock.
static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Threads the global pool runs jobs on (1 until [`crate::set_threads`] asks for more).
pub fn current() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Replaces the global pool by one of `n` threads (waiting for a running job, stopping the old
/// workers first); false if the threads could not be started, which leaves one thread. Must not
/// be called from inside a job.
pub fn set(n: usize) -> bool {
    let n = n.max(1);
    let mut pool = lock(&POOL);
    if pool.as_ref().map_or(1, Pool::threads) == n {
        return true;
    }
    THREADS.store(1, Ordering::Relaxed);
    *pool = None;
    if n == 1 {
        return true;
    }
    match Pool::new(n) {
        Ok(p) => {
            *pool = Some(p);
            THREADS.store(n, Ordering::Relaxed);
            true
        }
        Err(_) => false,
    }
}

/// Runs `f(i, n)` on the global pool (see [`Pool::run`]). While the pool is busy with another
/// caller's job — or this is a job calling `run` again — `f(0, 1)` runs here alone instead.
pub fn run<F: Fn(usize, usize) + Sync>(f: F) {
    if current() > 1 {
        let guard = match POOL.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut guard) = guard {
            if let Some(pool) = guard.as_mut() {
                pool.run(&f);
                return;
            }
        }
    }
    f(0, 1);
}

/// A slice handed to several threads, each of which touches only its own [`split`] part.
struct Parts<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: threads only build disjoint subslices of it (see `for_each_part`), and `T: Send`
// allows each subslice to be written from another thread.
unsafe impl<T: Send> Sync for Parts<T> {}

/// Splits each of `outs` over the global pool's threads ([`split`] with `align`) and calls
/// `f(k, first, part)` for each thread's `part` of `outs[k]`, which starts at element `first`.
/// One job for all of `outs`: products sharing an input cost one dispatch.
pub fn for_each_part<T: Send, const N: usize, F>(outs: [&mut [T]; N], align: usize, f: F)
where
    F: Fn(usize, usize, &mut [T]) + Sync,
{
    in_parts(outs, align, f, |job| run(job));
}

impl Pool {
    /// [`for_each_part`] on this pool.
    pub fn for_each_part<T: Send, const N: usize, F>(
        &mut self,
        outs: [&mut [T]; N],
        align: usize,
        f: F,
    ) where
        F: Fn(usize, usize, &mut [T]) + Sync,
    {
        in_parts(outs, align, f, |job| self.run(&job));
    }
}

/// The job of [`for_each_part`], handed to `run`, which must call it once for each `i` in `0..n`
/// (for one `n`) and return only when all calls have returned, as [`run`] and [`Pool::run`] do.
fn in_parts<T: Send, const N: usize, F, R>(outs: [&mut [T]; N], align: usize, f: F, run: R)
where
    F: Fn(usize, usize, &mut [T]) + Sync,
    R: FnOnce(&(dyn Fn(usize, usize) + Sync)),
{
    let parts = outs.map(|o| Parts {
        ptr: o.as_mut_ptr(),
        len: o.len(),
    });
    run(&|i, n| {
        for (k, p) in parts.iter().enumerate() {
            let r = split(p.len, i, n, align);
            if r.is_empty() {
                continue;
            }
            // SAFETY: `r` lies within `0..p.len`, and the parts of distinct `i` at the same `n`
            // are disjoint; `run` calls each `i` once. `outs` are borrowed mutably for this whole
            // call, which outlives the job, so nothing else touches them meanwhile.
            let part = unsafe { core::slice::from_raw_parts_mut(p.ptr.add(r.start), r.len()) };
            f(k, r.start, part);
        }
    });
}

/// The most threads [`default_threads`] proposes: measured only on 2 cores so far (2 beat 1 by
/// 1.4–2× in decode), and small models' products get too short to split much further.
pub const MAX_DEFAULT_THREADS: usize = 4;

/// Threads worth using by default: the physical cores this process may run on (as llama.cpp
/// counts them: SMT siblings share one core's vector units), at most [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    let available = thread::available_parallelism().map_or(1, |n| n.get());
    available
        .min(physical_cores().unwrap_or(available))
        .clamp(1, MAX_DEFAULT_THREADS)
}

/// Physical cores of the machine from Linux's sysfs (distinct sets of SMT siblings); `None`
/// where that is not readable.
fn physical_cores() -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if name
            .strip_prefix("cpu")
            .is_some_and(|n| n.parse::<usize>().is_ok())
        {
            let p = entry.path().join("topology/thread_siblings_list");
            if let Ok(siblings) = std::fs::read_to_string(p) {
                cores.insert(siblings.trim().to_owned());
            }
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::vec;

    #[test]
    fn split_tiles_the_range_in_aligned_parts() {
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 192, 576, 1000, 49152] {
            for n in 1..=5 {
                for align in [1, 4, 8] {
                    let mut next = 0;
                    let mut sizes = vec![];
                    for i in 0..n {
                        let r = split(len, i, n, align);
                        assert_eq!(r.start, next, "len {len} n {n} align {align} i {i}");
                        assert!(r.start == len || r.start.is_multiple_of(align));
                        next = r.end;
                        sizes.push(r.len());
                    }
                    assert_eq!(next, len);
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(hi - lo <= align, "len {len} n {n} align {align}: {sizes:?}");
                    assert!(split(len, n, n, align).is_empty());
                }
            }
        }
    }

    #[test]
    fn every_part_runs_once_per_job() {
        for n in 1..=4 {
            let mut pool = Pool::new(n).unwrap();
            assert_eq!(pool.threads(), n);
            let counts: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            let jobs: u64 = if cfg!(miri) { 30 } else { 2000 };
            for job in 0..jobs {
                pool.run(&|i, m| {
                    assert_eq!(m, n);
                    counts[i].fetch_add(job, Ordering::Relaxed);
                });
            }
            for c in &counts {
                assert_eq!(c.load(Ordering::Relaxed), (jobs - 1) * jobs / 2);
            }
        }
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let mut pool = Pool::new(3).unwrap();
        let hits = AtomicUsize::new(0);
        for _ in 0..3 {
            // Long enough for every thread to give up spinning.
            thread::sleep(std::time::Duration::from_millis(30));
            pool.run(&|_, _| {
                hits.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(hits.load(Ordering::Relaxed), 9);
        // A job whose parts on the workers outlast the caller's spin: the caller sleeps and is
        // woken (when the workers take parts before the caller has taken them all).
        let caller = thread::current().id();
        for _ in 0..3 {
            pool.run(&|_, _| {
                if thread::current().id() != caller {
                    thread::sleep(std::time::Duration::from_millis(30));
                }
                hits.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(hits.load(Ordering::Relaxed), 18);
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_and_the_pool_survives() {
        let mut pool = Pool::new(2).unwrap();
        for _ in 0..20 {
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.run(&|i, _| {
                    if i == 1 {
                        panic!("part fails");
                    }
                })
            }));
            let msg = r.unwrap_err();
            assert_eq!(msg.downcast_ref::<&str>(), Some(&"part fails"));
        }
        // The panic is re-raised only after the other part finished.
        let done = AtomicUsize::new(0);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i, _| {
                if i == 0 {
                    panic!("first part fails");
                }
                thread::sleep(std::time::Duration::from_millis(5));
                done.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert_eq!(
            r.unwrap_err().downcast_ref::<&str>(),
            Some(&"first part fails")
        );
        assert_eq!(done.load(Ordering::SeqCst), 1);
        let sum = AtomicUsize::new(0);
        pool.run(&|i, _| {
            sum.fetch_add(i + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3);
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads sysfs")]
    fn default_threads_is_within_the_cpus() {
        let t = default_threads();
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        assert!(
            (1..=MAX_DEFAULT_THREADS.min(cpus)).contains(&t),
            "{t} of {cpus}"
        );
        if let Some(p) = physical_cores() {
            assert!(t <= p, "{t} threads for {p} cores");
        }
    }

    #[test]
    fn for_each_part_writes_every_element_once() {
        // The global pool: this is the only test in this binary that resizes it.
        for n in [1, 2, 3, 1] {
            assert!(set(n));
            assert_eq!(current(), n);
            let mut a = vec![0u32; 1000];
            let mut b = [0u32; 37];
            for_each_part([&mut a[..], &mut b[..]], 8, |k, first, part| {
                for (j, v) in part.iter_mut().enumerate() {
                    *v += (k * 10_000 + first + j) as u32 + 1;
                }
            });
            assert!(a.iter().enumerate().all(|(j, &v)| v == j as u32 + 1));
            assert!(b
                .iter()
                .enumerate()
                .all(|(j, &v)| v == 10_000 + j as u32 + 1));
        }
    }
}
