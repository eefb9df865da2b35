//! Test-only helper: throwaway network namespaces for the root tests of `witness` and
//! `linkwatch`.
//!
//! Owns: creating a namespace (`ip netns add`, loopback up), running `ip -n NAME ...` in it,
//! creating sockets inside it from a short-lived thread that `setns(2)`s into it (a socket stays
//! in the namespace it was created in, whichever thread uses it later), and deleting it on drop,
//! also when the test panics.
//!
//! Must not: touch any namespace it did not create, or the test process's own namespace (only
//! the helper thread switches, and it ends right after).
//!
//! # Invariants
//! * Names are unique per process and call: `<tag><pid><n>`.
//! * Under `CI`, missing root or iproute2 fails the test (`available` asserts); elsewhere the
//!   test reports it and returns early.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Root and iproute2 are there. Under `CI` their absence fails the calling test.
pub(crate) fn available(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = std::path::Path::new("/usr/sbin/ip").is_file()
        || std::path::Path::new("/sbin/ip").is_file();
    if root && ip {
        return true;
    }
    let why = format!("{what} needs root (have: {root}) and iproute2 (have: {ip})");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED (not CI): {why}");
    false
}

/// A network namespace of the test's own, deleted on drop.
pub(crate) struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `<tag><pid><n>` with its loopback up.
    pub(crate) fn new(tag: &str) -> NetNs {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{tag}{}{n}", std::process::id());
        run(&["netns", "add", &name]);
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`, which must succeed; its stdout.
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs `f` on a thread that has joined this namespace: sockets `f` creates live in it.
    pub(crate) fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd; CLONE_NEWNET only changes this
                // thread's network namespace, and the thread ends when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace removes its interfaces (veth peers too). No process runs in it:
        // the tests only ever enter it with a thread that has ended.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
