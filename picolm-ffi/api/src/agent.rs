//! The tool-call loop from C: `picolm_agent_*` (register tools with a handler function pointer + `user_data`, or
//! as external tools the caller runs; run the loop on a session with an event callback).
//!
//! Without the `agent` feature the `picolm_agent_*` functions stay exported (the ABI is the same for every
//! feature set) and return PICOLM_ERR_UNSUPPORTED with a message naming the feature.

#[cfg(feature = "agent")]
use std::sync::Arc;

#[cfg(feature = "agent")]
use picolm_core::agent::{tool_calls_json, Agent, AgentEvent, AgentParams, AgentStop, Tool, ToolChoice, ToolSpec};
#[cfg(feature = "agent")]
use picolm_core::generate::GenerateParams;
#[cfg(feature = "agent")]
use picolm_core::model::Model;

use crate::boundary::{guard, picolm_result, Failure};
use crate::chat::picolm_chat_message;
#[cfg(feature = "agent")]
use crate::chat::{read_messages, template_for};
use crate::handle::Handle;
#[cfg(feature = "agent")]
use crate::marshal::{cstr_arg, enum_arg, read_params, str_arg};
use crate::model::picolm_model;
use crate::sampler::picolm_sampler_params;
#[cfg(feature = "agent")]
use crate::session::lock;
use crate::session::picolm_session;

/// The failure of an agent function in a build without the `agent` feature.
#[cfg(not(feature = "agent"))]
fn no_agent(function: &str) -> Failure {
    Failure::unsupported("agent", function)
}

/// Where a tool handler writes its result. Valid only during the handler call.
pub struct picolm_tool_result {
    #[cfg_attr(not(feature = "agent"), allow(dead_code))]
    text: Option<Result<String, String>>,
}

/// Sets the result of a tool call: `text` (UTF-8, `len` bytes) goes back to the model as the tool's message;
/// `is_error` marks a failure (the model then sees `error: <text>`). A handler that never calls this reports an
/// error to the model.
///
/// # Safety
/// `result` the pointer passed to the handler; `text` `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn picolm_tool_result_set(
    result: *mut picolm_tool_result,
    text: *const libc::c_char,
    len: usize,
    is_error: bool,
) -> picolm_result {
    guard(|| {
        #[cfg(not(feature = "agent"))]
        return Err({
            let _ = (result, text, len, is_error);
            no_agent("picolm_tool_result_set")
        });
        #[cfg(feature = "agent")]
        {
            // SAFETY: caller contract.
            let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
            let t = unsafe { str_arg(text, len, "text") }?.to_string();
            r.text = Some(if is_error { Err(t) } else { Ok(t) });
            Ok(())
        }
    })
}

/// A tool handler: gets the arguments as JSON text (valid against the tool's schema; NUL-terminated, `len`
/// bytes) and writes its result with `picolm_tool_result_set`. Runs on the thread that called
/// `picolm_agent_run`.
pub type picolm_tool_handler = Option<
    unsafe extern "C" fn(
        arguments_json: *const libc::c_char,
        len: usize,
        result: *mut picolm_tool_result,
        user_data: *mut libc::c_void,
    ),
>;

/// Kinds of loop events (the `kind` field of `picolm_agent_event`, an `int32_t`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_agent_event_kind {
    /// `text` is a piece of the answer.
    PICOLM_EVENT_ANSWER_PIECE = 0,
    /// The model called a tool: `tool_name`, `call_id`, `text` = the arguments as JSON.
    PICOLM_EVENT_TOOL_CALL = 1,
    /// A handler returned: `tool_name`, `call_id`, `text` = the result (as the model sees it), `is_error`, and
    /// `truncated` when the result was cut (by tokens, with a marker) to fit the context.
    PICOLM_EVENT_TOOL_RESULT = 2,
}

/// A loop event. Every pointer is valid only during the callback.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_agent_event {
    /// What happened: a `picolm_agent_event_kind` value.
    pub kind: i32,
    /// Answer piece, arguments JSON, or result text (NUL-terminated, `text_len` bytes).
    pub text: *const libc::c_char,
    /// Bytes of `text`.
    pub text_len: usize,
    /// The tool (NULL for answer pieces).
    pub tool_name: *const libc::c_char,
    /// The call id (NULL for answer pieces).
    pub call_id: *const libc::c_char,
    /// Whether the tool failed (results only).
    pub is_error: bool,
    /// Whether the result was cut to fit the context (results only; `text` then ends with a marker saying so).
    pub truncated: bool,
}

/// Event callback; return false to stop the loop.
pub type picolm_agent_event_callback =
    Option<unsafe extern "C" fn(event: *const picolm_agent_event, user_data: *mut libc::c_void) -> bool>;

/// Tool policy of a loop run (the `tool_choice` field of `picolm_agent_params`, an `int32_t`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_tool_choice {
    /// The model decides with its first token; it may start a tool call only if the call can be finished in the
    /// tokens left (`max_tokens`, counted in the model's tokens), otherwise it answers in text.
    PICOLM_TOOL_CHOICE_AUTO = 0,
    /// The model must call a tool before it may answer; a `max_tokens` that cannot hold the shortest call is
    /// PICOLM_ERR_BUDGET.
    PICOLM_TOOL_CHOICE_REQUIRED = 1,
    /// No tool calls.
    PICOLM_TOOL_CHOICE_NONE = 2,
}

/// The C code, C name and name of each tool policy (the names are the core's `ToolChoice::name`, checked by a
/// test).
const TOOL_CHOICES: [(i32, &str, &std::ffi::CStr); 3] = [
    (picolm_tool_choice::PICOLM_TOOL_CHOICE_AUTO as i32, "PICOLM_TOOL_CHOICE_AUTO", c"auto"),
    (picolm_tool_choice::PICOLM_TOOL_CHOICE_REQUIRED as i32, "PICOLM_TOOL_CHOICE_REQUIRED", c"required"),
    (picolm_tool_choice::PICOLM_TOOL_CHOICE_NONE as i32, "PICOLM_TOOL_CHOICE_NONE", c"none"),
];

/// The C code of a core tool policy.
#[cfg(feature = "agent")]
fn tool_choice_code(c: ToolChoice) -> i32 {
    TOOL_CHOICES
        .iter()
        .find(|(_, _, n)| n.to_str() == Ok(c.name()))
        .map(|(code, _, _)| *code)
        .expect("every tool choice has a C code")
}

/// Reads a `tool_choice` field (an `int32_t` from C); `field` names it in the error.
#[cfg(feature = "agent")]
fn tool_choice_arg(value: i32, field: &str) -> Result<ToolChoice, Failure> {
    let table: Vec<(i32, &str, ToolChoice)> =
        TOOL_CHOICES.iter().zip(ToolChoice::ALL).map(|((code, name, _), c)| (*code, *name, c)).collect();
    enum_arg(value, field, &table)
}

/// Parses a tool policy name as picolm-core does (`auto`, `required`, `none`, as OpenAI's `tool_choice`) into
/// `*out` (a `picolm_tool_choice` value). PICOLM_ERR_INVALID_ARG names the accepted names; PICOLM_ERR_UNSUPPORTED
/// without the `agent` feature. Thread-safe.
///
/// # Safety
/// `name` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_tool_choice_parse(name: *const libc::c_char, out: *mut i32) -> picolm_result {
    guard(|| {
        #[cfg(not(feature = "agent"))]
        return Err({
            let _ = (name, out);
            no_agent("picolm_tool_choice_parse")
        });
        #[cfg(feature = "agent")]
        {
            // SAFETY: caller contract.
            let name = unsafe { cstr_arg(name, "name") }?;
            if out.is_null() {
                return Err(Failure::null("out"));
            }
            let c: ToolChoice =
                name.parse().map_err(|e: picolm_core::names::UnknownName| Failure::invalid(e.to_string()))?;
            // SAFETY: non-NULL writable out-parameter.
            unsafe { *out = tool_choice_code(c) };
            Ok(())
        }
    })
}

/// The name of a tool policy ("auto", "required", "none"); any other integer gives "unknown". A static
/// NUL-terminated string; do not free.
#[no_mangle]
pub extern "C" fn picolm_tool_choice_name(tool_choice: i32) -> *const libc::c_char {
    TOOL_CHOICES.iter().find(|(c, _, _)| *c == tool_choice).map_or(c"unknown", |(_, _, n)| n).as_ptr()
}

/// Loop settings. Initialise with `picolm_agent_params_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_agent_params {
    /// Must be `sizeof(picolm_agent_params)`.
    pub struct_size: usize,
    /// Most model steps (default 5): each ends in a tool call or the answer. A forced answer (the step redone
    /// after the model repeated a call it already made) is part of its step, not an extra one.
    pub max_iterations: u32,
    /// Token limit per step (default 192).
    pub max_tokens: u32,
    /// Token selection of every step (picolm-core's defaults: greedy, no filters, no penalty, seed 0).
    pub sampler: picolm_sampler_params,
    /// Tool policy: a `picolm_tool_choice` value (others are PICOLM_ERR_INVALID_ARG).
    pub tool_choice: i32,
}

/// How a loop run ended (the `stop` field of `picolm_agent_result`, an `int32_t`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_agent_stop {
    /// The model answered.
    PICOLM_AGENT_ANSWERED = 0,
    /// `max_iterations` reached.
    PICOLM_AGENT_MAX_ITERATIONS = 1,
    /// Cancelled (callback returned false or `picolm_session_cancel`).
    PICOLM_AGENT_CANCELLED = 2,
    /// An external tool was called: its calls are in `picolm_agent_result.tool_calls_json`.
    PICOLM_AGENT_TOOL_CALLS_PENDING = 3,
    /// The call failed (see its result code): every other field is 0 or NULL.
    PICOLM_AGENT_FAILED = 4,
}

/// The C code and name of each core loop outcome (the names are the core's `AgentStop::as_str`, checked by a
/// test; the codes are in the order of the core's outcomes, see `stop_code`).
const AGENT_STOPS: [(picolm_agent_stop, &std::ffi::CStr); 4] = [
    (picolm_agent_stop::PICOLM_AGENT_ANSWERED, c"answered"),
    (picolm_agent_stop::PICOLM_AGENT_MAX_ITERATIONS, c"max_iterations"),
    (picolm_agent_stop::PICOLM_AGENT_CANCELLED, c"cancelled"),
    (picolm_agent_stop::PICOLM_AGENT_TOOL_CALLS_PENDING, c"tool_calls_pending"),
];

/// The C code of a core loop outcome.
#[cfg(feature = "agent")]
fn stop_code(stop: AgentStop) -> picolm_agent_stop {
    match stop {
        AgentStop::Answered => picolm_agent_stop::PICOLM_AGENT_ANSWERED,
        AgentStop::MaxIterations => picolm_agent_stop::PICOLM_AGENT_MAX_ITERATIONS,
        AgentStop::Cancelled => picolm_agent_stop::PICOLM_AGENT_CANCELLED,
        AgentStop::ToolCallsPending => picolm_agent_stop::PICOLM_AGENT_TOOL_CALLS_PENDING,
    }
}

/// The name of a loop outcome as every binding reports it: "answered", "max_iterations", "cancelled",
/// "tool_calls_pending", or "failed" for PICOLM_AGENT_FAILED. Any integer is accepted: other values give
/// "unknown". A static NUL-terminated string; do not free.
#[no_mangle]
pub extern "C" fn picolm_agent_stop_name(stop: i32) -> *const libc::c_char {
    let name = if stop == picolm_agent_stop::PICOLM_AGENT_FAILED as i32 {
        c"failed"
    } else {
        AGENT_STOPS.iter().find(|(c, _)| *c as i32 == stop).map_or(c"unknown", |(_, n)| n)
    };
    name.as_ptr()
}

/// Fills `params` with the defaults.
///
/// # Safety
/// `params` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_params_default(params: *mut picolm_agent_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        #[cfg(not(feature = "agent"))]
        return Err(no_agent("picolm_agent_params_default"));
        #[cfg(feature = "agent")]
        {
            let d = AgentParams::default();
            let p = picolm_agent_params {
                struct_size: std::mem::size_of::<picolm_agent_params>(),
                max_iterations: d.max_iterations as u32,
                max_tokens: d.generate.max_tokens as u32,
                sampler: picolm_sampler_params::from_core(&d.generate.sampler),
                tool_choice: tool_choice_code(d.tool_choice),
            };
            // SAFETY: non-NULL writable (caller contract).
            unsafe { params.write(p) };
            Ok(())
        }
    })
}

#[cfg(feature = "agent")]
struct CHandler {
    f: unsafe extern "C" fn(*const libc::c_char, usize, *mut picolm_tool_result, *mut libc::c_void),
    user_data: *mut libc::c_void,
}

// SAFETY: the handler is only called from `picolm_agent_run`, on the caller's thread; the C caller owns the
// thread-safety of `user_data` (documented on `picolm_agent_add_tool`).
#[cfg(feature = "agent")]
unsafe impl Send for CHandler {}

#[cfg(feature = "agent")]
impl picolm_core::agent::ToolHandler for CHandler {
    fn call(&mut self, arguments: &serde_json::Value) -> Result<String, String> {
        let mut text = arguments.to_string().into_bytes();
        let len = text.len();
        text.push(0);
        let mut r = picolm_tool_result { text: None };
        // SAFETY: a valid NUL-terminated buffer and result slot for the duration of the call.
        unsafe { (self.f)(text.as_ptr() as *const libc::c_char, len, &mut r, self.user_data) };
        r.text.unwrap_or_else(|| Err("the tool handler set no result".into()))
    }
}

/// A tool-call loop over one model: its tools and chat template.
pub struct picolm_agent {
    _private: [u8; 0],
}

/// The value behind a `picolm_agent`.
pub(crate) struct AgentHandle {
    #[cfg(feature = "agent")]
    model: Arc<Model>,
    #[cfg(feature = "agent")]
    tools: Vec<Tool>,
    #[cfg(feature = "agent")]
    agent: Option<Agent>,
}

impl Handle for picolm_agent {
    type Inner = AgentHandle;
    const ARG: &'static str = "agent";
}

/// Creates an empty tool-call loop for `model` (tools are added with `picolm_agent_add_tool`). Free with
/// `picolm_agent_free`. `*out` is NULL on failure. PICOLM_ERR_UNSUPPORTED in a library built without the `agent`
/// feature (as every `picolm_agent_*` function but `picolm_agent_stop_name`, `picolm_agent_free` and
/// `picolm_agent_result_free`, and as `picolm_tool_choice_parse`).
///
/// # Safety
/// `model` live; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_new(model: *const picolm_model, out: *mut *mut picolm_agent) -> picolm_result {
    guard(|| {
        // SAFETY: `out` NULL or writable (caller contract).
        unsafe { picolm_agent::clear_out(out) }?;
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        #[cfg(not(feature = "agent"))]
        return Err({
            let _ = m;
            no_agent("picolm_agent_new")
        });
        #[cfg(feature = "agent")]
        {
            let a = AgentHandle { model: Arc::clone(m), tools: Vec::new(), agent: None };
            // SAFETY: `out` checked writable above.
            unsafe { picolm_agent::write_out(out, a) };
            Ok(())
        }
    })
}

/// Releases a loop. NULL is a no-op.
///
/// # Safety
/// `agent` NULL or from `picolm_agent_new`, freed once.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_free(agent: *mut picolm_agent) {
    // SAFETY: caller contract.
    unsafe { picolm_agent::free(agent) }
}

#[cfg(feature = "agent")]
fn add(a: &mut AgentHandle, tool: Tool) -> Result<(), Failure> {
    tool.spec.validate()?;
    if a.agent.is_some() {
        // Rebuild on the next run: tools may be added between runs.
        let old = a.agent.take().expect("checked");
        a.tools = old.into_tools();
    }
    if a.tools.iter().any(|t| t.spec.name == tool.spec.name) {
        return Err(Failure::invalid(format!("tool {:?} is already registered", tool.spec.name)));
    }
    a.tools.push(tool);
    Ok(())
}

/// Registers a tool: `name`, `description` and `parameters_schema` (a JSON Schema of the arguments object) as
/// NUL-terminated UTF-8. With a `handler`, the loop calls it (with `user_data`, on the thread running the loop);
/// with a NULL handler the tool is external: the loop stops at its calls with
/// PICOLM_AGENT_TOOL_CALLS_PENDING. Invalid names, duplicate names and unsupported schemas are errors
/// (PICOLM_ERR_INVALID_ARG / PICOLM_ERR_GRAMMAR), reported here or by the next `picolm_agent_run`.
///
/// # Safety
/// `agent` live and not running; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_add_tool(
    agent: *mut picolm_agent,
    name: *const libc::c_char,
    description: *const libc::c_char,
    parameters_schema: *const libc::c_char,
    handler: picolm_tool_handler,
    user_data: *mut libc::c_void,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let a = unsafe { picolm_agent::as_mut(agent) }?;
        #[cfg(not(feature = "agent"))]
        return Err({
            let _ = (a, name, description, parameters_schema, handler, user_data);
            no_agent("picolm_agent_add_tool")
        });
        #[cfg(feature = "agent")]
        let name = unsafe { cstr_arg(name, "name") }?;
        #[cfg(feature = "agent")]
        let description = if description.is_null() { "" } else { unsafe { cstr_arg(description, "description") }? };
        #[cfg(feature = "agent")]
        {
            let schema = unsafe { cstr_arg(parameters_schema, "parameters_schema") }?;
            let parameters: serde_json::Value = serde_json::from_str(schema)
                .map_err(|e| Failure::invalid(format!("parameters_schema of tool {name:?} is not JSON: {e}")))?;
            let spec = ToolSpec { name: name.to_string(), description: description.to_string(), parameters };
            let tool = match handler {
                Some(f) => Tool::new(spec, CHandler { f, user_data }),
                None => Tool::external(spec),
            };
            add(a, tool)
        }
    })
}

/// Registers external tools (no handlers) from a JSON array of OpenAI tool definitions
/// (`[{"type":"function","function":{"name":…,"description":…,"parameters":{…}}}]`).
///
/// # Safety
/// `agent` live and not running; `tools_json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_add_tools_json(
    agent: *mut picolm_agent,
    tools_json: *const libc::c_char,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let a = unsafe { picolm_agent::as_mut(agent) }?;
        #[cfg(not(feature = "agent"))]
        return Err({
            let _ = (a, tools_json);
            no_agent("picolm_agent_add_tools_json")
        });
        #[cfg(feature = "agent")]
        {
            let text = unsafe { cstr_arg(tools_json, "tools_json") }?;
            for spec in ToolSpec::list_from_json(text)? {
                add(a, Tool::external(spec))?;
            }
            Ok(())
        }
    })
}

/// The outcome of `picolm_agent_run`. Strings are owned by the library: release with `picolm_agent_result_free`.
#[repr(C)]
#[derive(Debug)]
pub struct picolm_agent_result {
    /// How the run ended: a `picolm_agent_stop` value.
    pub stop: i32,
    /// Model steps run, each ending in a tool call or the answer (at most `max_iterations`). Only model runs
    /// count; a forced answer (the step redone as text after the model repeated a call it already made) is part
    /// of its step, not an extra iteration.
    pub iterations: u32,
    /// Tool calls executed by handlers.
    pub n_tool_calls: u32,
    /// Prompt tokens over every model run (before prefix reuse).
    pub n_prompt: u32,
    /// Of those, tokens reused from the KV cache.
    pub n_reused: u32,
    /// Tokens generated over every model run.
    pub n_generated: u32,
    /// Seconds spent on prompts.
    pub prefill_seconds: f64,
    /// Seconds spent generating.
    pub decode_seconds: f64,
    /// The final answer (NUL-terminated; empty unless answered).
    pub answer: *mut libc::c_char,
    /// With PICOLM_AGENT_TOOL_CALLS_PENDING: `{"tool_calls":[…]}` in OpenAI's shape (arguments as JSON strings),
    /// else NULL.
    pub tool_calls_json: *mut libc::c_char,
    /// The whole conversation after the run as a JSON array of `{"role","content",…}` messages.
    pub messages_json: *mut libc::c_char,
}

/// `s` as a C string (a NUL inside the text becomes a space, so nothing is cut off silently).
#[cfg(feature = "agent")]
fn c_text(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s.replace('\0', " ")).expect("NULs replaced")
}

#[cfg(feature = "agent")]
fn c_string(s: &str) -> *mut libc::c_char {
    c_text(s).into_raw()
}

/// Releases the strings of a result (and sets them to NULL). NULL is a no-op.
///
/// # Safety
/// `result` NULL or filled by `picolm_agent_run`.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_result_free(result: *mut picolm_agent_result) {
    // SAFETY: caller contract; each string came from CString::into_raw and is freed once (then NULLed).
    if let Some(r) = unsafe { result.as_mut() } {
        for p in [&mut r.answer, &mut r.tool_calls_json, &mut r.messages_json] {
            if !p.is_null() {
                drop(unsafe { std::ffi::CString::from_raw(*p) });
                *p = std::ptr::null_mut();
            }
        }
    }
}

/// Runs the tool-call loop on `session` for the conversation `msgs` (ending with the user's message): each step
/// the model answers or calls a registered tool with schema-valid arguments; handlers run and their results go
/// back as `tool` messages; until an answer, an external tool call, or `max_iterations`. Events (answer pieces,
/// calls, results) go to `on_event` (may be NULL). The KV cache is reused across steps. `result` (may be NULL)
/// receives the outcome, also on failure (PICOLM_AGENT_FAILED, NULL strings); free it with
/// `picolm_agent_result_free`. The previous contents of `*result` are overwritten, not freed.
///
/// # Safety
/// All pointers live/valid as documented; the session is used by this thread only for the duration.
#[no_mangle]
pub unsafe extern "C" fn picolm_agent_run(
    agent: *mut picolm_agent,
    session: *mut picolm_session,
    msgs: *const picolm_chat_message,
    n: usize,
    params: *const picolm_agent_params,
    on_event: picolm_agent_event_callback,
    user_data: *mut libc::c_void,
    result: *mut picolm_agent_result,
) -> picolm_result {
    if !result.is_null() {
        let failed = picolm_agent_result {
            stop: picolm_agent_stop::PICOLM_AGENT_FAILED as i32,
            iterations: 0,
            n_tool_calls: 0,
            n_prompt: 0,
            n_reused: 0,
            n_generated: 0,
            prefill_seconds: 0.0,
            decode_seconds: 0.0,
            answer: std::ptr::null_mut(),
            tool_calls_json: std::ptr::null_mut(),
            messages_json: std::ptr::null_mut(),
        };
        // SAFETY: non-NULL writable out-parameter (caller contract); written without reading the old contents.
        unsafe { result.write(failed) };
    }
    guard(|| {
        // SAFETY: caller contract for every pointer.
        #[cfg(not(feature = "agent"))]
        return Err({
            let _ = (agent, session, msgs, n, params, on_event, user_data);
            no_agent("picolm_agent_run")
        });
        #[cfg(feature = "agent")]
        {
            let a = unsafe { picolm_agent::as_mut(agent) }?;
            let s = unsafe { picolm_session::as_ref(session) }?;
            let messages = unsafe { read_messages(msgs, n) }?;
            // SAFETY: caller contract of `params`.
            let p = unsafe { read_params(params, "picolm_agent_params", picolm_agent_params_default) }?;
            let tool_choice = tool_choice_arg(p.tool_choice, "picolm_agent_params.tool_choice")?;
            let sampler = p.sampler.to_core()?;
            let mut g = lock(s)?;
            if !Arc::ptr_eq(g.model(), &a.model) {
                return Err(Failure::invalid("the session belongs to a different model than the agent"));
            }
            if a.agent.is_none() {
                if a.tools.is_empty() {
                    return Err(Failure::invalid("no tools registered: add tools with picolm_agent_add_tool"));
                }
                let template = template_for(&a.model)?;
                a.agent = Some(Agent::new(std::mem::take(&mut a.tools), template, 1)?);
            }
            let agent = a.agent.as_mut().expect("built above");
            let ap = AgentParams {
                max_iterations: p.max_iterations as usize,
                generate: GenerateParams { max_tokens: p.max_tokens as usize, sampler, ..Default::default() },
                tool_choice,
            };
            s.cancel.reset();
            let mut emit = |e: AgentEvent<'_>| -> bool {
                let Some(cb) = on_event else { return true };
                let mut truncated = false;
                let (kind, text, name, id, is_error) = match e {
                    AgentEvent::AnswerPiece(p) => {
                        (picolm_agent_event_kind::PICOLM_EVENT_ANSWER_PIECE, p.to_string(), None, None, false)
                    }
                    AgentEvent::ToolCall(c) => (
                        picolm_agent_event_kind::PICOLM_EVENT_TOOL_CALL,
                        c.arguments.to_string(),
                        Some(&c.name),
                        Some(&c.id),
                        false,
                    ),
                    AgentEvent::ToolResult { call, content, is_error, truncated: cut } => {
                        truncated = cut;
                        (
                            picolm_agent_event_kind::PICOLM_EVENT_TOOL_RESULT,
                            content.to_string(),
                            Some(&call.name),
                            Some(&call.id),
                            is_error,
                        )
                    }
                };
                let text_c = c_text(&text);
                let name_c = name.map(|n| c_text(n));
                let id_c = id.map(|i| c_text(i));
                let ev = picolm_agent_event {
                    kind: kind as i32,
                    text: text_c.as_ptr(),
                    text_len: text_c.as_bytes().len(),
                    tool_name: name_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                    call_id: id_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                    is_error,
                    truncated,
                };
                // SAFETY: the caller's callback with pointers valid for the call.
                unsafe { cb(&ev, user_data) }
            };
            let out = agent.run(&mut g, &messages, &ap, Some(s.cancel.clone()), &mut emit)?;
            if let Some(r) = unsafe { result.as_mut() } {
                let messages_json = serde_json::to_string(&out.messages).expect("messages serialize");
                let g = &out.generation;
                *r = picolm_agent_result {
                    stop: stop_code(out.stop) as i32,
                    iterations: out.iterations as u32,
                    n_tool_calls: out.calls.len() as u32,
                    n_prompt: g.n_prompt as u32,
                    n_reused: g.n_reused as u32,
                    n_generated: g.n_generated as u32,
                    prefill_seconds: g.prefill.as_secs_f64(),
                    decode_seconds: g.decode.as_secs_f64(),
                    answer: c_string(&out.answer),
                    tool_calls_json: if out.pending_calls.is_empty() {
                        std::ptr::null_mut()
                    } else {
                        c_string(&tool_calls_json(&out.pending_calls))
                    },
                    messages_json: c_string(&messages_json),
                };
            }
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn name(code: i32) -> &'static str {
        // SAFETY: picolm_agent_stop_name returns a static NUL-terminated string for every input.
        unsafe { CStr::from_ptr(picolm_agent_stop_name(code)) }.to_str().unwrap()
    }

    #[cfg(feature = "agent")]
    #[test]
    fn tool_choice_codes_and_names_are_the_core_ones() {
        for (i, c) in ToolChoice::ALL.into_iter().enumerate() {
            let code = tool_choice_code(c);
            assert_eq!(code, TOOL_CHOICES[i].0);
            assert_eq!(tool_choice_arg(code, "f").unwrap(), c);
            // SAFETY: a static NUL-terminated string.
            assert_eq!(unsafe { CStr::from_ptr(picolm_tool_choice_name(code)) }.to_str().unwrap(), c.name());
        }
        let f = tool_choice_arg(3, "picolm_agent_params.tool_choice").unwrap_err();
        assert!(
            f.message.contains("tool_choice is 3") && f.message.contains("PICOLM_TOOL_CHOICE_NONE (2)"),
            "{}",
            f.message
        );
    }

    #[cfg(feature = "agent")]
    #[test]
    fn agent_stop_names_are_the_core_names() {
        for s in [AgentStop::Answered, AgentStop::MaxIterations, AgentStop::Cancelled, AgentStop::ToolCallsPending] {
            assert_eq!(name(stop_code(s) as i32), s.as_str());
        }
    }

    #[test]
    fn agent_stop_names() {
        for (c, n) in AGENT_STOPS {
            assert_eq!(name(c as i32), n.to_str().unwrap());
        }
        assert_eq!(name(picolm_agent_stop::PICOLM_AGENT_FAILED as i32), "failed");
        for bad in [-1, 5, 99, i32::MAX] {
            assert_eq!(name(bad), "unknown");
        }
    }
}
