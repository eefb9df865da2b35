//! Files bbwd owns: secret-file permission checks, small state files written atomically, and
//! the size-bounded append-only event log. Must not: hold state (callers own what they write).
//!
//! # Invariants
//! * A secret file is only ever read through a descriptor whose mode was checked (no window
//!   between the check and the read in which the file could be swapped).
//! * `write_atomic` leaves either the old or the new content at `path`, never a mix, and never a
//!   stray temporary file when it returns (success or error).
//! * The event log never holds more than 2 x `max_bytes` on disk (`<name>` plus `<name>.1`).
//! * Nothing here panics on what it finds on disk.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, IoSlice, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest state file `read_optional` accepts, bytes. bbwd's state files (maintenance flag,
/// counters) are a few hundred bytes; anything near this is not one of ours.
pub const MAX_STATE_FILE_BYTES: u64 = 1024 * 1024;

/// Largest secret file `read_secret_file` accepts, bytes (a key or a password, not a dump).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Smallest `max_bytes` an `EventLog` honours, bytes: below this a single event line would not
/// fit, and rotation would happen on every append.
pub const MIN_EVENT_LOG_BYTES: u64 = 128;

/// Errors, naming the file.
#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// A secret file readable or writable by group/others.
    InsecureMode { path: PathBuf, mode: u32 },
    /// A secret file, or a path expected to be a directory, of the wrong file type.
    WrongFileType {
        path: PathBuf,
        expected: &'static str,
    },
}

impl Error {
    fn io(path: &Path, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::InsecureMode { path, .. }
            | Error::WrongFileType { path, .. } => path,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, op, source } => {
                write!(f, "{}: cannot {op}: {source}", path.display())?;
                match source.kind() {
                    io::ErrorKind::NotFound => f.write_str(" (create it, or fix the path in the config)"),
                    io::ErrorKind::PermissionDenied => {
                        f.write_str(" (check its owner and mode, and those of its directory: bbwd runs as root)")
                    }
                    _ => Ok(()),
                }
            }
            Error::InsecureMode { path, mode } => write!(
                f,
                "{}: mode {:04o} is too open; secret files must be 0600 or stricter (chmod 600 {})",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            Error::WrongFileType { path, expected } => {
                write!(
                    f,
                    "{}: not {expected}; point the setting at {expected}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Opens a secret file and checks, on the open descriptor, that it is a regular file with no
/// permission bits for group or others. `O_NONBLOCK` so that a FIFO planted at the path cannot
/// block the caller (it is refused as not a regular file).
fn open_secret(path: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, "open secret file", e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "stat secret file", e))?;
    if !meta.is_file() {
        return Err(Error::WrongFileType {
            path: path.to_path_buf(),
            expected: "a regular file",
        });
    }
    let mode = meta.mode();
    if mode & 0o077 != 0 {
        return Err(Error::InsecureMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(file)
}

/// Refuses a secret file whose mode grants anything to group or others (must be 0600 or
/// stricter), or that is not a regular file, or cannot be read.
pub fn check_secret_file(path: &Path) -> Result<(), Error> {
    open_secret(path).map(drop)
}

/// Reads a secret file after `check_secret_file`, trimming one trailing newline.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, Error> {
    let file = open_secret(path)?;
    let mut bytes = read_bounded(file, MAX_SECRET_FILE_BYTES)
        .map_err(|e| Error::io(path, "read secret file", e))?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    Ok(bytes)
}

/// Reads all of `file`, refusing more than `max_bytes`.
fn read_bounded(file: File, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max_bytes} bytes: not a file bbwd wrote"),
        ));
    }
    Ok(bytes)
}

/// `path` with `suffix` appended to its file name (`a/b` + `.1` = `a/b.1`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or an unlink in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "fsync directory", e))
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename) with
/// `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = with_suffix(path, &format!(".tmp.{}", std::process::id()));
    // A leftover from an earlier run with the same pid (after a reboot) is ours to replace.
    let _ = std::fs::remove_file(&tmp);
    let result = write_tmp_then_rename(&tmp, path, bytes, mode);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_tmp_then_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o7777)
        .open(tmp)
        .map_err(|e| Error::io(tmp, "create temporary file", e))?;
    // The creation mode went through the umask; the caller asked for exactly `mode`.
    file.set_permissions(Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::io(tmp, "chmod temporary file", e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io(tmp, "write temporary file", e))?;
    file.sync_all()
        .map_err(|e| Error::io(tmp, "fsync temporary file", e))?;
    drop(file);
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, "rename temporary file over", e))?;
    sync_dir(parent_dir(path))
}

/// A file rewritten often and read by another program (node_exporter's textfile collector):
/// each [`ReplaceFile::write`] writes a temporary file next to it and renames it over, so a
/// reader sees the old content or the new, never a part. Not fsynced: the content is a snapshot
/// that the next write replaces, and after a crash an older (or, on some file systems, empty)
/// file is harmless; an fsync would let a slow disk stall the caller's loop.
///
/// Both paths are built once, at [`ReplaceFile::new`]: a write allocates nothing (the standard
/// library converts paths shorter than 384 bytes to C strings on the stack).
#[derive(Debug)]
pub struct ReplaceFile {
    path: PathBuf,
    tmp: PathBuf,
    mode: u32,
}

impl ReplaceFile {
    /// `path` with the temporary `path.tmp.PID` (a name node_exporter's `*.prom` glob skips).
    pub fn new(path: &Path, mode: u32) -> ReplaceFile {
        ReplaceFile {
            path: path.to_path_buf(),
            tmp: with_suffix(path, &format!(".tmp.{}", std::process::id())),
            mode,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content with `bytes`, mode `mode` (not subject to the umask).
    pub fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let result = self.write_tmp(bytes).and_then(|()| {
            std::fs::rename(&self.tmp, &self.path)
                .map_err(|e| Error::io(&self.path, "rename temporary file over", e))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }

    fn write_tmp(&self, bytes: &[u8]) -> Result<(), Error> {
        // Truncating: a leftover of this pid (an earlier, interrupted write) is ours.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.mode & 0o7777)
            .open(&self.tmp)
            .map_err(|e| Error::io(&self.tmp, "create temporary file", e))?;
        file.set_permissions(Permissions::from_mode(self.mode & 0o7777))
            .map_err(|e| Error::io(&self.tmp, "chmod temporary file", e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io(&self.tmp, "write temporary file", e))
    }
}

/// Reads a small state file; `Ok(None)` when missing.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "open", e)),
    };
    read_bounded(file, MAX_STATE_FILE_BYTES)
        .map(Some)
        .map_err(|e| Error::io(path, "read", e))
}

/// Removes a file; missing is fine.
pub fn remove_optional(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent_dir(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, "remove", e)),
    }
}

/// Creates a directory (and parents) with `mode` if missing.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), Error> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(Error::WrongFileType {
                path: path.to_path_buf(),
                expected: "a directory",
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, "stat directory", e)),
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode & 0o7777)
        .create(path)
        .map_err(|e| Error::io(path, "create directory", e))?;
    // As for files: the umask applied, the caller asked for exactly `mode`.
    std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::io(path, "chmod directory", e))
}

/// Name of the lock file in `state_dir` (`StateLock`).
pub const STATE_LOCK_NAME: &str = "bbwd.lock";

/// An exclusive `flock(2)` on `state_dir/bbwd.lock`, held for as long as the value lives: one
/// bbwd (daemon or OCF action) per state directory. The kernel drops the lock when the holder
/// exits, however it ends, so a crashed bbwd never leaves a stale lock behind.
///
/// # Invariants
/// * The lock file is opened close-on-exec: Bitbucket (a child) never inherits the lock, so a
///   re-adopting bbwd after a crash of the old one can take it.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

/// Why `StateLock` could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it (the pid written in the file, when readable).
    Held {
        path: PathBuf,
        holder: Option<u32>,
    },
    Io(Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, holder } => {
                write!(f, "{} is locked by another bbwd", path.display())?;
                if let Some(pid) = holder {
                    write!(f, " (pid {pid})")?;
                }
                f.write_str(": one bbwd per state_dir")
            }
            LockError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Held { .. } => None,
            LockError::Io(e) => Some(e),
        }
    }
}

impl StateLock {
    /// Takes `dir/name` without waiting (`wait` = `None`), or waiting up to `wait`, polling.
    /// The daemon takes `STATE_LOCK_NAME`; `bbwd ocf start` a lock of its own.
    pub fn acquire(
        dir: &Path,
        name: &str,
        wait: Option<std::time::Duration>,
    ) -> Result<StateLock, LockError> {
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| LockError::Io(Error::io(&path, "open lock file", e)))?;
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        loop {
            // SAFETY: flock on an fd we own; no memory is passed.
            let rc = unsafe {
                libc::flock(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    libc::LOCK_EX | libc::LOCK_NB,
                )
            };
            if rc == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LockError::Io(Error::io(&path, "flock", e)));
            }
            if deadline.is_none_or(|d| std::time::Instant::now() >= d) {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(LockError::Held { path, holder });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Who holds it, for the next one's error message (best effort).
        let _ = file.set_len(0);
        let _ = file.write_all(format!("{}\n", std::process::id()).as_bytes());
        Ok(StateLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Proves that `dir` can record what bbwd runs: creates, fsyncs and removes a small file in it.
/// A read-only or full filesystem fails here, before anything is started.
pub fn check_writable(dir: &Path) -> Result<(), Error> {
    let probe = dir.join(format!(".bbwd-write-test.{}", std::process::id()));
    let r = write_atomic(
        &probe,
        b"bbwd write test: a pid file of this size must fit\n",
        0o600,
    );
    let _ = std::fs::remove_file(&probe);
    r
}

/// The append-only event log: one line per event; when the file would exceed `max_bytes` it is
/// renamed to `<name>.1` (replacing the previous one) and a new file is started. So at most
/// 2 x `max_bytes` on disk.
///
/// A line longer than `max_bytes - 1` is cut to fit; a newline inside a line is written as a
/// space (one event, one line). `max_bytes` below `MIN_EVENT_LOG_BYTES` is raised to it.
pub struct EventLog {
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
    /// `None` after an error that left the descriptor in doubt; the next append reopens.
    file: Option<File>,
    /// Bytes in the current file, as far as we know.
    size: u64,
}

/// Mode of a newly created event log: root writes, the admin group may read.
const EVENT_LOG_MODE: u32 = 0o640;

impl EventLog {
    /// Opens (creates, mode 0640) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64) -> Result<EventLog, Error> {
        let mut log = EventLog {
            path: path.to_path_buf(),
            rotated: with_suffix(path, ".1"),
            max_bytes: max_bytes.max(MIN_EVENT_LOG_BYTES),
            file: None,
            size: 0,
        };
        log.reopen()?;
        Ok(log)
    }

    /// Appends one line (a newline is added). Errors are returned, the log stays usable.
    pub fn append(&mut self, line: &[u8]) -> Result<(), Error> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let line = &line[..line.len().min((self.max_bytes - 1) as usize)];
        let needed = line.len() as u64 + 1;
        if self.size > 0 && self.size + needed > self.max_bytes {
            self.rotate()?;
        }
        let result = match self.file.as_mut() {
            Some(file) => {
                // Whole records or none: a write cut short (disk full) is taken back, so the
                // log never holds a torn JSON line.
                let before = file.metadata().map(|m| m.len());
                let r = write_line(file, line);
                if r.is_err() {
                    if let Ok(len) = before {
                        let _ = file.set_len(len);
                    }
                }
                r
            }
            None => Err(io::Error::other("event log not open")),
        };
        match result {
            Ok(()) => {
                self.size += needed;
                Ok(())
            }
            Err(e) => {
                // Reopen (and re-measure) next time.
                self.file = None;
                Err(Error::io(&self.path, "append to event log", e))
            }
        }
    }

    /// Reopens the file (after logrotate, on SIGHUP).
    pub fn reopen(&mut self) -> Result<(), Error> {
        self.file = None;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(EVENT_LOG_MODE)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open event log", e))?;
        self.size = file
            .metadata()
            .map_err(|e| Error::io(&self.path, "stat event log", e))?
            .len();
        self.file = Some(file);
        Ok(())
    }

    /// Moves the current file to `<name>.1` and starts a new one.
    fn rotate(&mut self) -> Result<(), Error> {
        std::fs::rename(&self.path, &self.rotated)
            .map_err(|e| Error::io(&self.rotated, "rotate event log to", e))?;
        self.reopen()
    }
}

/// Writes `line` and a newline, in one system call when possible.
fn write_line(file: &mut File, line: &[u8]) -> io::Result<()> {
    if line.contains(&b'\n') {
        // Rare (a detail text with a newline in it): keep one event on one line.
        let mut owned: Vec<u8> = line
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect();
        owned.push(b'\n');
        return file.write_all(&owned);
    }
    let total = line.len() + 1;
    let written = file.write_vectored(&[IoSlice::new(line), IoSlice::new(b"\n")])?;
    if written >= total {
        return Ok(());
    }
    if written < line.len() {
        file.write_all(&line[written..])?;
    }
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    use bbwd_testkit::TempDir;

    fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn secret_file_0600_and_0400_accepted() {
        let dir = TempDir::new("secret-ok");
        for mode in [0o600, 0o400] {
            let p = dir.join(&format!("key-{mode:o}"));
            write_with_mode(&p, b"s3cret\n", mode);
            check_secret_file(&p).unwrap();
        }
    }

    #[test]
    fn secret_file_open_to_group_or_others_refused_with_chmod_hint() {
        let dir = TempDir::new("secret-open");
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            let p = dir.join("cluster.key");
            write_with_mode(&p, b"k", mode);
            match check_secret_file(&p) {
                Err(e @ Error::InsecureMode { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(&p.display().to_string()), "{text}");
                    assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
                    assert!(text.contains("chmod 600"), "{text}");
                }
                other => panic!("mode {mode:o}: expected InsecureMode, got {other:?}"),
            }
            assert!(matches!(
                read_secret_file(&p),
                Err(Error::InsecureMode { .. })
            ));
        }
    }

    #[test]
    fn secret_file_that_is_a_directory_refused() {
        let dir = TempDir::new("secret-dir");
        let p = dir.join("d");
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o700)).unwrap();
        let err = check_secret_file(&p).unwrap_err();
        assert!(matches!(err, Error::WrongFileType { .. }), "{err:?}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn missing_secret_file_names_path_and_says_what_to_do() {
        let dir = TempDir::new("secret-missing");
        let p = dir.join("nope.pass");
        let err = check_secret_file(&p).unwrap_err();
        match &err {
            Error::Io { source, .. } => assert_eq!(source.kind(), io::ErrorKind::NotFound),
            other => panic!("expected Io, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with(&p.display().to_string()), "{text}");
        assert!(text.contains("create it"), "{text}");
        assert_eq!(err.path(), p.as_path());
    }

    #[test]
    fn read_secret_file_trims_exactly_one_newline() {
        let dir = TempDir::new("secret-read");
        let cases: [(&[u8], &[u8]); 5] = [
            (b"abc\n", b"abc"),
            (b"abc", b"abc"),
            (b"abc\n\n", b"abc\n"),
            (b"abc\r\n", b"abc"),
            (b"", b""),
        ];
        for (i, (content, want)) in cases.iter().enumerate() {
            let p = dir.join(&format!("s{i}"));
            write_with_mode(&p, content, 0o600);
            assert_eq!(read_secret_file(&p).unwrap(), *want, "case {i}");
        }
    }

    #[test]
    fn oversized_secret_file_refused() {
        let dir = TempDir::new("secret-big");
        let p = dir.join("big");
        write_with_mode(&p, &vec![b'x'; MAX_SECRET_FILE_BYTES as usize + 1], 0o600);
        let err = read_secret_file(&p).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::InvalidData)
        );
    }

    #[test]
    fn write_atomic_writes_exact_mode_and_replaces() {
        let dir = TempDir::new("atomic");
        let p = dir.join("maintenance");
        write_atomic(&p, b"first", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(mode_of(&p), 0o600);
        // A mode the usual umask (022) would cut still comes out exact.
        write_atomic(&p, b"second", 0o664).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(mode_of(&p), 0o664);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![OsString::from("maintenance")],
            "no temporary file left behind"
        );
    }

    #[test]
    fn replace_file_swaps_the_content_whole_and_leaves_no_temporary() {
        let dir = TempDir::new("replace");
        let p = dir.join("bbwd.prom");
        let f = ReplaceFile::new(&p, 0o644);
        f.write(b"a 1\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"a 1\n");
        assert_eq!(mode_of(&p), 0o644);
        // A reader holding the old file keeps the old content (a new inode each time).
        let old = File::open(&p).unwrap();
        f.write(b"a 2\nb 3\n").unwrap();
        let mut was = String::new();
        (&old).read_to_string(&mut was).unwrap();
        assert_eq!(was, "a 1\n");
        assert_eq!(std::fs::read(&p).unwrap(), b"a 2\nb 3\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("bbwd.prom")]);
        let missing = ReplaceFile::new(&dir.join("no/such/bbwd.prom"), 0o644);
        let err = missing.write(b"x").unwrap_err();
        assert!(err.to_string().contains("no/such"), "{err}");
    }

    #[test]
    fn write_atomic_into_missing_directory_fails_naming_it_and_leaves_nothing() {
        let dir = TempDir::new("atomic-missing");
        let p = dir.join("no/such/dir/state");
        let err = write_atomic(&p, b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains("no/such/dir"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn read_optional_missing_and_present() {
        let dir = TempDir::new("optional");
        let p = dir.join("flag");
        assert_eq!(read_optional(&p).unwrap(), None);
        std::fs::write(&p, b"on").unwrap();
        assert_eq!(read_optional(&p).unwrap(), Some(b"on".to_vec()));
    }

    #[test]
    fn read_optional_of_a_directory_is_an_error() {
        let dir = TempDir::new("optional-dir");
        assert!(read_optional(dir.path()).is_err());
    }

    #[test]
    fn remove_optional_missing_is_fine_present_is_removed() {
        let dir = TempDir::new("remove");
        let p = dir.join("flag");
        remove_optional(&p).unwrap();
        std::fs::write(&p, b"on").unwrap();
        remove_optional(&p).unwrap();
        assert!(!p.exists());
        remove_optional(&p).unwrap();
    }

    #[test]
    fn ensure_dir_creates_nested_with_mode_and_accepts_existing() {
        let dir = TempDir::new("ensure");
        let p = dir.join("a/b/state");
        ensure_dir(&p, 0o750).unwrap();
        assert!(p.is_dir());
        assert_eq!(mode_of(&p), 0o750);
        // Existing: fine, and its mode is the operator's business.
        std::fs::set_permissions(&p, Permissions::from_mode(0o700)).unwrap();
        ensure_dir(&p, 0o750).unwrap();
        assert_eq!(mode_of(&p), 0o700);
    }

    #[test]
    fn ensure_dir_over_a_file_is_an_error() {
        let dir = TempDir::new("ensure-file");
        let p = dir.join("f");
        std::fs::write(&p, b"").unwrap();
        let err = ensure_dir(&p, 0o700).unwrap_err();
        assert!(matches!(err, Error::WrongFileType { .. }), "{err:?}");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn event_log_appends_lines_with_mode_0640() {
        let dir = TempDir::new("log");
        let p = dir.join("events.log");
        let mut log = EventLog::open(&p, 4096).unwrap();
        log.append(b"one").unwrap();
        log.append(b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        assert_eq!(mode_of(&p) & !0o640, 0, "no more than 0640");
        // Reopening an existing log appends, it does not truncate.
        let mut log = EventLog::open(&p, 4096).unwrap();
        log.append(b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\nthree\n");
    }

    #[test]
    fn event_log_rotates_to_dot_one_and_stays_bounded() {
        let dir = TempDir::new("log-rotate");
        let p = dir.join("events.log");
        let rotated = dir.join("events.log.1");
        let max = MIN_EVENT_LOG_BYTES;
        let mut log = EventLog::open(&p, max).unwrap();
        // 10 bytes per line ("event NNN\n"): 12 fit in 128 bytes, the 13th rotates.
        for i in 0..12 {
            log.append(format!("event {i:03}").as_bytes()).unwrap();
        }
        assert!(!rotated.exists());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 120);
        log.append(b"event 012").unwrap();
        assert!(rotated.exists());
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(
            old.starts_with("event 000\n") && old.ends_with("event 011\n"),
            "{old}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"event 012\n");
        for i in 13..100 {
            log.append(format!("event {i:03}").as_bytes()).unwrap();
            let on_disk =
                std::fs::metadata(&p).unwrap().len() + std::fs::metadata(&rotated).unwrap().len();
            assert!(std::fs::metadata(&p).unwrap().len() <= max);
            assert!(
                on_disk <= 2 * max,
                "{on_disk} bytes on disk after event {i}"
            );
        }
        // The second rotation replaced the first `.1`.
        assert!(!std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("event 000"));
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .ends_with("event 099\n"));
    }

    #[test]
    fn event_log_cuts_oversized_lines_and_flattens_newlines() {
        let dir = TempDir::new("log-long");
        let p = dir.join("events.log");
        let mut log = EventLog::open(&p, 0).unwrap(); // raised to MIN_EVENT_LOG_BYTES
        log.append(b"a\nb").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"a b\n");
        log.append(&[b'x'; 1000]).unwrap();
        let current = std::fs::read(&p).unwrap();
        assert_eq!(current.len() as u64, MIN_EVENT_LOG_BYTES);
        assert_eq!(current.last(), Some(&b'\n'));
        assert_eq!(std::fs::read(dir.join("events.log.1")).unwrap(), b"a b\n");
    }

    #[test]
    fn event_log_reopen_after_logrotate_starts_a_new_file() {
        let dir = TempDir::new("log-reopen");
        let p = dir.join("events.log");
        let moved = dir.join("events.log-20260101");
        let mut log = EventLog::open(&p, 4096).unwrap();
        log.append(b"before").unwrap();
        std::fs::rename(&p, &moved).unwrap();
        log.reopen().unwrap();
        log.append(b"after").unwrap();
        assert_eq!(std::fs::read(&moved).unwrap(), b"before\n");
        assert_eq!(std::fs::read(&p).unwrap(), b"after\n");
    }

    #[test]
    fn no_lock_on_state_dir_a_second_holder_is_refused_until_the_first_is_gone() {
        let dir = TempDir::new("lock");
        let first = StateLock::acquire(dir.path(), STATE_LOCK_NAME, None).unwrap();
        match StateLock::acquire(dir.path(), STATE_LOCK_NAME, None) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("second lock: {other:?}"),
        }
        let t = std::time::Instant::now();
        assert!(matches!(
            StateLock::acquire(
                dir.path(),
                STATE_LOCK_NAME,
                Some(std::time::Duration::from_millis(200))
            ),
            Err(LockError::Held { .. })
        ));
        assert!(t.elapsed() >= std::time::Duration::from_millis(200));
        drop(first);
        StateLock::acquire(dir.path(), STATE_LOCK_NAME, None).unwrap();
    }

    #[test]
    fn unwritable_state_dir_is_found_before_anything_starts() {
        let dir = TempDir::new("writable");
        check_writable(dir.path()).unwrap();
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "no leftover"
        );
        let missing = dir.join("missing");
        assert!(check_writable(&missing).is_err());
        // Permission bits do not stop root; a read-only mount does (tests/tests/probes.rs).
    }

    #[test]
    fn event_log_in_missing_directory_is_an_error_naming_it() {
        let dir = TempDir::new("log-missing");
        let p = dir.join("nope/events.log");
        let err = EventLog::open(&p, 4096).err().expect("open must fail");
        assert!(err.to_string().contains("nope/events.log"), "{err}");
    }
}
