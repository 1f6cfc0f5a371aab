//! Streaming text generation over a [`Session`]: prompt prefill (reusing the cached prefix), then one token at a
//! time through an optional [`TokenConstraint`] (grammar) and the [`Sampler`], delivering text pieces that are
//! always whole UTF-8 characters and never contain (part of) a stop string.
//!
//! The step API ([`Session::start_generation`] + [`Session::next_piece`]) keeps all state in an owned
//! [`GenerationState`], so C callers, Python iterators and the tool-call loop drive the same engine; the
//! convenience [`Session::generate`] runs it to the end with a callback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sampler::{Sampler, SamplerParams};
use crate::session::Session;
use crate::tokenizer::StreamDecoder;

/// A thread-safe flag that stops a running generation between tokens (and prefill between batches).
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A new, unset token.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Requests cancellation; safe from any thread or a signal handler's helper thread.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Clears the request (to reuse the token for the next generation).
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub use crate::grammar::TokenConstraint;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most new tokens to produce.
    pub max_tokens: usize,
    /// Token selection.
    pub sampler: SamplerParams,
    /// Generation stops before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    /// Stop when the model emits an end-of-generation token (default true).
    pub stop_at_eog: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams { max_tokens: 256, sampler: SamplerParams::default(), stop: Vec::new(), stop_at_eog: true }
    }
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were produced.
    MaxTokens,
    /// A stop string appeared.
    StopString,
    /// The constraint (grammar) completed its value.
    GrammarComplete,
    /// The context is full.
    ContextFull,
    /// The cancel token was set.
    Cancelled,
    /// The piece callback asked to stop.
    CallbackStopped,
}

impl StopReason {
    /// Every reason, in declaration order (for bindings that list the names, e.g. Python's stub test).
    pub const ALL: [StopReason; 7] = [
        StopReason::EndOfGeneration,
        StopReason::MaxTokens,
        StopReason::StopString,
        StopReason::GrammarComplete,
        StopReason::ContextFull,
        StopReason::Cancelled,
        StopReason::CallbackStopped,
    ];

    /// The name every binding reports (Python `stop_reason`, `picolm_stop_reason_name` in C, the CLI's
    /// statistics): `"eog"`, `"max_tokens"`, `"stop_string"`, `"grammar_complete"`, `"context_full"`,
    /// `"cancelled"` or `"callback_stopped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndOfGeneration => "eog",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopString => "stop_string",
            StopReason::GrammarComplete => "grammar_complete",
            StopReason::ContextFull => "context_full",
            StopReason::Cancelled => "cancelled",
            StopReason::CallbackStopped => "callback_stopped",
        }
    }
}

/// Counters and timings of a generation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens.
    pub n_prompt: usize,
    /// Prompt tokens whose cache entries were reused from the previous turn.
    pub n_reused: usize,
    /// Tokens generated (including a final end-of-generation token).
    pub n_generated: usize,
    /// Time spent evaluating the prompt.
    pub prefill: Duration,
    /// Time spent generating.
    pub decode: Duration,
}

impl GenerationStats {
    /// Prompt tokens evaluated per second (reused tokens excluded).
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.n_prompt - self.n_reused, self.prefill)
    }

    /// Generated tokens per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.n_generated, self.decode)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// The result of a finished generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationOutput {
    /// All text delivered, concatenated.
    pub text: String,
    /// Generated token ids (a final end-of-generation token included, as llama.cpp reports it).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Counters and timings.
    pub stats: GenerationStats,
}

/// The owned state of a generation in progress (see the module documentation).
pub struct GenerationState {
    params: GenerateParams,
    sampler: Sampler,
    decoder: StreamDecoder,
    constraint: Option<Box<dyn TokenConstraint>>,
    cancel: Option<CancelToken>,
    pending_token: Option<u32>,
    held_text: String,
    output: GenerationOutput,
    finished: bool,
    started: Instant,
}

impl std::fmt::Debug for GenerationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationState").field("output", &self.output).field("finished", &self.finished).finish()
    }
}

impl GenerationState {
    /// Whether the generation has ended (`next_piece` returns `None` from now on).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The output so far (complete once finished).
    pub fn output(&self) -> &GenerationOutput {
        &self.output
    }

    /// Consumes the state, returning the output.
    pub fn into_output(self) -> GenerationOutput {
        self.output
    }

    fn finish(&mut self, reason: StopReason) {
        if !self.finished {
            self.finished = true;
            self.output.stop_reason = reason;
            self.output.stats.decode = self.started.elapsed();
        }
    }

    /// Moves decoded text to the output, holding back a tail that could start a stop string. Returns the text
    /// that may be delivered, and whether a stop string was found.
    fn release_text(&mut self, flush: bool) -> (String, bool) {
        if let Some(cut) =
            self.params.stop.iter().filter(|s| !s.is_empty()).filter_map(|s| self.held_text.find(s.as_str())).min()
        {
            let out: String = self.held_text[..cut].to_string();
            self.held_text.clear();
            return (out, true);
        }
        let mut keep = 0;
        if !flush {
            for s in self.params.stop.iter().filter(|s| !s.is_empty()) {
                // Longest proper prefix of `s` that ends the held text.
                for (i, _) in s.char_indices().skip(1) {
                    if i > keep && self.held_text.ends_with(&s[..i]) {
                        keep = i;
                    }
                }
            }
        }
        let split = self.held_text.len() - keep;
        let out = self.held_text[..split].to_string();
        self.held_text.drain(..split);
        (out, false)
    }
}

impl Session {
    /// Evaluates `prompt` (reusing the cached common prefix) and prepares a generation. A prompt longer than the
    /// context is an error ([`Error::PromptTooLong`]). Same as [`Session::start_generation_with`] without a
    /// `should_stop` hook (the prefill still stops between batches when `cancel` is set).
    pub fn start_generation(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        constraint: Option<Box<dyn TokenConstraint>>,
        cancel: Option<CancelToken>,
    ) -> Result<GenerationState, Error> {
        self.start_generation_with(prompt, params, constraint, cancel, &mut || false)
    }

    /// The prefill entry every binding uses: evaluates `prompt` (reusing the cached common prefix, see
    /// [`Session::sync_prompt`]) and prepares a generation. Between prefill batches the prefill stops when `cancel`
    /// is set or `should_stop()` returns true (e.g. a pending Ctrl-C in Python); the tokens evaluated so far stay
    /// cached and the returned state is already finished with [`StopReason::Cancelled`]. The prefill's reused
    /// tokens and time are in the state's [`GenerationStats`].
    pub fn start_generation_with(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        constraint: Option<Box<dyn TokenConstraint>>,
        cancel: Option<CancelToken>,
        should_stop: &mut dyn FnMut() -> bool,
    ) -> Result<GenerationState, Error> {
        let sampler = Sampler::new(params.sampler.clone())?;
        let t0 = Instant::now();
        let mut state = GenerationState {
            params: params.clone(),
            sampler,
            decoder: self.model().tokenizer().stream_decoder(),
            constraint,
            cancel,
            pending_token: None,
            held_text: String::new(),
            output: GenerationOutput {
                text: String::new(),
                tokens: Vec::new(),
                stop_reason: StopReason::MaxTokens,
                stats: GenerationStats { n_prompt: prompt.len(), ..Default::default() },
            },
            finished: false,
            started: t0,
        };
        let cancel = state.cancel.clone();
        let reused =
            self.sync_prompt(prompt, &mut || cancel.as_ref().is_some_and(|c| c.is_cancelled()) || should_stop())?;
        state.output.stats.n_reused = reused;
        state.output.stats.prefill = t0.elapsed();
        state.started = Instant::now();
        if self.tokens().len() < prompt.len() {
            state.finish(StopReason::Cancelled);
        }
        let n = state.params.repeat_window();
        for &t in &prompt[prompt.len().saturating_sub(n)..] {
            state.sampler.accept(t);
        }
        Ok(state)
    }

    /// Produces the next non-empty piece of text, or `None` when the generation has ended (see
    /// [`GenerationState::output`] for the reason).
    pub fn next_piece(&mut self, st: &mut GenerationState) -> Result<Option<String>, Error> {
        loop {
            if st.finished {
                return Ok(None);
            }
            if let Some(tok) = st.pending_token.take() {
                if self.tokens().len() >= self.n_ctx() {
                    return Ok(self.end(st, StopReason::ContextFull));
                }
                if let Err(e) = self.eval(&[tok]) {
                    st.finish(StopReason::ContextFull);
                    return Err(e);
                }
            }
            if st.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                return Ok(self.end(st, StopReason::Cancelled));
            }
            if st.output.tokens.len() >= st.params.max_tokens {
                return Ok(self.end(st, StopReason::MaxTokens));
            }
            // Tokens that may still be produced: the limit, and the free context positions.
            let remaining = (st.params.max_tokens - st.output.tokens.len()).min(self.n_ctx() - self.tokens().len());
            let logits = self.logits_mut().ok_or(Error::NoLogits)?;
            if let Some(c) = st.constraint.as_mut() {
                c.mask_logits(logits, remaining)?;
            }
            let tok = st.sampler.sample(logits);
            st.sampler.accept(tok);
            st.output.tokens.push(tok);
            st.output.stats.n_generated += 1;
            let tokenizer = self.model().tokenizer();
            if st.params.stop_at_eog && tokenizer.is_eog(tok) {
                // A constraint masks end tokens where its output may not end, and records the ending.
                if let Some(c) = st.constraint.as_mut() {
                    c.accept_token(tok)?;
                }
                return Ok(self.end(st, StopReason::EndOfGeneration));
            }
            if let Some(c) = st.constraint.as_mut() {
                c.accept_token(tok)?;
            }
            let text = st.decoder.push(tok);
            st.held_text.push_str(&text);
            let constraint_done = st.constraint.as_ref().is_some_and(|c| c.is_complete());
            let (out, hit_stop) = st.release_text(constraint_done);
            st.output.text.push_str(&out);
            if hit_stop {
                st.finish(StopReason::StopString);
                return Ok(non_empty(out));
            }
            if constraint_done {
                let tail = self.flush(st);
                st.finish(StopReason::GrammarComplete);
                return Ok(non_empty(out + &tail));
            }
            st.pending_token = Some(tok);
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    /// Flushes held text and ends the generation; returns the last piece, if any.
    fn end(&mut self, st: &mut GenerationState, reason: StopReason) -> Option<String> {
        let tail = self.flush(st);
        st.finish(reason);
        non_empty(tail)
    }

    fn flush(&mut self, st: &mut GenerationState) -> String {
        let rest = st.decoder.finish();
        st.held_text.push_str(&rest);
        let (out, hit) = st.release_text(true);
        if hit {
            st.output.stop_reason = StopReason::StopString;
        }
        st.output.text.push_str(&out);
        out
    }

    /// Runs a whole generation, calling `on_piece` with each piece; returning `false` from it stops generation.
    /// Same as [`Session::generate_with`] without a `should_stop` hook.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        constraint: Option<Box<dyn TokenConstraint>>,
        cancel: Option<CancelToken>,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GenerationOutput, Error> {
        self.generate_with(prompt, params, constraint, cancel, &mut || false, on_piece)
    }

    /// Runs a whole generation like [`Session::generate`]; `should_stop` is polled between prefill batches (see
    /// [`Session::start_generation_with`]) and before each generated piece: when it returns true the generation
    /// ends with [`StopReason::Cancelled`], as when `cancel` is set.
    pub fn generate_with(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        constraint: Option<Box<dyn TokenConstraint>>,
        cancel: Option<CancelToken>,
        should_stop: &mut dyn FnMut() -> bool,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GenerationOutput, Error> {
        let mut st = self.start_generation_with(prompt, params, constraint, cancel, should_stop)?;
        loop {
            let piece = if !st.finished && should_stop() {
                // Like a cancelled token: the held-back text is flushed and delivered as the last piece.
                self.end(&mut st, StopReason::Cancelled)
            } else {
                self.next_piece(&mut st)?
            };
            let Some(piece) = piece else { break };
            if !on_piece(&piece) {
                st.finish(StopReason::CallbackStopped);
                break;
            }
        }
        Ok(st.into_output())
    }
}

impl GenerateParams {
    fn repeat_window(&self) -> usize {
        if self.sampler.repeat_penalty != 1.0 {
            self.sampler.repeat_last_n
        } else {
            0
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
