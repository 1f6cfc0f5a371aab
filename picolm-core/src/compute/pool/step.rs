//! The pool's shared state and its one `unsafe` part: a parallel step hands the workers a borrowed closure whose
//! lifetime is erased while its caller waits for them, and [`ChunksMut`] hands disjoint chunks of one `&mut`
//! slice to several threads.
//!
//! A step is `n` task indices (at most [`MAX_TASKS`]) claimed one at a time from a single 64-bit word, `claim`:
//! the task count in its high half, the next unclaimed index in its low half. Publishing a step is one store of
//! that word; claiming a task is one `fetch_add` of it, which tells the claimer both the index and the count of
//! the step it claimed in. A claim below the count is a task of the step currently published, and that step
//! cannot finish (nor its closure go away) before the task does: the closure pointer read after such a claim is
//! the step's own. Workers report their finished tasks in `done`; the caller of the step runs tasks too, then waits
//! until every task is finished before it returns.

use std::any::Any;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Most tasks of one step: the count and the next index share the 64-bit `claim` word, and the index may run past
/// the count by one claim per thread.
const MAX_TASKS: usize = (u32::MAX / 2) as usize;

/// The task of a step: called once with each index.
type Task<'a> = &'a (dyn Fn(usize) + Sync + 'a);

/// What the caller of a step and the workers share.
#[derive(Default)]
pub(super) struct Shared {
    /// The current step: task count in the high 32 bits, next unclaimed index in the low 32 bits.
    claim: AtomicU64,
    /// The current step's [`Task`]: points to a `Task` on the stack of the step's caller.
    task: AtomicPtr<()>,
    /// Tasks of the current step finished by the workers.
    done: AtomicUsize,
    /// A task of the current step panicked: the remaining ones are skipped.
    panicked: AtomicBool,
    /// The first panic of the current step, re-raised by its caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// During a busy run the workers poll for steps instead of going to sleep.
    busy: AtomicBool,
    /// Set when the pool is dropped: the workers return.
    exit: AtomicBool,
    /// Workers that are going to sleep or asleep on `wake`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

thread_local! {
    /// The [`Shared`] of the pool this thread works for: set for the whole life of a worker, and on a caller's
    /// thread while it runs work on a pool (`0`: none).
    static INSIDE: Cell<usize> = const { Cell::new(0) };
}

/// Consecutive idle polls after which a worker of a pool that is not in a busy run goes to sleep: it stays ready for
/// the next step of a run for a little while (about a hundred microseconds) and then gives its CPU back.
const POLLS_BEFORE_SLEEP: u32 = 4096;

/// Idle polls between two yields of the CPU to the operating system: a polling thread gives way to other runnable
/// threads now and then (a machine with more busy threads than CPUs) without giving up its readiness for long.
const POLLS_PER_OS_YIELD: u32 = 256;

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

/// Whether a `claim` word has an unclaimed task.
fn has_task(claim: u64) -> bool {
    (claim & u64::from(u32::MAX)) < claim >> 32
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing guarded here is left half-updated by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks the calling thread as working for a pool until dropped (restoring what it was before).
pub(super) struct Inside(usize);

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.set(self.0);
    }
}

impl Shared {
    /// Whether the calling thread already works for this pool (one of its workers, or the caller of a run on it).
    pub(super) fn is_current(&self) -> bool {
        INSIDE.get() == self as *const Shared as usize
    }

    /// Marks the calling thread as working for this pool until the guard is dropped.
    pub(super) fn enter(&self) -> Inside {
        Inside(INSIDE.replace(self as *const Shared as usize))
    }

    /// A worker's life: runs the tasks of each step until the pool is dropped; between steps it polls, and out of
    /// a busy run, after [`POLLS_BEFORE_SLEEP`] idle polls, sleeps until the next step.
    pub(super) fn worker(&self) {
        let _inside = self.enter();
        let mut idle = 0u32;
        loop {
            if has_task(self.claim.load(Ordering::Relaxed)) {
                let ran = self.run_tasks();
                if ran > 0 {
                    // Last access to the step: after this, its caller may return and free the task.
                    self.done.fetch_add(ran, Ordering::Release);
                }
                idle = 0;
            } else if self.exit.load(Ordering::Acquire) {
                return;
            } else if self.busy.load(Ordering::Relaxed) || idle < POLLS_BEFORE_SLEEP {
                idle_wait(&mut idle);
            } else {
                self.sleep();
                idle = 0;
            }
        }
    }

    /// Sleeps until there is a task, a busy run or an exit. The count in `sleepers` and the check of the flags are
    /// sequentially consistent with their setters' store and read of `sleepers` ([`Shared::wake_sleepers`]): either
    /// this sees the new state or the setter sees the sleeper and wakes it (under `sleep`, hence after the wait began).
    fn sleep(&self) {
        let mut guard = lock(&self.sleep);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !has_task(self.claim.load(Ordering::SeqCst))
            && !self.busy.load(Ordering::SeqCst)
            && !self.exit.load(Ordering::SeqCst)
        {
            guard = self.wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the sleeping workers; called after a sequentially consistent store of `claim`, `busy` or `exit`.
    fn wake_sleepers(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.sleep);
            self.wake.notify_all();
        }
    }

    /// Starts or ends a busy run: the workers poll between steps instead of sleeping while it lasts.
    pub(super) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::SeqCst);
        if busy {
            self.wake_sleepers();
        }
    }

    /// Tells the workers to return once idle.
    pub(super) fn exit(&self) {
        self.exit.store(true, Ordering::SeqCst);
        self.wake_sleepers();
    }

    /// Claims and runs tasks of the current step until none is left; returns how many it claimed. A panic of a task
    /// is kept for the step's caller, and the step's remaining tasks are claimed but not run.
    fn run_tasks(&self) -> usize {
        let mut ran = 0;
        loop {
            let claim = self.claim.fetch_add(1, Ordering::Acquire);
            let i = (claim & u64::from(u32::MAX)) as usize;
            if i >= (claim >> 32) as usize {
                return ran;
            }
            // SAFETY: task `i` of the step published in `claim` is claimed by this call and not finished, so the
            // step's caller is still waiting in `step` (it returns only when all `n` tasks are reported finished),
            // and the `Task` it points `task` to is alive. `task` was stored before `claim` was published (Release
            // store; the Acquire claim reads it or a later claim in its release sequence), and the next step's
            // cannot be stored before this task is reported, so the pointer read here is this step's.
            let task = unsafe { *(self.task.load(Ordering::Relaxed) as *const Task<'_>) };
            if !self.panicked.load(Ordering::Relaxed) {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task(i))) {
                    self.panicked.store(true, Ordering::Relaxed);
                    lock(&self.panic).get_or_insert(payload);
                }
            }
            ran += 1;
        }
    }

    /// Runs `task(i)` for every `i < n` (`n <= MAX_TASKS`) on the calling thread and the workers, and returns when
    /// all are finished; a panic of a task is re-raised here once every task has finished or been skipped. Only the
    /// one thread holding the pool's turn calls it, never from inside a task.
    fn step(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        assert!(n <= MAX_TASKS);
        self.done.store(0, Ordering::Relaxed);
        self.panicked.store(false, Ordering::Relaxed);
        self.task.store(&task as *const Task<'_> as *mut (), Ordering::Relaxed);
        // Publishes the step (and the stores above with it) to the claims.
        self.claim.store((n as u64) << 32, Ordering::SeqCst);
        self.wake_sleepers();
        let others = n - self.run_tasks();
        let mut idle = 0u32;
        while self.done.load(Ordering::Acquire) < others {
            idle_wait(&mut idle);
        }
        if self.panicked.load(Ordering::Relaxed) {
            if let Some(payload) = lock(&self.panic).take() {
                resume_unwind(payload);
            }
        }
    }
}

/// Runs `f(i, part)` for each part of `parts`: in parallel steps on `shared`'s pool (the calling thread holding its
/// turn), or serially when there is no pool or one part.
pub(super) fn for_each<P: Parts>(shared: Option<&Shared>, parts: P, f: impl Fn(usize, P::Part) + Sync) {
    let n = parts.count();
    // SAFETY: each index below `n` is passed once: serially by the loop, in parallel by the steps (each index of a
    // step is claimed once, and successive steps cover disjoint ranges).
    let task = |i: usize| f(i, unsafe { parts.part(i) });
    match shared {
        Some(shared) if n > 1 => {
            for base in (0..n).step_by(MAX_TASKS) {
                shared.step((n - base).min(MAX_TASKS), &|i| task(base + i));
            }
        }
        _ => (0..n).for_each(task),
    }
}

/// What a parallel step hands out, one part per task index: chunks of a slice ([`Chunks`], [`ChunksMut`]) or a
/// pair of such, zipped (nested pairs zip more).
pub trait Parts: Sync {
    /// One task's part.
    type Part;

    /// Number of parts.
    fn count(&self) -> usize;

    /// Part `i`.
    ///
    /// # Safety
    /// `i < self.count()`, and each index is taken at most once while `self` lives (parts may be disjoint
    /// mutable borrows).
    unsafe fn part(&self, i: usize) -> Self::Part;
}

/// Chunks of `size` elements of a shared slice (the last one shorter), as a step's [`Parts`].
pub struct Chunks<'a, T> {
    slice: &'a [T],
    size: usize,
}

/// Chunks of `size` elements (the last one shorter) of `slice`. Panics if `size` is 0.
pub fn chunks<T: Sync>(slice: &[T], size: usize) -> Chunks<'_, T> {
    assert!(size > 0, "chunk size must be non-zero");
    Chunks { slice, size }
}

impl<'a, T: Sync> Parts for Chunks<'a, T> {
    type Part = &'a [T];

    fn count(&self) -> usize {
        self.slice.len().div_ceil(self.size)
    }

    unsafe fn part(&self, i: usize) -> &'a [T] {
        let start = i * self.size;
        &self.slice[start..self.slice.len().min(start + self.size)]
    }
}

/// Disjoint chunks of `size` elements of a mutable slice (the last one shorter), as a step's [`Parts`]: each task
/// gets its own chunk.
pub struct ChunksMut<'a, T> {
    ptr: *mut T,
    len: usize,
    size: usize,
    slice: PhantomData<&'a mut [T]>,
}

/// Chunks of `size` elements (the last one shorter) of `slice`, each task's its own. Panics if `size` is 0.
pub fn chunks_mut<T: Send>(slice: &mut [T], size: usize) -> ChunksMut<'_, T> {
    assert!(size > 0, "chunk size must be non-zero");
    ChunksMut { ptr: slice.as_mut_ptr(), len: slice.len(), size, slice: PhantomData }
}

// SAFETY: a `ChunksMut` is the exclusive borrow of a slice of `Send` elements; shared between threads it only hands
// out disjoint chunks (`Parts::part`'s contract), as `<[T]>::chunks_mut` moved to other threads would.
unsafe impl<T: Send> Sync for ChunksMut<'_, T> {}

impl<'a, T: Send> Parts for ChunksMut<'a, T> {
    type Part = &'a mut [T];

    fn count(&self) -> usize {
        self.len.div_ceil(self.size)
    }

    unsafe fn part(&self, i: usize) -> &'a mut [T] {
        assert!(i < self.count());
        let start = i * self.size;
        // SAFETY: `start..start + len` lies in the borrowed slice (`i < count`); chunks of different indices do not
        // overlap and each index is taken once (the caller's contract), so no other reference to these elements
        // exists while the exclusive borrow `'a` of the slice lasts.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), self.size.min(self.len - start)) }
    }
}

impl<A: Parts, B: Parts> Parts for (A, B) {
    type Part = (A::Part, B::Part);

    fn count(&self) -> usize {
        self.0.count().min(self.1.count())
    }

    unsafe fn part(&self, i: usize) -> Self::Part {
        // SAFETY: `i` is below both counts and taken once from this pair, hence once from each side.
        unsafe { (self.0.part(i), self.1.part(i)) }
    }
}
