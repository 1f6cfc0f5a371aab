//! `libpicolm.so` and `libpicolm.a`: the C ABI of PicoLM (`include/picolm.h`), linked from `picolm-ffi-api`.
//!
//! The functions live in `picolm-ffi-api` (`picolm-ffi/api/`), which the release profile builds for size. This crate
//! only links them: as the crate that produces the libraries, its opt-level (3) is that of the whole-program
//! (fat-LTO) pass, where the kernels of picolm-kernels are vectorised. rustc exports the `#[no_mangle] extern "C"`
//! functions of the crates a cdylib or staticlib links, and only those (the C API; see `build.rs`).

// Linked for its exported functions: nothing here names an item of it.
extern crate picolm_ffi_api;
