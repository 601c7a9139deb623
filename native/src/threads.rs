//! Which rayon pool a batch runs on: one pool per thread count, chosen per calling thread.
//!
//! An `Engine(workers=N)` binds the Python thread that runs its batches to a pool of N
//! threads (`bind`), so `--workers N` sets how many cores a party uses. One thread runs the
//! batch on the calling thread itself: no pool, no extra OS thread.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

thread_local! {
    static BOUND: Cell<usize> = const { Cell::new(0) };
}

/// Every core the OS reports (at least 1).
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Bind the calling thread to `threads` threads (0: every core); returns the previous binding.
pub fn bind(threads: usize) -> usize {
    BOUND.with(|bound| bound.replace(threads))
}

/// The thread count batches started from the calling thread use.
pub fn current() -> usize {
    match BOUND.with(Cell::get) {
        0 => available(),
        n => n,
    }
}

fn pool(threads: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    pools
        .entry(threads)
        .or_insert_with(|| {
            Arc::new(
                ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("cleanroom-native-{i}"))
                    .build()
                    .expect("the OS refused to start a rayon thread"),
            )
        })
        .clone()
}

/// Run `work` on the calling thread's pool (`threads` taken from the caller, before any
/// thread switch), or inline when it is one thread.
pub fn run<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    if threads <= 1 {
        work()
    } else {
        pool(threads).install(work)
    }
}
