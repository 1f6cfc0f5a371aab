//! `TokenStream`: the iterator of `Model.generate(..., stream=True)`, one core `GenerationState` stepped with
//! the GIL released.

use std::sync::{Arc, Mutex, MutexGuard};

use picolm_core::{GenerationState, StopReason};
use pyo3::prelude::*;

use crate::errors::Fail;
use crate::result::GenerationResult;
use crate::session::{guarded, Request, Shared};

/// The last finished generation of a model (shared by the model and its streams).
pub(crate) type LastResult = Arc<Mutex<Option<GenerationResult>>>;

/// Iterator over the text pieces of a streaming generation (`Model.generate(..., stream=True)`).
#[pyclass(module = "picolm", name = "TokenStream", frozen)]
pub(crate) struct TokenStream {
    shared: Arc<Shared>,
    /// The slot's epoch this stream was started under; another generation (or `reset`/`load_state`/`close`)
    /// changes it and ends the stream.
    epoch: u64,
    running: Mutex<Option<GenerationState>>,
    result: Mutex<Option<GenerationResult>>,
    last: LastResult,
}

impl TokenStream {
    /// Evaluates the prompt of `req` (without the GIL) and returns the stream of its pieces.
    pub fn start(py: Python<'_>, shared: &Arc<Shared>, req: Request, last: &LastResult) -> PyResult<TokenStream> {
        let sh = shared.clone();
        let (state, epoch) = py.detach(move || -> Result<(GenerationState, u64), Fail> {
            let mut slot = sh.lock();
            slot.epoch += 1;
            let epoch = slot.epoch;
            let session = slot.session.as_mut().ok_or(Fail::Closed)?;
            let state = guarded(session, |s| req.start(s, &sh.closing))?;
            Ok((state, epoch))
        })?;
        Ok(TokenStream {
            shared: shared.clone(),
            epoch,
            running: Mutex::new(Some(state)),
            result: Mutex::new(None),
            last: last.clone(),
        })
    }

    fn finish(&self, state: GenerationState, reason: Option<StopReason>) {
        let r = GenerationResult::new(state.output(), reason);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    fn running(&self) -> MutexGuard<'_, Option<GenerationState>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One step without the GIL.
    fn step(&self) -> Result<Option<String>, Fail> {
        let mut slot = self.shared.lock();
        let mut running = self.running();
        let Some(state) = running.as_mut() else { return Ok(None) };
        let epoch = slot.epoch;
        let ended = match slot.session.as_mut() {
            None => Err(Fail::Closed),
            Some(_) if epoch != self.epoch => Err(Fail::Superseded),
            Some(session) => match guarded(session, |s| Ok(s.next_piece(state)?)) {
                Ok(Some(piece)) => return Ok(Some(piece)),
                Ok(None) => Ok(None),
                Err(e) => {
                    let state = running.take().expect("checked above");
                    self.finish(state, None);
                    return Err(e);
                }
            },
        };
        let state = running.take().expect("checked above");
        match ended {
            Ok(None) => {
                self.finish(state, None);
                Ok(None)
            }
            // Closed or superseded: the generation was ended from outside.
            other => {
                self.finish(state, Some(StopReason::Cancelled));
                other
            }
        }
    }

    fn cancel(&self) {
        if let Some(state) = self.running().take() {
            self.finish(state, Some(StopReason::Cancelled));
        }
    }
}

#[pymethods]
impl TokenStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let piece = py.detach(|| self.step())?;
        if piece.is_some() {
            if let Err(e) = py.check_signals() {
                py.detach(|| self.cancel());
                return Err(e);
            }
        }
        Ok(piece)
    }

    /// Ends the generation early (its result gets stop_reason "cancelled"). Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.cancel());
    }

    /// The `GenerationResult` once the stream is exhausted or closed, else `None`.
    #[getter]
    fn result(&self) -> Option<GenerationResult> {
        self.result.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the stream has ended.
    #[getter]
    fn finished(&self) -> bool {
        self.running().is_none()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Closes it; exceptions propagate.
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        tb: &Bound<'_, PyAny>,
    ) -> bool {
        let _ = (exc_type, exc, tb);
        self.close(py);
        false
    }
}
