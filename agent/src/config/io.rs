//! Phase 2 of [`parse`](super::parse): the checks only this machine can answer, run after the
//! walk on what it deferred ([`Pending`]). The secret files the config names must be mode 0600
//! or stricter; a Redfish `ca_file` must be a readable PEM file of CA certificates; when
//! `node.name` is not written, the host name (`/proc/sys/kernel/hostname`) must serve as one;
//! `database.address` is resolved once, so a name that does not resolve is a config problem, not
//! a surprise at the first check.
//!
//! Owns: every piece of I/O a parse does besides reading the file itself, and the wording of
//! those problems. A failed check is reported as if the walk had found it: under the key, on its
//! line, and in the place among the other problems where a single pass would have put it; and it
//! invalidates the section the key is in, as a wrong value does.
//!
//! Must not: check anything the walk did not defer, touch the network beyond the one lookup of
//! `database.address`, or read a secret file's contents (only its metadata). What a valid config
//! means for this node (programs, users, interfaces, addresses) is `crate::hostcheck`'s, asked
//! after the config loads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use super::node::check_name;
use super::walk::Checker;
use super::Problem;

/// Where the kernel publishes the host name (the default `node.name`).
pub(super) const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// A check the walk leaves to this phase.
pub(super) struct Pending {
    /// The dotted key a failure is reported under; its first part names the section a failure
    /// invalidates.
    pub(super) key: String,
    /// Byte offset of the value in the file; `None` when the key is not written (`node.name`).
    pub(super) offset: Option<usize>,
    /// How many problems the walk had found when it deferred this: a failure goes there.
    pub(super) slot: usize,
    pub(super) need: Need,
}

/// What a [`Pending`] check needs from this machine.
pub(super) enum Need {
    /// `node.name` is not written: the host name serves.
    HostName,
    /// A secret file: it exists and is mode 0600 or stricter.
    SecretFile(PathBuf),
    /// A Redfish `ca_file`: a readable PEM file of CA certificates.
    CaFile(PathBuf),
    /// `database.address` (`HOST:PORT`, already checked), resolved once.
    Resolve(String),
}

/// What phase 2 found: the values it looked up, and the sections a failed check invalidates.
#[derive(Default)]
pub(super) struct Found {
    /// The host name, when `node.name` is not written and the host name can serve.
    pub(super) host_name: Option<String>,
    /// `database.address`, resolved.
    pub(super) resolved: Option<SocketAddr>,
    /// The top-level sections (`node`, `database`, `watchdog`, `cluster`, `fencing`) with a
    /// failed check.
    invalid: Vec<String>,
}

impl Found {
    /// Whether `section` passed every check of this phase.
    pub(super) fn valid(&self, section: &str) -> bool {
        !self.invalid.iter().any(|s| s == section)
    }
}

/// Runs the checks the walk deferred, in the order it deferred them, and puts each failure
/// among `ck`'s problems where the walk would have put it.
pub(super) fn run(ck: &mut Checker<'_>) -> Found {
    let mut found = Found::default();
    let mut failures = Vec::new();
    for pending in std::mem::take(&mut ck.pending) {
        let outcome = match &pending.need {
            Need::HostName => host_name().map(|name| found.host_name = Some(name)),
            Need::SecretFile(path) => {
                bbwd_platform::fs::check_secret_file(path).map_err(|e| e.to_string())
            }
            Need::CaFile(path) => bbwd_platform::redfish::read_ca_file(path).map(drop),
            Need::Resolve(address) => resolve(address).map(|addr| found.resolved = Some(addr)),
        };
        if let Err(message) = outcome {
            let section = pending.key.split('.').next().unwrap_or_default();
            found.invalid.push(section.to_string());
            let line = pending.offset.map(|offset| ck.line_of(offset));
            let problem = Problem {
                key: pending.key,
                line,
                message,
            };
            failures.push((pending.slot, problem));
        }
    }
    insert_at_slots(&mut ck.problems, failures);
    found
}

/// Puts each `(slot, problem)` before what was `problems[slot]` (after the last when `slot` is
/// the length). `failures` is in slot order; equal slots keep their order.
fn insert_at_slots(problems: &mut Vec<Problem>, failures: Vec<(usize, Problem)>) {
    if failures.is_empty() {
        return;
    }
    let walked = std::mem::take(problems);
    let mut failures = failures.into_iter().peekable();
    for (i, problem) in walked.into_iter().enumerate() {
        while let Some((_, failure)) = failures.next_if(|(slot, _)| *slot <= i) {
            problems.push(failure);
        }
        problems.push(problem);
    }
    problems.extend(failures.map(|(_, failure)| failure));
}

/// The host name, for a config without `node.name`; `Err` says why it cannot serve.
fn host_name() -> Result<String, String> {
    let read = match bbwd_platform::fs::read_optional(Path::new(HOSTNAME_FILE)) {
        Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
        Ok(None) => Err(format!("{HOSTNAME_FILE} does not exist")),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(name) => match check_name(&name) {
            Ok(()) => Ok(name),
            Err(why) => Err(format!(
                "not set, and the host name cannot serve: {why}; set [node] name"
            )),
        },
        Err(why) => Err(format!(
            "not set, and the host name cannot be read ({why}); set [node] name"
        )),
    }
}

/// Resolves `host:port` once (the database check connects to the result).
fn resolve(address: &str) -> Result<SocketAddr, String> {
    match address.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| {
            format!("\"{address}\" resolves to no address; fix the name or use an IP address")
        }),
        Err(e) => Err(format!(
            "cannot resolve \"{address}\" ({e}); fix the name or use an IP address"
        )),
    }
}
