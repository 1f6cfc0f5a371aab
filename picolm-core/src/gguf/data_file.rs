//! Positional reads of a model file (`pread`), the way streaming mode reads weights: into the caller's buffer, with
//! the page cache of the range dropped afterwards (`posix_fadvise(POSIX_FADV_DONTNEED)`), so neither the process's
//! resident set nor the page cache grows with the model size.
//!
//! Weight slabs are read with `O_DIRECT` where the file system allows it ([`DataFile::read_slab`]): the bytes go
//! from the disk to the slab without a page-cache copy (on a virtio disk: 500-650 MiB/s against 220-350 MiB/s for
//! buffered reads followed by `DONTNEED`, one reader, 2-8 MiB reads), and nothing is charged to the page cache of
//! the process's memory cgroup. Direct reads need an aligned offset, length and buffer address: a slab is an
//! [`AlignedBuf`] and the read covers the aligned superset of the range. A large direct read is split into up to
//! [`READ_PARTS`] pieces read concurrently: a virtio or NVMe disk serves several requests at once, and one reader
//! leaves it idle between requests (on the development machine, `dd iflag=direct` read 560 MB/s with one reader of
//! 4 MiB blocks, about 1 GB/s with four concurrent readers of 1-8 MiB blocks, 0.8-1.1 GB/s with one reader of 28-64
//! MiB blocks).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::GgufError;

/// A shared read-only handle on a model file: cheap to clone, usable from any thread (reads are positional).
#[derive(Clone, Debug)]
pub struct DataFile {
    file: Arc<File>,
    path: Arc<PathBuf>,
    len: u64,
    /// A second handle on the same open file, with `O_DIRECT` (see [`DataFile::enable_direct`]).
    direct: Option<Arc<DirectHandle>>,
}

/// The `O_DIRECT` handle and whether it still works (a file system may accept the flag at open and refuse the
/// reads; the first refusal turns direct reads off for good).
#[derive(Debug)]
struct DirectHandle {
    file: File,
    ok: AtomicBool,
}

/// Alignment of direct reads (offset, length and buffer address): the largest logical block size in use.
pub const DIRECT_ALIGN: usize = 4096;

/// Most concurrent pieces a direct read is split into.
pub const READ_PARTS: usize = 4;

/// Smallest piece of a split direct read.
const MIN_PART: usize = 1 << 20;

/// A byte buffer with a [`DIRECT_ALIGN`]-aligned region of at least the asked size plus the alignment slack a
/// direct read of an unaligned range needs. Safe code: the region is found inside an over-allocated vector.
#[derive(Debug)]
pub struct AlignedBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    /// Bytes allocated for a buffer that can take any `len`-byte range: `len` rounded up, one block of slack at
    /// each end of the range, and one block to align the address.
    pub fn alloc_bytes(len: usize) -> usize {
        len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN + 3 * DIRECT_ALIGN
    }

    /// A zeroed buffer for ranges of up to `len` bytes.
    pub fn new(len: usize) -> AlignedBuf {
        let bytes = vec![0u8; AlignedBuf::alloc_bytes(len)];
        let start = bytes.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        AlignedBuf { bytes, start }
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    /// The aligned region.
    pub fn region(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    fn region_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..]
    }
}

impl DataFile {
    /// Wraps an open file of `len` bytes.
    pub(crate) fn new(file: File, path: &Path, len: u64) -> DataFile {
        DataFile { file: Arc::new(file), path: Arc::new(path.to_path_buf()), len, direct: None }
    }

    /// Opens a second handle on this file with `O_DIRECT` for [`DataFile::read_slab`] (Linux; through
    /// `/proc/self/fd`, so it is the same file even if the path was replaced since). Without it, or where the
    /// file system refuses direct I/O, slabs are read through the page cache. Returns whether direct reads are on.
    pub fn enable_direct(&mut self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
            if let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(proc_path) {
                self.direct = Some(Arc::new(DirectHandle { file, ok: AtomicBool::new(true) }));
            }
        }
        self.direct.is_some()
    }

    /// Whether slab reads currently go around the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| d.ok.load(Ordering::Relaxed))
    }

    /// Reads the `len` bytes at `offset` into `buf` (made for ranges of at least `len` bytes) and returns where they
    /// are in [`AlignedBuf::region`]. Direct when [`DataFile::enable_direct`] succeeded (the aligned superset of
    /// the range is read), otherwise like [`DataFile::read_at`]. Errors as for `read_at`; a buffer too small for
    /// the range is a [`GgufError::Read`] too.
    pub fn read_slab(&self, offset: u64, len: usize, buf: &mut AlignedBuf) -> Result<Range<usize>, GgufError> {
        let error = |source| GgufError::Read { path: self.path.to_path_buf(), offset, len: len as u64, source };
        if offset.checked_add(len as u64).is_none_or(|end| end > self.len) {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the range ends past the end of the file ({} bytes)", self.len),
            )));
        }
        if let Some(direct) = self.direct.as_ref().filter(|d| d.ok.load(Ordering::Relaxed)) {
            let align = DIRECT_ALIGN as u64;
            let start = offset / align * align;
            let skip = (offset - start) as usize;
            let span = (skip + len).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
            let region = buf.region_mut();
            if region.len() < span {
                return Err(error(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("a slab of {} bytes cannot take a read of {span}", region.len()),
                )));
            }
            match read_direct_split(&direct.file, &mut region[..span], start, skip + len) {
                Ok(()) => return Ok(skip..skip + len),
                // The file system takes the flag but not the reads: buffered reads from now on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => direct.ok.store(false, Ordering::Relaxed),
                Err(e) => return Err(error(e)),
            }
        }
        let region = buf.region_mut();
        let Some(dst) = region.get_mut(..len) else {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a slab of {} bytes cannot take a read of {len}", region.len()),
            )));
        };
        self.read_at(offset, dst)?;
        Ok(0..len)
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

/// [`read_direct`] in up to [`READ_PARTS`] aligned pieces of at least [`MIN_PART`] bytes, read by short-lived scoped
/// threads (this thread reads the first piece). The first error is returned (a thread that cannot be started is
/// one).
fn read_direct_split(file: &File, buf: &mut [u8], offset: u64, need: usize) -> std::io::Result<()> {
    let parts = (buf.len() / MIN_PART).clamp(1, READ_PARTS);
    if parts == 1 {
        return read_direct(file, buf, offset, need);
    }
    let piece = buf.len().div_ceil(parts).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    std::thread::scope(|scope| {
        let (first, rest) = buf.split_at_mut(piece.min(buf.len()));
        let mut results = Vec::with_capacity(parts);
        let mut handles = Vec::with_capacity(parts);
        for (k, part) in rest.chunks_mut(piece).enumerate() {
            let at = (k + 1) * piece;
            let part_need = need.saturating_sub(at).min(part.len());
            let spawned = std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn_scoped(scope, move || read_direct(file, part, offset + at as u64, part_need));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => results.push(Err(e)),
            }
        }
        results.push(read_direct(file, first, offset, need.min(piece)));
        for h in handles {
            results.push(h.join().unwrap_or_else(|_| Err(std::io::Error::other("a read thread panicked"))));
        }
        results.into_iter().collect::<std::io::Result<Vec<()>>>().map(|_| ())
    })
}

/// Fills `buf` (aligned address and length) from the aligned `offset` until at least `need` bytes are in; the last
/// block may end past the end of the file (the kernel then returns less).
fn read_direct(file: &File, buf: &mut [u8], offset: u64, need: usize) -> std::io::Result<()> {
    let mut got = 0;
    while got < need {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file ended after {got} of {need} bytes (truncated since it was opened?)"),
                ))
            }
            // A short read inside the file ends on a block boundary: the rest follows at an aligned offset.
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(len: usize) -> (tempfile::TempDir, DataFile, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        (dir, DataFile::new(f, &path, len as u64), bytes)
    }

    #[test]
    fn aligned_buf_region_is_aligned_and_large_enough() {
        for len in [0, 1, 4095, 4096, 4097, 100_000] {
            let b = AlignedBuf::new(len);
            assert_eq!(b.region().as_ptr() as usize % DIRECT_ALIGN, 0);
            assert!(b.region().len() >= len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN + 2 * DIRECT_ALIGN);
            assert_eq!(b.capacity(), AlignedBuf::alloc_bytes(len));
        }
    }

    #[test]
    fn a_split_read_fills_every_piece_up_to_the_end_of_the_file() {
        // Over 4 MiB: four concurrent pieces; the last one ends past the end of the file.
        let n = 4 * MIN_PART + 5 * DIRECT_ALIGN + 123;
        let (_dir, data, bytes) = file_of(n);
        for (start, need) in [(0usize, n), (DIRECT_ALIGN, n - DIRECT_ALIGN), (0, 3 * MIN_PART + 7)] {
            let span = need.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
            let mut buf = AlignedBuf::new(span);
            read_direct_split(data.file(), &mut buf.region_mut()[..span], start as u64, need).unwrap();
            assert!(buf.region()[..need] == bytes[start..start + need], "{start}+{need}");
        }
        // A read past the end of the file is an error, whichever piece meets it.
        let mut buf = AlignedBuf::new(n + MIN_PART);
        let span = (n + MIN_PART).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let err = read_direct_split(data.file(), &mut buf.region_mut()[..span], 0, n + MIN_PART).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn read_slab_returns_the_exact_range_direct_or_not() {
        let n = 64 * DIRECT_ALIGN + 123;
        for direct in [false, true] {
            let (_dir, mut data, bytes) = file_of(n);
            // tmpfs refuses O_DIRECT at open: the buffered path is then what runs.
            let on = direct && data.enable_direct();
            let mut big = AlignedBuf::new(n);
            // The whole file but its first bytes: an unaligned offset and a last block past the end of the file.
            let r = data.read_slab(7, n - 7, &mut big).unwrap();
            assert_eq!(&big.region()[r], &bytes[7..], "direct {direct}, unaligned read to the end");
            let mut buf = AlignedBuf::new(2 * DIRECT_ALIGN);
            for (off, len) in [(0, 10), (1, 4096), (4095, 2), (4096, 8192), (n - 5, 5), (n - 2 * DIRECT_ALIGN, 8192)] {
                let r = data.read_slab(off as u64, len, &mut buf).unwrap();
                assert_eq!(&buf.region()[r], &bytes[off..off + len], "direct {direct}, {off}+{len}");
            }
            assert!(data.read_slab((n - 4) as u64, 5, &mut buf).is_err(), "past the end");
            let too_long = buf.region().len() + 1;
            assert!(data.read_slab(0, too_long, &mut buf).is_err(), "larger than the buffer");
            assert_eq!(data.is_direct(), on, "direct reads stayed on where they could be opened");
        }
    }
}
