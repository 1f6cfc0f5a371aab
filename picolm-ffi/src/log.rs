//! The optional log callback (silent by default).

use std::ffi::CString;
use std::sync::Mutex;

/// Severity of a log message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_log_level {
    /// Failures (also returned as result codes).
    PICOLM_LOG_ERROR = 0,
    /// Unusual but handled situations.
    PICOLM_LOG_WARN = 1,
    /// Progress: model loaded, generation finished.
    PICOLM_LOG_INFO = 2,
}

/// Receives log messages: level, NUL-terminated UTF-8 message (valid only during the call), user data.
pub type picolm_log_callback =
    Option<unsafe extern "C" fn(level: picolm_log_level, message: *const libc::c_char, user_data: *mut libc::c_void)>;

struct Sink {
    cb: unsafe extern "C" fn(picolm_log_level, *const libc::c_char, *mut libc::c_void),
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
        unsafe { (sink.cb)(level, msg.as_ptr(), sink.user_data as *mut libc::c_void) };
    }
}
