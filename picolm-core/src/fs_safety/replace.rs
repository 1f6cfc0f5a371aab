//! Atomic replacement of user-named files ([`replace_atomically`]); see the parent module for the rules.

use std::fs::{File, Metadata, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{open_error, open_regular, read_prefix, refuse_special, FileError};

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Write { path: path.to_path_buf(), source }
}

/// Decides whether an existing, non-empty regular file may be replaced, from its first bytes: `Ok(())` if it is the
/// caller's own kind of file, otherwise the reason to show (what the file seems to be).
pub type OwnFileCheck<'a> = &'a dyn Fn(&[u8]) -> Result<(), String>;

/// The rules for replacing a file: how many leading bytes to read and who judges them.
#[derive(Clone, Copy)]
pub struct ReplacePolicy<'a> {
    /// Bytes read from the start of an existing file for `is_own`.
    pub prefix_len: usize,
    /// The judge of an existing non-empty file.
    pub is_own: OwnFileCheck<'a>,
}

/// The file a write to `path` lands in: `path` itself, or the final target of a symbolic link (which must exist).
fn resolve_target(path: &Path) -> Result<PathBuf, FileError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(target) => Ok(target),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dest = std::fs::read_link(path).map(|d| d.display().to_string()).unwrap_or_else(|_| "?".into());
                Err(FileError::Refused {
                    path: path.to_path_buf(),
                    reason: format!(
                        "it is a symbolic link to {dest}, which does not exist (dangling links are not followed)"
                    ),
                })
            }
            Err(e) => Err(FileError::Open { path: path.to_path_buf(), source: e }),
        },
        _ => Ok(path.to_path_buf()),
    }
}

/// What is at the target now: `None` for nothing, the metadata of a replaceable regular file, or the refusal.
fn inspect_target(target: &Path, policy: &ReplacePolicy<'_>) -> Result<Option<Metadata>, FileError> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::Open { path: target.to_path_buf(), source: e }),
    };
    if meta.file_type().is_symlink() {
        // Only after a race (the target was replaced by a link after it was resolved).
        return Err(FileError::Refused {
            path: target.to_path_buf(),
            reason: "it became a symbolic link while the file was being written".into(),
        });
    }
    refuse_special(target, &meta)?;
    if meta.len() > 0 {
        let mut f = open_regular(target)?;
        let head = read_prefix(&mut f, policy.prefix_len).map_err(open_error(target))?;
        (policy.is_own)(&head).map_err(|reason| FileError::Refused { path: target.to_path_buf(), reason })?;
    }
    Ok(Some(meta))
}

/// Gives the temporary file the permission bits (and, when allowed, the owner) of the file it replaces. A process
/// that may not change the owner (not root, another user's file) leaves itself as the owner: an inherent limit of
/// atomic replacement.
fn copy_attributes(tmp: &File, old: &Metadata) -> io::Result<()> {
    tmp.set_permissions(Permissions::from_mode(old.mode() & 0o777))?;
    let own = tmp.metadata()?;
    if (own.uid(), own.gid()) != (old.uid(), old.gid()) {
        let _ = std::os::unix::fs::fchown(tmp, Some(old.uid()), Some(old.gid()));
    }
    Ok(())
}

/// `fsync` of a directory so that a rename in it is durable. Filesystems that cannot sync directories (`EINVAL`)
/// are accepted.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
}

/// The directory a file named by `target` lives in.
fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks, without writing anything, that [`replace_atomically`] may write `path` with `policy`: the same
/// refusals, and for a new path, that its directory exists.
pub fn check_replaceable(path: impl AsRef<Path>, policy: ReplacePolicy<'_>) -> Result<(), FileError> {
    let target = resolve_target(path.as_ref())?;
    if inspect_target(&target, &policy)?.is_none() {
        let dir = parent_dir(&target);
        if !dir.is_dir() {
            let why = io::Error::new(io::ErrorKind::NotFound, format!("directory {} does not exist", dir.display()));
            return Err(FileError::Write { path: target, source: why });
        }
    }
    Ok(())
}

/// How many times a save is retried when another writer creates the target between the check and the rename.
const MAX_RENAME_ATTEMPTS: usize = 4;

/// Writes a file atomically with `write`, replacing an existing file only when that is safe:
///
/// - A new path is created (never clobbering a file that appears meanwhile: the rename is `RENAME_NOREPLACE`, and
///   a file that appeared is judged like any existing one).
/// - An existing regular file is replaced if it is empty or `policy.is_own` accepts its first bytes; any other file
///   is refused with [`FileError::Refused`], a FIFO, socket, device or directory with [`FileError::NotRegular`],
///   and in both cases left untouched.
/// - A symbolic link is followed to its final target, which the same rules apply to; the link itself stays. A
///   dangling link is refused.
/// - The new file gets the permission bits (and, when the process may, the owner) of the file it replaces; a new
///   file gets `0666` minus the umask. Other hard links of a replaced file keep the old content.
/// - The data goes to a temporary file `.NAME.XXXXXXXX.tmp` in the target's directory, created with `O_EXCL` and
///   removed on every error path; it is flushed and `fsync`ed before the rename, and the directory after it.
/// - Concurrent writers each write their own temporary file; the last rename wins and the file always holds one
///   complete result. The target is judged again just before the rename.
///
/// On error the target is unchanged. Errors of `write` are returned as they are.
pub fn replace_atomically<E: From<FileError>>(
    path: impl AsRef<Path>,
    policy: ReplacePolicy<'_>,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let path = path.as_ref();
    let target = resolve_target(path)?;
    let existing = inspect_target(&target, &policy)?;
    let name = target.file_name().ok_or_else(|| FileError::Refused {
        path: path.to_path_buf(),
        reason: "the path does not name a file".into(),
    })?;
    let dir = parent_dir(&target);
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .rand_bytes(8)
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(&dir)
        .map_err(|e| {
            let why = io::Error::new(e.kind(), format!("cannot create a temporary file in {}: {e}", dir.display()));
            FileError::Write { path: target.clone(), source: why }
        })?;
    if let Some(old) = &existing {
        copy_attributes(tmp.as_file(), old).map_err(write_error(&target))?;
    }
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush().map_err(write_error(&target))?;
    }
    tmp.as_file().sync_all().map_err(write_error(&target))?;
    for _ in 0..MAX_RENAME_ATTEMPTS {
        let now = inspect_target(&target, &policy)?;
        let persisted = if now.is_some() { tmp.persist(&target) } else { tmp.persist_noclobber(&target) };
        match persisted {
            Ok(_) => return Ok(sync_dir(&dir).map_err(write_error(&target))?),
            Err(e) if now.is_none() && e.error.kind() == io::ErrorKind::AlreadyExists => tmp = e.file,
            Err(e) => return Err(FileError::Write { path: target, source: e.error }.into()),
        }
    }
    let busy = io::Error::new(io::ErrorKind::AlreadyExists, "other processes keep creating the file; try again");
    Err(FileError::Write { path: target, source: busy }.into())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{mkfifo, within_deadline};
    use super::super::{FileKind, MagicBytes};
    use super::*;
    use std::os::unix::fs::FileTypeExt;
    use std::process::Command;

    fn own_if_magic(head: &[u8]) -> Result<(), String> {
        if head.starts_with(b"MINE") {
            Ok(())
        } else {
            Err(format!("not ours (magic bytes {})", MagicBytes(head)))
        }
    }

    const POLICY: ReplacePolicy<'static> = ReplacePolicy { prefix_len: 8, is_own: &own_if_magic };

    fn save(path: &Path, content: &[u8]) -> Result<(), FileError> {
        let content = content.to_vec();
        replace_atomically(path, POLICY, move |w| w.write_all(&content).map_err(write_error(Path::new("test"))))
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn new_paths_empty_files_and_own_files_are_written_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        save(&p, b"MINE one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"MINE one");
        save(&p, b"MINE two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"MINE two");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        save(&empty, b"MINE").unwrap();
        assert_eq!(std::fs::read(&empty).unwrap(), b"MINE");

        let model = dir.path().join("model.gguf");
        std::fs::write(&model, b"GGUF\x03\0\0\0 precious weights").unwrap();
        let err = save(&model, b"MINE").unwrap_err();
        assert!(matches!(err, FileError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("47 47 55 46 03 00 00 00 |GGUF....|"), "{err}");
        assert_eq!(std::fs::read(&model).unwrap(), b"GGUF\x03\0\0\0 precious weights");

        let short = dir.path().join("short");
        std::fs::write(&short, b"MI").unwrap();
        assert!(matches!(save(&short, b"MINE"), Err(FileError::Refused { .. })));
        assert_eq!(std::fs::read(&short).unwrap(), b"MI");
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
    }

    #[test]
    fn special_files_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let f = fifo.clone();
        let err = within_deadline(move || save(&f, b"MINE").unwrap_err());
        assert!(matches!(err, FileError::NotRegular { kind: FileKind::Fifo, .. }), "{err}");
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(save(&sub, b"MINE"), Err(FileError::NotRegular { kind: FileKind::Directory, .. })));
        assert!(sub.is_dir());

        // A device node of our own (a copy of /dev/null's numbers; needs root, skipped otherwise): never replaced.
        let dev = dir.path().join("null");
        if Command::new("mknod").arg(&dev).args(["c", "1", "3"]).status().is_ok_and(|s| s.success()) {
            assert!(matches!(save(&dev, b"MINE"), Err(FileError::NotRegular { kind: FileKind::CharDevice, .. })));
            assert!(std::fs::symlink_metadata(&dev).unwrap().file_type().is_char_device());
        }
        // A link to a device is followed to it and refused; the system's /dev/null is only inspected.
        let link = dir.path().join("to-null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(matches!(save(&link, b"MINE"), Err(FileError::NotRegular { kind: FileKind::CharDevice, .. })));
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
    }

    #[test]
    fn symbolic_links_are_written_through_to_an_own_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"MINE old").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        save(&link, b"MINE new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link must stay a link");
        assert_eq!(std::fs::read(&real).unwrap(), b"MINE new");

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"my notes").unwrap();
        let to_text = dir.path().join("to-text");
        std::os::unix::fs::symlink(&text, &to_text).unwrap();
        assert!(matches!(save(&to_text, b"MINE"), Err(FileError::Refused { .. })));
        assert_eq!(std::fs::read(&text).unwrap(), b"my notes");

        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let err = save(&dangling, b"MINE").unwrap_err();
        assert!(matches!(err, FileError::Refused { .. }) && err.to_string().contains("does not exist"), "{err}");
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn permissions_of_a_replaced_file_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        std::fs::write(&p, b"MINE").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        save(&p, b"MINE again").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_failed_write_leaves_the_target_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        std::fs::write(&p, b"MINE intact").unwrap();
        let r: Result<(), FileError> = replace_atomically(&p, POLICY, |w| {
            w.write_all(b"MINE half").unwrap();
            Err(FileError::Write { path: p.clone(), source: io::Error::other("disk on fire") })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"MINE intact");
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
        // A directory that does not exist: a clear error, nothing created.
        let err = save(&dir.path().join("no/such/dir/state"), b"MINE").unwrap_err();
        assert!(err.to_string().contains("temporary file"), "{err}");
    }

    #[test]
    fn concurrent_writers_leave_one_complete_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let writers: Vec<_> = (0..6u8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let mut content = b"MINE".to_vec();
                        content.extend(std::iter::repeat_n(b'a' + i, 64 * 1024));
                        save(&p, &content).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 4 + 64 * 1024);
        assert!(got[4..].iter().all(|&b| b == got[4]), "bytes of two writers were mixed");
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
    }
}
