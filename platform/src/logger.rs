//! bbwd's log output: a `log::Log` that never blocks the caller.
//!
//! Records (bbwd's own lines and Bitbucket's forwarded output) are formatted into a bounded
//! in-memory buffer and written to stderr with non-blocking writes; what does not fit is
//! dropped and counted. The event loop calls [`flush`] once per pass and polls [`poll_fd`] for
//! writability while output is pending. A slow journald or a paused reader of bbwd's stderr
//! therefore costs log lines, never the loop's pace (and with it the watchdog keep-alives).
//!
//! How stderr is written without blocking, by what it is:
//! * a socket (journald's stream): `send(2)` with `MSG_DONTWAIT`;
//! * a pipe or a terminal: a second descriptor of our own on the same pipe, opened through
//!   `/proc/self/fd/2` with `O_NONBLOCK` (setting `O_NONBLOCK` on fd 2 itself would change the
//!   open file description shared with Bitbucket, whose own writes would then fail);
//! * a regular file: plain `write(2)` (a file does not wait for a reader).
//!
//! Format: under systemd (`JOURNAL_STREAM` set) `<prio>message` with the kernel's priority
//! numbers (3 error, 4 warning, 6 info, 7 debug) and no timestamp (journald adds it);
//! otherwise `RFC3339 LEVEL message`.
//!
//! Must not: allocate per record in the steady state (the buffer and the scratch line are sized
//! once), or wait on stderr, except in [`flush_for`], which bbwd calls once on its way out.
//!
//! # Invariants
//! * The buffer never exceeds `BUFFER_BYTES`; a record is buffered whole or dropped whole.
//! * After drops, the first line that fits again is a note saying how many were lost.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes of formatted log output held while stderr is not writable: about 500 typical lines,
/// several seconds of a Bitbucket output flood; small enough for bbwd's memory budget.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// Longest line kept, bytes (longer ones are cut): a stack-trace line, not a heap dump.
pub const LINE_MAX_BYTES: usize = 4096;

/// What the logger has done since start-up (status and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub written_bytes: u64,
    pub dropped_lines: u64,
    pub dropped_bytes: u64,
    /// Bytes waiting in the buffer now.
    pub pending_bytes: u64,
}

/// Where the output goes.
#[derive(Debug)]
enum Sink {
    /// A socket: `send(MSG_DONTWAIT)` on this fd (stderr itself).
    Socket(RawFd),
    /// A non-blocking descriptor of our own (pipe, terminal).
    Own(OwnedFd),
    /// A regular file, or something we could not make non-blocking: plain write on this fd.
    Plain(RawFd),
}

impl Sink {
    fn for_fd(fd: RawFd) -> Sink {
        // SAFETY: fstat on an fd number with a zeroed stat buffer of the right type.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Sink::Plain(fd);
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFSOCK => Sink::Socket(fd),
            libc::S_IFIFO | libc::S_IFCHR => {
                let path = format!("/proc/self/fd/{fd}\0");
                // SAFETY: a NUL-terminated path; open returns a new fd or -1.
                let own = unsafe {
                    libc::open(
                        path.as_ptr() as *const libc::c_char,
                        libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
                    )
                };
                if own < 0 {
                    Sink::Plain(fd)
                } else {
                    // SAFETY: `own` is a new fd that nothing else owns.
                    Sink::Own(unsafe { OwnedFd::from_raw_fd(own) })
                }
            }
            _ => Sink::Plain(fd),
        }
    }

    fn raw(&self) -> RawFd {
        match self {
            Sink::Socket(fd) | Sink::Plain(fd) => *fd,
            Sink::Own(fd) => fd.as_raw_fd(),
        }
    }

    /// One non-blocking write: bytes written, or `None` when the sink takes nothing now.
    fn write(&self, bytes: &[u8]) -> Option<usize> {
        loop {
            // SAFETY: writes from a valid slice to an fd we hold; no memory is retained.
            let n = unsafe {
                match self {
                    Sink::Socket(fd) => libc::send(
                        *fd,
                        bytes.as_ptr() as *const libc::c_void,
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    ),
                    _ => libc::write(
                        self.raw(),
                        bytes.as_ptr() as *const libc::c_void,
                        bytes.len(),
                    ),
                }
            };
            if n >= 0 {
                return Some(n as usize);
            }
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // EAGAIN (full), EPIPE (reader gone), ENOSPC...: nothing taken now.
            return None;
        }
    }
}

struct Inner {
    buf: VecDeque<u8>,
    line: String,
    sink: Sink,
    /// Drops not yet reported in the output.
    unreported_lines: u64,
}

/// The logger. One per process ([`init`]).
pub struct Logger {
    inner: Mutex<Inner>,
    journal: bool,
    level: log::LevelFilter,
    written: AtomicU64,
    dropped_lines: AtomicU64,
    dropped_bytes: AtomicU64,
    pending: AtomicU64,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// The level named by `RUST_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`; for a
/// `target=level` list as env_logger took it (no longer a dependency), the last bare level),
/// else `info`.
pub fn level_from_env(value: Option<&str>) -> log::LevelFilter {
    value
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter(|part| !part.contains('='))
        .filter_map(|part| part.trim().parse().ok())
        .next_back()
        .unwrap_or(log::LevelFilter::Info)
}

/// Installs the logger on stderr (fd 2). `journal`: journald priority prefixes, no timestamps.
/// A second call changes nothing.
pub fn init(journal: bool, level: log::LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger::new(Sink::for_fd(2), journal, level));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// Writes what stderr takes now, without waiting. Returns the bytes still pending.
pub fn flush() -> usize {
    LOGGER.get().map_or(0, |l| l.flush_nonblocking())
}

/// The descriptor to poll for writability while output is pending (`None`: nothing pending, or
/// a sink that is always writable).
pub fn poll_fd() -> Option<BorrowedFd<'static>> {
    let l = LOGGER.get()?;
    if l.pending.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let inner = l.inner.lock().ok()?;
    match &inner.sink {
        // SAFETY: fd 2 stays open for the life of the process; `Own` lives in the static
        // logger, which is never dropped.
        Sink::Socket(fd) => Some(unsafe { BorrowedFd::borrow_raw(*fd) }),
        Sink::Own(fd) => Some(unsafe { BorrowedFd::borrow_raw(fd.as_fd().as_raw_fd()) }),
        Sink::Plain(_) => None,
    }
}

/// Figures since start-up (zero without `init`).
pub fn stats() -> Stats {
    LOGGER.get().map_or(Stats::default(), |l| l.stats())
}

/// On the way out: keeps writing for up to `limit` while output is pending.
pub fn flush_for(limit: Duration) {
    let until = Instant::now() + limit;
    while flush() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Logger {
    fn new(sink: Sink, journal: bool, level: log::LevelFilter) -> Logger {
        Logger {
            inner: Mutex::new(Inner {
                buf: VecDeque::with_capacity(BUFFER_BYTES),
                line: String::with_capacity(LINE_MAX_BYTES + 64),
                sink,
                unreported_lines: 0,
            }),
            journal,
            level,
            written: AtomicU64::new(0),
            dropped_lines: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            written_bytes: self.written.load(Ordering::Relaxed),
            dropped_lines: self.dropped_lines.load(Ordering::Relaxed),
            dropped_bytes: self.dropped_bytes.load(Ordering::Relaxed),
            pending_bytes: self.pending.load(Ordering::Relaxed),
        }
    }

    /// Buffers one formatted line (whole, or drops it), then writes what the sink takes.
    fn push(&self, level: log::Level, args: &std::fmt::Arguments<'_>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        if inner.unreported_lines > 0 {
            let n = inner.unreported_lines;
            inner.line.clear();
            let _ = write!(
                inner.line,
                "{n} log line(s) dropped: stderr was not writable (see bbwd status: log)"
            );
            if self.append(inner, log::Level::Warn) {
                inner.unreported_lines = 0;
            }
        }
        inner.line.clear();
        let _ = write!(CutLine(&mut inner.line), "{args}");
        if !self.append(inner, level) {
            inner.unreported_lines += 1;
        }
        self.write_out(inner);
    }

    /// Appends `inner.line` as one record; false (and counted) when it does not fit.
    fn append(&self, inner: &mut Inner, level: log::Level) -> bool {
        let mut head: heapless::String<48> = heapless::String::new();
        if self.journal {
            let prio = match level {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            let _ = write!(head, "<{prio}>");
        } else {
            let ms = crate::clock::wall_ms();
            let _ = write!(head, "{} {:<5} ", crate::clock::rfc3339(ms), level);
        }
        let need = head.len() + inner.line.len() + 1;
        if inner.buf.len() + need > BUFFER_BYTES {
            self.dropped_lines.fetch_add(1, Ordering::Relaxed);
            self.dropped_bytes.fetch_add(need as u64, Ordering::Relaxed);
            return false;
        }
        inner.buf.extend(head.as_bytes());
        inner.buf.extend(inner.line.as_bytes());
        inner.buf.push_back(b'\n');
        true
    }

    fn write_out(&self, inner: &mut Inner) {
        while !inner.buf.is_empty() {
            let (front, _) = inner.buf.as_slices();
            match inner.sink.write(front) {
                Some(0) | None => break,
                Some(n) => {
                    inner.buf.drain(..n);
                    self.written.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        self.pending
            .store(inner.buf.len() as u64, Ordering::Relaxed);
    }

    fn flush_nonblocking(&self) -> usize {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        self.write_out(&mut inner);
        inner.buf.len()
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.push(record.level(), record.args());
        }
    }

    fn flush(&self) {
        self.flush_nonblocking();
    }
}

/// Writes into a `String`, cutting at `LINE_MAX_BYTES` (on a char boundary); never grows it
/// past its capacity.
struct CutLine<'a>(&'a mut String);

impl std::fmt::Write for CutLine<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = LINE_MAX_BYTES.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
        } else {
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log as _;

    fn record(logger: &Logger, level: log::Level, msg: &str) {
        logger.log(
            &log::Record::builder()
                .level(level)
                .args(format_args!("{msg}"))
                .build(),
        );
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    fn read_all(fd: &OwnedFd) -> Vec<u8> {
        let mut out = Vec::new();
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        let mut buf = [0u8; 65536];
        while let Ok(n) = nix::unistd::read(fd, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn blocking_writes_to_stderr_never_stall_the_loop_a_stalled_reader_costs_counted_lines() {
        let (r, w) = pipe();
        let logger = Logger::new(Sink::for_fd(w.as_raw_fd()), true, log::LevelFilter::Info);
        assert!(matches!(logger.inner.lock().unwrap().sink, Sink::Own(_)));
        // Nobody reads: the pipe (64 KiB) and then the buffer (64 KiB) fill; no call waits.
        let line = "x".repeat(200);
        let t = Instant::now();
        for _ in 0..5000 {
            record(&logger, log::Level::Info, &line);
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let st = logger.stats();
        assert!(st.dropped_lines > 0 && st.dropped_bytes > 0, "{st:?}");
        assert!(st.pending_bytes as usize <= BUFFER_BYTES, "{st:?}");
        assert!(logger.inner.lock().unwrap().buf.capacity() <= 2 * BUFFER_BYTES);
        // The reader comes back: everything buffered arrives in whole lines, then a note.
        let mut got = read_all(&r);
        logger.flush_nonblocking();
        got.extend(read_all(&r));
        record(&logger, log::Level::Error, "after");
        got.extend(read_all(&r));
        let text = String::from_utf8(got).unwrap();
        for l in text.lines() {
            assert!(
                l == format!("<6>{line}") || l.starts_with("<4>") || l == "<3>after",
                "torn or odd line {l:?}"
            );
        }
        assert!(text.contains("log line(s) dropped"), "the loss is said");
        assert!(text.ends_with("<3>after\n"));
        // The writer's own description is non-blocking, the shared one is not touched.
        let flags = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(
            flags & libc::O_NONBLOCK,
            0,
            "fd 2's description left blocking"
        );
    }

    #[test]
    fn lines_are_cut_and_levels_filtered() {
        let (r, w) = pipe();
        let logger = Logger::new(Sink::for_fd(w.as_raw_fd()), false, log::LevelFilter::Info);
        record(&logger, log::Level::Debug, "hidden");
        record(&logger, log::Level::Warn, &"é".repeat(LINE_MAX_BYTES));
        let text = String::from_utf8(read_all(&r)).unwrap();
        assert!(!text.contains("hidden"));
        assert!(text.contains("WARN"), "{}", &text[..40]);
        assert!(text.len() < LINE_MAX_BYTES + 64);
        assert_eq!(level_from_env(Some("debug")), log::LevelFilter::Debug);
        assert_eq!(
            level_from_env(Some("bbwd=trace,warn")),
            log::LevelFilter::Warn
        );
        assert_eq!(level_from_env(None), log::LevelFilter::Info);
    }
}
