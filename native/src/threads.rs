//! Which rayon pool a batch runs on: one pool per thread count, chosen per calling thread.
//!
//! An `Engine(workers=N)` binds the Python thread that runs its batches to a pool of N
//! threads (`bind`), so `--workers N` sets how many cores a party uses. Every batch runs
//! inside its pool (`install`), even with one thread: a parallel iterator started outside
//! any pool would run on rayon's global pool, which has a thread per core.

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

/// Run `work` on the pool of `threads` threads (taken from the caller's binding before the
/// GIL is released).
pub fn run<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    pool(threads.max(1)).install(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_uses_exactly_the_bound_thread_count() {
        for threads in [1, 3] {
            let used = run(threads, rayon::current_num_threads);
            assert_eq!(used, threads);
        }
    }
}
