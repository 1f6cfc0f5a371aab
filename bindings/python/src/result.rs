//! `GenerationResult`: the text, tokens, stop reason, counters and timings of a finished generation.

use picolm_core::{GenerationOutput, StopReason};
use pyo3::prelude::*;

/// The outcome of a finished generation.
#[pyclass(module = "picolm", name = "GenerationResult", frozen, get_all)]
#[derive(Clone, Debug)]
pub(crate) struct GenerationResult {
    /// The generated text (stop strings excluded).
    pub text: String,
    /// Generated token ids (a final end-of-generation token included).
    tokens: Vec<u32>,
    /// Why generation ended: a name of picolm-core's `StopReason::as_str` ("eog", "max_tokens", "stop_string",
    /// "grammar_complete", "context_full", "cancelled"), also used by C and the CLI.
    stop_reason: String,
    /// Prompt length in tokens.
    n_prompt: usize,
    /// Prompt tokens whose cache entries were reused from the previous call.
    n_reused: usize,
    /// Number of generated tokens.
    n_generated: usize,
    /// Seconds spent evaluating the prompt.
    prefill_seconds: f64,
    /// Seconds spent generating.
    decode_seconds: f64,
}

impl GenerationResult {
    /// The result of `out`, with `reason` overriding its stop reason (a stream ended from outside).
    pub fn new(out: &GenerationOutput, reason: Option<StopReason>) -> GenerationResult {
        GenerationResult {
            text: out.text.clone(),
            tokens: out.tokens.clone(),
            stop_reason: reason.unwrap_or(out.stop_reason).as_str().to_string(),
            n_prompt: out.stats.n_prompt,
            n_reused: out.stats.n_reused,
            n_generated: out.stats.n_generated,
            prefill_seconds: out.stats.prefill.as_secs_f64(),
            decode_seconds: out.stats.decode.as_secs_f64(),
        }
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

#[pymethods]
impl GenerationResult {
    /// Prompt tokens evaluated per second (reused tokens excluded).
    #[getter]
    fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.n_prompt.saturating_sub(self.n_reused), self.prefill_seconds)
    }

    /// Generated tokens per second.
    #[getter]
    fn decode_tokens_per_second(&self) -> f64 {
        rate(self.n_generated, self.decode_seconds)
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "GenerationResult(text={:?}, n_prompt={}, n_generated={}, stop_reason={:?})",
            self.text, self.n_prompt, self.n_generated, self.stop_reason
        )
    }
}
