//! systemd notification (`sd_notify(3)` protocol): READY, STATUS, WATCHDOG, STOPPING, and the
//! file-descriptor store (FDSTORE, `sd_listen_fds_with_names(3)`).
//!
//! Owns the datagram socket to `$NOTIFY_SOCKET` (a path or an abstract `@name`), opened once.
//! The keep-alive (`WATCHDOG=1`) is a prebuilt message on that open socket, so the hot path
//! neither allocates nor opens anything. Must not: decide when to notify (the watchdog crate's
//! policy and the agent do).
//!
//! # Keeping Bitbucket's output pipe across a bbwd restart
//! When bbwd captures Bitbucket's output, the pipe's read end lives only in bbwd: if bbwd
//! exits, Bitbucket's next write gets SIGPIPE. So bbwd hands a duplicate to systemd with
//! `store_fd("bitbucket-output", fd)` (the unit needs `FileDescriptorStoreMax=` > 0), and a
//! restarted bbwd gets it back from `listen_fds_with_names()` and attaches it to the adopted
//! process (`process::Supervised::attach_output`). `remove_fd` drops it from the store once
//! Bitbucket is gone.
//!
//! # Invariants
//! * Sending never blocks: the socket is non-blocking; a message the manager cannot take now is
//!   dropped and logged (the next keep-alive comes a tick later).
//! * A failure is logged when sending starts failing and when it works again, not per message.
//! * The fds from `LISTEN_FDS` are taken at most once per process.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

/// The keep-alive, built once.
const WATCHDOG_MSG: &[u8] = b"WATCHDOG=1";
const STOPPING_MSG: &[u8] = b"STOPPING=1";

/// The first fd passed by systemd (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// More than this many passed fds is treated as a corrupt `LISTEN_FDS` (bbwd stores one or two).
const LISTEN_FDS_MAX: usize = 1024;

/// Longest fd name systemd accepts (`FDNAME=`).
const FDNAME_MAX_BYTES: usize = 255;

struct Target {
    sock: UnixDatagram,
    addr: SocketAddr,
}

/// A connection to the service manager, or nothing when not run under `Type=notify`.
pub struct SdNotify {
    target: Option<Target>,
    /// True after a send failed, until one succeeds (to log transitions only).
    failing: AtomicBool,
}

impl std::fmt::Debug for SdNotify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdNotify")
            .field("addr", &self.target.as_ref().map(|t| &t.addr))
            .finish()
    }
}

impl SdNotify {
    /// Reads `$NOTIFY_SOCKET`; when unset, every method is a no-op.
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) if !value.is_empty() => Self::from_socket_var(&value),
            _ => Self::disabled(),
        }
    }

    /// Nothing to notify: every method is a no-op.
    pub fn disabled() -> Self {
        SdNotify {
            target: None,
            failing: AtomicBool::new(false),
        }
    }

    /// Notifies the socket at this filesystem path (tests, or a caller that knows the path).
    pub fn with_path(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        Self::with_addr(SocketAddr::from_pathname(path), &path.display().to_string())
    }

    /// Notifies the socket with this abstract name (without the leading `@`/NUL).
    pub fn with_abstract_name(name: &[u8]) -> Self {
        let shown = format!("@{}", String::from_utf8_lossy(name));
        Self::with_addr(SocketAddr::from_abstract_name(name), &shown)
    }

    /// `$NOTIFY_SOCKET` syntax: `/path` or `@abstract`. (`vsock:` addresses are not supported.)
    fn from_socket_var(value: &OsStr) -> Self {
        let bytes = value.as_bytes();
        match bytes.first() {
            Some(b'/') => Self::with_path(Path::new(value)),
            Some(b'@') => Self::with_abstract_name(&bytes[1..]),
            _ => {
                log::warn!("NOTIFY_SOCKET={value:?} is not supported; not notifying systemd");
                Self::disabled()
            }
        }
    }

    fn with_addr(addr: io::Result<SocketAddr>, shown: &str) -> Self {
        let target = addr.and_then(|addr| {
            let sock = UnixDatagram::unbound()?;
            sock.set_nonblocking(true)?;
            Ok(Target { sock, addr })
        });
        match target {
            Ok(target) => SdNotify {
                target: Some(target),
                failing: AtomicBool::new(false),
            },
            Err(e) => {
                log::warn!("cannot open the notify socket {shown}: {e}; not notifying systemd");
                Self::disabled()
            }
        }
    }

    /// Whether a notify socket is configured.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1` (plus `MAINPID=` of this process).
    pub fn ready(&self) {
        if self.enabled() {
            let msg = format!("READY=1\nMAINPID={}", std::process::id());
            self.send(msg.as_bytes());
        }
    }

    /// `STATUS=<text>`; text is truncated at a newline.
    pub fn status(&self, text: &str) {
        if self.enabled() {
            let line = text.split('\n').next().unwrap_or("");
            let msg = format!("STATUS={line}");
            self.send(msg.as_bytes());
        }
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (systemd then waits for the next `READY=1`: the
    /// re-executed run's).
    pub fn reloading(&self) {
        if self.enabled() {
            // SAFETY: clock_gettime writes into `ts`, a plain C struct we own.
            let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
            // SAFETY: as above; CLOCK_MONOTONIC is always available.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            let usec = (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000;
            let msg = format!("RELOADING=1\nMONOTONIC_USEC={usec}");
            self.send(msg.as_bytes());
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(STOPPING_MSG);
    }

    /// `WATCHDOG=1`. No allocation.
    pub fn watchdog(&self) {
        self.send(WATCHDOG_MSG);
    }

    /// `FDSTORE=1` + `FDNAME=name`, passing a duplicate of `fd` (SCM_RIGHTS) for systemd to keep
    /// across a restart of bbwd (see the module doc: Bitbucket's output pipe). A no-op when not
    /// enabled. `name`: 1 to 255 printable ASCII characters, no `:`.
    pub fn store_fd(&self, name: &str, fd: BorrowedFd<'_>) -> io::Result<()> {
        check_fdname(name)?;
        let msg = format!("FDSTORE=1\nFDNAME={name}");
        self.send_with_fd(msg.as_bytes(), fd)
    }

    /// `FDSTOREREMOVE=1` + `FDNAME=name`: systemd closes the stored fd(s) of that name.
    pub fn remove_fd(&self, name: &str) -> io::Result<()> {
        check_fdname(name)?;
        let Some(target) = &self.target else {
            return Ok(());
        };
        let msg = format!("FDSTOREREMOVE=1\nFDNAME={name}");
        target.sock.send_to_addr(msg.as_bytes(), &target.addr)?;
        Ok(())
    }

    /// `WATCHDOG_USEC` when set for this process (`WATCHDOG_PID` absent or ours).
    pub fn watchdog_timeout() -> Option<Duration> {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
    }

    fn send(&self, msg: &[u8]) {
        let Some(target) = &self.target else {
            return;
        };
        match target.sock.send_to_addr(msg, &target.addr) {
            Ok(_) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::info!("notifying systemd works again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "notifying systemd ({:?}) failed: {e}",
                        String::from_utf8_lossy(msg)
                    );
                }
            }
        }
    }

    fn send_with_fd(&self, msg: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let addr = if let Some(path) = target.addr.as_pathname() {
            UnixAddr::new(path)?
        } else if let Some(name) = target.addr.as_abstract_name() {
            UnixAddr::new_abstract(name)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unnamed notify socket",
            ));
        };
        let fds = [fd.as_raw_fd()];
        sendmsg(
            target.sock.as_raw_fd(),
            &[io::IoSlice::new(msg)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        )?;
        Ok(())
    }
}

fn check_fdname(name: &str) -> io::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= FDNAME_MAX_BYTES
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid fd store name {name:?}"),
        ))
    }
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        None => {}
        Some(p) if p.trim().parse::<u32>().ok() == Some(my_pid) => {}
        Some(_) => return None,
    }
    Some(Duration::from_micros(usec))
}

/// The fds systemd passed to this process, with their names (`LISTEN_FDS`, `LISTEN_PID`,
/// `LISTEN_FDNAMES`; fds start at 3). Used to get back Bitbucket's output pipe stored with
/// `SdNotify::store_fd` before a bbwd restart (see the module doc).
///
/// Each fd is made close-on-exec (systemd passes them inheritable), so Bitbucket and the
/// notify commands never inherit them. A name systemd did not give is `"unknown"`. Only the
/// first call returns the fds (they are owned once); later calls return nothing. The
/// environment variables are left as they are: children do not see them (`process` removes
/// them from every child's environment).
pub fn listen_fds_with_names() -> Vec<(String, OwnedFd)> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let passed = parse_listen(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    );
    if passed.is_empty() || TAKEN.swap(true, Ordering::SeqCst) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(passed.len());
    for (name, raw) in passed {
        // SAFETY: F_GETFD/F_SETFD only read and set the fd's flags; on an fd that is not open
        // they fail with EBADF and change nothing.
        let valid = unsafe {
            let flags = libc::fcntl(raw, libc::F_GETFD);
            flags >= 0 && libc::fcntl(raw, libc::F_SETFD, flags | libc::FD_CLOEXEC) == 0
        };
        if !valid {
            log::warn!("LISTEN_FDS names fd {raw} ({name}), which is not open; skipping it");
            continue;
        }
        // SAFETY: systemd passed this fd to this process (LISTEN_PID is ours) for us to own;
        // it is open (checked above), nothing else in bbwd refers to fds from LISTEN_FDS, and
        // `TAKEN` makes sure it is wrapped only once.
        out.push((name, unsafe { OwnedFd::from_raw_fd(raw) }));
    }
    out
}

fn parse_listen(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    my_pid: u32,
) -> Vec<(String, RawFd)> {
    if pid.and_then(|p| p.trim().parse::<u32>().ok()) != Some(my_pid) {
        return Vec::new();
    }
    let Some(count) = fds.and_then(|n| n.trim().parse::<usize>().ok()) else {
        return Vec::new();
    };
    if count > LISTEN_FDS_MAX {
        log::warn!("LISTEN_FDS={count} is implausible; ignoring the passed fds");
        return Vec::new();
    }
    let mut names = names.unwrap_or("").split(':');
    (0..count)
        .map(|i| {
            let name = names.next().filter(|n| !n.is_empty()).unwrap_or("unknown");
            (name.to_string(), LISTEN_FDS_START + i as RawFd)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::tests::TempDir;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::os::fd::AsFd;

    fn receiver(tmp: &TempDir) -> (UnixDatagram, std::path::PathBuf) {
        let path = tmp.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (sock, path)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn exact_datagrams_to_a_path() {
        let tmp = TempDir::new("sdnotify");
        let (sock, path) = receiver(&tmp);
        let notify = SdNotify::with_path(&path);
        assert!(notify.enabled());
        notify.ready();
        assert_eq!(
            recv(&sock),
            format!("READY=1\nMAINPID={}", std::process::id())
        );
        notify.status("running, 0 restarts\nsecond line");
        assert_eq!(recv(&sock), "STATUS=running, 0 restarts");
        notify.status("");
        assert_eq!(recv(&sock), "STATUS=");
        notify.watchdog();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        notify.stopping();
        assert_eq!(recv(&sock), "STOPPING=1");
        notify.remove_fd("bitbucket-output").unwrap();
        assert_eq!(recv(&sock), "FDSTOREREMOVE=1\nFDNAME=bitbucket-output");
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            sock.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "exactly one datagram per call"
        );
    }

    #[test]
    fn abstract_address() {
        let name = format!("bbwd-test-notify-{}", std::process::id());
        let sock =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let notify = SdNotify::from_socket_var(OsStr::new(&format!("@{name}")));
        assert!(notify.enabled());
        notify.watchdog();
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn socket_var_forms() {
        assert!(!SdNotify::from_socket_var(OsStr::new("vsock:2:1234")).enabled());
        assert!(!SdNotify::from_socket_var(OsStr::new("relative")).enabled());
        // A path that does not exist yet is still a target (systemd may create it); sending to
        // it fails quietly.
        let tmp = TempDir::new("sdnotify-missing");
        let notify = SdNotify::from_socket_var(tmp.join("nobody-here").as_os_str());
        assert!(notify.enabled());
        notify.watchdog();
        notify.watchdog();
        assert!(notify.failing.load(Ordering::Relaxed));
    }

    #[test]
    fn disabled_is_a_no_op() {
        let notify = SdNotify::disabled();
        assert!(!notify.enabled());
        notify.ready();
        notify.status("x");
        notify.watchdog();
        notify.stopping();
        let (r, _w) = nix::unistd::pipe().unwrap();
        notify.store_fd("out", r.as_fd()).unwrap();
        notify.remove_fd("out").unwrap();
    }

    #[test]
    fn store_fd_passes_the_fd() {
        let tmp = TempDir::new("sdnotify-fd");
        let (sock, path) = receiver(&tmp);
        let notify = SdNotify::with_path(&path);
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"kept").unwrap();
        notify.store_fd("bitbucket-output", r.as_fd()).unwrap();
        drop(r);

        let mut buf = [0u8; 256];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let len = msg.bytes;
        let mut received = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                received.extend(fds);
            }
        }
        assert_eq!(&buf[..len], b"FDSTORE=1\nFDNAME=bitbucket-output");
        assert_eq!(received.len(), 1);
        // SAFETY: the fd was just received with SCM_RIGHTS and is owned by nobody else.
        let got = unsafe { OwnedFd::from_raw_fd(received[0]) };
        let mut data = [0u8; 8];
        let n = nix::unistd::read(&got, &mut data).unwrap();
        assert_eq!(&data[..n], b"kept", "the same pipe");
    }

    #[test]
    fn bad_fd_names_are_refused() {
        let notify = SdNotify::disabled();
        let (r, _w) = nix::unistd::pipe().unwrap();
        for bad in ["", "a:b", "with space", "tab\t", "é", &"x".repeat(256)] {
            assert!(notify.store_fd(bad, r.as_fd()).is_err(), "{bad:?}");
        }
        assert!(notify.store_fd(&"x".repeat(255), r.as_fd()).is_ok());
    }

    #[test]
    fn watchdog_env_parsing() {
        let me = 4242;
        assert_eq!(
            parse_watchdog(Some("30000000"), None, me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog(Some("500000"), Some("4242"), me),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_watchdog(Some("500000"), Some("4243"), me), None);
        assert_eq!(parse_watchdog(Some("500000"), Some("x"), me), None);
        assert_eq!(parse_watchdog(Some("0"), None, me), None);
        assert_eq!(parse_watchdog(Some("-1"), None, me), None);
        assert_eq!(parse_watchdog(Some(""), None, me), None);
        assert_eq!(parse_watchdog(None, Some("4242"), me), None);
    }

    #[test]
    fn listen_env_parsing() {
        let me = 77;
        assert_eq!(
            parse_listen(Some("77"), Some("2"), Some("bitbucket-output:control"), me),
            [
                ("bitbucket-output".to_string(), 3),
                ("control".to_string(), 4)
            ]
        );
        assert_eq!(
            parse_listen(Some("77"), Some("3"), Some("a::"), me),
            [
                ("a".to_string(), 3),
                ("unknown".to_string(), 4),
                ("unknown".to_string(), 5)
            ]
        );
        assert_eq!(
            parse_listen(Some("77"), Some("1"), None, me),
            [("unknown".to_string(), 3)]
        );
        assert!(parse_listen(Some("78"), Some("1"), Some("a"), me).is_empty());
        assert!(parse_listen(None, Some("1"), Some("a"), me).is_empty());
        assert!(parse_listen(Some("77"), None, None, me).is_empty());
        assert!(parse_listen(Some("77"), Some("x"), None, me).is_empty());
        assert!(parse_listen(Some("77"), Some("0"), None, me).is_empty());
        assert!(parse_listen(Some("77"), Some("100000"), None, me).is_empty());
    }
}
