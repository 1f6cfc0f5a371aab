//! Fallible allocation of caller-sized buffers (KV cache, activation buffers, logits, RoPE tables, state
//! buffers): a size the system cannot give is an [`OutOfMemory`] error carrying the size, never an abort of the
//! host process. On a 512 MB board this happens with ordinary settings (a long context), so it must be reportable.

use thiserror::Error;

/// A buffer whose size the caller chose could not be allocated.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("out of memory: cannot allocate {bytes} bytes for the {what}")]
pub struct OutOfMemory {
    /// What the buffer is for ("KV cache", "activation buffers", ...).
    pub what: &'static str,
    /// Bytes asked for (saturated at `u64::MAX` when the size itself overflows).
    pub bytes: u64,
}

/// A vector of `n` copies of `value`, or [`OutOfMemory`] when the memory cannot be reserved (or `n` elements of
/// `T` overflow the address space).
pub fn try_filled<T: Clone>(n: usize, value: T, what: &'static str) -> Result<Vec<T>, OutOfMemory> {
    let mut v = Vec::new();
    try_resize(&mut v, n, value, what)?;
    Ok(v)
}

/// Element types whose all-zero bit pattern is a valid value (so a zeroed allocation is `n` zeros).
pub trait ZeroIsValid: Copy {}
impl ZeroIsValid for u8 {}
impl ZeroIsValid for u16 {}
impl ZeroIsValid for i32 {}
impl ZeroIsValid for f32 {}

/// A vector of `n` zeros from a zeroed allocation, or [`OutOfMemory`]. Unlike [`try_filled`], the zeros are not
/// written: a large buffer comes from fresh zero pages of the operating system, which count towards the resident
/// set only once they are used (a KV cache for `n_ctx` positions costs what a run actually fills, as with `vec!`).
pub fn try_zeroed<T: ZeroIsValid>(n: usize, what: &'static str) -> Result<Vec<T>, OutOfMemory> {
    let oom = || OutOfMemory { what, bytes: bytes_of::<T>(n) };
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| oom())?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: `layout` has a non-zero size. `alloc_zeroed` returns null or a block valid for `n` values of `T`
    // whose bits are all zero, which is a valid `T` (`ZeroIsValid`). The block comes from the global allocator
    // with exactly the layout of a `Vec<T>` of capacity `n`, so `from_raw_parts(p, n, n)` owns it correctly.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut T;
        if p.is_null() {
            return Err(oom());
        }
        Ok(Vec::from_raw_parts(p, n, n))
    }
}

/// Grows `v` to `n` elements (new ones are copies of `value`), reserving fallibly; a shorter `v` is left as is
/// when the reservation fails. Shrinking truncates.
pub fn try_resize<T: Clone>(v: &mut Vec<T>, n: usize, value: T, what: &'static str) -> Result<(), OutOfMemory> {
    if n > v.len() {
        let extra = n - v.len();
        v.try_reserve_exact(extra).map_err(|_| OutOfMemory { what, bytes: bytes_of::<T>(n) })?;
    }
    v.resize(n, value);
    Ok(())
}

/// Bytes of `n` elements of `T`, saturated.
pub fn bytes_of<T>(n: usize) -> u64 {
    (n as u64).saturating_mul(std::mem::size_of::<T>() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_buffers_are_zeros_and_not_resident_until_used() {
        assert!(try_zeroed::<f32>(0, "empty").unwrap().is_empty());
        let rss = || crate::memory::MemoryUsage::current().map(|m| m.rss).unwrap_or(0);
        let before = rss();
        let v = try_zeroed::<f32>(16 << 20, "64 MiB").unwrap();
        let after = rss();
        assert_eq!(v.len(), 16 << 20);
        assert!(v.iter().step_by(4096).all(|&x| x == 0.0));
        // A filled buffer of the same size would add 64 MiB at once; the zeroed one adds only what was read.
        assert!(
            after.saturating_sub(before) < 48 << 20,
            "a zeroed 64 MiB buffer made {} bytes resident",
            after.saturating_sub(before)
        );
    }

    #[test]
    fn impossible_sizes_are_errors_on_every_target() {
        assert_eq!(try_filled(usize::MAX, 0u64, "too big").unwrap_err().what, "too big");
        assert_eq!(try_zeroed::<f32>(usize::MAX, "too big").unwrap_err().what, "too big");
        let mut v = vec![1u8; 4];
        assert!(try_resize(&mut v, usize::MAX, 0, "too big").is_err());
        assert_eq!(v, [1, 1, 1, 1]);
    }

    // The sizes below only exist on 64-bit targets.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn impossible_sizes_are_errors_with_the_size() {
        let err = try_filled(usize::MAX / 2, 0u64, "test buffer").unwrap_err();
        assert_eq!(err, OutOfMemory { what: "test buffer", bytes: u64::MAX });
        assert!(err.to_string().contains("test buffer"), "{err}");
        let err = try_filled(1usize << 46, 0u8, "huge").unwrap_err();
        assert_eq!(err.bytes, 1 << 46);
        assert!(err.to_string().contains(&(1u64 << 46).to_string()), "{err}");
        let mut v = vec![1u8; 4];
        assert!(try_resize(&mut v, 1 << 46, 0, "huge").is_err());
        assert_eq!(v, [1, 1, 1, 1]);
        try_resize(&mut v, 6, 7, "small").unwrap();
        assert_eq!(v, [1, 1, 1, 1, 7, 7]);
        try_resize(&mut v, 2, 7, "small").unwrap();
        assert_eq!(v, [1, 1]);
    }
}
