//! The boundary: result codes, the per-thread last-error message, the mapping of core errors to codes, and the
//! panic guard every entry point runs in. Argument marshalling is in `marshal.rs`.

use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use picolm_core::chat::ChatError;
use picolm_core::gguf::GgufError;
use picolm_core::grammar::GrammarError;
use picolm_core::model::ModelError;
use picolm_core::Error;

/// Result of every fallible call. `PICOLM_OK` is 0; every error is positive. Passed as a 32-bit integer:
/// `picolm_strerror` accepts any value and describes unknown ones as such.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_result {
    /// Success.
    PICOLM_OK = 0,
    /// A required pointer argument was NULL.
    PICOLM_ERR_NULL_ARG = 1,
    /// An argument is out of range or inconsistent (including a wrong `struct_size`).
    PICOLM_ERR_INVALID_ARG = 2,
    /// A string argument is not valid UTF-8.
    PICOLM_ERR_INVALID_UTF8 = 3,
    /// A file could not be read or written.
    PICOLM_ERR_IO = 4,
    /// The model file is malformed or inconsistent.
    PICOLM_ERR_BAD_FILE = 5,
    /// The model or option is valid but not supported by this build.
    PICOLM_ERR_UNSUPPORTED = 6,
    /// The prompt (or state) does not fit in the context.
    PICOLM_ERR_CONTEXT_OVERFLOW = 7,
    /// The caller's buffer is too small; the needed size was written to the size out-parameter.
    PICOLM_ERR_BUFFER_TOO_SMALL = 8,
    /// A saved session state is damaged or belongs to another model.
    PICOLM_ERR_STATE = 9,
    /// A grammar or JSON schema is invalid.
    PICOLM_ERR_GRAMMAR = 10,
    /// The requested item (metadata key, ...) does not exist.
    PICOLM_ERR_NOT_FOUND = 11,
    /// An internal error (a bug) was caught at the boundary; the object involved should be freed.
    PICOLM_ERR_PANIC = 12,
    /// The session is being used by another thread.
    PICOLM_ERR_BUSY = 13,
    /// Memory for a caller-sized buffer could not be allocated, or a model's memory budget
    /// (`picolm_model_params.max_rss_bytes`) cannot hold it; the message gives the size needed.
    PICOLM_ERR_OUT_OF_MEMORY = 14,
    /// The token budget (`max_tokens`, or the room left in the context) cannot hold the shortest output the JSON
    /// grammar or schema allows; raise `max_tokens` (or `n_ctx`).
    PICOLM_ERR_BUDGET = 15,
}

impl picolm_result {
    /// Every code, in numeric order.
    pub const ALL: [picolm_result; 16] = [
        PICOLM_OK,
        PICOLM_ERR_NULL_ARG,
        PICOLM_ERR_INVALID_ARG,
        PICOLM_ERR_INVALID_UTF8,
        PICOLM_ERR_IO,
        PICOLM_ERR_BAD_FILE,
        PICOLM_ERR_UNSUPPORTED,
        PICOLM_ERR_CONTEXT_OVERFLOW,
        PICOLM_ERR_BUFFER_TOO_SMALL,
        PICOLM_ERR_STATE,
        PICOLM_ERR_GRAMMAR,
        PICOLM_ERR_NOT_FOUND,
        PICOLM_ERR_PANIC,
        PICOLM_ERR_BUSY,
        PICOLM_ERR_OUT_OF_MEMORY,
        PICOLM_ERR_BUDGET,
    ];

    /// The code with this number, if there is one.
    pub fn from_i32(code: i32) -> Option<picolm_result> {
        picolm_result::ALL.iter().copied().find(|c| *c as i32 == code)
    }

    /// The static, NUL-terminated description of the code.
    fn description(self) -> &'static str {
        match self {
            PICOLM_OK => "success\0",
            PICOLM_ERR_NULL_ARG => "a required pointer argument is NULL\0",
            PICOLM_ERR_INVALID_ARG => "invalid argument\0",
            PICOLM_ERR_INVALID_UTF8 => "string is not valid UTF-8\0",
            PICOLM_ERR_IO => "input/output error\0",
            PICOLM_ERR_BAD_FILE => "malformed or inconsistent model file\0",
            PICOLM_ERR_UNSUPPORTED => "not supported\0",
            PICOLM_ERR_CONTEXT_OVERFLOW => "does not fit in the context\0",
            PICOLM_ERR_BUFFER_TOO_SMALL => "buffer too small\0",
            PICOLM_ERR_STATE => "invalid session state\0",
            PICOLM_ERR_GRAMMAR => "invalid grammar or schema\0",
            PICOLM_ERR_NOT_FOUND => "not found\0",
            PICOLM_ERR_PANIC => "internal error\0",
            PICOLM_ERR_BUSY => "session in use by another thread\0",
            PICOLM_ERR_OUT_OF_MEMORY => "out of memory\0",
            PICOLM_ERR_BUDGET => "token budget too small for the constrained output (raise max_tokens)\0",
        }
    }
}

use picolm_result::*;

/// A failure on its way to the caller: a code and a detailed message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: picolm_result,
    pub message: String,
    /// Whether the failure goes to the log callback at ERROR level (not for the size query of a caller buffer).
    pub log: bool,
}

impl Failure {
    pub(crate) fn new(code: picolm_result, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), log: true }
    }

    /// The answer to a size query (`buf = NULL, cap = 0`): PICOLM_ERR_BUFFER_TOO_SMALL with the size, which is
    /// the expected outcome of that call, so it is not logged as an error.
    pub(crate) fn size_query(message: impl Into<String>) -> Failure {
        Failure { code: PICOLM_ERR_BUFFER_TOO_SMALL, message: message.into(), log: false }
    }

    pub(crate) fn null(arg: &str) -> Failure {
        Failure::new(PICOLM_ERR_NULL_ARG, format!("argument `{arg}` is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(PICOLM_ERR_INVALID_ARG, message)
    }

    /// PICOLM_ERR_UNSUPPORTED for `function` of a Cargo feature this library was built without.
    #[allow(dead_code)] // not called when every feature is on
    pub(crate) fn unsupported(feature: &str, function: &str) -> Failure {
        Failure::new(
            PICOLM_ERR_UNSUPPORTED,
            format!("{function}: this libpicolm was built without the `{feature}` feature (see picolm_features())"),
        )
    }
}

fn code_of_model_error(e: &ModelError) -> picolm_result {
    match e {
        ModelError::Gguf(
            GgufError::Io { .. }
            | GgufError::WriteFile { .. }
            | GgufError::NotAFile { .. }
            | GgufError::Read { .. }
            | GgufError::SizeChanged { .. },
        ) => PICOLM_ERR_IO,
        ModelError::MemoryBudget { .. } => PICOLM_ERR_OUT_OF_MEMORY,
        ModelError::UnsupportedArchitecture(_) | ModelError::UnsupportedWeightType { .. } => PICOLM_ERR_UNSUPPORTED,
        ModelError::InvalidParameter { .. }
        | ModelError::UnknownKernel(_)
        | ModelError::InvalidToken { .. }
        | ModelError::EmptyBatch => PICOLM_ERR_INVALID_ARG,
        ModelError::ContextOverflow { .. } | ModelError::BatchTooLarge { .. } => PICOLM_ERR_CONTEXT_OVERFLOW,
        ModelError::ThreadPool(_) => PICOLM_ERR_IO,
        ModelError::OutOfMemory(_) => PICOLM_ERR_OUT_OF_MEMORY,
        _ => PICOLM_ERR_BAD_FILE,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match &e {
            Error::Gguf(GgufError::Io { .. } | GgufError::WriteFile { .. } | GgufError::NotAFile { .. }) => {
                PICOLM_ERR_IO
            }
            Error::File(_) => PICOLM_ERR_IO,
            Error::Gguf(_) | Error::Tokenizer(_) | Error::Quant(_) => PICOLM_ERR_BAD_FILE,
            Error::Model(m) => code_of_model_error(m),
            Error::PromptTooLong { .. } | Error::ContextOverflow { .. } => PICOLM_ERR_CONTEXT_OVERFLOW,
            #[cfg(feature = "state")]
            Error::InvalidState(_) => PICOLM_ERR_STATE,
            Error::Grammar(GrammarError::BudgetTooSmall { .. }) => PICOLM_ERR_BUDGET,
            Error::Grammar(GrammarError::SchemaDisabled) | Error::Chat(ChatError::JinjaDisabled) => {
                PICOLM_ERR_UNSUPPORTED
            }
            Error::Grammar(_) => PICOLM_ERR_GRAMMAR,
            Error::Sampler(_) => PICOLM_ERR_INVALID_ARG,
            Error::Io(_) => PICOLM_ERR_IO,
            Error::OutOfMemory { .. } => PICOLM_ERR_OUT_OF_MEMORY,
            _ => PICOLM_ERR_INVALID_ARG,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<ModelError> for Failure {
    fn from(e: ModelError) -> Failure {
        Failure::new(code_of_model_error(&e), e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Runs an entry point body: catches panics, records the message of a failure for
/// `picolm_last_error_message`, and returns the code.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> picolm_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PICOLM_OK,
        Ok(Err(f)) => {
            set_last_error(&f.message);
            if f.log {
                crate::log::log(crate::log::picolm_log_level::PICOLM_LOG_ERROR, &f.message);
            }
            f.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error: {what}"));
            PICOLM_ERR_PANIC
        }
    }
}

/// A static, NUL-terminated description of a result code (never NULL; do not free). Any integer is accepted:
/// a value that is not a `picolm_result` gives "unknown result code".
#[no_mangle]
pub extern "C" fn picolm_strerror(result: i32) -> *const libc::c_char {
    let s = picolm_result::from_i32(result).map_or("unknown result code\0", picolm_result::description);
    s.as_ptr() as *const libc::c_char
}

/// The detailed message of the last failed call on this thread ("" if none). The pointer stays valid until the
/// next failing call on the same thread; do not free.
#[no_mangle]
pub extern "C" fn picolm_last_error_message() -> *const libc::c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn text(code: i32) -> String {
        // SAFETY: picolm_strerror returns a static NUL-terminated string for every input.
        unsafe { CStr::from_ptr(picolm_strerror(code)) }.to_str().unwrap().to_string()
    }

    #[test]
    fn every_code_has_its_number_and_a_description() {
        for (i, c) in picolm_result::ALL.iter().enumerate() {
            assert_eq!(*c as i32, i as i32);
            assert_eq!(picolm_result::from_i32(i as i32), Some(*c));
            assert_ne!(text(i as i32), "unknown result code");
        }
        assert_eq!(PICOLM_ERR_OUT_OF_MEMORY as i32, 14);
        assert_eq!(PICOLM_ERR_BUDGET as i32, 15);
    }

    #[test]
    fn allocation_failures_are_out_of_memory_with_the_size() {
        let oom = picolm_core::alloc::OutOfMemory { what: "KV cache", bytes: 1 << 40 };
        for e in [Error::from(oom.clone()), Error::Model(ModelError::OutOfMemory(oom.clone()))] {
            let f = Failure::from(e);
            assert_eq!(f.code, PICOLM_ERR_OUT_OF_MEMORY);
            assert!(f.message.contains("KV cache") && f.message.contains(&(1u64 << 40).to_string()), "{}", f.message);
        }
        assert_eq!(Failure::from(ModelError::OutOfMemory(oom)).code, PICOLM_ERR_OUT_OF_MEMORY);
    }

    #[test]
    fn any_integer_is_a_valid_strerror_argument() {
        for code in [-1, 16, 100, 1000, 65536, i32::MIN, i32::MAX] {
            assert_eq!(text(code), "unknown result code", "{code}");
        }
    }
}
