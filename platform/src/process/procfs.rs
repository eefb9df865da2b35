//! What `/proc` says about processes: one process's stat (state, pgid, start time), and the
//! live members of a process group.
//!
//! Owns: reading and parsing `/proc/PID/stat`. Must not: signal or decide anything; a `/proc`
//! that cannot be read counts as "alive" (never start a second instance on a guess).

use super::*;

/// The fields of `/proc/PID/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) state: u8,
    pub(crate) pgid: i32,
    pub(crate) start_ticks: u64,
}

/// Whether any process in group `pgid` is alive, i.e. not a zombie (`Z`) or dead (`X`).
/// Scans /proc: only called while waiting for a group to empty, never in steady state.
/// A /proc that cannot be read counts as alive (never start a second instance on a guess).
pub(crate) fn group_has_live_member(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process that vanished meanwhile is not a member any more.
        if let Ok(st) = read_stat(pid) {
            if st.pgid == pgid && !matches!(st.state, b'Z' | b'X') {
                return true;
            }
        }
    }
    false
}

pub(crate) fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable"))
}

pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Parses `pid (comm) state ppid pgrp ... starttime(22) ...`. `comm` may hold spaces and ')',
/// so fields are counted from the *last* ')'.
pub(crate) fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    // rest starts at field 3 (state): field N is at index N - 3.
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let pgid = fields.nth(5 - 4)?.parse().ok()?;
    let start_ticks = fields.nth(22 - 5 - 1)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgid,
        start_ticks,
    })
}

/// Live members (not zombies) of process group `pgid`, for log lines that say what is killed.
pub fn group_members(pgid: i32) -> Vec<i32> {
    live_stats()
        .filter(|(_, st)| st.pgid == pgid)
        .map(|(pid, _)| pid)
        .collect()
}

/// Every live process's stat (zombies and vanished ones left out).
pub(crate) fn live_stats() -> impl Iterator<Item = (i32, ProcStat)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read_stat(pid).ok().map(|st| (pid, st)))
        .filter(|(_, st)| !matches!(st.state, b'Z' | b'X'))
}
