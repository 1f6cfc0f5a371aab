//! Safe access to files named by users.
//!
//! - Reading ([`open_regular`]): only regular files are opened. A FIFO, socket, device or directory is refused with
//!   [`FileError::NotRegular`] *without blocking*: the path is checked with `stat` before opening (so devices are
//!   never opened), opened with `O_NONBLOCK` (so a FIFO swapped in after the check cannot block the `open`), and the
//!   opened file is checked again with `fstat` (the check that counts). `O_NONBLOCK` has no effect on regular
//!   files (open(2)), so the returned file reads normally.
//! - Writing ([`replace_atomically`], with the `state` feature: state files are the only files PicoLM replaces): a file is written to a fresh temporary file in the same directory (unique
//!   name, created with `O_EXCL`, removed on every error path), flushed and `fsync`ed, then renamed over the
//!   target, and the directory is `fsync`ed. An existing target is replaced only when it is a regular file that is
//!   empty or that the caller recognises as its own from its first bytes (a state file, never a model or a text);
//!   anything else is refused and left untouched. See [`replace_atomically`] for symbolic links, permissions and
//!   concurrent writers.

use std::fmt;
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

// Replacing files atomically (state files; the `state` feature).
#[cfg(feature = "state")]
mod replace;
#[cfg(feature = "state")]
pub use replace::{check_replaceable, replace_atomically, OwnFileCheck, ReplacePolicy};

/// A kind of file other than a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A FIFO (named pipe): opening or reading it can block forever.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device (`/dev/null`, a terminal, a serial port).
    CharDevice,
    /// A block device (a disk).
    BlockDevice,
    /// A symbolic link (only reported where links are not followed).
    Symlink,
    /// Anything else the OS may report.
    Other,
}

impl FileKind {
    /// The kind of a non-regular file type, `None` for a regular file.
    pub fn of(ft: &FileType) -> Option<FileKind> {
        Some(if ft.is_file() {
            return None;
        } else if ft.is_dir() {
            FileKind::Directory
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else if ft.is_char_device() {
            FileKind::CharDevice
        } else if ft.is_block_device() {
            FileKind::BlockDevice
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "directory",
            FileKind::Fifo => "FIFO (named pipe)",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Symlink => "symbolic link",
            FileKind::Other => "special file",
        })
    }
}

/// Why a user-named file cannot be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file cannot be opened or inspected (missing, no permission, ...).
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path names something other than a regular file.
    #[error("{path} is a {kind}, not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// The path names an existing file that must not be replaced.
    #[error("refusing to overwrite {path}: {reason}")]
    Refused {
        /// The path.
        path: PathBuf,
        /// Why (what the file is, and what to do).
        reason: String,
    },
    /// Writing, syncing or renaming failed; the target is unchanged.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path written.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// How the first bytes of a file ("magic bytes") are shown in every message: hexadecimal bytes, then the printable
/// ASCII characters between bars (others as `.`), like `hexdump -C`: `47 47 55 46 03 00 00 00 |GGUF....|`.
#[derive(Clone, Copy, Debug)]
pub struct MagicBytes<'a>(pub &'a [u8]);

impl fmt::Display for MagicBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none: the file is empty)");
        }
        for (i, b) in self.0.iter().enumerate() {
            write!(f, "{}{b:02x}", if i > 0 { " " } else { "" })?;
        }
        let shown = |&b: &u8| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' };
        let text: String = self.0.iter().map(shown).collect();
        write!(f, " |{text}|")
    }
}

fn open_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Open { path: path.to_path_buf(), source }
}

fn refuse_special(path: &Path, meta: &Metadata) -> Result<(), FileError> {
    match FileKind::of(&meta.file_type()) {
        None => Ok(()),
        Some(kind) => Err(FileError::NotRegular { path: path.to_path_buf(), kind }),
    }
}

/// Opens a regular file for reading; anything else (FIFO, socket, device, directory) is refused with
/// [`FileError::NotRegular`] without blocking and without opening a device. Symbolic links are followed.
pub fn open_regular(path: impl AsRef<Path>) -> Result<File, FileError> {
    let path = path.as_ref();
    refuse_special(path, &std::fs::metadata(path).map_err(open_error(path))?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(open_error(path))?;
    refuse_special(path, &file.metadata().map_err(open_error(path))?)?;
    Ok(file)
}

/// Reads up to `n` bytes from the start of `file` (fewer at its end).
pub fn read_prefix(file: &mut File, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    file.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::mpsc;
    use std::time::Duration;

    pub(super) fn mkfifo(p: &Path) {
        let ok = Command::new("mkfifo").arg(p).status().expect("mkfifo runs").success();
        assert!(ok, "mkfifo {}", p.display());
    }

    /// Runs `f` on another thread and fails the test (instead of hanging) if it does not finish within 20 s.
    pub(super) fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(20)).expect("the call blocked (it must return at once)")
    }

    #[test]
    fn magic_bytes_are_shown_in_hex_and_ascii() {
        assert_eq!(MagicBytes(b"GGUF\x03\0\0\0").to_string(), "47 47 55 46 03 00 00 00 |GGUF....|");
        assert_eq!(MagicBytes(b"").to_string(), "(none: the file is empty)");
    }

    #[test]
    fn special_files_are_refused_for_reading_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let f = fifo.clone();
        let err = within_deadline(move || open_regular(&f).unwrap_err());
        assert!(matches!(err, FileError::NotRegular { kind: FileKind::Fifo, .. }), "{err}");
        assert!(err.to_string().contains("FIFO") && err.to_string().contains("fifo"), "{err}");

        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(open_regular(&sock), Err(FileError::NotRegular { kind: FileKind::Socket, .. })));
        assert!(matches!(open_regular(dir.path()), Err(FileError::NotRegular { kind: FileKind::Directory, .. })));
        assert!(matches!(open_regular("/dev/null"), Err(FileError::NotRegular { kind: FileKind::CharDevice, .. })));
        assert!(matches!(open_regular(dir.path().join("missing")), Err(FileError::Open { .. })));

        // A symbolic link to a FIFO is followed and refused too.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let err = within_deadline(move || open_regular(&link).unwrap_err());
        assert!(matches!(err, FileError::NotRegular { kind: FileKind::Fifo, .. }), "{err}");

        let file = dir.path().join("file");
        std::fs::write(&file, b"hello").unwrap();
        let mut f = open_regular(&file).unwrap();
        assert_eq!(read_prefix(&mut f, 3).unwrap(), b"hel");
    }
}
