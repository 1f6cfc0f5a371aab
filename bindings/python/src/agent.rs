//! The tool-call loop (`Model.run_tools`): Python tool handlers, tool definitions, events, and `AgentResult`.

use std::sync::{Arc, Mutex};

use picolm_core::agent::{Agent, AgentEvent, AgentOutcome, Tool, ToolHandler, ToolSpec};
use picolm_core::chat::{ChatMessage, ChatTemplate};
use picolm_core::{Error, Model};
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{json_to_py, messages_to_py, py_to_json, schema_text, text_arg};
use crate::errors::{core_err, invalid, Fail};
use crate::options::GenerateOptions;
use crate::session::{guarded, signal_hook, Shared};

/// A non-`Exception` a tool handler raised (`KeyboardInterrupt`, `SystemExit`...), re-raised by `run_tools`.
type Fatal = Arc<Mutex<Option<PyErr>>>;

/// A Python callable used as a tool handler: called with the arguments as a dict; its return value (a str, or
/// anything `json.dumps` accepts) is the result. An `Exception` it raises is logged with its traceback on the
/// "picolm" logger and becomes an error message for the model; anything else (`KeyboardInterrupt`,
/// `SystemExit`, ...) is kept in `fatal`, stops the loop, and is re-raised by `run_tools`.
struct PyToolHandler {
    name: String,
    handler: Py<PyAny>,
    fatal: Fatal,
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

impl ToolHandler for PyToolHandler {
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

/// Reads `tools=`: `picolm.Tool` objects (a handler of None makes an external tool) and OpenAI tool dicts
/// (external tools, read by the same parser as C's `picolm_agent_add_tools_json` and the CLI's `--tools`).
fn read_tools(tools: &Bound<'_, PyAny>, fatal: &Fatal) -> PyResult<Vec<Tool>> {
    let mut registered = Vec::new();
    let not_a_list = || PyTypeError::new_err("tools must be a list of picolm.Tool or OpenAI tool dicts");
    for (i, t) in tools.try_iter().map_err(|_| not_a_list())?.enumerate() {
        let t = t?;
        if t.is_instance_of::<PyDict>() {
            let spec = ToolSpec::from_json(&py_to_json(&t, &format!("tools[{i}]"))?).map_err(core_err)?;
            spec.validate().map_err(core_err)?;
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
        spec.validate().map_err(core_err)?;
        registered.push(if handler.is_none() {
            Tool::external(spec)
        } else {
            Tool::new(spec, PyToolHandler { name, handler: handler.unbind(), fatal: fatal.clone() })
        });
    }
    Ok(registered)
}

/// An agent event as `(kind, data)` for `on_event`.
fn event_to_py<'py>(py: Python<'py>, e: &AgentEvent<'_>) -> PyResult<(&'static str, Bound<'py, PyDict>)> {
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
    Ok((kind, d))
}

/// Runs the loop of `Model.run_tools` on `shared`'s session without the GIL. Signals are checked by the core's
/// `should_stop` hook (between prefill batches and generated pieces, tool calls included) and before each event.
pub(crate) fn run_tools(
    py: Python<'_>,
    model: &Arc<Model>,
    shared: &Arc<Shared>,
    messages: Vec<ChatMessage>,
    tools: &Bound<'_, PyAny>,
    opts: GenerateOptions,
    on_event: Option<Py<PyAny>>,
) -> PyResult<AgentResult> {
    let fatal: Fatal = Arc::new(Mutex::new(None));
    let registered = read_tools(tools, &fatal)?;
    let params = opts.params;
    let model = model.clone();
    let shared = shared.clone();
    let out = py.detach(move || -> Result<AgentOutcome, Fail> {
        let template = ChatTemplate::for_model(model.file(), model.tokenizer()).map_err(Error::from)?;
        let mut agent = Agent::new(registered, template, 1)?;
        let mut slot = shared.lock();
        slot.epoch += 1;
        let session = slot.session.as_mut().ok_or(Fail::Closed)?;
        let mut interrupted: Option<PyErr> = None;
        let mut raised: Option<PyErr> = None;
        let handler_fatal = fatal.clone();
        let out = guarded(session, |s| {
            let mut emit = |e: AgentEvent<'_>| {
                if handler_fatal.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                    return false; // a handler raised KeyboardInterrupt, SystemExit...: stop, re-raised below
                }
                let r = Python::attach(|py| -> PyResult<()> {
                    py.check_signals()?;
                    if let Some(cb) = &on_event {
                        cb.call1(py, event_to_py(py, &e)?)?;
                    }
                    Ok(())
                });
                r.map_err(|err| interrupted = Some(err)).is_ok()
            };
            let closing = Some(shared.closing.clone());
            Ok(agent.run_with(s, &messages, &params, closing, &mut signal_hook(&mut raised), &mut emit)?)
        });
        if let Some(e) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Fail::Py(e));
        }
        let out = out?;
        if let Some(e) = raised.or(interrupted) {
            return Err(Fail::Py(e));
        }
        Ok(out)
    })?;
    AgentResult::from_outcome(py, &out)
}

/// The outcome of `Model.run_tools`.
#[pyclass(module = "picolm", name = "AgentResult", frozen, get_all)]
pub(crate) struct AgentResult {
    /// The final text answer ("" unless `stop == "answered"`).
    answer: String,
    /// A name of picolm-core's `AgentStop::as_str`: "answered", "max_iterations", "cancelled" or
    /// "tool_calls_pending".
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
    fn from_outcome(py: Python<'_>, out: &AgentOutcome) -> PyResult<AgentResult> {
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
