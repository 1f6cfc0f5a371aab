//! The C ABI of PicoLM (`include/picolm.h`): its functions, which `picolm-ffi` links into `libpicolm.so` and
//! `libpicolm.a` (this crate is built for size; see picolm-ffi's crate documentation).
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
mod boundary;
mod chat;
mod defaults;
mod generate;
mod handle;
mod log;
mod marshal;
mod model;
mod sampler;
mod session;
mod tokens;
mod utilities;

pub use agent::*;
pub use boundary::*;
pub use chat::*;
pub use defaults::*;
pub use generate::*;
pub use log::*;
pub use model::*;
pub use sampler::*;
pub use session::*;
pub use tokens::*;
pub use utilities::*;

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
/// Llama 3 formats), `json` (`picolm_generate_params.json_mode`, and the JSON grammar under `json_schema`),
/// `json-schema` (`picolm_generate_params.json_schema`), `agent` (`picolm_agent_*`),
/// `quantize` (`picolm_model_quantize`), `bench` (`picolm_bench`) and `state` (`picolm_session_save_state`,
/// `picolm_session_load_state`, `picolm_state_check_path`) and `avx512` (x86-64 only: the AVX-512 VNNI kernels;
/// without it those CPUs run the AVX2 kernels); "" when none. Every function is exported in every build: one whose
/// feature is left out returns PICOLM_ERR_UNSUPPORTED with a message naming the feature. Never NULL; do not free.
#[no_mangle]
pub extern "C" fn picolm_features() -> *const libc::c_char {
    static FEATURES: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    FEATURES
        .get_or_init(|| std::ffi::CString::new(feature_names().join(" ")).expect("feature names have no NUL"))
        .as_ptr()
}

/// The features of [`picolm_features`]: picolm-core's ([`picolm_core::FEATURES`]) with this crate's own `json`
/// after `jinja`.
fn feature_names() -> Vec<&'static str> {
    let mut names = picolm_core::FEATURES.to_vec();
    if cfg!(feature = "json") {
        let at = names.iter().position(|f| *f == "jinja").map_or(0, |i| i + 1);
        names.insert(at, "json");
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn features_string_lists_the_cargo_features() {
        // SAFETY: a static NUL-terminated string.
        let f = unsafe { CStr::from_ptr(picolm_features()) }.to_str().unwrap();
        let want: Vec<&str> = [
            ("jinja", cfg!(feature = "jinja")),
            ("json", cfg!(feature = "json")),
            ("json-schema", cfg!(feature = "json-schema")),
            ("agent", cfg!(feature = "agent")),
            ("quantize", cfg!(feature = "quantize")),
            ("bench", cfg!(feature = "bench")),
            ("state", cfg!(feature = "state")),
            ("avx512", cfg!(all(feature = "avx512", target_arch = "x86_64"))),
            ("i8mm", cfg!(all(feature = "i8mm", target_arch = "aarch64"))),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        assert_eq!(f, want.join(" "));
    }

    #[cfg(not(all(feature = "quantize", feature = "agent", feature = "bench", feature = "state")))]
    fn last_error() -> String {
        // SAFETY: a NUL-terminated string owned by the library.
        unsafe { CStr::from_ptr(picolm_last_error_message()) }.to_string_lossy().into_owned()
    }

    /// Without the `quantize` feature the function is still there and says which feature is missing.
    #[cfg(not(feature = "quantize"))]
    #[test]
    fn quantize_is_unsupported_without_the_feature() {
        let dir = std::env::temp_dir().join(format!("picolm-noq-{}", std::process::id()));
        let dst = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated strings; NULL out-parameters are allowed.
        let r = unsafe {
            picolm_model_quantize(
                c"in.gguf".as_ptr(),
                dst.as_ptr(),
                c"q8_0".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, picolm_result::PICOLM_ERR_UNSUPPORTED);
        assert!(
            last_error().contains("picolm_model_quantize") && last_error().contains("`quantize` feature"),
            "{}",
            last_error()
        );
        assert!(!dir.exists());
    }

    /// Without the `bench` feature the benchmark is still there, checks its arguments and says which feature is
    /// missing (without reading the model file).
    #[cfg(not(feature = "bench"))]
    #[test]
    fn bench_is_unsupported_without_the_feature() {
        let mut needed = 0usize;
        // SAFETY: a NUL-terminated path, NULL params (the defaults), no buffer, a writable `needed`.
        let r = unsafe {
            picolm_bench(c"no-such-model.gguf".as_ptr(), std::ptr::null(), false, std::ptr::null_mut(), 0, &mut needed)
        };
        assert_eq!(r, picolm_result::PICOLM_ERR_UNSUPPORTED);
        assert!(last_error().contains("picolm_bench") && last_error().contains("`bench` feature"), "{}", last_error());
    }

    /// Without the `state` feature the state functions are still there, check their arguments and say which feature
    /// is missing (without touching the file).
    #[cfg(not(feature = "state"))]
    #[test]
    fn state_files_are_unsupported_without_the_feature() {
        let path = std::env::temp_dir().join(format!("picolm-nostate-{}", std::process::id()));
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { picolm_state_check_path(c_path.as_ptr()) }, picolm_result::PICOLM_ERR_UNSUPPORTED);
        assert!(
            last_error().contains("picolm_state_check_path") && last_error().contains("`state` feature"),
            "{}",
            last_error()
        );
        // SAFETY: a NULL path is checked (and refused) before the feature.
        assert_eq!(unsafe { picolm_state_check_path(std::ptr::null()) }, picolm_result::PICOLM_ERR_NULL_ARG);
        assert!(!path.exists());
    }

    /// Without the `agent` feature every agent function that does something returns PICOLM_ERR_UNSUPPORTED.
    #[cfg(not(feature = "agent"))]
    #[test]
    fn agent_is_unsupported_without_the_feature() {
        let mut p = std::mem::MaybeUninit::<picolm_agent_params>::uninit();
        // SAFETY: a writable out-parameter.
        assert_eq!(unsafe { picolm_agent_params_default(p.as_mut_ptr()) }, picolm_result::PICOLM_ERR_UNSUPPORTED);
        assert!(last_error().contains("`agent` feature"), "{}", last_error());
    }

    /// The core's "feature left out" errors map to PICOLM_ERR_UNSUPPORTED (in every build).
    #[test]
    fn disabled_feature_errors_are_unsupported() {
        use picolm_core::{chat::ChatError, grammar::GrammarError, Error};
        for e in [Error::Grammar(GrammarError::SchemaDisabled), Error::Chat(ChatError::JinjaDisabled)] {
            assert_eq!(boundary::Failure::from(e).code, picolm_result::PICOLM_ERR_UNSUPPORTED);
        }
    }
}
