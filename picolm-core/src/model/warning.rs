//! Warnings of model loading: settings that are accepted but probably not what the caller wants. The model keeps
//! them ([`crate::Model::warnings`]); each binding forwards them to its warning channel (the C log callback at
//! WARN level, Python's `warnings` module, the CLI's standard error).

use thiserror::Error;

/// An accepted but questionable load setting.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LoadWarning {
    /// The context is longer than the one the model was trained with: positions past it are extrapolated by RoPE
    /// and the output usually degrades there.
    #[error(
        "n_ctx {n_ctx} is larger than the model's training context {n_ctx_train}: output quality usually degrades \
         past position {n_ctx_train}"
    )]
    ContextBeyondTraining {
        /// The context asked for.
        n_ctx: usize,
        /// `<arch>.context_length` of the file.
        n_ctx_train: usize,
    },
    /// More compute threads were asked for than the CPUs available to the process (affinity and cgroup quota
    /// respected); the pool was made with as many threads as CPUs.
    #[error("n_threads {requested} exceeds the {available} CPU{} available to this process; using {used} thread{}",
        plural(*.available), plural(*.used))]
    ThreadsClamped {
        /// Threads asked for.
        requested: usize,
        /// CPUs available to the process.
        available: usize,
        /// Threads started.
        used: usize,
    },
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The warning (if any) for a thread request that was lowered to the CPUs available.
pub fn thread_warning(t: &crate::compute::pool::ThreadCount) -> Option<LoadWarning> {
    t.clamped().then_some(LoadWarning::ThreadsClamped { requested: t.requested, available: t.available, used: t.used })
}

/// The warning (if any) for a context of `n_ctx` positions on a model trained with `n_ctx_train` (0 = unknown).
pub fn context_warning(n_ctx: usize, n_ctx_train: usize) -> Option<LoadWarning> {
    (n_ctx_train > 0 && n_ctx > n_ctx_train).then_some(LoadWarning::ContextBeyondTraining { n_ctx, n_ctx_train })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_past_training_warns_with_both_numbers() {
        assert_eq!(context_warning(2048, 2048), None);
        assert_eq!(context_warning(512, 2048), None);
        assert_eq!(context_warning(4096, 0), None);
        let w = context_warning(8192, 2048).unwrap();
        assert_eq!(w, LoadWarning::ContextBeyondTraining { n_ctx: 8192, n_ctx_train: 2048 });
        let text = w.to_string();
        assert!(text.contains("8192") && text.contains("2048"), "{text}");
    }

    #[test]
    fn clamped_threads_warn_with_the_request_and_the_cpus() {
        use crate::compute::pool::ThreadCount;
        let w = thread_warning(&ThreadCount::with_available(999, 2)).unwrap();
        assert_eq!(w.to_string(), "n_threads 999 exceeds the 2 CPUs available to this process; using 2 threads");
        let one = thread_warning(&ThreadCount::with_available(3, 1)).unwrap();
        assert_eq!(one.to_string(), "n_threads 3 exceeds the 1 CPU available to this process; using 1 thread");
        assert_eq!(thread_warning(&ThreadCount::with_available(0, 3)), None);
        assert_eq!(thread_warning(&ThreadCount::with_available(2, 4)), None);
    }
}
