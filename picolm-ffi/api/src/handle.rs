//! The new/ref/free plumbing of the opaque objects (the idea of rustls-ffi's `Castable`): a C handle type is an
//! empty marker struct; the Rust value behind it (`Inner`) lives in a `Box` whose pointer is handed to C as a
//! pointer to the marker type.

use crate::boundary::Failure;

/// An opaque C object backed by a boxed `Inner`.
pub(crate) trait Handle: Sized {
    /// The Rust value a handle points to.
    type Inner;
    /// The argument name used in the NULL-argument message.
    const ARG: &'static str;

    /// Moves `inner` to the heap and returns the pointer C gets (released with [`Handle::free`]).
    fn into_raw(inner: Self::Inner) -> *mut Self {
        Box::into_raw(Box::new(inner)).cast()
    }

    /// Writes a new handle to the out-parameter `out`.
    ///
    /// # Safety
    /// `out` must be writable (checked non-NULL by [`Handle::clear_out`] before the work that built `inner`).
    unsafe fn write_out(out: *mut *mut Self, inner: Self::Inner) {
        // SAFETY: a writable out-parameter (caller contract).
        unsafe { *out = Self::into_raw(inner) };
    }

    /// Checks the out-parameter of a constructor and sets it to NULL, so that it is NULL on every failure.
    ///
    /// # Safety
    /// `out` must be NULL (an error) or writable.
    unsafe fn clear_out(out: *mut *mut Self) -> Result<(), Failure> {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-NULL, writable (caller contract).
        unsafe { *out = std::ptr::null_mut() };
        Ok(())
    }

    /// Borrows the value behind a handle; NULL is PICOLM_ERR_NULL_ARG.
    ///
    /// # Safety
    /// `ptr` must be NULL or a live pointer from [`Handle::into_raw`] of this type, not used mutably elsewhere
    /// for `'a`.
    unsafe fn as_ref<'a>(ptr: *const Self) -> Result<&'a Self::Inner, Failure> {
        // SAFETY: the pointer came from `Box<Self::Inner>` (caller contract), so the cast restores its type.
        unsafe { ptr.cast::<Self::Inner>().as_ref() }.ok_or_else(|| Failure::null(Self::ARG))
    }

    /// Borrows the value behind a handle mutably; NULL is PICOLM_ERR_NULL_ARG.
    ///
    /// # Safety
    /// `ptr` must be NULL or a live pointer from [`Handle::into_raw`] of this type, not borrowed elsewhere for
    /// `'a` (the C API documents that an object is used by one thread at a time).
    unsafe fn as_mut<'a>(ptr: *mut Self) -> Result<&'a mut Self::Inner, Failure> {
        // SAFETY: the pointer came from `Box<Self::Inner>` (caller contract), so the cast restores its type.
        unsafe { ptr.cast::<Self::Inner>().as_mut() }.ok_or_else(|| Failure::null(Self::ARG))
    }

    /// Drops the value behind a handle. NULL is a no-op.
    ///
    /// # Safety
    /// `ptr` must be NULL or a pointer from [`Handle::into_raw`] of this type, not freed before and not used
    /// after.
    unsafe fn free(ptr: *mut Self) {
        if !ptr.is_null() {
            // SAFETY: from `Box::into_raw` of a `Box<Self::Inner>`, freed once (caller contract).
            drop(unsafe { Box::from_raw(ptr.cast::<Self::Inner>()) });
        }
    }
}
