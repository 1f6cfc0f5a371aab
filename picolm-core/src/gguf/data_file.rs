//! Positional reads of a model file (`pread`), the way streaming mode reads weights: into the caller's buffer, with
//! the page cache of the range dropped afterwards (`posix_fadvise(POSIX_FADV_DONTNEED)`), so neither the process's
//! resident set nor the page cache grows with the model size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::GgufError;

/// A shared read-only handle on a model file: cheap to clone, usable from any thread (reads are positional).
#[derive(Clone, Debug)]
pub struct DataFile {
    file: Arc<File>,
    path: Arc<PathBuf>,
    len: u64,
}

impl DataFile {
    /// Wraps an open file of `len` bytes.
    pub(crate) fn new(file: File, path: &Path, len: u64) -> DataFile {
        DataFile { file: Arc::new(file), path: Arc::new(path.to_path_buf()), len }
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The path the file was opened from (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Fills `buf` with the bytes at `offset`, then drops that range from the page cache. A range beyond the length
    /// at open, a file truncated since, or an I/O error is a [`GgufError::Read`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let len = buf.len() as u64;
        let error = |source| GgufError::Read { path: self.path.to_path_buf(), offset, len, source };
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the range ends past the end of the file ({} bytes)", self.len),
            )));
        }
        self.file.read_exact_at(buf, offset).map_err(error)?;
        self.drop_cache(offset, len);
        Ok(())
    }

    /// Turns off the kernel's read-ahead for this open file (`POSIX_FADV_RANDOM`): streaming mode reads exactly
    /// what it needs and does its own read-ahead, so pages the kernel would read around a small read (a norm
    /// vector, an embedding row) would only fill the page cache.
    pub fn advise_random(&self) {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        // SAFETY: as in `drop_cache`: integer arguments and a descriptor that stays open during the call.
        let _ = unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
    }

    /// Tells the kernel that the page-cache pages of a byte range will not be needed again (a hint: clean pages are
    /// dropped, which keeps the cache, and the memory cgroup it is charged to, small). The range is widened to whole
    /// pages: the kernel only drops pages that lie entirely inside it, and a small read (a norm vector, an
    /// embedding row) would otherwise leave its pages cached.
    pub fn drop_cache(&self, offset: u64, len: u64) {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        {
            // SAFETY: sysconf only reads its integer argument.
            let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64;
            let start = offset / page * page;
            let end = offset.saturating_add(len).div_ceil(page).saturating_mul(page);
            let (Ok(off), Ok(n)) = (libc::off_t::try_from(start), libc::off_t::try_from(end - start)) else { return };
            // SAFETY: posix_fadvise only reads its integer arguments; the descriptor belongs to `self.file`, which
            // is open for the duration of the call. Advice failures only cost memory, never correctness.
            let _ = unsafe { libc::posix_fadvise(self.file.as_raw_fd(), off, n, libc::POSIX_FADV_DONTNEED) };
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let _ = (offset, len);
    }
}
