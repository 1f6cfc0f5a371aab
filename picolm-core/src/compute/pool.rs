//! The persistent worker pool of a model: threads are started once, at load, and reused by every matmul, norm and
//! attention step. A fork-join pool built for the forward pass's pattern (as ggml's thread pool and the original C
//! PicoLM's pthreads): `n - 1` workers plus the calling thread. A parallel step is a job over `n` task indices
//! handed out one at a time by an atomic counter (whoever is free takes the next, which balances uneven tasks); the
//! caller takes tasks too and returns when all of them are finished. Between steps the workers poll for a while
//! and then sleep on a condition variable; during [`ComputePool::run_busy`] (one forward pass) they keep polling, so
//! that none of the hundreds of steps of a token begins by waking a sleeping thread.
//!
//! The number of threads is clamped to the CPUs the process may run on ([`ThreadCount`]). More threads than CPUs
//! never help and used to make runs crawl: with `-j 999` on 2 cores almost all CPU time went to waking and yielding
//! threads.

mod step;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use thiserror::Error;

use step::Shared;
pub use step::{chunks, chunks_mut, Chunks, ChunksMut, Parts};

/// The worker threads could not be started (the operating system refused a thread).
#[derive(Debug, Error)]
#[error("could not start the compute threads: {0}")]
pub struct PoolError(String);

/// CPUs this process may run on: the affinity mask and the cgroup CPU quota are respected (what
/// `std::thread::available_parallelism` reports); at least 1.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// How many compute threads a request gets: `0` means one per available CPU, and a larger request is clamped to
/// the available CPUs (the model reports it as a load warning, `LoadWarning::ThreadsClamped`, so that front ends can tell the user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadCount {
    /// Threads asked for (`0` = one per CPU).
    pub requested: usize,
    /// CPUs available to the process when the pool was made.
    pub available: usize,
    /// Threads started.
    pub used: usize,
}

impl ThreadCount {
    /// Resolves a request against the CPUs available to this process.
    pub fn resolve(requested: usize) -> ThreadCount {
        ThreadCount::with_available(requested, available_cpus())
    }

    /// Resolves a request against `available` CPUs (at least 1).
    pub fn with_available(requested: usize, available: usize) -> ThreadCount {
        let available = available.max(1);
        let used = if requested == 0 { available } else { requested.min(available) };
        ThreadCount { requested, available, used }
    }

    /// Whether the request was lowered.
    pub fn clamped(&self) -> bool {
        self.requested > self.used
    }
}

/// A fixed-size pool of compute threads: [`ComputePool::n_threads`] minus one workers, the thread that runs work
/// on it being the last. Dropping it joins its workers: once a model is freed, none of its threads runs any more
/// (a C host may unload the library right after `picolm_model_free`, and leak checkers see every thread's memory
/// returned).
pub struct ComputePool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: ThreadCount,
    /// Held by the caller whose work is on the pool: callers from outside the pool run one at a time.
    turn: Mutex<()>,
}

impl Drop for ComputePool {
    fn drop(&mut self) {
        self.shared.exit();
        for w in self.workers.drain(..) {
            // Tasks' panics are caught and handed to their step's caller: a worker has nothing left to report.
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputePool").field("threads", &self.threads).finish()
    }
}

impl ComputePool {
    /// Starts worker threads for a request of `n_threads` (`0` means one per available CPU; more than the
    /// available CPUs is clamped, see [`ComputePool::threads`]).
    pub fn new(n_threads: usize) -> Result<ComputePool, PoolError> {
        ComputePool::named(ThreadCount::resolve(n_threads), "picolm-worker")
    }

    /// Starts the workers, named `{name}-1` to `{name}-{used - 1}`.
    fn named(threads: ThreadCount, name: &str) -> Result<ComputePool, PoolError> {
        let mut pool = ComputePool {
            shared: Arc::new(Shared::default()),
            workers: Vec::with_capacity(threads.used - 1),
            threads,
            turn: Mutex::new(()),
        };
        for i in 1..threads.used {
            let shared = pool.shared.clone();
            let spawned = std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || shared.worker());
            // On an error the workers started so far are joined by the pool's drop.
            pool.workers.push(spawned.map_err(|e| PoolError(e.to_string()))?);
        }
        Ok(pool)
    }

    /// Number of threads that run parallel steps (the workers and the caller).
    pub fn n_threads(&self) -> usize {
        self.threads.used
    }

    /// The request, the available CPUs and the threads started.
    pub fn threads(&self) -> ThreadCount {
        self.threads
    }

    /// Runs `f` on the calling thread with the pool at its disposal: the parallel steps `f` starts through its
    /// [`Parallel`] use the workers and the calling thread.
    ///
    /// Callers from outside the pool (sessions of one model on several threads share its pool) take turns: each
    /// call has the whole pool while `f` runs. A call from inside work on this pool (from `f`, or from a task of one
    /// of its steps) runs `f` at once with a [`Parallel`] that runs every step serially on the calling thread.
    pub fn run<R>(&self, f: impl FnOnce(&Parallel<'_>) -> R) -> R {
        if self.shared.is_current() {
            return f(&Parallel { shared: None, threads: 1, not_sync: PhantomData });
        }
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        let _inside = self.shared.enter();
        let shared = (self.threads.used > 1).then_some(&*self.shared);
        f(&Parallel { shared, threads: self.threads.used, not_sync: PhantomData })
    }

    /// As [`ComputePool::run`], with the workers kept polling until `f` returns instead of going to sleep between
    /// its steps.
    ///
    /// A forward pass is hundreds of short parallel steps (per layer: norms, the activation conversion of each
    /// matmul, its tiles, attention, ...) separated by the tail of the previous step and by serial work. A step that
    /// began by waking a sleeping worker would pay a futex wake, which in a virtual machine is an inter-processor
    /// interrupt and costs tens of microseconds during which the step runs on fewer threads (llama.cpp's workers
    /// spin between the operations of a graph for the same reason). The workers burn their CPU while `f` runs
    /// serial work, so use this for a bounded compute (one forward call), not for anything that waits on I/O or on
    /// the caller.
    pub fn run_busy<R>(&self, f: impl FnOnce(&Parallel<'_>) -> R) -> R {
        self.run(|par| match par.shared {
            Some(shared) => {
                shared.set_busy(true);
                // Ends the busy run on return and on unwind.
                let _idle = BusyRun(shared);
                f(par)
            }
            None => f(par),
        })
    }
}

/// Ends a busy run when dropped.
struct BusyRun<'a>(&'a Shared);

impl Drop for BusyRun<'_> {
    fn drop(&mut self) {
        self.0.set_busy(false);
    }
}

/// The pool of a [`ComputePool::run`] as its `f` sees it: starts parallel steps. Only the thread that holds the
/// pool's turn has one (it is neither `Send` nor `Sync`, so tasks cannot start steps of their own).
pub struct Parallel<'a> {
    /// `None`: every step runs serially on the calling thread (a pool of one thread, or a nested run).
    shared: Option<&'a Shared>,
    threads: usize,
    not_sync: PhantomData<*const ()>,
}

impl Parallel<'_> {
    /// Number of threads the steps run on (1 when they run serially).
    pub fn n_threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i, part)` for each part of `parts` (tasks in any order, on any of the pool's threads) and returns
    /// when all are finished; a panic of a task reaches the caller once the others have finished or been skipped.
    /// `parts` is chunks of a slice ([`chunks`], [`chunks_mut`]) or a pair of such, zipped (as many parts as the
    /// shorter side has).
    pub fn for_each<P: Parts>(&self, parts: P, f: impl Fn(usize, P::Part) + Sync) {
        step::for_each(self.shared, parts, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `0 + 1 + ... + (n - 1)` as a parallel step of `par`: each task sums a chunk.
    fn parallel_sum(par: &Parallel<'_>, n: u64) -> u64 {
        let values: Vec<u64> = (0..n).collect();
        let mut partial = vec![0u64; values.len().div_ceil(16)];
        par.for_each((chunks_mut(&mut partial, 1), chunks(&values, 16)), |_, (p, v)| p[0] = v.iter().sum());
        partial.iter().sum()
    }

    /// Adds one to each of `v`'s values, a chunk of 256 per task.
    fn parallel_increment(par: &Parallel<'_>, v: &mut [f32]) {
        par.for_each(chunks_mut(v, 256), |_, c| c.iter_mut().for_each(|x| *x += 1.0));
    }

    /// The kernel's flag of a task that has begun to exit (`PF_EXITING`, set first thing in `do_exit`).
    const PF_EXITING: u64 = 0x4;

    /// Threads of this process whose name starts with `prefix` and that have not begun to exit. A joined thread can
    /// still be listed in `/proc/self/task` for a moment: `pthread_join` returns when the kernel clears the thread's
    /// id, before the task is released, and a test that counted it failed now and then under load.
    fn live_threads_named(prefix: &str) -> usize {
        let live = |task: std::path::PathBuf| -> Option<bool> {
            let comm = std::fs::read_to_string(task.join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            // After the name in parentheses: state, ppid, pgrp, session, tty, tpgid, flags.
            let flags: u64 = stat.rsplit_once(')')?.1.split_whitespace().nth(6)?.parse().ok()?;
            Some(comm.starts_with(prefix) && flags & PF_EXITING == 0)
        };
        std::fs::read_dir("/proc/self/task")
            .map(|d| d.filter_map(|e| live(e.ok()?.path())).filter(|&l| l).count())
            .unwrap_or(0)
    }

    #[test]
    fn dropping_the_pool_joins_its_threads() {
        // The fuzzer's leak checker found the workers of dropped models still alive (the thread pool used before
        // let them exit in the background): after the drop, none may be left.
        for threads in [1, 2, 3, 1, 2, 3] {
            let pool = ComputePool::named(ThreadCount::with_available(threads, threads), "pool-join-test").unwrap();
            assert_eq!(pool.run(|par| parallel_sum(par, 1000)), 499500);
            drop(pool);
            assert_eq!(live_threads_named("pool-join-test"), 0, "a worker outlived its pool");
        }
    }

    #[test]
    fn requests_above_the_cpus_are_clamped_and_reported() {
        let t = ThreadCount::with_available(999, 2);
        assert_eq!((t.used, t.clamped()), (2, true));
        let zero = ThreadCount::with_available(0, 3);
        assert_eq!((zero.used, zero.clamped()), (3, false));
        let fits = ThreadCount::with_available(2, 4);
        assert_eq!((fits.used, fits.clamped()), (2, false));
        assert_eq!(ThreadCount::with_available(5, 0).used, 1);
    }

    #[test]
    fn a_pool_never_starts_more_threads_than_cpus() {
        let cpus = available_cpus();
        let pool = ComputePool::new(cpus + 997).unwrap();
        assert_eq!(pool.n_threads(), cpus);
        assert_eq!(pool.run(|par| par.n_threads()), cpus, "parallel work is split for the clamped count");
        assert!(pool.threads().clamped() && pool.threads().requested == cpus + 997);
        assert_eq!(ComputePool::new(0).unwrap().n_threads(), cpus);
        assert_eq!(ComputePool::new(u32::MAX as usize).unwrap().n_threads(), cpus);
    }

    /// Scheduler state letter of each live thread of this process whose name starts with `prefix`.
    fn thread_states(prefix: &str) -> Vec<char> {
        let mut states = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with(prefix) {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                // Field 3, after the parenthesised name: "pid (comm) S ...".
                if let Some(s) = stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()) {
                    states.push(s);
                }
            }
        }
        states
    }

    #[test]
    fn busy_runs_keep_the_other_workers_polling_through_serial_work() {
        let pool = ComputePool::named(ThreadCount::with_available(2, 2), "pool-busy-test").unwrap();
        let mut v = vec![1.0f32; 1 << 16];
        let states = pool.run_busy(|par| {
            parallel_increment(par, &mut v);
            // Serial work far longer than the workers' idle polling: a plain `run`'s worker sleeps meanwhile.
            let mut states = Vec::new();
            for _ in 0..10 {
                std::thread::sleep(std::time::Duration::from_millis(30));
                states = thread_states("pool-busy-test");
            }
            // The parallel step after the serial work still sees both workers.
            parallel_increment(par, &mut v);
            states
        });
        assert!(v.iter().all(|&x| x == 3.0));
        // The worker polls (running or runnable), never asleep.
        assert_eq!(states, ['R'], "a worker went to sleep during a busy run");
    }

    #[test]
    fn busy_runs_return_their_result_and_stop_polling() {
        for threads in [1, 2, 3] {
            let pool = ComputePool::named(ThreadCount::with_available(threads, threads), "pool-stop-test").unwrap();
            for _ in 0..50 {
                assert_eq!(pool.run_busy(|par| parallel_sum(par, 1000)), 499500);
            }
            let mut states = Vec::new();
            for _ in 0..50 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                states = thread_states("pool-stop-test");
                if states.len() == threads - 1 && states.iter().all(|&s| s == 'S') {
                    break;
                }
            }
            assert!(states.iter().all(|&s| s == 'S'), "pollers outlived their busy run: {states:?}");
        }
    }

    #[test]
    fn concurrent_busy_runs_on_one_pool_all_finish() {
        // Sessions of one model on several threads share its pool: they take turns, and each must finish with its
        // own result.
        for threads in [2, 3] {
            let pool = ComputePool::named(ThreadCount::with_available(threads, threads), "pool-share-test").unwrap();
            std::thread::scope(|s| {
                let pool = &pool;
                for caller in 0..4u64 {
                    s.spawn(move || {
                        for i in 0..200u64 {
                            let got = pool.run_busy(|par| parallel_sum(par, 1000) * caller + 1000 * i);
                            assert_eq!(got, 499500 * caller + 1000 * i);
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn a_panic_in_a_busy_run_reaches_the_caller_and_the_pool_still_works() {
        let pool = ComputePool::named(ThreadCount::with_available(2, 2), "pool-panic-test").unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run_busy(|par| {
                assert_eq!(parallel_sum(par, 1000), 499500);
                panic!("inside the busy run")
            })
        }));
        assert!(r.is_err());
        assert_eq!(pool.run_busy(|par| parallel_sum(par, 1000)), 499500);
    }

    #[test]
    fn a_panic_in_a_workers_task_reaches_the_caller_after_the_other_tasks() {
        let pool = ComputePool::named(ThreadCount::with_available(2, 2), "pool-task-panic").unwrap();
        let running = AtomicUsize::new(0);
        for _ in 0..3 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.run_busy(|par| {
                    let mut v = vec![0u8; 64];
                    par.for_each(chunks_mut(&mut v, 1), |_, _| {
                        running.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        let on_worker = std::thread::current().name().is_some_and(|n| n.starts_with("pool-task-panic"));
                        running.fetch_sub(1, Ordering::SeqCst);
                        // 64 tasks of a millisecond: the polling worker takes some of them.
                        assert!(!on_worker, "in a worker's task");
                    });
                })
            }));
            let payload = r.expect_err("the worker's panic reaches the caller");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"in a worker's task"));
            assert_eq!(running.load(Ordering::SeqCst), 0, "the step returned before all its tasks finished");
            assert_eq!(pool.run(|par| parallel_sum(par, 1000)), 499500);
        }
    }

    #[test]
    fn steps_hand_out_every_chunk_once_and_nested_runs_are_serial() {
        let pool = ComputePool::named(ThreadCount::with_available(3, 3), "pool-chunk-test").unwrap();
        pool.run(|par| {
            for (len, size) in [(0, 1), (1, 1), (7, 3), (64, 8), (1000, 7)] {
                let mut v = vec![0usize; len];
                let tags: Vec<usize> = (0..len + 5).collect();
                // Zipped with a longer slice: as many parts as the shorter side has.
                par.for_each((chunks_mut(&mut v, size), chunks(&tags, size)), |i, (c, t)| {
                    assert_eq!(t[0], i * size);
                    c.iter_mut().for_each(|x| *x += i + 1);
                });
                assert!(v.iter().enumerate().all(|(k, &x)| x == k / size + 1), "{len} by {size}: {v:?}");
            }
            // A run started from a task, or from the run itself, runs its steps on the calling thread.
            let mut nested = vec![0usize; 8];
            par.for_each(chunks_mut(&mut nested, 1), |_, n| {
                n[0] = pool.run(|inner| inner.n_threads() * 10 + parallel_sum(inner, 100) as usize / 4950);
            });
            assert_eq!(nested, [11; 8]);
            assert_eq!(pool.run(|inner| inner.n_threads()), 1);
        });
    }

    #[test]
    fn idle_workers_sleep_instead_of_spinning() {
        let pool = ComputePool::named(ThreadCount::with_available(2, 2), "pool-idle-test").unwrap();
        let mut v = vec![1.0f32; 1 << 16];
        for _ in 0..20 {
            pool.run(|par| parallel_increment(par, &mut v));
        }
        // After a short polling loop the worker must sleep (state S), not stay runnable (R).
        let mut states = Vec::new();
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            states = thread_states("pool-idle-test");
            if states.len() == 1 && states.iter().all(|&s| s == 'S') {
                return;
            }
        }
        panic!("idle pool workers are not asleep: states {states:?}");
    }
}
