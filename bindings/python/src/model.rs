//! `Model`: a loaded GGUF model with one session; the entry point of every call.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use picolm_core::chat::ChatTemplate;
use picolm_core::gguf::MetaValue;
use picolm_core::memory::MemoryUsage;
use picolm_core::model::RssBudget;
use picolm_core::{Error, Model, ModelParams, Session, SessionParams};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::agent::{run_tools, AgentResult};
use crate::convert::{chat_messages, meta_value, nonneg, path_arg, seed_value, text_arg};
use crate::errors::{invalid, load_kind, panic_message, Fail};
use crate::options::{kv_type, GenerateOptions, Method};
use crate::result::GenerationResult;
use crate::session::{guarded, Prompt, Request, Shared};
use crate::stream::{LastResult, TokenStream};

/// Arrays in GGUF metadata longer than this are summarised in `Model.metadata` (e.g. `"array<string>[49152]"`).
const METADATA_ARRAY_LIMIT: usize = 1024;

/// The model and its session while open.
#[derive(Clone)]
struct Open {
    model: Arc<Model>,
    shared: Arc<Shared>,
}

/// A GGUF model loaded for CPU inference, with one evaluation session (KV cache).
///
/// The session is reused across calls (prefix caching). Calls on the same model from several threads are
/// serialised; a new generation ends any stream still open on the model. The GIL is released while tokens are
/// computed, and Ctrl-C is honoured between prompt batches and between tokens. Full documentation:
/// picolm/_picolm.pyi.
#[pyclass(module = "picolm", name = "Model", frozen)]
pub(crate) struct PyModel {
    open: Mutex<Option<Open>>,
    path: String,
    default_seed: u64,
    n_ctx: usize,
    last: LastResult,
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

impl PyModel {
    fn get(&self) -> Result<Open, Fail> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(Fail::Closed)
    }

    fn set_last(&self, r: &GenerationResult) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
    }

    /// The request of a `generate`/`generate_full`/`chat` call.
    fn request(
        &self,
        py: Python<'_>,
        open: &Open,
        prompt: Prompt,
        method: Method,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Request> {
        let opts = GenerateOptions::parse(method, options, self.default_seed)?;
        Request::new(py, &open.model, prompt, opts)
    }

    fn run_to_end(&self, py: Python<'_>, open: &Open, req: Request) -> PyResult<GenerationResult> {
        let r = req.run_to_end(py, &open.shared)?;
        self.set_last(&r);
        Ok(r)
    }

    /// The text, or a `TokenStream` when `stream`.
    fn text_or_stream(&self, py: Python<'_>, open: &Open, req: Request, stream: bool) -> PyResult<Py<PyAny>> {
        if stream {
            Ok(Py::new(py, TokenStream::start(py, &open.shared, req, &self.last)?)?.into_any())
        } else {
            Ok(self.run_to_end(py, open, req)?.text.into_pyobject(py)?.into_any().unbind())
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

#[pymethods]
impl PyModel {
    /// Loads a model. `n_batch` and `kv_type` default to picolm-core's `SessionParams::default()`.
    #[new]
    #[pyo3(signature = (path=None, *, model_path=None, n_ctx=0, n_threads=0, seed=0, kv_type=None, stream_weights=false,
                        n_batch=None, max_rss_bytes=0),
           text_signature = "(path=None, *, model_path=None, n_ctx=0, n_threads=0, seed=0, kv_type='f16', \
                             stream_weights=False, n_batch=64, max_rss_bytes=0)")]
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
        n_batch: Option<i64>,
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
        let kv_type = self::kv_type(kv_type)?;
        let n_ctx = nonneg("n_ctx", n_ctx)?;
        let n_threads = nonneg("n_threads", n_threads)?;
        let n_batch = match n_batch {
            Some(n) => nonneg("n_batch", n)?,
            None => SessionParams::default().n_batch,
        };
        let max_rss_bytes = nonneg("max_rss_bytes", max_rss_bytes)? as u64;
        if n_batch == 0 {
            return Err(invalid("n_batch must be >= 1"));
        }
        let shown = display.clone();
        let (model, session) = py.detach(move || -> Result<(Arc<Model>, Session), Fail> {
            let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<(Arc<Model>, Session), Fail> {
                let rss_budget = (max_rss_bytes > 0).then_some(RssBudget { max_rss_bytes, kv_type, n_batch });
                let params = ModelParams { n_ctx, n_threads, stream_weights, rss_budget, ..ModelParams::default() };
                let model = Arc::new(
                    Model::load(&path, &params)
                        .map_err(|e| Fail::Load(load_kind(&e), format!("cannot load {shown}: {e}")))?,
                );
                let session = Session::new(model.clone(), &SessionParams { n_ctx, n_batch, kv_type })?;
                Ok((model, session))
            }));
            loaded.unwrap_or_else(|p| Err(Fail::Panic(panic_message(p))))
        })?;
        let n_ctx = session.n_ctx();
        warn_load_warnings(py, &model)?;
        Ok(PyModel {
            open: Mutex::new(Some(Open { model, shared: Shared::new(session) })),
            path: display,
            default_seed: seed_value(seed),
            n_ctx,
            last: Arc::new(Mutex::new(None)),
        })
    }

    /// Generates text; returns a str, or a `TokenStream` of str pieces when `stream=True`. `json=True` (or
    /// `"object"`) constrains the output to one JSON object, `json="value"` to any JSON value, `schema` (a dict or
    /// JSON text) to JSON valid against that JSON Schema; constrained output is compact.
    #[pyo3(signature = (prompt, *, stream=false, add_bos=true, parse_special=true, **options),
           text_signature = "($self, prompt, *, max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, \
                             repeat_penalty=1.0, repeat_last_n=64, seed=None, stop=None, stream=False, add_bos=True, \
                             parse_special=True, json=None, schema=None)")]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        stream: bool,
        add_bos: bool,
        parse_special: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let open = self.get()?;
        let prompt = Prompt::Text { text: text_arg(prompt, "prompt")?, add_bos, parse_special };
        let req = self.request(py, &open, prompt, Method::Generate("generate"), options)?;
        self.text_or_stream(py, &open, req, stream)
    }

    /// Like `generate(stream=False)` but returns a `GenerationResult` with tokens, stop reason and timings.
    #[pyo3(signature = (prompt, *, add_bos=true, parse_special=true, **options),
           text_signature = "($self, prompt, *, max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, \
                             repeat_penalty=1.0, repeat_last_n=64, seed=None, stop=None, add_bos=True, \
                             parse_special=True, json=None, schema=None)")]
    fn generate_full(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        add_bos: bool,
        parse_special: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<GenerationResult> {
        let open = self.get()?;
        let prompt = Prompt::Text { text: text_arg(prompt, "prompt")?, add_bos, parse_special };
        let req = self.request(py, &open, prompt, Method::Generate("generate_full"), options)?;
        self.run_to_end(py, &open, req)
    }

    /// Answers a conversation (a list of `{"role": ..., "content": ...}` dicts) using the model's chat template;
    /// returns the assistant's text, or a `TokenStream` when `stream=True`. Same options as `generate`.
    #[pyo3(signature = (messages, *, stream=false, **options),
           text_signature = "($self, messages, *, max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, \
                             repeat_penalty=1.0, repeat_last_n=64, seed=None, stop=None, stream=False, json=None, \
                             schema=None)")]
    fn chat(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        stream: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let open = self.get()?;
        let prompt = Prompt::Chat(chat_messages(messages)?);
        let req = self.request(py, &open, prompt, Method::Generate("chat"), options)?;
        self.text_or_stream(py, &open, req, stream)
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
    #[pyo3(signature = (messages, tools, *, on_event=None, **options),
           text_signature = "($self, messages, tools, *, tool_choice='auto', max_iterations=5, max_tokens=192, \
                             temperature=0.0, top_k=0, top_p=1.0, seed=None, on_event=None)")]
    fn run_tools(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        tools: &Bound<'_, PyAny>,
        on_event: Option<Py<PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<AgentResult> {
        let open = self.get()?;
        let messages = chat_messages(messages)?;
        let opts = GenerateOptions::parse(Method::RunTools, options, self.default_seed)?;
        run_tools(py, &open.model, &open.shared, messages, tools, opts, on_event)
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
                _ => d.set_item(k, meta_value(py, v)?)?,
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
            Some(v) => meta_value(py, v),
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
