//! `picolm_session_generate`: streaming generation with a piece callback, its params, the JSON constraint of
//! the JSON modes and schema, and the stop reasons.

use std::sync::Arc;

use picolm_core::generate::{GenerateParams, StopReason};
use picolm_core::grammar::JsonMode;
#[cfg(feature = "json")]
use picolm_core::grammar::{Grammar, JsonConstraint};
use picolm_core::model::Model;
use picolm_core::TokenConstraint;

use crate::boundary::{guard, picolm_result, Failure};
use crate::handle::Handle;
use crate::log::{log, picolm_log_level};
use crate::marshal::{cstr_arg, enum_arg, read_params, str_arg};
use crate::sampler::picolm_sampler_params;
use crate::session::{lock, picolm_session};

/// Generation options. Initialise with `picolm_generate_params_default` (greedy, 256 tokens).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_generate_params {
    /// Must be `sizeof(picolm_generate_params)`.
    pub struct_size: usize,
    /// Most new tokens.
    pub max_tokens: u32,
    /// Token selection (picolm-core's defaults: greedy, no filters, no penalty, seed 0).
    pub sampler: picolm_sampler_params,
    /// Stop strings: `n_stop` NUL-terminated UTF-8 strings (may be NULL when `n_stop` is 0). Generation stops
    /// before the first occurrence; the stop string is not delivered.
    pub stop: *const *const libc::c_char,
    /// Number of stop strings.
    pub n_stop: usize,
    /// JSON mode, a `picolm_json_mode` value: `PICOLM_JSON_OFF` (0, default), `PICOLM_JSON_OBJECT` (1: one JSON
    /// object, compact — what agents need) or `PICOLM_JSON_VALUE` (2: any JSON value, compact). Other values are
    /// refused with PICOLM_ERR_INVALID_ARG. Ignored when `json_schema` is set. A library built without the `json`
    /// feature refuses the two JSON modes with PICOLM_ERR_UNSUPPORTED.
    pub json_mode: i32,
    /// JSON Schema (NUL-terminated UTF-8) the output must satisfy (compact JSON), or NULL. A library built without
    /// the `json-schema` feature refuses a schema with PICOLM_ERR_UNSUPPORTED (the JSON modes need only `json`).
    pub json_schema: *const libc::c_char,
    /// Add BOS/EOS to the prompt as the model asks (default true).
    pub add_special: bool,
    /// Parse control-token text in the prompt as tokens (default true).
    pub parse_special: bool,
    /// Keep generating past end-of-generation tokens (benchmarks, tests; default false).
    pub ignore_eog: bool,
}

/// Values of `picolm_generate_params.json_mode` (the field is an integer: values outside this list are refused).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_json_mode {
    /// No JSON constraint.
    PICOLM_JSON_OFF = 0,
    /// One JSON object (like OpenAI's `json_object` response format), without insignificant whitespace.
    PICOLM_JSON_OBJECT = 1,
    /// Any JSON value (RFC 8259: also bare numbers, strings, arrays), without insignificant whitespace.
    PICOLM_JSON_VALUE = 2,
}

/// Why a generation ended (the `stop_reason` field of `picolm_generation_info`, an `int32_t`).
/// `picolm_stop_reason_name` gives the name every binding uses (Python's `stop_reason`, the CLI's statistics).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_stop_reason {
    /// The model produced an end-of-generation token.
    PICOLM_STOP_EOG = 0,
    /// `max_tokens` reached.
    PICOLM_STOP_MAX_TOKENS = 1,
    /// A stop string appeared.
    PICOLM_STOP_STRING = 2,
    /// The grammar-constrained output (JSON value, schema, tool call) is complete.
    PICOLM_STOP_GRAMMAR_COMPLETE = 3,
    /// The context is full.
    PICOLM_STOP_CONTEXT_FULL = 4,
    /// `picolm_session_cancel` was called.
    PICOLM_STOP_CANCELLED = 5,
    /// The piece callback returned false.
    PICOLM_STOP_CALLBACK = 6,
    /// The call failed (see its result code): no generation result, every counter is 0.
    PICOLM_STOP_FAILED = 7,
}

/// Counters of a finished generation. Written by every `picolm_session_generate` call: on failure the counters
/// are 0 and `stop_reason` is PICOLM_STOP_FAILED (nothing of a previous call is left).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_generation_info {
    /// Prompt tokens.
    pub n_prompt: u32,
    /// Prompt tokens reused from the session's cache.
    pub n_reused: u32,
    /// Generated tokens.
    pub n_generated: u32,
    /// Why generation ended: a `picolm_stop_reason` value.
    pub stop_reason: i32,
    /// Seconds spent on the prompt.
    pub prefill_seconds: f64,
    /// Seconds spent generating.
    pub decode_seconds: f64,
}

/// Receives a piece of generated text: `len` bytes of whole UTF-8 characters at `utf8` (valid only during the
/// call; also NUL-terminated). Return false to stop generation.
pub type picolm_piece_callback =
    Option<unsafe extern "C" fn(utf8: *const libc::c_char, len: usize, user_data: *mut libc::c_void) -> bool>;

/// Fills `params` with picolm-core's defaults (`GenerateParams::default()`: 256 tokens, greedy, no penalties, seed
/// 0), no stop strings, no JSON constraint, special tokens added and parsed.
///
/// # Safety
/// `params` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_generate_params_default(params: *mut picolm_generate_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        let d = GenerateParams::default();
        let p = picolm_generate_params {
            struct_size: std::mem::size_of::<picolm_generate_params>(),
            max_tokens: d.max_tokens as u32,
            sampler: picolm_sampler_params::from_core(&d.sampler),
            stop: std::ptr::null(),
            n_stop: 0,
            json_mode: picolm_json_mode::PICOLM_JSON_OFF as i32,
            json_schema: std::ptr::null(),
            add_special: true,
            parse_special: true,
            ignore_eog: !d.stop_at_eog,
        };
        // SAFETY: non-NULL writable.
        unsafe { params.write(p) };
        Ok(())
    })
}

/// The C code and name of each core stop reason (every `StopReason` appears once; the names are the core's
/// `StopReason::as_str`, checked by a test).
const STOP_REASONS: [(StopReason, picolm_stop_reason, &std::ffi::CStr); 7] = [
    (StopReason::EndOfGeneration, picolm_stop_reason::PICOLM_STOP_EOG, c"eog"),
    (StopReason::MaxTokens, picolm_stop_reason::PICOLM_STOP_MAX_TOKENS, c"max_tokens"),
    (StopReason::StopString, picolm_stop_reason::PICOLM_STOP_STRING, c"stop_string"),
    (StopReason::GrammarComplete, picolm_stop_reason::PICOLM_STOP_GRAMMAR_COMPLETE, c"grammar_complete"),
    (StopReason::ContextFull, picolm_stop_reason::PICOLM_STOP_CONTEXT_FULL, c"context_full"),
    (StopReason::Cancelled, picolm_stop_reason::PICOLM_STOP_CANCELLED, c"cancelled"),
    (StopReason::CallbackStopped, picolm_stop_reason::PICOLM_STOP_CALLBACK, c"callback_stopped"),
];

fn stop_reason(r: StopReason) -> picolm_stop_reason {
    STOP_REASONS.iter().find(|(s, _, _)| *s == r).map(|(_, c, _)| *c).expect("every stop reason has a C code")
}

/// The name of a stop reason as every binding reports it: "eog", "max_tokens", "stop_string",
/// "grammar_complete", "context_full", "cancelled", "callback_stopped", or "failed" for PICOLM_STOP_FAILED.
/// Any integer is accepted: other values give "unknown". A static NUL-terminated string; do not free.
#[no_mangle]
pub extern "C" fn picolm_stop_reason_name(reason: i32) -> *const libc::c_char {
    let name = if reason == picolm_stop_reason::PICOLM_STOP_FAILED as i32 {
        c"failed"
    } else {
        STOP_REASONS.iter().find(|(_, c, _)| *c as i32 == reason).map_or(c"unknown", |(_, _, n)| n)
    };
    name.as_ptr()
}

/// The C code, C name and core mode of each JSON mode (`None`: off).
const JSON_MODES: [(i32, &str, Option<JsonMode>); 3] = [
    (picolm_json_mode::PICOLM_JSON_OFF as i32, "PICOLM_JSON_OFF", None),
    (picolm_json_mode::PICOLM_JSON_OBJECT as i32, "PICOLM_JSON_OBJECT", Some(JsonMode::Object)),
    (picolm_json_mode::PICOLM_JSON_VALUE as i32, "PICOLM_JSON_VALUE", Some(JsonMode::Value)),
];

/// The grammar constraint for the JSON options of a generation (none when both are off): a JSON Schema when
/// `schema` is non-NULL, else the JSON mode's grammar. The mode is checked also when a schema is given.
///
/// # Safety
/// `schema` NULL or NUL-terminated (documented on `picolm_generate_params`).
unsafe fn constraint_for(
    model: &Arc<Model>,
    json_mode: i32,
    schema: *const libc::c_char,
) -> Result<Option<Box<dyn TokenConstraint>>, Failure> {
    let mode = enum_arg(json_mode, "params.json_mode", &JSON_MODES)?;
    let request = match (mode, schema.is_null()) {
        (_, false) => JsonRequest::Schema(schema),
        (Some(mode), true) => JsonRequest::Mode(mode),
        (None, true) => return Ok(None),
    };
    // SAFETY: `schema` NULL or NUL-terminated (our caller's contract).
    unsafe { json_constraint(model, request) }.map(Some)
}

/// What a generation's JSON options ask for (a schema wins over the mode).
#[cfg_attr(not(feature = "json"), allow(dead_code))] // without the grammar, only refused
enum JsonRequest {
    /// `json_schema`: a non-NULL C string (NUL-terminated by the caller's contract).
    Schema(*const libc::c_char),
    /// `json_mode` without a schema.
    Mode(JsonMode),
}

/// The JSON grammar constraint of [`constraint_for`] for `request`.
///
/// # Safety
/// A [`JsonRequest::Schema`] pointer is NUL-terminated.
#[cfg(feature = "json")]
unsafe fn json_constraint(model: &Arc<Model>, request: JsonRequest) -> Result<Box<dyn TokenConstraint>, Failure> {
    let grammar = match request {
        JsonRequest::Mode(mode) => Grammar::for_mode(mode),
        JsonRequest::Schema(schema) => {
            // SAFETY: NUL-terminated (caller contract).
            let text = unsafe { cstr_arg(schema, "params.json_schema") }?;
            Grammar::from_schema_str(text).map_err(picolm_core::Error::from)?
        }
    };
    Ok(Box::new(JsonConstraint::new(Arc::new(grammar), model.grammar_vocab())))
}

/// Without the `json` feature: PICOLM_ERR_UNSUPPORTED for any JSON option (the JSON grammar is not linked in).
///
/// # Safety
/// None needed (the schema is not read); `unsafe` only to match the feature's version.
#[cfg(not(feature = "json"))]
unsafe fn json_constraint(_model: &Arc<Model>, _request: JsonRequest) -> Result<Box<dyn TokenConstraint>, Failure> {
    Err(Failure::unsupported("json", "picolm_session_generate"))
}

/// Checks the settings of `params` (struct size and sampler ranges) without generating: PICOLM_OK, or
/// PICOLM_ERR_INVALID_ARG with the offending setting in `picolm_last_error_message`. `picolm_session_generate`
/// makes the same checks before any work.
///
/// # Safety
/// `params` NULL or a readable struct.
#[no_mangle]
pub unsafe extern "C" fn picolm_generate_params_check(params: *const picolm_generate_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        // SAFETY: caller contract of `params`.
        let p = unsafe { read_params(params, "picolm_generate_params", picolm_generate_params_default) }?;
        p.sampler.to_core().map(|_| ())
    })
}

/// Generates a continuation of `prompt` (UTF-8, `prompt_len` bytes), reusing the cached prefix of the session's
/// previous turns. Each piece goes to `on_piece` (may be NULL). `params` may be NULL for the defaults; `info` may
/// be NULL; when given it is always written (on failure: zero counters and PICOLM_STOP_FAILED). A prompt longer
/// than the context returns PICOLM_ERR_CONTEXT_OVERFLOW. Cancellation and the callback returning false end the
/// call with PICOLM_OK and the matching stop reason.
///
/// # Safety
/// `session` live and not used by another thread; `prompt` `prompt_len` readable bytes; `params` NULL or valid
/// (its stop strings readable); `info` NULL or writable; `on_piece` a valid function or NULL.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_generate(
    session: *mut picolm_session,
    prompt: *const libc::c_char,
    prompt_len: usize,
    params: *const picolm_generate_params,
    on_piece: picolm_piece_callback,
    user_data: *mut libc::c_void,
    info: *mut picolm_generation_info,
) -> picolm_result {
    if !info.is_null() {
        let failed = picolm_generation_info {
            n_prompt: 0,
            n_reused: 0,
            n_generated: 0,
            stop_reason: picolm_stop_reason::PICOLM_STOP_FAILED as i32,
            prefill_seconds: 0.0,
            decode_seconds: 0.0,
        };
        // SAFETY: non-NULL writable out-parameter (caller contract); overwritten below on success.
        unsafe { info.write(failed) };
    }
    guard(|| {
        // SAFETY: caller contract for every pointer.
        let s = unsafe { picolm_session::as_ref(session) }?;
        let prompt = unsafe { str_arg(prompt, prompt_len, "prompt") }?;
        // SAFETY: caller contract of `params`.
        let p = unsafe { read_params(params, "picolm_generate_params", picolm_generate_params_default) }?;
        let mut stop = Vec::with_capacity(p.n_stop);
        if p.n_stop > 0 {
            if p.stop.is_null() {
                return Err(Failure::null("params.stop"));
            }
            for i in 0..p.n_stop {
                // SAFETY: `n_stop` readable string pointers (caller contract).
                let sp = unsafe { *p.stop.add(i) };
                stop.push(unsafe { cstr_arg(sp, "params.stop[i]") }?.to_string());
            }
        }
        let gp = GenerateParams {
            max_tokens: p.max_tokens as usize,
            sampler: p.sampler.to_core()?,
            stop,
            stop_at_eog: !p.ignore_eog,
        };
        let mut g = lock(s)?;
        // SAFETY: `json_schema` NULL or NUL-terminated (caller contract of `params`).
        let constraint = unsafe { constraint_for(g.model(), p.json_mode, p.json_schema) }?;
        let tokens = g.model().tokenizer().encode(prompt, p.add_special, p.parse_special);
        s.cancel.reset();
        let mut piece_buf: Vec<u8> = Vec::new();
        let mut deliver = |piece: &str| -> bool {
            match on_piece {
                None => true,
                Some(cb) => {
                    piece_buf.clear();
                    piece_buf.extend_from_slice(piece.as_bytes());
                    piece_buf.push(0);
                    // SAFETY: the caller's callback; the buffer is valid and NUL-terminated during the call.
                    unsafe { cb(piece_buf.as_ptr() as *const libc::c_char, piece.len(), user_data) }
                }
            }
        };
        let out = g.generate(&tokens, &gp, constraint, Some(s.cancel.clone()), &mut deliver)?;
        let st = out.stats;
        log(
            picolm_log_level::PICOLM_LOG_INFO,
            &format!(
                "generated {} tokens ({}): prefill {:.1} tok/s, decode {:.1} tok/s",
                st.n_generated,
                out.stop_reason.as_str(),
                st.prefill_tokens_per_second(),
                st.decode_tokens_per_second()
            ),
        );
        if !info.is_null() {
            let i = picolm_generation_info {
                n_prompt: st.n_prompt as u32,
                n_reused: st.n_reused as u32,
                n_generated: st.n_generated as u32,
                stop_reason: stop_reason(out.stop_reason) as i32,
                prefill_seconds: st.prefill.as_secs_f64(),
                decode_seconds: st.decode.as_secs_f64(),
            };
            // SAFETY: non-NULL writable out-parameter.
            unsafe { info.write(i) };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn name(code: i32) -> &'static str {
        // SAFETY: picolm_stop_reason_name returns a static NUL-terminated string for every input.
        unsafe { CStr::from_ptr(picolm_stop_reason_name(code)) }.to_str().unwrap()
    }

    #[test]
    fn stop_reason_names_are_the_core_names() {
        for (r, c, _) in STOP_REASONS {
            assert_eq!(name(c as i32), r.as_str());
        }
        assert_eq!(name(picolm_stop_reason::PICOLM_STOP_GRAMMAR_COMPLETE as i32), "grammar_complete");
        assert_eq!(name(picolm_stop_reason::PICOLM_STOP_FAILED as i32), "failed");
        for bad in [-1, 8, 1000, i32::MIN] {
            assert_eq!(name(bad), "unknown");
        }
    }
}
