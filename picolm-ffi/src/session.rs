//! `picolm_session`: one conversation (KV cache) over a model, with a cancel flag other threads may set.

use std::sync::{Arc, Mutex, TryLockError};

use picolm_core::memory::MemoryUsage;
use picolm_core::session::{check_state_path, Session, SessionParams};
use picolm_core::CancelToken;

use crate::error::{cstr_arg, guard, picolm_result, read_params, Failure};
use crate::model::{model_ref, picolm_model};

/// Session options. Initialise with `picolm_session_params_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_session_params {
    /// Must be `sizeof(picolm_session_params)`.
    pub struct_size: usize,
    /// Context length (0 = the model's `n_ctx`); the KV cache is allocated for exactly this.
    pub n_ctx: u32,
}

/// An opaque conversation. Use from one thread at a time; `picolm_session_cancel` may be called from any thread.
pub struct picolm_session {
    pub(crate) session: Mutex<Session>,
    pub(crate) cancel: CancelToken,
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
        // SAFETY: non-NULL writable struct.
        unsafe {
            params.write(picolm_session_params { struct_size: std::mem::size_of::<picolm_session_params>(), n_ctx: 0 })
        };
        Ok(())
    })
}

/// Creates a session over `model` (`params` may be NULL for the defaults). `*out` receives the session (NULL on
/// failure); free it with `picolm_session_free`. The session keeps the model alive.
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
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-NULL out-parameter.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: caller contract.
        let m = unsafe { model_ref(model) }?;
        // SAFETY: caller contract of `params`.
        let n_ctx =
            unsafe { read_params(params, "picolm_session_params", picolm_session_params_default) }?.n_ctx as usize;
        let sp = SessionParams { n_ctx, n_batch: m.n_batch, kv_type: m.kv_type };
        let session = Session::new(Arc::clone(&m.model), &sp)?;
        let handle = Box::new(picolm_session { session: Mutex::new(session), cancel: CancelToken::new() });
        // SAFETY: non-NULL out-parameter.
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

/// Releases a session. NULL is a no-op. Must not be called while another thread uses the session.
///
/// # Safety
/// `session` NULL or a live pointer from `picolm_session_new`.
#[no_mangle]
pub unsafe extern "C" fn picolm_session_free(session: *mut picolm_session) {
    if !session.is_null() {
        // SAFETY: pointer from Box::into_raw, freed once (caller contract).
        drop(unsafe { Box::from_raw(session) });
    }
}

/// Borrows a session handle.
///
/// # Safety
/// `s` NULL or live.
pub(crate) unsafe fn session_ref<'a>(s: *const picolm_session) -> Result<&'a picolm_session, Failure> {
    // SAFETY: caller contract.
    unsafe { s.as_ref() }.ok_or_else(|| Failure::null("session"))
}

/// Locks a session for the calling thread, or reports that another thread holds it.
pub(crate) fn lock(s: &picolm_session) -> Result<std::sync::MutexGuard<'_, Session>, Failure> {
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
        let s = unsafe { session_ref(session) }?;
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
        let s = unsafe { session_ref(session) }?;
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
        let s = unsafe { session_ref(session) }?;
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
/// state records the model's fingerprint and a checksum (see `picolm_session_load_state`).
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
        let s = unsafe { session_ref(session) }?;
        let path = unsafe { cstr_arg(path, "path") }?;
        let g = lock(s)?;
        Ok(g.save_state_file(path)?)
    })
}

/// Restores a state saved by `picolm_session_save_state` from the same model file (checked by fingerprint) into a
/// session with the same KV type and enough context. PICOLM_ERR_STATE for a file that is not a state, was saved by
/// another model, or is damaged, truncated or extended (checksum and exact length); PICOLM_ERR_CONTEXT_OVERFLOW
/// when it holds more tokens than the context; PICOLM_ERR_IO when the file cannot be opened or is not a regular
/// file (a FIFO is refused without blocking). On failure the session is empty.
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
        let s = unsafe { session_ref(session) }?;
        let path = unsafe { cstr_arg(path, "path") }?;
        let mut g = lock(s)?;
        Ok(g.load_state_file(path)?)
    })
}

/// Checks, without writing, that `picolm_session_save_state` may write `path` (NUL-terminated): it does not exist
/// (and its directory does), or it is (a link to) an empty regular file or a PicoLM state. Otherwise returns the
/// error the save would return (PICOLM_ERR_IO, with the reason in `picolm_last_error_message`). Lets a program
/// refuse a bad state path before a long generation.
///
/// # Safety
/// `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn picolm_state_check_path(path: *const libc::c_char) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let path = unsafe { cstr_arg(path, "path") }?;
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
        let s = unsafe { session_ref(session) }?;
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
