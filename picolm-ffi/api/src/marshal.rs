//! Argument marshalling: reading caller strings and params structs, writing caller buffers. Every helper turns a
//! bad argument into a [`Failure`] with the argument's name.

use crate::boundary::{picolm_result, Failure};
use picolm_result::*;

/// Reads a caller string given as pointer + length.
///
/// # Safety
/// `ptr` must point to `len` readable bytes (or be NULL, which is an error unless `len == 0`).
pub(crate) unsafe fn str_arg<'a>(ptr: *const libc::c_char, len: usize, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        if len == 0 {
            return Ok("");
        }
        return Err(Failure::null(name));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr` (documented on every entry point).
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            PICOLM_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )
    })
}

/// Reads a NUL-terminated caller string.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn cstr_arg<'a>(ptr: *const libc::c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let c = unsafe { std::ffi::CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        Failure::new(
            PICOLM_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )
    })
}

/// Copies `bytes` plus a NUL into a caller buffer; `needed` receives `bytes.len() + 1`.
///
/// # Safety
/// `buf` must be NULL or point to `cap` writable bytes; `needed` must be NULL or writable.
pub(crate) unsafe fn write_out(
    bytes: &[u8],
    buf: *mut libc::c_char,
    cap: usize,
    needed: *mut usize,
) -> Result<(), Failure> {
    if !needed.is_null() {
        // SAFETY: non-NULL out-parameter supplied by the caller.
        unsafe { *needed = bytes.len() + 1 };
    }
    if buf.is_null() && cap == 0 {
        return Err(Failure::size_query(format!("size query: {} bytes needed", bytes.len() + 1)));
    }
    if buf.is_null() || cap < bytes.len() + 1 {
        return Err(Failure::new(
            PICOLM_ERR_BUFFER_TOO_SMALL,
            format!("buffer of {cap} bytes is too small: {} needed", bytes.len() + 1),
        ));
    }
    // SAFETY: `cap >= len + 1` writable bytes at `buf` (checked above, guaranteed by the caller).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    Ok(())
}

/// A caller's params struct, or the defaults when `params` is NULL. Every params struct is `#[repr(C)]` with
/// `struct_size: usize` as its first field; it is read and checked before the rest of the struct is trusted.
///
/// # Safety
/// `params` is NULL or points to a readable params struct of the caller; `default` fully initialises a `T`.
pub(crate) unsafe fn read_params<T: Copy>(
    params: *const T,
    name: &str,
    default: unsafe extern "C" fn(*mut T) -> picolm_result,
) -> Result<T, Failure> {
    if params.is_null() {
        let mut d = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: `default` writes a full struct into `d` (its contract), so it is initialised afterwards.
        unsafe {
            default(d.as_mut_ptr());
            return Ok(d.assume_init());
        }
    }
    // SAFETY: non-NULL caller struct whose first field is `struct_size: usize` (layout documented in the header).
    let size = unsafe { (params as *const usize).read() };
    check_struct_size(name, size, std::mem::size_of::<T>())?;
    // SAFETY: the size matches this library's layout, so the whole struct is readable as a `T`.
    Ok(unsafe { *params })
}

/// Checks the `struct_size` field of a caller params struct.
pub(crate) fn check_struct_size(name: &str, given: usize, expected: usize) -> Result<(), Failure> {
    if given != expected {
        return Err(Failure::invalid(format!(
            "{name}.struct_size is {given}, this library expects {expected}: initialise it with {name}_default()"
        )));
    }
    Ok(())
}

/// Copies `ids` into a caller array of `cap` ids; `*n_out` receives `ids.len()` (also when it does not fit).
/// `out = NULL, cap = 0` is a size query (PICOLM_ERR_BUFFER_TOO_SMALL, not logged); a smaller `cap` is
/// PICOLM_ERR_BUFFER_TOO_SMALL with nothing written. `what` names the ids in the message.
///
/// # Safety
/// `out` must be NULL or point to `cap` writable ids; `n_out` must be NULL (an error) or writable.
pub(crate) unsafe fn write_ids(
    ids: &[u32],
    out: *mut u32,
    cap: usize,
    n_out: *mut usize,
    what: &str,
) -> Result<(), Failure> {
    if n_out.is_null() {
        return Err(Failure::null("n_out"));
    }
    // SAFETY: non-NULL out-parameter (caller contract).
    unsafe { *n_out = ids.len() };
    if out.is_null() && cap == 0 && !ids.is_empty() {
        return Err(Failure::size_query(format!("size query: {} {what}", ids.len())));
    }
    if ids.len() > cap || (out.is_null() && !ids.is_empty()) {
        return Err(Failure::new(
            PICOLM_ERR_BUFFER_TOO_SMALL,
            format!("{} {what} do not fit in a buffer of {cap}", ids.len()),
        ));
    }
    if !ids.is_empty() {
        // SAFETY: `cap >= ids.len()` writable ids at `out` (checked above, caller contract).
        unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), out, ids.len()) };
    }
    Ok(())
}

/// Reads an `int32_t` enumeration value through a table of (C code, core value) pairs; any other value is
/// PICOLM_ERR_INVALID_ARG naming the field and listing the accepted codes.
pub(crate) fn enum_arg<T: Clone>(value: i32, field: &str, table: &[(i32, &str, T)]) -> Result<T, Failure> {
    table.iter().find(|(code, _, _)| *code == value).map(|(_, _, v)| v.clone()).ok_or_else(|| {
        let accepted: Vec<String> = table.iter().map(|(c, n, _)| format!("{n} ({c})")).collect();
        Failure::invalid(format!("{field} is {value}: use {}", accepted.join(", ")))
    })
}
