//! Errors: the failures computed without the GIL ([`Fail`]) and their mapping onto the exception classes of
//! `picolm/_errors.py` (looked up when raised, so that `InvalidArgumentError` can also be a `ValueError`).

use picolm_core::chat::ChatError;
use picolm_core::grammar::GrammarError;
use picolm_core::model::ModelError;
use picolm_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// A failure computed without the GIL; turned into a Python exception afterwards.
pub(crate) enum Fail {
    /// An engine error, mapped by [`core_kind`].
    Core(Error),
    /// A model that cannot be loaded: the exception class name and the message.
    Load(&'static str, String),
    /// A state file that cannot be saved or loaded.
    State(String),
    /// The model was closed.
    Closed,
    /// A stream whose generation was ended by a newer one.
    Superseded,
    /// A bad argument.
    Invalid(String),
    /// A Python exception (a signal handler's `KeyboardInterrupt`, a callback's error).
    Py(PyErr),
    /// A panic inside the engine (the session was reset).
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

/// An instance of the exception class `kind` of `picolm._errors`.
fn py_error(py: Python<'_>, kind: &str, msg: String) -> PyErr {
    let ty = py.import("picolm._errors").and_then(|m| m.getattr(kind)).and_then(|t| Ok(t.downcast_into::<PyType>()?));
    match ty {
        Ok(t) => PyErr::from_type(t, msg),
        // Only reachable when the extension is imported without its Python package.
        Err(_) => PyRuntimeError::new_err(format!("{kind}: {msg}")),
    }
}

/// The exception class name of an engine error.
fn core_kind(e: &Error) -> &'static str {
    match e {
        Error::PromptTooLong { .. }
        | Error::ContextOverflow { .. }
        | Error::Model(ModelError::ContextOverflow { .. }) => "ContextOverflowError",
        Error::Grammar(GrammarError::BudgetTooSmall { .. }) => "BudgetError",
        Error::Grammar(_) => "GrammarError",
        Error::Chat(ChatError::InvalidRole { .. } | ChatError::InvalidMessage { .. }) => "InvalidArgumentError",
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

/// The exception class name of a model load error.
pub(crate) fn load_kind(e: &ModelError) -> &'static str {
    match e {
        ModelError::InvalidParameter { .. } | ModelError::UnknownKernel(_) => "InvalidArgumentError",
        ModelError::ThreadPool(_) => "PicoLMError",
        ModelError::OutOfMemory(_) => "OutOfMemoryError",
        _ => "ModelLoadError",
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

/// An engine error as a Python exception.
pub(crate) fn core_err(e: impl Into<Error>) -> PyErr {
    Fail::Core(e.into()).into()
}

/// `InvalidArgumentError(msg)`.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    Fail::Invalid(msg.into()).into()
}

/// The message of a caught panic.
pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic in the engine".into()
    }
}
