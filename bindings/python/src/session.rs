//! The model's one session, shared by its calls and streams, and the start of every generation.
//!
//! The session lives behind a mutex ([`Shared`]) that is only ever locked with the GIL released, so a thread
//! waiting for it never blocks one that holds it and briefly re-attaches to check signals. Every generation bumps
//! the slot's `epoch`; a stream remembers the epoch it was started under (see `stream.rs`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use picolm_core::chat::{ChatMessage, ChatTemplate};
use picolm_core::grammar::{Grammar, JsonConstraint};
use picolm_core::{CancelToken, Error, GenerateParams, GenerationState, Model, Session, TokenConstraint};
use pyo3::prelude::*;

use crate::errors::{panic_message, Fail};
use crate::options::GenerateOptions;
use crate::result::GenerationResult;

/// The session and its generation counter.
pub(crate) struct Slot {
    /// `None` once the model is closed.
    pub session: Option<Session>,
    /// Bumped by every generation, `reset`, `load_state` and `close`.
    pub epoch: u64,
}

/// The session of one `Model`, shared with its streams.
pub(crate) struct Shared {
    slot: Mutex<Slot>,
    /// Set by `close()` before it waits for the session: running generations, prefills and tool loops stop.
    pub closing: CancelToken,
}

impl Shared {
    /// A shared slot holding `session`.
    pub fn new(session: Session) -> Arc<Shared> {
        Arc::new(Shared { slot: Mutex::new(Slot { session: Some(session), epoch: 0 }), closing: CancelToken::new() })
    }

    /// Locks the slot. Must be called without the GIL. Panics are caught inside the lock scope (see
    /// [`guarded`]), so the mutex is never poisoned; should it be anyway, the session is reset.
    pub fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| {
            let mut g = p.into_inner();
            if let Some(s) = g.session.as_mut() {
                s.reset();
            }
            g
        })
    }
}

/// Runs `f` on the session, converting a panic into [`Fail::Panic`] (and resetting the session).
pub(crate) fn guarded<T>(session: &mut Session, f: impl FnOnce(&mut Session) -> Result<T, Fail>) -> Result<T, Fail> {
    match catch_unwind(AssertUnwindSafe(|| f(session))) {
        Ok(r) => r,
        Err(p) => {
            session.reset();
            Err(Fail::Panic(panic_message(p)))
        }
    }
}

/// Runs the Python signal handlers (Ctrl-C) from a thread that does not hold the GIL.
pub(crate) fn check_signals_detached() -> Result<(), PyErr> {
    Python::attach(|py| py.check_signals())
}

/// A `should_stop` hook for the core's prefill and loops: true when a signal handler raised (the exception is
/// kept in `raised`).
pub(crate) fn signal_hook(raised: &mut Option<PyErr>) -> impl FnMut() -> bool + '_ {
    move || match check_signals_detached() {
        Ok(()) => false,
        Err(e) => {
            *raised = Some(e);
            true
        }
    }
}

/// What to generate from: plain text, or a conversation rendered with the model's chat template.
pub(crate) enum Prompt {
    /// `generate` / `generate_full`.
    Text { text: String, add_bos: bool, parse_special: bool },
    /// `chat`.
    Chat(Vec<ChatMessage>),
}

/// A checked generation request.
pub(crate) struct Request {
    ids: Vec<u32>,
    params: GenerateParams,
    grammar: Option<Arc<Grammar>>,
}

impl Request {
    /// Tokenizes `prompt` (without the GIL) and builds the grammar of `opts`.
    pub fn new(py: Python<'_>, model: &Arc<Model>, prompt: Prompt, opts: GenerateOptions) -> PyResult<Request> {
        let grammar = opts.grammar()?;
        let model = model.clone();
        let ids = py.detach(move || -> Result<Vec<u32>, Fail> {
            Ok(match prompt {
                Prompt::Text { text, add_bos, parse_special } => {
                    model.tokenizer().encode(&text, add_bos, parse_special)
                }
                Prompt::Chat(messages) => {
                    let t = ChatTemplate::for_model(model.file(), model.tokenizer()).map_err(Error::from)?;
                    let text = t.render(&messages, true).map_err(Error::from)?;
                    t.encode(model.tokenizer(), &text)
                }
            })
        })?;
        if ids.is_empty() {
            return Err(Fail::Core(Error::EmptyPrompt).into());
        }
        Ok(Request { ids, params: opts.params.generate, grammar })
    }

    fn constraint(&self, model: &Model) -> Option<Box<dyn TokenConstraint>> {
        self.grammar
            .as_ref()
            .map(|g| Box::new(JsonConstraint::new(g.clone(), model.grammar_vocab())) as Box<dyn TokenConstraint>)
    }

    /// Evaluates the prompt through the core's prefill entry (`Session::start_generation_with`), which stops
    /// between batches on `close()` (the `closing` token) or a pending signal; a signal's exception is raised,
    /// a close is [`Fail::Closed`].
    pub fn start(&self, session: &mut Session, closing: &CancelToken) -> Result<GenerationState, Fail> {
        let mut raised = None;
        let constraint = self.constraint(session.model());
        let st = session.start_generation_with(
            &self.ids,
            &self.params,
            constraint,
            Some(closing.clone()),
            &mut signal_hook(&mut raised),
        )?;
        if let Some(e) = raised {
            return Err(Fail::Py(e));
        }
        if closing.is_cancelled() {
            return Err(Fail::Closed);
        }
        Ok(st)
    }

    /// Runs the whole generation on `shared`'s session without the GIL, checking signals between pieces.
    pub fn run_to_end(self, py: Python<'_>, shared: &Arc<Shared>) -> PyResult<GenerationResult> {
        let shared = shared.clone();
        Ok(py.detach(move || -> Result<GenerationResult, Fail> {
            let mut slot = shared.lock();
            slot.epoch += 1;
            let session = slot.session.as_mut().ok_or(Fail::Closed)?;
            guarded(session, |s| {
                let mut st = self.start(s, &shared.closing)?;
                while s.next_piece(&mut st)?.is_some() {
                    check_signals_detached()?;
                }
                Ok(GenerationResult::new(st.output(), None))
            })
        })?)
    }
}
