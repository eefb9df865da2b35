//! Files bbwd owns: secret-file permission checks, small state files written atomically, and
//! the size-bounded append-only event log. Must not: hold state (callers own what they write).

use std::path::{Path, PathBuf};

/// Errors, naming the file.
#[derive(Debug)]
pub enum Error {
    Io { path: PathBuf, op: &'static str, source: std::io::Error },
    /// A secret file readable or writable by group/others.
    InsecureMode { path: PathBuf, mode: u32 },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!("e.g. '/etc/bbwd/cluster.key: mode 0644 is too open; secret files must be 0600 or stricter (chmod 600 ...)'")
    }
}
impl std::error::Error for Error {}

/// Refuses a secret file whose mode grants anything to group or others (must be 0600 or
/// stricter), or that is not a regular file, or cannot be read.
pub fn check_secret_file(path: &Path) -> Result<(), Error> {
    let _ = path;
    todo!()
}

/// Reads a secret file after `check_secret_file`, trimming one trailing newline.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, Error> {
    let _ = path;
    todo!()
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename) with
/// `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let _ = (path, bytes, mode);
    todo!()
}

/// Reads a small state file; `Ok(None)` when missing.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let _ = path;
    todo!()
}

/// Removes a file; missing is fine.
pub fn remove_optional(path: &Path) -> Result<(), Error> {
    let _ = path;
    todo!()
}

/// Creates a directory (and parents) with `mode` if missing.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), Error> {
    let _ = (path, mode);
    todo!()
}

/// The append-only event log: one line per event; when the file would exceed `max_bytes` it is
/// renamed to `<name>.1` (replacing the previous one) and a new file is started. So at most
/// 2 x `max_bytes` on disk.
pub struct EventLog {
    _private: (),
}

impl EventLog {
    /// Opens (creates, mode 0640) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64) -> Result<EventLog, Error> {
        let _ = (path, max_bytes);
        todo!()
    }
    /// Appends one line (a newline is added). Errors are returned, the log stays usable.
    pub fn append(&mut self, line: &[u8]) -> Result<(), Error> {
        let _ = line;
        todo!()
    }
    /// Reopens the file (after logrotate, on SIGHUP).
    pub fn reopen(&mut self) -> Result<(), Error> {
        todo!()
    }
}
