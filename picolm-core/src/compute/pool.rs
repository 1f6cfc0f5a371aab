//! The persistent worker pool of a model: threads are started once, at load, and reused by every matmul and by
//! attention. Backed by rayon's thread pool (work split by rows with `par_chunks_mut`).
//!
//! The number of threads is clamped to the CPUs the process may run on ([`ThreadCount`]). More threads than CPUs
//! never help and used to make runs crawl: every parallel step (hundreds per token) split its rows into
//! `8 × threads` tasks and woke that many workers, and each woken worker spins through rayon's short yield loop
//! before it sleeps, so with `-j 999` on 2 cores almost all CPU time went to waking and yielding threads. Idle
//! workers yield a few dozen times and then park on a condition variable (rayon's sleep protocol), so waiting
//! workers do not keep a core busy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rayon::ThreadPool;
use thiserror::Error;

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

/// A fixed-size pool of compute threads. Dropping it joins its threads: once a model is freed, none of its
/// threads runs any more (a C host may unload the library right after `picolm_model_free`, and leak checkers see
/// every thread's memory returned).
pub struct ComputePool {
    pool: Option<ThreadPool>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    threads: ThreadCount,
    /// Held by the caller whose work is on the pool: callers from outside the pool run one at a time (see
    /// [`ComputePool::run_busy`]).
    serial: Mutex<()>,
}

impl Drop for ComputePool {
    fn drop(&mut self) {
        // Dropped from one of its own workers (a task that held the last reference): joining would wait for
        // ourselves; the workers then exit in the background as rayon's do.
        if self.on_worker() {
            return;
        }
        // Dropping rayon's pool tells its workers to exit once idle; then wait for each of them.
        drop(self.pool.take());
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            // A worker that panicked has already reported it; there is nothing left to clean up.
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

    fn named(threads: ThreadCount, name: &'static str) -> Result<ComputePool, PoolError> {
        let workers = Arc::new(Mutex::new(Vec::with_capacity(threads.used)));
        let spawned = workers.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.used)
            .spawn_handler(move |t| {
                let handle = std::thread::Builder::new().name(format!("{name}-{}", t.index())).spawn(|| t.run())?;
                spawned.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| PoolError(e.to_string()))?;
        Ok(ComputePool { pool: Some(pool), workers, threads, serial: Mutex::new(()) })
    }

    /// Whether the calling thread is one of this pool's workers (inside work that the pool runs).
    fn on_worker(&self) -> bool {
        self.pool.as_ref().is_some_and(|p| p.current_thread_index().is_some())
    }

    /// Number of worker threads.
    pub fn n_threads(&self) -> usize {
        self.threads.used
    }

    /// The request, the available CPUs and the threads started.
    pub fn threads(&self) -> ThreadCount {
        self.threads
    }

    /// Runs `f` on the pool: parallel iterators inside `f` use exactly this pool's threads.
    ///
    /// Callers from outside the pool (sessions of one model on several threads share its pool) take turns: each
    /// call has the whole pool while `f` runs. A call from inside `f` (one of this pool's workers) runs at once.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let pool = self.pool.as_ref().expect("the pool lives until drop");
        if self.on_worker() {
            return pool.install(f);
        }
        // A caller that panicked inside `f` left nothing half-done in `()`: the lock is taken regardless.
        let _turn = self.serial.lock().unwrap_or_else(|e| e.into_inner());
        pool.install(f)
    }

    /// As [`ComputePool::run`], with the other workers kept awake until `f` returns: between its parallel steps
    /// they poll for work instead of going to sleep.
    ///
    /// A forward pass is hundreds of short parallel steps (per layer: norms, the activation conversion of each
    /// matmul, its tiles, attention, ...) separated by the tail of the previous step and by serial work. Rayon's
    /// idle workers yield a few dozen times and then park, so almost every step began by waking a parked worker,
    /// a futex wake that in a virtual machine is an inter-processor interrupt and costs tens of microseconds
    /// during which the step runs on fewer threads (llama.cpp's workers spin between the operations of a graph
    /// for the same reason). Here each other worker runs a poller for the duration of `f` that executes the steps'
    /// jobs as soon as they are queued. The workers burn their CPU while `f` runs serial work, so use this for a
    /// bounded compute (one forward call), not for anything that waits on I/O or on the caller.
    ///
    /// A poller must never run on top of a step it would wait for: it spins until `f` finishes, and a step
    /// suspended beneath it on its worker's stack would keep `f` from finishing (a livelock seen in
    /// `concurrent_busy_runs_on_one_pool_all_finish`). Two things rule that out: callers take turns as in
    /// [`ComputePool::run`] (no other caller's work is on the pool), and `f` starts only when every other worker is
    /// inside its poller (a worker that stole one of `f`'s first jobs before it took its poller would run the poller
    /// nested above that job). A call from inside `f` runs without pollers.
    pub fn run_busy<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if self.on_worker() {
            return self.run(f);
        }
        self.run(|| {
            if rayon::current_num_threads() <= 1 {
                return f();
            }
            let owner = rayon::current_thread_index();
            let others = rayon::current_num_threads() - 1;
            let done = AtomicBool::new(false);
            let started = AtomicUsize::new(0);
            rayon::scope(|s| {
                // One poller in each worker's own queue (a broadcast is not stolen), this one's included.
                s.spawn_broadcast(|_, ctx| {
                    if owner != Some(ctx.index()) {
                        started.fetch_add(1, Ordering::AcqRel);
                        poll_until(&done);
                    }
                });
                // Set on return and on unwind: the scope waits for its pollers before it returns or re-raises
                // a panic of `f`, so they must stop in both cases.
                let _stop = SetOnDrop(&done);
                // Each worker is idle at its top level (callers take turns) and takes its poller at once.
                let mut idle = 0u32;
                while started.load(Ordering::Acquire) < others {
                    idle_wait(&mut idle);
                }
                f()
            })
        })
    }
}

/// One idle poll of a spinning wait: a spin-loop hint, and every [`POLLS_PER_OS_YIELD`]-th time a yield of the
/// CPU to the operating system. `idle` counts the consecutive idle polls of the caller's wait.
fn idle_wait(idle: &mut u32) {
    *idle = idle.wrapping_add(1);
    if idle.is_multiple_of(POLLS_PER_OS_YIELD) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Idle polls between two yields of the CPU to the operating system: a poller gives way to other runnable threads
/// now and then (a machine with more busy threads than CPUs) without giving up its readiness for long.
const POLLS_PER_OS_YIELD: u32 = 256;

/// The poller of [`ComputePool::run_busy`] on a worker other than the one running `f`: executes the pool's queued
/// jobs until `done` is set.
fn poll_until(done: &AtomicBool) {
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => idle = 0,
            _ => idle_wait(&mut idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

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
        // The fuzzer's leak checker found the workers of dropped models still alive (rayon lets them exit in the
        // background): after the drop, none may be left.
        for _ in 0..20 {
            let pool = ComputePool::named(ThreadCount::with_available(2, 2), "pool-join-test").unwrap();
            assert_eq!(pool.run(|| (0..1000).into_par_iter().sum::<u64>()), 499500);
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
        assert_eq!(pool.run(rayon::current_num_threads), cpus, "parallel work is split for the clamped count");
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
        let states = pool.run_busy(|| {
            v.par_chunks_mut(256).for_each(|c| c.iter_mut().for_each(|x| *x = x.sqrt() + 1.0));
            // Serial work far longer than rayon's idle yield loop: a plain `run`'s other worker parks meanwhile.
            let mut states = Vec::new();
            for _ in 0..10 {
                std::thread::sleep(std::time::Duration::from_millis(30));
                states = thread_states("pool-busy-test");
            }
            // The parallel step after the serial work still sees both workers.
            let sum: f32 = v.par_chunks(1024).map(|c| c.iter().sum::<f32>()).sum();
            assert_eq!(sum, (1 << 16) as f32 * 2.0);
            states
        });
        // This worker reads the states (running); the other one polls (running or runnable), never asleep.
        assert_eq!(states, ['R', 'R'], "a worker went to sleep during a busy run");
    }

    #[test]
    fn busy_runs_return_their_result_and_stop_polling() {
        for threads in [1, 2, 3] {
            let pool = ComputePool::named(ThreadCount::with_available(threads, threads), "pool-stop-test").unwrap();
            for _ in 0..50 {
                assert_eq!(pool.run_busy(|| (0..1000u64).into_par_iter().sum::<u64>()), 499500);
            }
            let mut states = Vec::new();
            for _ in 0..50 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                states = thread_states("pool-stop-test");
                if states.len() == threads && states.iter().all(|&s| s == 'S') {
                    break;
                }
            }
            assert!(states.iter().all(|&s| s == 'S'), "pollers outlived their busy run: {states:?}");
        }
    }

    #[test]
    fn concurrent_busy_runs_on_one_pool_all_finish() {
        // Sessions of one model on several threads share its pool: a poller may run another caller's whole
        // busy run, and each must still finish with its own result.
        for threads in [2, 3] {
            let pool = ComputePool::named(ThreadCount::with_available(threads, threads), "pool-share-test").unwrap();
            std::thread::scope(|s| {
                let pool = &pool;
                for caller in 0..4u64 {
                    s.spawn(move || {
                        for i in 0..200u64 {
                            let got =
                                pool.run_busy(|| (0..1000u64).into_par_iter().map(|v| v * caller + i).sum::<u64>());
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
            pool.run_busy(|| {
                let _: u64 = (0..1000u64).into_par_iter().sum();
                panic!("inside the busy run")
            })
        }));
        assert!(r.is_err());
        assert_eq!(pool.run_busy(|| (0..1000u64).into_par_iter().sum::<u64>()), 499500);
    }

    #[test]
    fn idle_workers_sleep_instead_of_spinning() {
        let pool = ComputePool::named(ThreadCount::with_available(2, 2), "pool-idle-test").unwrap();
        let mut v = vec![1.0f32; 1 << 16];
        for _ in 0..20 {
            pool.run(|| v.par_chunks_mut(256).for_each(|c| c.iter_mut().for_each(|x| *x = x.sqrt() + 1.0)));
        }
        // After a short yield loop the workers must park (state S), not stay runnable (R).
        let mut states = Vec::new();
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            states = thread_states("pool-idle-test");
            if states.len() == 2 && states.iter().all(|&s| s == 'S') {
                return;
            }
        }
        panic!("idle pool workers are not asleep: states {states:?}");
    }
}
