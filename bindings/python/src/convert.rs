//! Conversions between Python objects and the engine's values: checked text and path arguments, counts, JSON
//! data, chat messages and GGUF metadata.

use std::path::PathBuf;

use picolm_core::chat::ChatMessage;
use picolm_core::gguf::{MetaArray, MetaValue};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::errors::{core_err, invalid};

/// `obj` as Rust text: a `str` (else `TypeError`) that is valid Unicode (a lone surrogate such as `"\ud800"`,
/// which UTF-8 cannot encode, is `InvalidArgumentError`, with the encoding error as its cause).
pub(crate) fn text_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
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
pub(crate) fn path_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(PathBuf, String)> {
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

/// A count argument: `InvalidArgumentError` when negative.
pub(crate) fn nonneg(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| invalid(format!("{name} must be >= 0, got {v}")))
}

/// A seed: any int in the i64 range; negative values are taken as their two's complement.
pub(crate) fn seed_value(v: i64) -> u64 {
    v as u64
}

/// A JSON value as a Python object (through `json.loads`).
pub(crate) fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (v.to_string(),))?.unbind())
}

/// `json.dumps(obj)` for a schema given as a dict (a str is taken as JSON text).
pub(crate) fn schema_text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if obj.is_instance_of::<PyString>() {
        return text_arg(obj, "schema");
    }
    obj.py().import("json")?.call_method1("dumps", (obj,))?.extract()
}

/// `obj` (dicts, lists, str, numbers...) as a JSON value, through `json.dumps`; `what` names it in errors.
pub(crate) fn py_to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<serde_json::Value> {
    let text: String = obj.py().import("json")?.call_method1("dumps", (obj,))?.extract()?;
    serde_json::from_str(&text).map_err(|e| invalid(format!("{what} is not valid JSON data: {e}")))
}

/// Reads chat messages in OpenAI's format (a list of dicts: `role`, `content` as a str or a list of
/// `{"type": "text", "text": ...}` parts, and `tool_call_id`, `name`, `tool_calls` where they apply), with
/// picolm-core's parser, the same one C and the CLI use.
pub(crate) fn chat_messages(messages: &Bound<'_, PyAny>) -> PyResult<Vec<ChatMessage>> {
    let mut out = Vec::new();
    for (i, m) in messages.try_iter().map_err(|_| PyTypeError::new_err("messages must be a list of dicts"))?.enumerate()
    {
        let m = m?;
        m.downcast::<PyDict>().map_err(|_| PyTypeError::new_err(format!("messages[{i}] must be a dict")))?;
        let v = py_to_json(&m, &format!("messages[{i}]"))?;
        out.push(ChatMessage::from_json(&v, i).map_err(core_err)?);
    }
    Ok(out)
}

/// Messages as OpenAI-shaped dicts (tool-call arguments as JSON text).
pub(crate) fn messages_to_py(py: Python<'_>, messages: &[ChatMessage]) -> PyResult<Py<PyList>> {
    let list = PyList::empty(py);
    for m in messages {
        list.append(json_to_py(py, &m.to_openai())?)?;
    }
    Ok(list.unbind())
}

/// A GGUF metadata value as a Python object (arrays as lists).
pub(crate) fn meta_value(py: Python<'_>, v: &MetaValue) -> PyResult<Py<PyAny>> {
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
