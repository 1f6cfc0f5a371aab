//! `picolm_session`: one conversation (KV cache) over a model, with a cancel flag other threads may set.

use std::sync::{Arc, Mutex, TryLockError};

use picolm_core::memory::MemoryUsage;
use picolm_core::model::KvType;
#[cfg(feature = "state")]
use picolm_core::session::check_state_path;
use picolm_core::session::{Session, SessionParams};
use picolm_core::CancelToken;

use crate::boundary::{guard, picolm_result, Failure};
use crate::handle::Handle;
use crate::log::{log, picolm_log_level};
use crate::marshal::{cstr_arg, enum_arg, read_params};
use crate::model::picolm_model;

/// Storage format of a session's KV cache (the `kv_type` field of `picolm_session_params`, an `int32_t`).
/// `picolm_kv_type_parse` reads the names the CLI and Python accept.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_kv_type {
    /// 16-bit floats (default).
    PICOLM_KV_F16 = 0,
    /// Q8_0 blocks (about 53% of F16's size).
    PICOLM_KV_Q8_0 = 1,
}

/// The C code, C name and core value of each KV type (every `KvType` once, checked by a test).
const KV_TYPES: [(i32, &str, KvType); 2] = [
    (picolm_kv_type::PICOLM_KV_F16 as i32, "PICOLM_KV_F16", KvType::F16),
    (picolm_kv_type::PICOLM_KV_Q8_0 as i32, "PICOLM_KV_Q8_0", KvType::Q8_0),
];

/// The C code of a core KV type.
pub(crate) fn kv_type_code(t: KvType) -> i32 {
    KV_TYPES.iter().find(|(_, _, k)| *k == t).map(|(c, _, _)| *c).expect("every KV type has a C code")
}

/// Reads a `kv_type` field (an `int32_t` from C); `field` names it in the error.
pub(crate) fn kv_type_arg(value: i32, field: &str) -> Result<KvType, Failure> {
    enum_arg(value, field, &KV_TYPES)
}

/// Parses a KV type name as picolm-core does (`f16`, `q8_0` or `q8`, case-insensitive) into `*out` (a
/// `picolm_kv_type` value). PICOLM_ERR_INVALID_ARG names the accepted names. Thread-safe.
///
/// # Safety
/// `name` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_kv_type_parse(name: *const libc::c_char, out: *mut i32) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let name = unsafe { cstr_arg(name, "name") }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let t: KvType = name.parse().map_err(|e: picolm_core::names::UnknownName| Failure::invalid(e.to_string()))?;
        // SAFETY: non-NULL writable out-parameter.
        unsafe { *out = kv_type_code(t) };
        Ok(())
    })
}

/// The name of a KV type as picolm-core spells it ("f16", "q8_0"); any other integer gives "unknown". A static
/// NUL-terminated string; do not free.
#[no_mangle]
pub extern "C" fn picolm_kv_type_name(kv_type: i32) -> *const libc::c_char {
    match KV_TYPES.iter().find(|(c, _, _)| *c == kv_type).map(|(_, _, t)| *t) {
        Some(KvType::F16) => c"f16".as_ptr(),
        Some(KvType::Q8_0) => c"q8_0".as_ptr(),
        None => c"unknown".as_ptr(),
    }
}

/// Session options (as llama.h's context params). Initialise with `picolm_session_params_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_session_params {
    /// Must be `sizeof(picolm_session_params)`.
    pub struct_size: usize,
    /// Context length (0 = the model's `n_ctx`); the KV cache is allocated for exactly this.
    pub n_ctx: u32,
    /// Prompt tokens evaluated per forward call (default 64; at least 1).
    pub n_batch: u32,
    /// KV cache format: a `picolm_kv_type` value (others are PICOLM_ERR_INVALID_ARG).
    pub kv_type: i32,
}

/// An opaque conversation. Use from one thread at a time; `picolm_session_cancel` may be called from any thread.
pub struct picolm_session {
    _private: [u8; 0],
}

/// The value behind a `picolm_session`.
pub(crate) struct SessionHandle {
    /// The conversation; locked by the thread using it.
    pub(crate) session: Mutex<Session>,
    /// The cancel flag any thread may set.
    pub(crate) cancel: CancelToken,
}

impl Handle for picolm_session {
    type Inner = SessionHandle;
    const ARG: &'static str = "session";
}

/// The core settings of a C `picolm_session_params`, checked.
pub(crate) fn session_params(p: &picolm_session_params) -> Result<SessionParams, Failure> {
    if p.n_batch == 0 {
        return Err(Failure::invalid("picolm_session_params.n_batch must be at least 1"));
    }
    Ok(SessionParams {
        n_ctx: p.n_ctx as usize,
        n_batch: p.n_batch as usize,
        kv_type: kv_type_arg(p.kv_type, "picolm_session_params.kv_type")?,
    })
}

/// Fills `params` with the defaults.
///
/// # Safety
/// `params` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_params_default(params: *mut picolm_session_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        let d = SessionParams::default();
        let p = picolm_session_params {
            struct_size: std::mem::size_of::<picolm_session_params>(),
            n_ctx: d.n_ctx as u32,
            n_batch: d.n_batch as u32,
            kv_type: kv_type_code(d.kv_type),
        };
        // SAFETY: non-NULL writable struct.
        unsafe { params.write(p) };
        Ok(())
    })
}

/// Creates a session over `model` (`params` may be NULL for the defaults). `*out` receives the session (NULL on
/// failure); free it with `picolm_session_free`. The session keeps the model alive. A Q8_0 KV cache needs a head
/// size that is a multiple of 32 (else PICOLM_ERR_INVALID_ARG).
///
/// # Safety
/// `model` live; `params` NULL or valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_new(
    model: *const picolm_model,
    params: *const picolm_session_params,
    out: *mut *mut picolm_session,
) -> picolm_result {
    guard(|| {
        // SAFETY: `out` NULL or writable (caller contract).
        unsafe { picolm_session::clear_out(out) }?;
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        // SAFETY: caller contract of `params`.
        let p = unsafe { read_params(params, "picolm_session_params", picolm_session_params_default) }?;
        let sp = session_params(&p)?;
        warn_beyond_budget(m, &sp);
        let session = Session::new(Arc::clone(m), &sp)?;
        let handle = SessionHandle { session: Mutex::new(session), cancel: CancelToken::new() };
        // SAFETY: `out` checked writable above.
        unsafe { picolm_session::write_out(out, handle) };
        Ok(())
    })
}

/// A model loaded with a memory budget was planned for one session with the default settings: a session whose
/// buffers are larger (a larger `n_batch`) may go over it, which the log says.
fn warn_beyond_budget(model: &picolm_core::Model, sp: &SessionParams) {
    let planned = SessionParams::default();
    if model.memory_plan().is_some() && sp.n_batch > planned.n_batch {
        log(
            picolm_log_level::PICOLM_LOG_WARN,
            &format!(
                "the model's memory budget was planned for n_batch {}; this session's n_batch {} needs more buffers",
                planned.n_batch, sp.n_batch
            ),
        );
    }
}

/// Releases a session. NULL is a no-op. Must not be called while another thread uses the session.
///
/// # Safety
/// `session` NULL or a live pointer from `picolm_session_new`.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_free(session: *mut picolm_session) {
    // SAFETY: caller contract.
    unsafe { picolm_session::free(session) }
}

/// Locks a session for the calling thread, or reports that another thread holds it.
pub(crate) fn lock(s: &SessionHandle) -> Result<std::sync::MutexGuard<'_, Session>, Failure> {
    match s.session.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => {
            // A panic was caught mid-call: the cache may be inconsistent, so start clean.
            let mut g = p.into_inner();
            g.reset();
            Ok(g)
        }
        Err(TryLockError::WouldBlock) => {
            Err(Failure::new(picolm_result::PICOLM_ERR_BUSY, "the session is in use by another thread"))
        }
    }
}

/// Forgets the conversation (the next generation starts from an empty cache).
///
/// # Safety
/// `session` live.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_reset(session: *mut picolm_session) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let s = unsafe { picolm_session::as_ref(session) }?;
        lock(s)?.reset();
        Ok(())
    })
}

/// Asks a running `picolm_session_generate` on this session to stop after the current token (or prefill batch).
/// Thread-safe and async-signal-tolerant (sets an atomic flag). Has no effect when nothing runs.
///
/// # Safety
/// `session` live.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_cancel(session: *const picolm_session) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let s = unsafe { picolm_session::as_ref(session) }?;
        s.cancel.cancel();
        Ok(())
    })
}

/// Number of tokens held in the session's cache.
///
/// # Safety
/// `session` live; `n_out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_n_tokens(session: *const picolm_session, n_out: *mut usize) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let s = unsafe { picolm_session::as_ref(session) }?;
        if n_out.is_null() {
            return Err(Failure::null("n_out"));
        }
        let n = lock(s)?.tokens().len();
        // SAFETY: non-NULL writable.
        unsafe { *n_out = n };
        Ok(())
    })
}

/// Saves the cached tokens, KV cache and logits to `path` (NUL-terminated), atomically: written to a temporary file
/// in the same directory, synced, then renamed over `path`. `path` may be a new file, an empty file or a PicoLM
/// state (which is replaced); any other file (a model, a text) is refused with PICOLM_ERR_IO and left untouched,
/// as are FIFOs, devices, sockets and directories. A symbolic link is written through to its existing target. The
/// state records the model's fingerprint and a checksum (see `picolm_session_load_state`). PICOLM_ERR_UNSUPPORTED
/// (after the argument checks) in a library built without the `state` feature (see `picolm_features`).
///
/// # Safety
/// `session` live; `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_save_state(
    session: *const picolm_session,
    path: *const libc::c_char,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let s = unsafe { picolm_session::as_ref(session) }?;
        let path = unsafe { cstr_arg(path, "path") }?;
        let g = lock(s)?;
        #[cfg(not(feature = "state"))]
        return Err({
            let _ = (g, path);
            Failure::unsupported("state", "picolm_session_save_state")
        });
        #[cfg(feature = "state")]
        Ok(g.save_state_file(path)?)
    })
}

/// Restores a state saved by `picolm_session_save_state` from the same model file (checked by fingerprint) into a
/// session with the same KV type and enough context. PICOLM_ERR_STATE for a file that is not a state, was saved by
/// another model, or is damaged, truncated or extended (checksum and exact length); PICOLM_ERR_CONTEXT_OVERFLOW
/// when it holds more tokens than the context; PICOLM_ERR_IO when the file cannot be opened or is not a regular
/// file (a FIFO is refused without blocking). On failure the session is empty. PICOLM_ERR_UNSUPPORTED (after the
/// argument checks; the session is left as it is) in a library built without the `state` feature.
///
/// # Safety
/// `session` live; `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_load_state(
    session: *mut picolm_session,
    path: *const libc::c_char,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let s = unsafe { picolm_session::as_ref(session) }?;
        let path = unsafe { cstr_arg(path, "path") }?;
        let mut g = lock(s)?;
        #[cfg(not(feature = "state"))]
        return Err({
            let _ = (&mut g, path);
            Failure::unsupported("state", "picolm_session_load_state")
        });
        #[cfg(feature = "state")]
        Ok(g.load_state_file(path)?)
    })
}

/// Checks, without writing, that `picolm_session_save_state` may write `path` (NUL-terminated): it does not exist
/// (and its directory does), or it is (a link to) an empty regular file or a PicoLM state. Otherwise returns the
/// error the save would return (PICOLM_ERR_IO, with the reason in `picolm_last_error_message`). Lets a program
/// refuse a bad state path before a long generation. PICOLM_ERR_UNSUPPORTED (after the argument check) in a library
/// built without the `state` feature.
///
/// # Safety
/// `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn picolm_state_check_path(path: *const libc::c_char) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let path = unsafe { cstr_arg(path, "path") }?;
        #[cfg(not(feature = "state"))]
        return Err({
            let _ = path;
            Failure::unsupported("state", "picolm_state_check_path")
        });
        #[cfg(feature = "state")]
        Ok(check_state_path(path)?)
    })
}

/// Memory use: process figures from the OS and the session's own buffers (bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct picolm_memory_report {
    /// Peak resident set of the process (VmHWM).
    pub peak_rss: u64,
    /// Current resident set (VmRSS).
    pub rss: u64,
    /// Anonymous resident memory (RssAnon): heap, KV caches, buffers.
    pub rss_anon: u64,
    /// Resident file-backed pages (RssFile): mapped model weights.
    pub rss_file: u64,
    /// This session's KV cache.
    pub kv_bytes: u64,
    /// This session's activation buffers.
    pub scratch_bytes: u64,
}

/// Fills `*out` with the memory report of the process and this session.
///
/// # Safety
/// `session` live; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_memory(
    session: *const picolm_session,
    out: *mut picolm_memory_report,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let s = unsafe { picolm_session::as_ref(session) }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let g = lock(s)?;
        let m = MemoryUsage::current().unwrap_or_default();
        let r = picolm_memory_report {
            peak_rss: m.peak_rss,
            rss: m.rss,
            rss_anon: m.rss_anon,
            rss_file: m.rss_file,
            kv_bytes: g.kv_bytes() as u64,
            scratch_bytes: g.scratch_bytes() as u64,
        };
        // SAFETY: non-NULL writable.
        unsafe { out.write(r) };
        Ok(())
    })
}
