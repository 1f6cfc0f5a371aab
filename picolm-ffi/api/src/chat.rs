//! Chat templates from C: `picolm_chat_message` and `picolm_chat_apply_template` (every build), and the reading
//! of C messages the agent loop shares.

use picolm_core::chat::{ChatMessage, ChatTemplate, ToolCall};
use picolm_core::model::Model;

use crate::boundary::{guard, picolm_result, Failure};
use crate::handle::Handle;
use crate::marshal::{cstr_arg, write_out};
use crate::model::picolm_model;

/// One chat message: NUL-terminated UTF-8 strings. `tool_call_id`, `name` and `tool_calls_json` may be NULL
/// (they matter only for `tool` and `assistant` messages).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_chat_message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: *const libc::c_char,
    /// The text (may be NULL, read as "", for an assistant message that only calls tools).
    pub content: *const libc::c_char,
    /// For `tool` messages: the id of the call answered (or NULL).
    pub tool_call_id: *const libc::c_char,
    /// For `tool` messages: the tool's name (or NULL).
    pub name: *const libc::c_char,
    /// For `assistant` messages: the tool calls it made, as a JSON array in OpenAI's shape
    /// (`[{"id":…,"type":"function","function":{"name":…,"arguments":"<JSON text>"}}]`; arguments may also be an
    /// object), or NULL. They are rendered into the prompt (by the model's template when it knows `tool_calls`,
    /// else as `{"tool_calls":[…]}` after the content).
    pub tool_calls_json: *const libc::c_char,
}

/// Reads `n` C messages.
///
/// # Safety
/// `msgs` NULL (only with `n == 0`) or `n` readable messages with valid strings.
pub(crate) unsafe fn read_messages(msgs: *const picolm_chat_message, n: usize) -> Result<Vec<ChatMessage>, Failure> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if msgs.is_null() {
        return Err(Failure::null("messages"));
    }
    let opt = |p: *const libc::c_char, name: &str| -> Result<Option<String>, Failure> {
        // SAFETY: NULL or a NUL-terminated string (caller contract).
        if p.is_null() {
            Ok(None)
        } else {
            unsafe { cstr_arg(p, name) }.map(|s| Some(s.to_string()))
        }
    };
    (0..n)
        .map(|i| {
            // SAFETY: `n` readable messages (caller contract).
            let m = unsafe { *msgs.add(i) };
            let tool_calls = match opt(m.tool_calls_json, "messages[i].tool_calls_json")? {
                None => Vec::new(),
                Some(text) => {
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| Failure::invalid(format!("messages[{i}].tool_calls_json is not JSON: {e}")))?;
                    ToolCall::list_from_json(&v).map_err(|why| Failure::invalid(format!("messages[{i}]: {why}")))?
                }
            };
            let role = unsafe { cstr_arg(m.role, "messages[i].role") }?.to_string();
            if !tool_calls.is_empty() && role != "assistant" {
                return Err(Failure::invalid(format!(
                    "messages[{i}]: only assistant messages have tool calls, this one is {role:?}"
                )));
            }
            let content = if m.content.is_null() && !tool_calls.is_empty() {
                String::new()
            } else {
                unsafe { cstr_arg(m.content, "messages[i].content") }?.to_string()
            };
            Ok(ChatMessage {
                role,
                content,
                tool_call_id: opt(m.tool_call_id, "messages[i].tool_call_id")?,
                name: opt(m.name, "messages[i].name")?,
                tool_calls,
            })
        })
        .collect()
}

/// The chat template of a model (its own, or the built-in format its vocabulary suggests).
pub(crate) fn template_for(model: &Model) -> Result<ChatTemplate, Failure> {
    Ok(ChatTemplate::for_model(model.file(), model.tokenizer()).map_err(picolm_core::Error::from)?)
}

/// Renders `n` messages with the model's chat template (its `tokenizer.chat_template`, or the built-in format its
/// vocabulary suggests) into `buf` (NUL-terminated). `add_generation_prompt` appends the assistant's turn opening.
/// `*needed` receives the bytes needed including the NUL (PICOLM_ERR_BUFFER_TOO_SMALL when `cap` is smaller).
/// Pass the result to `picolm_session_generate` with `parse_special` true. Thread-safe.
///
/// # Safety
/// `model` live; `msgs` `n` readable messages; `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_chat_apply_template(
    model: *const picolm_model,
    msgs: *const picolm_chat_message,
    n: usize,
    add_generation_prompt: bool,
    buf: *mut libc::c_char,
    cap: usize,
    needed: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        let messages = unsafe { read_messages(msgs, n) }?;
        let text = template_for(m)?.render(&messages, add_generation_prompt).map_err(picolm_core::Error::from)?;
        // SAFETY: caller contract for the output buffer.
        unsafe { write_out(text.as_bytes(), buf, cap, needed) }
    })
}
