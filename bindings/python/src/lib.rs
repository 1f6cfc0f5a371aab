//! Python bindings for PicoLM (`picolm._picolm`), built with PyO3 directly over `picolm-core`.
//!
//! Modules, one job each:
//! - `errors`: the failures computed without the GIL and their mapping onto `picolm/_errors.py`'s exceptions.
//! - `convert`: checked str/path/count arguments, JSON data, chat messages and GGUF metadata values.
//! - `options`: the keyword options of the generation methods, parsed once into the core's parameter structs
//!   with the core's defaults.
//! - `session`: the model's one session behind a mutex, and the start of a generation through the core's
//!   prefill entry (`Session::start_generation_with`, which polls Ctrl-C and `close()` between batches).
//! - `result`, `stream`: `GenerationResult` and the streaming `TokenStream`.
//! - `agent`: the tool-call loop (`Model.run_tools`), Python tool handlers and `AgentResult`.
//! - `model`: the `Model` class.
//!
//! Design:
//! - A `Model` owns an `Arc<picolm_core::Model>` and one `Session` behind a mutex (`Shared`). Every call that
//!   computes tokens releases the GIL; the session lock is only ever taken with the GIL released, so a thread
//!   waiting for the lock never blocks a thread that holds it and briefly re-attaches to check signals.
//! - Concurrent calls on the same `Model` from several threads are serialised (the second one waits).
//! - Every generation bumps the session's `epoch`; a streaming iterator remembers the epoch it was started
//!   under and raises `PicoLMError` if another generation (or `reset`/`load_state`/`close`) happened since.
//! - Ctrl-C: signals are checked between prefill batches and between generated tokens; `KeyboardInterrupt`
//!   (or whatever the signal handler raises) propagates after the generation has been ended.
//! - Panics inside the engine are caught and reported as `PicoLMError` (the session is reset).
//! - `close()` from another thread cancels a running generation first (the shared `closing` token), then waits
//!   for it to end.
//! - Every str argument is checked to be valid Unicode (a lone surrogate is `InvalidArgumentError`), and paths
//!   are encoded like `open()` does (`os.fsencode`), never through a conversion that can panic.
//! - Load warnings (e.g. `n_ctx` beyond the training context) are issued with `warnings.warn` as
//!   `picolm.PicoLMWarning`; exceptions of tool handlers are logged with their traceback on the "picolm" logger.
//! - Exceptions are defined in `picolm/_errors.py` (so that `InvalidArgumentError` can also be a `ValueError`)
//!   and looked up when raised.

mod agent;
mod convert;
mod errors;
mod model;
mod options;
mod result;
mod session;
mod stream;

use picolm_core::agent::AgentStop;
use picolm_core::StopReason;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// The defaults of the keyword options of `Model()`, `generate`/`generate_full`/`chat` and `run_tools`, taken
/// from picolm-core's `Default` impls (checked against the signatures Python shows by tests/python).
#[pyfunction]
fn _defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    options::defaults(py)
}

/// Native part of the `picolm` package.
#[pymodule]
fn _picolm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::PyModel>()?;
    m.add_class::<stream::TokenStream>()?;
    m.add_class::<result::GenerationResult>()?;
    m.add_class::<agent::AgentResult>()?;
    m.add_function(wrap_pyfunction!(_defaults, m)?)?;
    // Every name `GenerationResult.stop_reason` and `AgentResult.stop` can take, from the core's enums.
    m.add("STOP_REASONS", PyTuple::new(m.py(), StopReason::ALL.map(StopReason::as_str))?)?;
    m.add("AGENT_STOPS", PyTuple::new(m.py(), AgentStop::ALL.map(AgentStop::as_str))?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
