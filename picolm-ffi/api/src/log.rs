//! The optional log callback (silent by default).

use std::ffi::CString;
use std::sync::Mutex;

/// Severity of a log message (passed to the callback as a 32-bit integer).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_log_level {
    /// Failures (also returned as result codes).
    PICOLM_LOG_ERROR = 0,
    /// Accepted but questionable settings (e.g. `n_ctx` beyond the model's training context) and unusual but
    /// handled situations.
    PICOLM_LOG_WARN = 1,
    /// Progress: model loaded, generation finished.
    PICOLM_LOG_INFO = 2,
}

/// Receives log messages: level (a `picolm_log_level` value), NUL-terminated UTF-8 message (valid only during
/// the call), user data.
pub type picolm_log_callback =
    Option<unsafe extern "C" fn(level: i32, message: *const libc::c_char, user_data: *mut libc::c_void)>;

struct Sink {
    cb: unsafe extern "C" fn(i32, *const libc::c_char, *mut libc::c_void),
    user_data: usize,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Installs (or with NULL removes) the process-wide log callback. The callback may be called from any thread
/// that calls into the library, one call at a time. Thread-safe.
#[no_mangle]
pub extern "C" fn picolm_set_log_callback(callback: picolm_log_callback, user_data: *mut libc::c_void) {
    let mut s = SINK.lock().unwrap_or_else(|p| p.into_inner());
    *s = callback.map(|cb| Sink { cb, user_data: user_data as usize });
}

pub(crate) fn log(level: picolm_log_level, message: &str) {
    let s = SINK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sink) = s.as_ref() {
        let msg = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the callback was supplied by the caller for this purpose; the message outlives the call.
        unsafe { (sink.cb)(level as i32, msg.as_ptr(), sink.user_data as *mut libc::c_void) };
    }
}

/// Sends a model's load warnings to the log callback at WARN level.
pub(crate) fn log_load_warnings(model: &picolm_core::Model) {
    for w in model.warnings() {
        log(picolm_log_level::PICOLM_LOG_WARN, &w.to_string());
    }
}
