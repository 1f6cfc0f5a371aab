//! The persistent worker pool of a model: threads are started once, at load, and reused by every matmul and by
//! attention. Backed by rayon's thread pool (work split by rows with `par_chunks_mut`).

use rayon::ThreadPool;

use crate::model::ModelError;

/// A fixed-size pool of compute threads.
pub struct ComputePool {
    pool: ThreadPool,
    n_threads: usize,
}

impl std::fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputePool").field("n_threads", &self.n_threads).finish()
    }
}

impl ComputePool {
    /// Starts `n_threads` worker threads (`0` means one per available CPU).
    pub fn new(n_threads: usize) -> Result<ComputePool, ModelError> {
        let n_threads = if n_threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            n_threads
        };
        if n_threads > 1024 {
            return Err(ModelError::InvalidParameter { name: "n_threads".into(), value: n_threads.to_string() });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads)
            .thread_name(|i| format!("picolm-worker-{i}"))
            .build()
            .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
        Ok(ComputePool { pool, n_threads })
    }

    /// Number of worker threads.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `f` on the pool: parallel iterators inside `f` use exactly this pool's threads.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}
