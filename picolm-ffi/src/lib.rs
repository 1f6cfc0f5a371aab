//! The C ABI of PicoLM (`libpicolm.so`, `libpicolm.a`, `include/picolm.h`).
//!
//! Conventions, as in rustls-ffi: objects are opaque pointers created by `picolm_<object>_new/load` and released by
//! `picolm_<object>_free` (which accepts NULL); every function returns a [`picolm_result`] code (or a value that
//! cannot fail); no Rust panic crosses the boundary (each entry point catches it and returns
//! `PICOLM_ERR_PANIC`); every pointer argument is NULL-checked; strings are passed as pointer + length and must
//! be UTF-8; a detailed message of the last failure on the calling thread is available from
//! `picolm_last_error_message()`.
//!
//! Thread-safety: a `picolm_model` may be shared by any number of threads and sessions. A `picolm_session` must
//! be used by one thread at a time, except `picolm_session_cancel`, which any thread may call at any time.
#![allow(non_camel_case_types)]

mod agent;
mod error;
mod generate;
mod log;
mod model;
mod session;
mod tokens;
mod tools;

pub use agent::*;
pub use error::*;
pub use generate::*;
pub use log::*;
pub use model::*;
pub use session::*;
pub use tokens::*;
pub use tools::*;

/// Major version of the library.
pub const PICOLM_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const PICOLM_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const PICOLM_VERSION_PATCH: u32 = 0;

/// The library version as a static NUL-terminated string ("0.1.0"). Never NULL; do not free.
#[no_mangle]
pub extern "C" fn picolm_version() -> *const libc::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const libc::c_char
}

/// The optional parts this library was built with, as a static NUL-terminated string of names separated by
/// spaces, from `jinja` (the models' own Jinja chat templates; without it the built-in ChatML, Zephyr, Llama 2 and
/// Llama 3 formats), `json-schema` (`picolm_generate_params.json_schema`), `agent` (`picolm_agent_*`) and
/// `quantize` (`picolm_model_quantize`); "" when none. Every function is exported in every build: one whose
/// feature is left out returns PICOLM_ERR_UNSUPPORTED with a message naming the feature. Never NULL; do not free.
#[no_mangle]
pub extern "C" fn picolm_features() -> *const libc::c_char {
    static FEATURES: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    FEATURES
        .get_or_init(|| std::ffi::CString::new(picolm_core::FEATURES.join(" ")).expect("feature names have no NUL"))
        .as_ptr()
}
