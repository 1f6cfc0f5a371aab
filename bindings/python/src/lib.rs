//! Python bindings for PicoLM (`picolm._picolm`), built with PyO3 directly over `picolm-core`.
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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use picolm_core::agent::{Agent, AgentEvent, AgentParams, Tool, ToolChoice, ToolSpec};
use picolm_core::chat::{ChatMessage, ChatTemplate};
use picolm_core::gguf::{MetaArray, MetaValue};
use picolm_core::grammar::{Grammar, GrammarError, JsonConstraint, JsonMode};
use picolm_core::memory::MemoryUsage;
use picolm_core::model::{KvType, ModelError, RssBudget};
use picolm_core::TokenConstraint;
use picolm_core::{
    CancelToken, Error, GenerateParams, GenerationOutput, GenerationState, Model, ModelParams, SamplerParams, Session,
    SessionParams, StopReason,
};
use pyo3::exceptions::{PyException, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};

/// Arrays in GGUF metadata longer than this are summarised in `Model.metadata` (e.g. `"array<string>[49152]"`).
const METADATA_ARRAY_LIMIT: usize = 1024;

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/// A failure computed without the GIL; turned into a Python exception afterwards.
enum Fail {
    Core(Error),
    Load(&'static str, String),
    State(String),
    Closed,
    Superseded,
    Invalid(String),
    Py(PyErr),
    Panic(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Core(e)
    }
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Fail {
        Fail::Py(e)
    }
}

fn py_error(py: Python<'_>, kind: &str, msg: String) -> PyErr {
    let ty = py.import("picolm._errors").and_then(|m| m.getattr(kind)).and_then(|t| Ok(t.downcast_into::<PyType>()?));
    match ty {
        Ok(t) => PyErr::from_type(t, msg),
        // Only reachable when the extension is imported without its Python package.
        Err(_) => PyRuntimeError::new_err(format!("{kind}: {msg}")),
    }
}

fn core_kind(e: &Error) -> &'static str {
    match e {
        Error::PromptTooLong { .. }
        | Error::ContextOverflow { .. }
        | Error::Model(ModelError::ContextOverflow { .. }) => "ContextOverflowError",
        Error::Grammar(GrammarError::BudgetTooSmall { .. }) => "BudgetError",
        Error::Grammar(_) => "GrammarError",
        Error::Chat(
            picolm_core::chat::ChatError::InvalidRole { .. } | picolm_core::chat::ChatError::InvalidMessage { .. },
        ) => "InvalidArgumentError",
        Error::Sampler(_)
        | Error::InvalidArgument { .. }
        | Error::EmptyPrompt
        | Error::Model(ModelError::InvalidParameter { .. })
        | Error::Model(ModelError::UnknownKernel(_))
        | Error::Model(ModelError::InvalidToken { .. }) => "InvalidArgumentError",
        Error::InvalidState(_) => "StateError",
        Error::OutOfMemory { .. } | Error::Model(ModelError::OutOfMemory(_)) => "OutOfMemoryError",
        _ => "PicoLMError",
    }
}

impl From<Fail> for PyErr {
    fn from(f: Fail) -> PyErr {
        Python::attach(|py| match f {
            Fail::Core(e) => py_error(py, core_kind(&e), e.to_string()),
            Fail::Load(kind, msg) => py_error(py, kind, msg),
            Fail::State(m) => py_error(py, "StateError", m),
            Fail::Closed => py_error(py, "ClosedError", "the model is closed".into()),
            Fail::Superseded => py_error(
                py,
                "PicoLMError",
                "this stream was ended by a newer generation (or reset/load_state) on the same model".into(),
            ),
            Fail::Invalid(m) => py_error(py, "InvalidArgumentError", m),
            Fail::Py(e) => e,
            Fail::Panic(m) => py_error(py, "PicoLMError", format!("internal error: {m}")),
        })
    }
}

fn invalid(msg: impl Into<String>) -> PyErr {
    Fail::Invalid(msg.into()).into()
}

/// `obj` as Rust text: a `str` (else `TypeError`) that is valid Unicode (a lone surrogate such as `"\ud800"`,
/// which UTF-8 cannot encode, is `InvalidArgumentError`, with the encoding error as its cause).
fn text_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    let py = obj.py();
    let s = obj.downcast::<PyString>().map_err(|_| {
        let ty = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!("{name} must be a str, got {ty}"))
    })?;
    match s.to_cow() {
        Ok(t) => Ok(t.into_owned()),
        Err(cause) => {
            let err = invalid(format!("{name} is not valid Unicode text: {}", surrogate_position(py, &cause)));
            err.set_cause(py, Some(cause));
            Err(err)
        }
    }
}

/// "lone surrogate U+D800 at index 3" from a `UnicodeEncodeError` (or its message for other errors).
fn surrogate_position(py: Python<'_>, e: &PyErr) -> String {
    let v = e.value(py);
    let found = (|| -> PyResult<String> {
        let start: usize = v.getattr("start")?.extract()?;
        let ch: String = v
            .getattr("object")?
            .get_item(start)?
            .extract::<Bound<'_, PyString>>()?
            .call_method0("__repr__")?
            .extract()?;
        let code = v.getattr("object")?.get_item(start)?;
        let code: u32 = py.import("builtins")?.getattr("ord")?.call1((code,))?.extract()?;
        Ok(format!("lone surrogate U+{code:04X} ({ch}) at index {start}"))
    })();
    found.unwrap_or_else(|_| v.to_string())
}

/// A path argument as `open()` takes it: `str`, `bytes` or `os.PathLike`, encoded with the file system encoding
/// (`os.fsencode`, so surrogate-escaped bytes round-trip). A str that cannot be encoded (a lone surrogate outside
/// the escape range) is `InvalidArgumentError`, not a crash. Returns the path and a printable form.
fn path_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(PathBuf, String)> {
    let py = obj.py();
    let os = py.import("os")?;
    let fspath = os.call_method1("fspath", (obj,)).map_err(|e| {
        if e.is_instance_of::<PyTypeError>(py) {
            PyTypeError::new_err(format!(
                "{name} must be a str, bytes or os.PathLike, got {}",
                obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        } else {
            e
        }
    })?;
    let encoded = match os.call_method1("fsencode", (&fspath,)) {
        Ok(b) => b,
        Err(cause) => {
            let err = invalid(format!("{name} cannot be encoded as a file name: {}", surrogate_position(py, &cause)));
            err.set_cause(py, Some(cause));
            return Err(err);
        }
    };
    let bytes: Vec<u8> = encoded.downcast::<PyBytes>()?.as_bytes().to_vec();
    let shown = String::from_utf8_lossy(&bytes).into_owned();
    #[cfg(unix)]
    let path = PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes));
    #[cfg(not(unix))]
    let path = PathBuf::from(shown.clone());
    Ok((path, shown))
}

/// Issues the model's load warnings with `warnings.warn(..., picolm.PicoLMWarning)`.
fn warn_load_warnings(py: Python<'_>, model: &Model) -> PyResult<()> {
    if model.warnings().is_empty() {
        return Ok(());
    }
    let category = py.import("picolm._errors")?.getattr("PicoLMWarning")?;
    let warnings = py.import("warnings")?;
    for w in model.warnings() {
        // stacklevel 1: the innermost Python frame, i.e. the line that called Model() (native code has no frame).
        warnings.call_method1("warn", (w.to_string(), &category, 1))?;
    }
    Ok(())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic in the engine".into()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared session
// ---------------------------------------------------------------------------------------------------------------

struct Slot {
    session: Option<Session>,
    epoch: u64,
}

struct Shared {
    slot: Mutex<Slot>,
    /// Set by `close()` before it waits for the session: running generations, prefills and tool loops stop.
    closing: CancelToken,
}

impl Shared {
    /// Locks the slot. Must be called without the GIL. Panics are caught inside the lock scope (see
    /// [`guarded`]), so the mutex is never poisoned; should it be anyway, the session is reset.
    fn lock(&self) -> MutexGuard<'_, Slot> {
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
fn guarded<T>(session: &mut Session, f: impl FnOnce(&mut Session) -> Result<T, Fail>) -> Result<T, Fail> {
    match catch_unwind(AssertUnwindSafe(|| f(session))) {
        Ok(r) => r,
        Err(p) => {
            session.reset();
            Err(Fail::Panic(panic_message(p)))
        }
    }
}

fn check_signals_detached() -> Result<(), PyErr> {
    Python::attach(|py| py.check_signals())
}

/// Brings the cache to `ids`, checking for signals and `close()` between batches. Returns (reused tokens,
/// prefill time).
fn prefill(session: &mut Session, ids: &[u32], closing: &CancelToken) -> Result<(usize, Duration), Fail> {
    let t0 = Instant::now();
    let mut interrupted: Option<PyErr> = None;
    let reused = session.sync_prompt(ids, &mut || {
        if closing.is_cancelled() {
            return true;
        }
        match check_signals_detached() {
            Ok(()) => false,
            Err(e) => {
                interrupted = Some(e);
                true
            }
        }
    })?;
    if let Some(e) = interrupted {
        return Err(Fail::Py(e));
    }
    if closing.is_cancelled() {
        return Err(Fail::Closed);
    }
    Ok((reused, t0.elapsed()))
}

// ---------------------------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------------------------

/// The outcome of a finished generation.
#[pyclass(module = "picolm", name = "GenerationResult", frozen, get_all)]
#[derive(Clone, Debug)]
struct GenerationResult {
    /// The generated text (stop strings excluded).
    text: String,
    /// Generated token ids (a final end-of-generation token included).
    tokens: Vec<u32>,
    /// Why generation ended: "eog", "max_tokens", "stop_string", "grammar_complete", "context_full" or
    /// "cancelled" (the names of picolm-core's `StopReason::as_str`, also used by C and the CLI).
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
    fn new(out: &GenerationOutput, reason: StopReason, n_reused: usize, prefill: Duration) -> GenerationResult {
        GenerationResult {
            text: out.text.clone(),
            tokens: out.tokens.clone(),
            stop_reason: reason.as_str().to_string(),
            n_prompt: out.stats.n_prompt,
            n_reused,
            n_generated: out.stats.n_generated,
            prefill_seconds: prefill.as_secs_f64(),
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

// ---------------------------------------------------------------------------------------------------------------
// Streaming iterator
// ---------------------------------------------------------------------------------------------------------------

struct Running {
    state: GenerationState,
    n_reused: usize,
    prefill: Duration,
}

/// Iterator over the text pieces of a streaming generation (`Model.generate(..., stream=True)`).
#[pyclass(module = "picolm", name = "TokenStream", frozen)]
struct TokenStream {
    shared: Arc<Shared>,
    epoch: u64,
    running: Mutex<Option<Running>>,
    result: Mutex<Option<GenerationResult>>,
    last: Arc<Mutex<Option<GenerationResult>>>,
}

impl TokenStream {
    fn finish(&self, run: Running, reason: Option<StopReason>) {
        let out = run.state.output();
        let r = GenerationResult::new(out, reason.unwrap_or(out.stop_reason), run.n_reused, run.prefill);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One step without the GIL.
    fn step(&self) -> Result<Option<String>, Fail> {
        let mut slot = self.shared.lock();
        let mut running = self.running();
        if running.is_none() {
            return Ok(None);
        }
        let epoch = slot.epoch;
        let Some(session) = slot.session.as_mut() else {
            let run = running.take().unwrap();
            self.finish(run, Some(StopReason::Cancelled));
            return Err(Fail::Closed);
        };
        if epoch != self.epoch {
            let run = running.take().unwrap();
            self.finish(run, Some(StopReason::Cancelled));
            return Err(Fail::Superseded);
        }
        let run = running.as_mut().unwrap();
        match guarded(session, |s| Ok(s.next_piece(&mut run.state)?)) {
            Ok(Some(piece)) => Ok(Some(piece)),
            Ok(None) => {
                let run = running.take().unwrap();
                self.finish(run, None);
                Ok(None)
            }
            Err(e) => {
                let run = running.take().unwrap();
                self.finish(run, None);
                Err(e)
            }
        }
    }

    fn cancel(&self) {
        if let Some(run) = self.running().take() {
            self.finish(run, Some(StopReason::Cancelled));
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

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tool-call loop
// ---------------------------------------------------------------------------------------------------------------

/// A Python callable used as a tool handler: called with the arguments as a dict; its return value (a str, or
/// anything `json.dumps` accepts) is the result. An `Exception` it raises is logged with its traceback on the
/// "picolm" logger and becomes an error message for the model; anything else (`KeyboardInterrupt`,
/// `SystemExit`, ...) is kept in `fatal`, stops the loop, and is re-raised by `run_tools`.
struct PyToolHandler {
    name: String,
    handler: Py<PyAny>,
    fatal: Arc<Mutex<Option<PyErr>>>,
}

impl PyToolHandler {
    fn result(&self, py: Python<'_>, arguments: &serde_json::Value) -> PyResult<String> {
        let v = self.handler.call1(py, (json_to_py(py, arguments)?,))?;
        let v = v.bind(py);
        if v.is_instance_of::<PyString>() {
            text_arg(v, &format!("the result of tool {:?}", self.name))
        } else {
            py.import("json")?.call_method1("dumps", (v,))?.extract()
        }
    }

    /// Logs a handler's exception with its traceback: `logging.getLogger("picolm").error(..., exc_info=e)`.
    fn log_exception(&self, py: Python<'_>, e: &PyErr) {
        let logged = (|| -> PyResult<()> {
            let exc = e.value(py);
            if let Some(tb) = e.traceback(py) {
                exc.setattr("__traceback__", tb)?;
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", exc)?;
            let logger = py.import("logging")?.call_method1("getLogger", ("picolm",))?;
            logger.call_method(
                "error",
                ("tool %r raised an exception (its message goes to the model)", &self.name),
                Some(&kwargs),
            )?;
            Ok(())
        })();
        if let Err(log_err) = logged {
            log_err.write_unraisable(py, None);
        }
    }
}

impl picolm_core::agent::ToolHandler for PyToolHandler {
    fn call(&mut self, arguments: &serde_json::Value) -> Result<String, String> {
        Python::attach(|py| match self.result(py, arguments) {
            Ok(text) => Ok(text),
            Err(e) if e.is_instance_of::<PyException>(py) => {
                self.log_exception(py, &e);
                Err(format!("{}: {}", e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default(), e.value(py)))
            }
            Err(e) => {
                let kind = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default();
                *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(format!("{kind}: the tool was interrupted"))
            }
        })
    }
}

/// A JSON value as a Python object (through `json.loads`).
fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (v.to_string(),))?.unbind())
}

/// The outcome of `Model.run_tools`.
#[pyclass(module = "picolm", name = "AgentResult", frozen, get_all)]
struct AgentResult {
    /// The final text answer ("" unless `stop == "answered"`).
    answer: String,
    /// "answered", "max_iterations", "cancelled" or "tool_calls_pending".
    stop: String,
    /// Model steps run, each ending in a tool call or the answer; a forced answer (after the model repeated a
    /// call) is part of its step, not an extra iteration.
    iterations: usize,
    /// The conversation after the run (list of message dicts, tool results included).
    messages: Py<PyList>,
    /// Executed calls: dicts with id, name, arguments (dict) and result (str).
    calls: Py<PyList>,
    /// Calls of external tools waiting for results, in OpenAI's shape (arguments as a JSON string).
    pending_calls: Py<PyList>,
    /// `{"tool_calls": [...]}` of the pending calls as JSON text (PicoClaw's format), or None.
    tool_calls_json: Option<String>,
}

impl AgentResult {
    fn from_outcome(py: Python<'_>, out: &picolm_core::agent::AgentOutcome) -> PyResult<AgentResult> {
        let calls = PyList::empty(py);
        for (c, result) in &out.calls {
            let d = PyDict::new(py);
            d.set_item("id", &c.id)?;
            d.set_item("name", &c.name)?;
            d.set_item("arguments", json_to_py(py, &c.arguments)?)?;
            d.set_item("result", result)?;
            calls.append(d)?;
        }
        let pending = PyList::empty(py);
        for c in &out.pending_calls {
            pending.append(json_to_py(py, &c.to_openai())?)?;
        }
        Ok(AgentResult {
            answer: out.answer.clone(),
            stop: out.stop.as_str().to_string(),
            iterations: out.iterations,
            messages: messages_to_py(py, &out.messages)?,
            calls: calls.unbind(),
            pending_calls: pending.unbind(),
            tool_calls_json: (!out.pending_calls.is_empty())
                .then(|| picolm_core::agent::tool_calls_json(&out.pending_calls)),
        })
    }
}

#[pymethods]
impl AgentResult {
    fn __repr__(&self) -> String {
        format!("AgentResult(stop={:?}, iterations={}, answer={:?})", self.stop, self.iterations, self.answer)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Open {
    model: Arc<Model>,
    shared: Arc<Shared>,
}

/// A GGUF model loaded for CPU inference, with one evaluation session (KV cache).
///
/// Model(path, *, n_ctx=0, n_threads=0, seed=0, kv_type="f16", stream_weights=False, n_batch=64, max_rss_bytes=0)
///
/// The session is reused across calls (prefix caching). Calls on the same model from several threads are
/// serialised; a new generation ends any stream still open on the model. The GIL is released while tokens are
/// computed, and Ctrl-C is honoured between prompt batches and between tokens. Full documentation:
/// picolm/_picolm.pyi.
#[pyclass(module = "picolm", name = "Model", frozen)]
struct PyModel {
    open: Mutex<Option<Open>>,
    path: String,
    default_seed: u64,
    n_ctx: usize,
    last: Arc<Mutex<Option<GenerationResult>>>,
}

fn nonneg(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| invalid(format!("{name} must be >= 0, got {v}")))
}

/// Any int in the i64 range is a seed; negative values are taken as their two's complement.
fn seed_value(v: i64) -> PyResult<u64> {
    Ok(v as u64)
}

struct GenArgs {
    params: GenerateParams,
    ids: Vec<u32>,
    grammar: Option<Arc<Grammar>>,
}

/// What to generate from: plain text, or a conversation rendered with the model's chat template.
enum Prompt {
    Text { text: String, add_bos: bool, parse_special: bool },
    Chat(Vec<ChatMessage>),
}

impl GenArgs {
    fn constraint(&self, model: &Model) -> Option<Box<dyn TokenConstraint>> {
        self.grammar
            .as_ref()
            .map(|g| Box::new(JsonConstraint::new(g.clone(), model.grammar_vocab())) as Box<dyn TokenConstraint>)
    }
}

/// The `json=` option: `False`/`None` off, `True` or `"object"` one JSON object, `"value"` any JSON value.
fn json_mode(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<JsonMode>> {
    let Some(v) = v.filter(|v| !v.is_none()) else { return Ok(None) };
    if let Ok(b) = v.downcast::<pyo3::types::PyBool>() {
        return Ok(b.is_true().then_some(JsonMode::Object));
    }
    if let Ok(name) = v.extract::<String>() {
        return JsonMode::from_name(&name)
            .map(Some)
            .ok_or_else(|| invalid(format!("json must be True, False, \"object\" or \"value\", got {name:?}")));
    }
    Err(PyTypeError::new_err(format!("json must be a bool or \"object\"/\"value\", got {}", v.get_type().name()?)))
}

/// `json.dumps(obj)` for a schema given as a dict (a str is taken as JSON text).
fn schema_text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if obj.is_instance_of::<PyString>() {
        return text_arg(obj, "schema");
    }
    obj.py().import("json")?.call_method1("dumps", (obj,))?.extract()
}

/// `obj` (dicts, lists, str, numbers...) as a JSON value, through `json.dumps`; `what` names it in errors.
fn py_to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<serde_json::Value> {
    let text: String = obj.py().import("json")?.call_method1("dumps", (obj,))?.extract()?;
    serde_json::from_str(&text).map_err(|e| invalid(format!("{what} is not valid JSON data: {e}")))
}

/// Reads chat messages in OpenAI's format (a list of dicts: `role`, `content` as a str or a list of
/// `{"type": "text", "text": ...}` parts, and `tool_call_id`, `name`, `tool_calls` where they apply), with
/// picolm-core's parser, the same one C and the CLI use.
fn chat_messages(messages: &Bound<'_, PyAny>) -> PyResult<Vec<ChatMessage>> {
    let mut out = Vec::new();
    for (i, m) in messages.try_iter().map_err(|_| PyTypeError::new_err("messages must be a list of dicts"))?.enumerate()
    {
        let m = m?;
        m.downcast::<PyDict>().map_err(|_| PyTypeError::new_err(format!("messages[{i}] must be a dict")))?;
        let v = py_to_json(&m, &format!("messages[{i}]"))?;
        out.push(ChatMessage::from_json(&v, i).map_err(|e| PyErr::from(Fail::Core(e.into())))?);
    }
    Ok(out)
}

/// Messages as OpenAI-shaped dicts (tool-call arguments as JSON text).
fn messages_to_py(py: Python<'_>, messages: &[ChatMessage]) -> PyResult<Py<PyList>> {
    let list = PyList::empty(py);
    for m in messages {
        list.append(json_to_py(py, &m.to_openai())?)?;
    }
    Ok(list.unbind())
}

impl PyModel {
    fn get(&self) -> Result<Open, Fail> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(Fail::Closed)
    }

    fn set_last(&self, r: &GenerationResult) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
    }

    #[allow(clippy::too_many_arguments)]
    fn gen_args(
        &self,
        py: Python<'_>,
        open: &Open,
        prompt: Prompt,
        json: Option<&Bound<'_, PyAny>>,
        schema: Option<&Bound<'_, PyAny>>,
        max_tokens: i64,
        temperature: f64,
        top_k: i64,
        top_p: f64,
        min_p: f64,
        repeat_penalty: f64,
        repeat_last_n: i64,
        seed: Option<i64>,
        stop: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<GenArgs> {
        let stop: Vec<String> = match stop {
            None => Vec::new(),
            Some(s) if s.is_none() => Vec::new(),
            Some(s) if s.is_instance_of::<PyString>() => vec![text_arg(s, "stop")?],
            Some(s) => {
                let mut v = Vec::new();
                for (i, item) in
                    s.try_iter().map_err(|_| PyTypeError::new_err("stop must be a str or a list of str"))?.enumerate()
                {
                    let item = item?;
                    if !item.is_instance_of::<PyString>() {
                        return Err(PyTypeError::new_err("stop must be a str or a list of str"));
                    }
                    v.push(text_arg(&item, &format!("stop[{i}]"))?);
                }
                v
            }
        };
        if stop.iter().any(|s| s.is_empty()) {
            return Err(invalid("stop strings must not be empty"));
        }
        let sampler = SamplerParams {
            temperature: temperature as f32,
            top_k: nonneg("top_k", top_k)?,
            top_p: top_p as f32,
            min_p: min_p as f32,
            repeat_penalty: repeat_penalty as f32,
            repeat_last_n: nonneg("repeat_last_n", repeat_last_n)?,
            seed: match seed {
                Some(s) => seed_value(s)?,
                None => self.default_seed,
            },
        };
        sampler.validate().map_err(|e| PyErr::from(Fail::Core(Error::Sampler(e))))?;
        let params = GenerateParams { max_tokens: nonneg("max_tokens", max_tokens)?, sampler, stop, stop_at_eog: true };
        let mode = json_mode(json)?;
        let grammar = match schema {
            Some(obj) if !obj.is_none() => {
                let text = schema_text(obj)?;
                Some(Arc::new(Grammar::from_schema_str(&text).map_err(|e| PyErr::from(Fail::Core(e.into())))?))
            }
            _ => mode.map(|m| Arc::new(Grammar::for_mode(m))),
        };
        let model = open.model.clone();
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
        Ok(GenArgs { params, ids, grammar })
    }

    fn run_to_end(&self, py: Python<'_>, open: &Open, args: GenArgs) -> PyResult<GenerationResult> {
        let shared = open.shared.clone();
        let constraint = args.constraint(&open.model);
        let r = py.detach(move || -> Result<GenerationResult, Fail> {
            let mut slot = shared.lock();
            slot.epoch += 1;
            let session = slot.session.as_mut().ok_or(Fail::Closed)?;
            guarded(session, |s| {
                let (reused, prefill_time) = prefill(s, &args.ids, &shared.closing)?;
                let mut st = s.start_generation(&args.ids, &args.params, constraint, Some(shared.closing.clone()))?;
                while s.next_piece(&mut st)?.is_some() {
                    check_signals_detached()?;
                }
                let out = st.output();
                Ok(GenerationResult::new(out, out.stop_reason, reused, prefill_time))
            })
        })?;
        self.set_last(&r);
        Ok(r)
    }

    fn start_stream(&self, py: Python<'_>, open: &Open, args: GenArgs) -> PyResult<TokenStream> {
        let shared = open.shared.clone();
        let constraint = args.constraint(&open.model);
        let (running, epoch) = py.detach(move || -> Result<(Running, u64), Fail> {
            let mut slot = shared.lock();
            slot.epoch += 1;
            let epoch = slot.epoch;
            let session = slot.session.as_mut().ok_or(Fail::Closed)?;
            let running = guarded(session, |s| {
                let (n_reused, prefill_time) = prefill(s, &args.ids, &shared.closing)?;
                let state = s.start_generation(&args.ids, &args.params, constraint, Some(shared.closing.clone()))?;
                Ok(Running { state, n_reused, prefill: prefill_time })
            })?;
            Ok((running, epoch))
        })?;
        Ok(TokenStream {
            shared: open.shared.clone(),
            epoch,
            running: Mutex::new(Some(running)),
            result: Mutex::new(None),
            last: self.last.clone(),
        })
    }

    fn finish_call(&self, py: Python<'_>, open: &Open, args: GenArgs, stream: bool) -> PyResult<Py<PyAny>> {
        if stream {
            Ok(Py::new(py, self.start_stream(py, open, args)?)?.into_any())
        } else {
            Ok(self.run_to_end(py, open, args)?.text.into_pyobject(py)?.into_any().unbind())
        }
    }

    /// Runs `f` on the session with the GIL released; bumps the epoch when `invalidates`.
    fn with_session<T: Send>(
        &self,
        py: Python<'_>,
        invalidates: bool,
        f: impl FnOnce(&mut Session) -> Result<T, Fail> + Send,
    ) -> PyResult<T> {
        let open = self.get()?;
        Ok(py.detach(move || {
            let mut slot = open.shared.lock();
            if invalidates {
                slot.epoch += 1;
            }
            let session = slot.session.as_mut().ok_or(Fail::Closed)?;
            guarded(session, f)
        })?)
    }
}

fn meta_scalar(py: Python<'_>, v: &MetaValue) -> PyResult<Py<PyAny>> {
    Ok(match v {
        MetaValue::U8(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::I8(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::U16(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::I16(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::U32(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::I32(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::U64(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::I64(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::F32(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::F64(x) => x.into_pyobject(py)?.into_any().unbind(),
        MetaValue::Bool(x) => x.into_pyobject(py)?.to_owned().into_any().unbind(),
        MetaValue::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        MetaValue::Array(a) => meta_array(py, a)?,
    })
}

fn meta_array(py: Python<'_>, a: &MetaArray) -> PyResult<Py<PyAny>> {
    Ok(match a {
        MetaArray::U8(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::I8(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::U16(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::I16(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::U32(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::I32(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::F32(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::Bool(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::Str(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::U64(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::I64(v) => PyList::new(py, v)?.into_any().unbind(),
        MetaArray::F64(v) => PyList::new(py, v)?.into_any().unbind(),
    })
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (path=None, *, model_path=None, n_ctx=0, n_threads=0, seed=0, kv_type=None, stream_weights=false,
                        n_batch=64, max_rss_bytes=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<&Bound<'_, PyAny>>,
        model_path: Option<&Bound<'_, PyAny>>,
        n_ctx: i64,
        n_threads: i64,
        seed: i64,
        kv_type: Option<&Bound<'_, PyAny>>,
        stream_weights: bool,
        n_batch: i64,
        max_rss_bytes: i64,
    ) -> PyResult<PyModel> {
        // `model_path` is the name llama-cpp-python uses; either name works, not both.
        let (path, display) = match (path, model_path) {
            (Some(p), None) => path_arg(p, "path")?,
            (None, Some(p)) => path_arg(p, "model_path")?,
            (None, None) => {
                return Err(PyTypeError::new_err("Model() needs the model file: Model(path) or Model(model_path=...)"))
            }
            (Some(_), Some(_)) => return Err(PyTypeError::new_err("Model() got both path and model_path: give one")),
        };
        let kv_type = match kv_type {
            None => "f16".to_string(),
            Some(k) => text_arg(k, "kv_type")?,
        };
        let n_ctx = nonneg("n_ctx", n_ctx)?;
        let n_threads = nonneg("n_threads", n_threads)?;
        let n_batch = nonneg("n_batch", n_batch)?;
        let max_rss_bytes = nonneg("max_rss_bytes", max_rss_bytes)? as u64;
        if n_batch == 0 {
            return Err(invalid("n_batch must be >= 1"));
        }
        let kv_type = match kv_type.to_ascii_lowercase().as_str() {
            "f16" => KvType::F16,
            "q8_0" => KvType::Q8_0,
            other => return Err(invalid(format!("kv_type must be \"f16\" or \"q8_0\", got {other:?}"))),
        };
        let shown = display.clone();
        let (model, session) = py.detach(move || -> Result<(Arc<Model>, Session), Fail> {
            let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<(Arc<Model>, Session), Fail> {
                let rss_budget = (max_rss_bytes > 0).then_some(RssBudget { max_rss_bytes, kv_type, n_batch });
                let params =
                    ModelParams { n_ctx, n_threads, stream_weights, stream_slab_bytes: 0, kernel: None, rss_budget };
                let model = Arc::new(Model::load(&path, &params).map_err(|e| {
                    let kind = match e {
                        ModelError::InvalidParameter { .. } | ModelError::UnknownKernel(_) => "InvalidArgumentError",
                        ModelError::ThreadPool(_) => "PicoLMError",
                        ModelError::OutOfMemory(_) => "OutOfMemoryError",
                        _ => "ModelLoadError",
                    };
                    Fail::Load(kind, format!("cannot load {shown}: {e}"))
                })?);
                let session = Session::new(model.clone(), &SessionParams { n_ctx, n_batch, kv_type })?;
                Ok((model, session))
            }));
            loaded.unwrap_or_else(|p| Err(Fail::Panic(panic_message(p))))
        })?;
        let n_ctx = session.n_ctx();
        warn_load_warnings(py, &model)?;
        Ok(PyModel {
            open: Mutex::new(Some(Open {
                model,
                shared: Arc::new(Shared {
                    slot: Mutex::new(Slot { session: Some(session), epoch: 0 }),
                    closing: CancelToken::new(),
                }),
            })),
            path: display,
            default_seed: seed_value(seed)?,
            n_ctx,
            last: Arc::new(Mutex::new(None)),
        })
    }

    /// Generates text; returns a str, or a `TokenStream` of str pieces when `stream=True`. `json=True` (or
    /// `"object"`) constrains the output to one JSON object, `json="value"` to any JSON value, `schema` (a dict or
    /// JSON text) to JSON valid against that JSON Schema; constrained output is compact.
    #[pyo3(signature = (prompt, *, max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                        repeat_last_n=64, seed=None, stop=None, stream=false, add_bos=true, parse_special=true,
                        json=None, schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        max_tokens: i64,
        temperature: f64,
        top_k: i64,
        top_p: f64,
        min_p: f64,
        repeat_penalty: f64,
        repeat_last_n: i64,
        seed: Option<i64>,
        stop: Option<&Bound<'_, PyAny>>,
        stream: bool,
        add_bos: bool,
        parse_special: bool,
        json: Option<&Bound<'_, PyAny>>,
        schema: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let open = self.get()?;
        let prompt = Prompt::Text { text: text_arg(prompt, "prompt")?, add_bos, parse_special };
        let args = self.gen_args(
            py,
            &open,
            prompt,
            json,
            schema,
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            repeat_last_n,
            seed,
            stop,
        )?;
        self.finish_call(py, &open, args, stream)
    }

    /// Like `generate(stream=False)` but returns a `GenerationResult` with tokens, stop reason and timings.
    #[pyo3(signature = (prompt, *, max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                        repeat_last_n=64, seed=None, stop=None, add_bos=true, parse_special=true, json=None, schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate_full(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        max_tokens: i64,
        temperature: f64,
        top_k: i64,
        top_p: f64,
        min_p: f64,
        repeat_penalty: f64,
        repeat_last_n: i64,
        seed: Option<i64>,
        stop: Option<&Bound<'_, PyAny>>,
        add_bos: bool,
        parse_special: bool,
        json: Option<&Bound<'_, PyAny>>,
        schema: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<GenerationResult> {
        let open = self.get()?;
        let prompt = Prompt::Text { text: text_arg(prompt, "prompt")?, add_bos, parse_special };
        let args = self.gen_args(
            py,
            &open,
            prompt,
            json,
            schema,
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            repeat_last_n,
            seed,
            stop,
        )?;
        self.run_to_end(py, &open, args)
    }

    /// Answers a conversation (a list of `{"role": ..., "content": ...}` dicts) using the model's chat template;
    /// returns the assistant's text, or a `TokenStream` when `stream=True`. Same options as `generate`.
    #[pyo3(signature = (messages, *, max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                        repeat_last_n=64, seed=None, stop=None, stream=false, json=None, schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn chat(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        max_tokens: i64,
        temperature: f64,
        top_k: i64,
        top_p: f64,
        min_p: f64,
        repeat_penalty: f64,
        repeat_last_n: i64,
        seed: Option<i64>,
        stop: Option<&Bound<'_, PyAny>>,
        stream: bool,
        json: Option<&Bound<'_, PyAny>>,
        schema: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let open = self.get()?;
        let prompt = Prompt::Chat(chat_messages(messages)?);
        let args = self.gen_args(
            py,
            &open,
            prompt,
            json,
            schema,
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            repeat_last_n,
            seed,
            stop,
        )?;
        self.finish_call(py, &open, args, stream)
    }

    /// The prompt text the chat template makes of `messages` (with the assistant's turn opened).
    #[pyo3(signature = (messages, *, add_generation_prompt=true))]
    fn apply_chat_template(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        add_generation_prompt: bool,
    ) -> PyResult<String> {
        let open = self.get()?;
        let messages = chat_messages(messages)?;
        let model = open.model.clone();
        Ok(py.detach(move || -> Result<String, Fail> {
            let t = ChatTemplate::for_model(model.file(), model.tokenizer()).map_err(Error::from)?;
            Ok(t.render(&messages, add_generation_prompt).map_err(Error::from)?)
        })?)
    }

    /// Runs the tool-call loop: the model answers or calls one of `tools` (`picolm.Tool` objects: name,
    /// description, JSON Schema of the arguments, and a callable that receives the arguments as a dict) until it
    /// answers or `max_iterations` steps ran. A handler's exception becomes an error message for the model.
    /// Tools whose handler is None are external: the loop stops with `stop == "tool_calls_pending"` and the
    /// calls in `AgentResult.pending_calls`. `on_event(kind, data)` (optional) sees "tool_call", "tool_result"
    /// and "answer_piece" events. Returns an `AgentResult`.
    #[pyo3(signature = (messages, tools, *, tool_choice=None, max_iterations=5, max_tokens=192, temperature=0.0,
                        top_k=0, top_p=1.0, seed=None, on_event=None))]
    #[allow(clippy::too_many_arguments)]
    fn run_tools(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        tools: &Bound<'_, PyAny>,
        tool_choice: Option<&Bound<'_, PyAny>>,
        max_iterations: i64,
        max_tokens: i64,
        temperature: f64,
        top_k: i64,
        top_p: f64,
        seed: Option<i64>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<AgentResult> {
        let open = self.get()?;
        let messages = chat_messages(messages)?;
        let fatal: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
        let mut registered = Vec::new();
        let not_a_list = || PyTypeError::new_err("tools must be a list of picolm.Tool or OpenAI tool dicts");
        for (i, t) in tools.try_iter().map_err(|_| not_a_list())?.enumerate() {
            let t = t?;
            if t.is_instance_of::<PyDict>() {
                // OpenAI's {"type": "function", "function": {name, description, parameters}}, read by the same
                // parser as C's picolm_agent_add_tools_json and the CLI's --tools: an external tool.
                let spec = ToolSpec::from_json(&py_to_json(&t, &format!("tools[{i}]"))?)
                    .map_err(|e| PyErr::from(Fail::Core(e)))?;
                spec.validate().map_err(|e| PyErr::from(Fail::Core(e)))?;
                registered.push(Tool::external(spec));
                continue;
            }
            if t.is_instance_of::<PyString>() || !t.hasattr("name")? {
                return Err(not_a_list());
            }
            let name = text_arg(&t.getattr("name")?, &format!("tools[{i}].name"))?;
            let description = text_arg(&t.getattr("description")?, &format!("tools[{i}].description"))?;
            let parameters: String = schema_text(&t.getattr("parameters")?)?;
            let parameters: serde_json::Value =
                serde_json::from_str(&parameters).map_err(|e| invalid(format!("parameters of tool {name:?}: {e}")))?;
            let handler = t.getattr("handler")?;
            let spec = ToolSpec { name: name.clone(), description, parameters };
            spec.validate().map_err(|e| PyErr::from(Fail::Core(e)))?;
            registered.push(if handler.is_none() {
                Tool::external(spec)
            } else {
                Tool::new(spec, PyToolHandler { name, handler: handler.unbind(), fatal: fatal.clone() })
            });
        }
        let tool_choice = match tool_choice {
            Some(c) => text_arg(c, "tool_choice")?,
            None => "auto".to_string(),
        };
        let choice = match tool_choice.as_str() {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            "none" => ToolChoice::None,
            other => {
                return Err(invalid(format!("tool_choice must be \"auto\", \"required\" or \"none\", got {other:?}")))
            }
        };
        let sampler = SamplerParams {
            temperature: temperature as f32,
            top_k: nonneg("top_k", top_k)?,
            top_p: top_p as f32,
            seed: seed.map(|s| s as u64).unwrap_or(self.default_seed),
            ..Default::default()
        };
        sampler.validate().map_err(|e| PyErr::from(Fail::Core(Error::Sampler(e))))?;
        let params = AgentParams {
            max_iterations: nonneg("max_iterations", max_iterations)?,
            generate: GenerateParams { max_tokens: nonneg("max_tokens", max_tokens)?, sampler, ..Default::default() },
            tool_choice: choice,
        };
        let model = open.model.clone();
        let shared = open.shared.clone();
        let out = py.detach(move || -> Result<picolm_core::agent::AgentOutcome, Fail> {
            let template = ChatTemplate::for_model(model.file(), model.tokenizer()).map_err(Error::from)?;
            let mut agent = Agent::new(registered, template, 1)?;
            let mut slot = shared.lock();
            slot.epoch += 1;
            let session = slot.session.as_mut().ok_or(Fail::Closed)?;
            let mut interrupted: Option<PyErr> = None;
            let handler_fatal = fatal.clone();
            let out = guarded(session, |s| {
                Ok(agent.run(s, &messages, &params, Some(shared.closing.clone()), &mut |e| {
                    if handler_fatal.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return false; // a handler raised KeyboardInterrupt, SystemExit...: stop, re-raised below
                    }
                    let r = Python::attach(|py| -> PyResult<()> {
                        py.check_signals()?;
                        if let Some(cb) = &on_event {
                            let d = PyDict::new(py);
                            let kind = match e {
                                AgentEvent::AnswerPiece(p) => {
                                    d.set_item("text", p)?;
                                    "answer_piece"
                                }
                                AgentEvent::ToolCall(c) => {
                                    d.set_item("id", &c.id)?;
                                    d.set_item("name", &c.name)?;
                                    d.set_item("arguments", json_to_py(py, &c.arguments)?)?;
                                    "tool_call"
                                }
                                AgentEvent::ToolResult { call, content, is_error, truncated } => {
                                    d.set_item("id", &call.id)?;
                                    d.set_item("name", &call.name)?;
                                    d.set_item("content", content)?;
                                    d.set_item("is_error", is_error)?;
                                    d.set_item("truncated", truncated)?;
                                    "tool_result"
                                }
                            };
                            cb.call1(py, (kind, d))?;
                        }
                        Ok(())
                    });
                    match r {
                        Ok(()) => true,
                        Err(err) => {
                            interrupted = Some(err);
                            false
                        }
                    }
                })?)
            });
            if let Some(e) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(Fail::Py(e));
            }
            let out = out?;
            if let Some(e) = interrupted {
                return Err(Fail::Py(e));
            }
            Ok(out)
        })?;
        AgentResult::from_outcome(py, &out)
    }

    /// The `GenerationResult` of the last finished generation on this model (or `None`).
    #[getter]
    fn last_result(&self) -> Option<GenerationResult> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Token ids of `text`.
    #[pyo3(signature = (text, *, add_bos=true, parse_special=true))]
    fn tokenize(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        add_bos: bool,
        parse_special: bool,
    ) -> PyResult<Vec<u32>> {
        let text = text_arg(text, "text")?;
        let open = self.get()?;
        Ok(py.detach(move || open.model.tokenizer().encode(&text, add_bos, parse_special)))
    }

    /// The bytes of a token sequence.
    #[pyo3(signature = (ids, *, special=false))]
    fn detokenize_bytes<'py>(&self, py: Python<'py>, ids: Vec<i64>, special: bool) -> PyResult<Bound<'py, PyBytes>> {
        let open = self.get()?;
        let n_vocab = open.model.tokenizer().n_vocab();
        let ids: Vec<u32> = ids
            .into_iter()
            .map(|i| {
                u32::try_from(i)
                    .ok()
                    .filter(|&t| (t as usize) < n_vocab)
                    .ok_or_else(|| invalid(format!("token id {i} is outside the vocabulary (size {n_vocab})")))
            })
            .collect::<PyResult<_>>()?;
        let bytes = py.detach(move || open.model.tokenizer().decode(&ids, special));
        Ok(PyBytes::new(py, &bytes))
    }

    /// The text of a token sequence (invalid UTF-8 replaced by U+FFFD).
    #[pyo3(signature = (ids, *, special=false))]
    fn detokenize(&self, py: Python<'_>, ids: Vec<i64>, special: bool) -> PyResult<String> {
        let b = self.detokenize_bytes(py, ids, special)?;
        Ok(String::from_utf8_lossy(b.as_bytes()).into_owned())
    }

    /// Writes the session state (cached tokens, keys/values, logits, model fingerprint, checksum) to `path`,
    /// atomically. `path` may be new, an empty file or a PicoLM state (replaced); any other file (a model, a text),
    /// a FIFO, device or directory raises `StateError` and is left untouched. A symbolic link is written through
    /// to its existing target.
    fn save_state(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        let (path, _) = path_arg(path, "path")?;
        self.with_session(py, false, move |s| {
            s.save_state_file(&path).map_err(|e| Fail::State(format!("cannot save state to {}: {e}", path.display())))
        })
    }

    /// Restores a session state written by `save_state` from the same model file (checked by fingerprint, KV
    /// type, context, checksum and exact length); raises `StateError` otherwise (the cache is then empty). Only
    /// regular files are opened: a FIFO, device or directory is refused without blocking.
    fn load_state(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        let (path, _) = path_arg(path, "path")?;
        self.with_session(py, true, move |s| {
            s.load_state_file(&path).map_err(|e| Fail::State(format!("cannot load state from {}: {e}", path.display())))
        })
    }

    /// Forgets the cached tokens (the next generation evaluates its whole prompt).
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with_session(py, true, |s| {
            s.reset();
            Ok(())
        })
    }

    /// Token ids currently held in the KV cache.
    #[getter]
    fn cached_tokens(&self, py: Python<'_>) -> PyResult<Vec<u32>> {
        self.with_session(py, false, |s| Ok(s.tokens().to_vec()))
    }

    /// Releases the model and its session. Idempotent. A generation or tool loop running on another thread is
    /// cancelled first (it ends after the current token), then `close` waits for it to end.
    fn close(&self, py: Python<'_>) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(open) = open {
            open.shared.closing.cancel();
            py.detach(move || {
                let mut slot = open.shared.lock();
                slot.epoch += 1;
                slot.session = None;
                drop(slot);
                drop(open);
            });
        }
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        slf.get()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// Path the model was loaded from.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// Context length of the session, in tokens.
    #[getter]
    fn n_ctx(&self) -> PyResult<usize> {
        self.get()?;
        Ok(self.n_ctx)
    }

    /// Vocabulary size.
    #[getter]
    fn n_vocab(&self) -> PyResult<usize> {
        Ok(self.get()?.model.tokenizer().n_vocab())
    }

    /// Number of compute threads.
    #[getter]
    fn n_threads(&self) -> PyResult<usize> {
        Ok(self.get()?.model.n_threads())
    }

    /// Beginning-of-sequence token id (or None).
    #[getter]
    fn bos_id(&self) -> PyResult<Option<u32>> {
        Ok(self.get()?.model.tokenizer().bos_id())
    }

    /// End-of-sequence token id (or None).
    #[getter]
    fn eos_id(&self) -> PyResult<Option<u32>> {
        Ok(self.get()?.model.tokenizer().eos_id())
    }

    /// End-of-generation token ids.
    #[getter]
    fn eog_ids(&self) -> PyResult<Vec<u32>> {
        Ok(self.get()?.model.tokenizer().eog_ids().to_vec())
    }

    /// GGUF metadata as a dict; arrays longer than 1024 elements are summarised as a string such as
    /// "array<string>[49152]" (use `metadata_value(key)` for the full value).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let open = self.get()?;
        let d = PyDict::new(py);
        for (k, v) in open.model.file().metadata() {
            match v {
                MetaValue::Array(a) if a.len() > METADATA_ARRAY_LIMIT => d.set_item(k, v.display_short())?,
                _ => d.set_item(k, meta_scalar(py, v)?)?,
            }
        }
        Ok(d)
    }

    /// One GGUF metadata value, arrays in full; `default` when the key is absent.
    #[pyo3(signature = (key, default=None))]
    fn metadata_value(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let key = text_arg(key, "key")?;
        let open = self.get()?;
        match open.model.file().get(&key) {
            Some(v) => meta_scalar(py, v),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Memory figures in bytes: kv_cache, scratch, model_file, and the process' rss, peak_rss, rss_anon,
    /// rss_file (Linux only).
    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let open = self.get()?;
        let (kv, scratch) = self.with_session(py, false, |s| Ok((s.kv_bytes(), s.scratch_bytes())))?;
        let d = PyDict::new(py);
        d.set_item("kv_cache", kv)?;
        d.set_item("scratch", scratch)?;
        d.set_item("model_file", open.model.file().len())?;
        if let Some(m) = MemoryUsage::current() {
            d.set_item("rss", m.rss)?;
            d.set_item("peak_rss", m.peak_rss)?;
            d.set_item("rss_anon", m.rss_anon)?;
            d.set_item("rss_file", m.rss_file)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!("picolm.Model({:?}, n_ctx={}{state})", self.path, self.n_ctx)
    }
}

/// Native part of the `picolm` package.
#[pymodule]
fn _picolm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_class::<TokenStream>()?;
    m.add_class::<GenerationResult>()?;
    m.add_class::<AgentResult>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
