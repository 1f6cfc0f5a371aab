//! A llama-bench style benchmark: prompt processing (`pp N`: N tokens evaluated as one batched prefill from an
//! empty cache) and text generation (`tg N`: N single-token decode steps from an empty cache), repeated, for each
//! requested thread count; reports tokens/s as mean ± standard deviation, peak RSS and the kernel path in use.
//!
//! The settings are always there (the C API's defaults list them); running the benchmark is the `bench` feature.

use crate::model::kv_cache::KvType;
use crate::model::ModelParams;

#[cfg(feature = "bench")]
mod run;
#[cfg(feature = "bench")]
pub use run::{run_bench, BenchReport, BenchRow};

/// What to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchParams {
    /// Prompt length of the `pp` test (0 = skip).
    pub n_prompt: usize,
    /// Generated tokens of the `tg` test (0 = skip).
    pub n_gen: usize,
    /// Thread counts to test.
    pub threads: Vec<usize>,
    /// Timed repetitions of each test (after one untimed warm-up).
    pub repetitions: usize,
    /// Prefill batch size.
    pub n_batch: usize,
    /// Load options other than context and threads (streaming mode, ...).
    pub model: ModelParams,
    /// KV cache format.
    pub kv_type: KvType,
    /// Also measure the machine's read bandwidth (1 thread and each requested thread count) and report decode
    /// as a fraction of the bandwidth ceiling (bandwidth / weight bytes per token).
    pub bandwidth: bool,
}

impl Default for BenchParams {
    fn default() -> Self {
        BenchParams {
            n_prompt: 512,
            n_gen: 128,
            threads: vec![1, 2],
            repetitions: 3,
            n_batch: 512,
            model: ModelParams::default(),
            kv_type: KvType::F16,
            bandwidth: false,
        }
    }
}
