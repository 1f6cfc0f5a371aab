//! Keyword options, parsed once into picolm-core's parameter structs.
//!
//! `generate`, `generate_full`, `chat` and `run_tools` take their sampling, limit, stop and JSON options as
//! keywords collected into one [`GenerateOptions`]; its defaults are the core's `Default` impls
//! (`GenerateParams`, `SamplerParams`, `AgentParams`), and names are parsed by the core (`JsonMode::from_name`,
//! `ToolChoice::from_name`, `KvType::from_name`). [`defaults`] hands the same values to Python
//! (`picolm._picolm._defaults()`), so a test checks that the signatures Python shows match them.

use std::sync::Arc;

use picolm_core::agent::{AgentParams, ToolChoice};
use picolm_core::grammar::{Grammar, JsonMode};
use picolm_core::model::KvType;
use picolm_core::{GenerateParams, ModelParams, SessionParams};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};

use crate::convert::{nonneg, schema_text, seed_value, text_arg};
use crate::errors::{core_err, invalid};

/// The methods that take [`GenerateOptions`]; each accepts its own set of keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `Model.generate`, `Model.generate_full` and `Model.chat`.
    Generate(&'static str),
    /// `Model.run_tools`.
    RunTools,
}

/// Keywords of `generate`, `generate_full` and `chat` held in [`GenerateOptions`].
const GENERATE_KEYWORDS: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
    "stop",
    "json",
    "schema",
];

/// Keywords of `run_tools` held in [`GenerateOptions`].
const RUN_TOOLS_KEYWORDS: &[&str] =
    &["tool_choice", "max_iterations", "max_tokens", "temperature", "top_k", "top_p", "seed"];

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Generate(name) => name,
            Method::RunTools => "run_tools",
        }
    }

    fn keywords(self) -> &'static [&'static str] {
        match self {
            Method::Generate(_) => GENERATE_KEYWORDS,
            Method::RunTools => RUN_TOOLS_KEYWORDS,
        }
    }

    /// The core's defaults for this method (`run_tools` has the agent's smaller `max_tokens`).
    fn base(self) -> AgentParams {
        match self {
            Method::Generate(_) => AgentParams { generate: GenerateParams::default(), ..AgentParams::default() },
            Method::RunTools => AgentParams::default(),
        }
    }
}

/// The options of one generation call.
pub(crate) struct GenerateOptions {
    /// Limits, sampler, stop strings (in `generate`), and for `run_tools` the iteration limit and tool policy.
    pub params: AgentParams,
    /// `json=`: constrain the output to a JSON object or value.
    pub json: Option<JsonMode>,
    /// `schema=`: JSON Schema text the output must satisfy (takes precedence over `json`).
    pub schema: Option<String>,
}

/// `argument 'name': ...` for a value of the wrong type (as PyO3 reports its own arguments).
fn arg<'py, T: FromPyObject<'py>>(v: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
    v.extract().map_err(|e: PyErr| {
        if e.is_instance_of::<PyTypeError>(v.py()) {
            PyTypeError::new_err(format!("argument '{name}': {}", e.value(v.py())))
        } else {
            e
        }
    })
}

fn count(v: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    nonneg(name, arg(v, name)?)
}

impl GenerateOptions {
    /// Parses the keywords of `method`; absent ones keep the core's defaults, `seed=None` is `default_seed`
    /// (the model's). An unknown keyword is a `TypeError` as for any Python function.
    pub fn parse(method: Method, kwargs: Option<&Bound<'_, PyDict>>, default_seed: u64) -> PyResult<GenerateOptions> {
        let mut params = method.base();
        params.generate.sampler.seed = default_seed;
        let mut opts = GenerateOptions { params, json: None, schema: None };
        let Some(kwargs) = kwargs else { return Ok(opts) };
        for (key, v) in kwargs.iter() {
            let key: String = key.extract()?;
            if !method.keywords().contains(&key.as_str()) {
                return Err(PyTypeError::new_err(format!(
                    "{}() got an unexpected keyword argument '{key}'",
                    method.name()
                )));
            }
            let generate = &mut opts.params.generate;
            let s = &mut generate.sampler;
            match key.as_str() {
                "max_tokens" => generate.max_tokens = count(&v, &key)?,
                "temperature" => s.temperature = arg::<f64>(&v, &key)? as f32,
                "top_k" => s.top_k = count(&v, &key)?,
                "top_p" => s.top_p = arg::<f64>(&v, &key)? as f32,
                "min_p" => s.min_p = arg::<f64>(&v, &key)? as f32,
                "repeat_penalty" => s.repeat_penalty = arg::<f64>(&v, &key)? as f32,
                "repeat_last_n" => s.repeat_last_n = count(&v, &key)?,
                "seed" => {
                    if let Some(seed) = arg::<Option<i64>>(&v, &key)? {
                        s.seed = seed_value(seed);
                    }
                }
                "stop" => generate.stop = stop_strings(&v)?,
                "json" => opts.json = json_mode(&v)?,
                "schema" => opts.schema = if v.is_none() { None } else { Some(schema_text(&v)?) },
                "max_iterations" => opts.params.max_iterations = count(&v, &key)?,
                "tool_choice" => opts.params.tool_choice = tool_choice(&v)?,
                _ => unreachable!("every keyword of Method::keywords is handled"),
            }
        }
        opts.params.generate.sampler.validate().map_err(core_err)?;
        Ok(opts)
    }

    /// The grammar the output must follow: `schema`, else the `json` mode, else none.
    pub fn grammar(&self) -> PyResult<Option<Arc<Grammar>>> {
        Ok(match (&self.schema, self.json) {
            (Some(text), _) => Some(Arc::new(Grammar::from_schema_str(text).map_err(core_err)?)),
            (None, Some(mode)) => Some(Arc::new(Grammar::for_mode(mode))),
            (None, None) => None,
        })
    }
}

/// `stop=`: None, one str, or an iterable of non-empty str.
fn stop_strings(s: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let stop = if s.is_none() {
        Vec::new()
    } else if s.is_instance_of::<PyString>() {
        vec![text_arg(s, "stop")?]
    } else {
        let not_str = || PyTypeError::new_err("stop must be a str or a list of str");
        let mut v = Vec::new();
        for (i, item) in s.try_iter().map_err(|_| not_str())?.enumerate() {
            let item = item?;
            if !item.is_instance_of::<PyString>() {
                return Err(not_str());
            }
            v.push(text_arg(&item, &format!("stop[{i}]"))?);
        }
        v
    };
    if stop.iter().any(|s| s.is_empty()) {
        return Err(invalid("stop strings must not be empty"));
    }
    Ok(stop)
}

/// `json=`: `False`/`None` off, `True` or `"object"` one JSON object, `"value"` any JSON value.
fn json_mode(v: &Bound<'_, PyAny>) -> PyResult<Option<JsonMode>> {
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(b) = v.downcast::<PyBool>() {
        return Ok(b.is_true().then_some(JsonMode::Object));
    }
    if let Ok(name) = v.extract::<String>() {
        return JsonMode::from_name(&name)
            .map(Some)
            .ok_or_else(|| invalid(format!("json must be True, False, \"object\" or \"value\", got {name:?}")));
    }
    Err(PyTypeError::new_err(format!("json must be a bool or \"object\"/\"value\", got {}", v.get_type().name()?)))
}

/// `tool_choice=`: None (the default policy) or a name of `ToolChoice`.
fn tool_choice(v: &Bound<'_, PyAny>) -> PyResult<ToolChoice> {
    if v.is_none() {
        return Ok(ToolChoice::default());
    }
    let name = text_arg(v, "tool_choice")?;
    ToolChoice::from_name(&name).ok_or_else(|| {
        let names: Vec<String> = ToolChoice::ALL.iter().map(|c| format!("{:?}", c.name())).collect();
        invalid(format!("tool_choice must be {}, got {name:?}", names.join(", ")))
    })
}

/// `kv_type=`: None (the core's default) or a name `KvType::from_name` accepts ("f16", "q8_0", "q8").
pub(crate) fn kv_type(v: Option<&Bound<'_, PyAny>>) -> PyResult<KvType> {
    let Some(v) = v.filter(|v| !v.is_none()) else { return Ok(KvType::default()) };
    let name = text_arg(v, "kv_type")?;
    KvType::from_name(&name)
        .ok_or_else(|| invalid(format!("kv_type must be \"f16\" or \"q8_0\" (or \"q8\"), got {name:?}")))
}

/// The defaults of every keyword, from the core's `Default` impls, as
/// `{"Model": {...}, "generate": {...}, "run_tools": {...}}` (`picolm._picolm._defaults()`).
pub(crate) fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let model = ModelParams::default();
    let session = SessionParams::default();
    let m = PyDict::new(py);
    m.set_item("model_path", py.None())?;
    m.set_item("n_ctx", model.n_ctx)?;
    m.set_item("n_threads", model.n_threads)?;
    m.set_item("seed", GenerateParams::default().sampler.seed)?;
    m.set_item("kv_type", session.kv_type.name())?;
    m.set_item("stream_weights", model.stream_weights)?;
    m.set_item("n_batch", session.n_batch)?;
    m.set_item("max_rss_bytes", model.rss_budget.map_or(0, |b| b.max_rss_bytes))?;
    let out = PyDict::new(py);
    out.set_item("Model", m)?;
    for method in [Method::Generate("generate"), Method::RunTools] {
        let p = method.base();
        let (g, s) = (&p.generate, &p.generate.sampler);
        let d = PyDict::new(py);
        for &key in method.keywords() {
            match key {
                "max_tokens" => d.set_item(key, g.max_tokens)?,
                "temperature" => d.set_item(key, s.temperature)?,
                "top_k" => d.set_item(key, s.top_k)?,
                "top_p" => d.set_item(key, s.top_p)?,
                "min_p" => d.set_item(key, s.min_p)?,
                "repeat_penalty" => d.set_item(key, s.repeat_penalty)?,
                "repeat_last_n" => d.set_item(key, s.repeat_last_n)?,
                "max_iterations" => d.set_item(key, p.max_iterations)?,
                "tool_choice" => d.set_item(key, p.tool_choice.name())?,
                // seed=None (the model's seed), stop, json and schema: off.
                _ => d.set_item(key, py.None())?,
            }
        }
        out.set_item(method.name(), d)?;
    }
    Ok(out)
}
