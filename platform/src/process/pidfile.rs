//! The pid file: what a restarted bbwd needs to re-adopt the Bitbucket it left running, and to
//! recognise what is left of a group whose leader is gone.
//!
//! Owns: the record (pid, pgid, start time, boot id), its file format (`pid pgid start_ticks
//! boot_id`, written atomically), and the decision whether a recorded group is provably the
//! recorded one before it is killed. Must not: signal anything that is not provably ours (a
//! record from another boot, an old-format record, a recycled pid or pgid).

use super::*;

/// What is recorded in the pid file so that a restarted bbwd can re-adopt Bitbucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    pub pgid: i32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot): tells a recycled pid apart.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when the record was made: a record from an earlier
    /// boot (a `state_dir` that survived a reboot) names nothing that runs now. `None` in pid
    /// files of older bbwd versions: such a record may be adopted, but its group is never
    /// signalled on its word alone.
    pub boot_id: Option<u128>,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), read once.
pub fn boot_id() -> Option<u128> {
    static ID: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|t| parse_boot_id(&t))
    })
}

pub(crate) fn parse_boot_id(text: &str) -> Option<u128> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

impl PidRecord {
    /// Whether the record was made during this boot (never true for an old-format record).
    pub fn this_boot(&self) -> bool {
        self.boot_id.is_some() && self.boot_id == boot_id()
    }
}

/// Writes the pid file atomically (temp file + rename, mode 0644).
///
/// Not fsynced: the file only matters while the processes it names run, which a power loss
/// ends anyway (and a stale record is refused by its start time).
pub fn write_pidfile(path: &Path, record: &PidRecord) -> Result<(), Error> {
    let pid_err = |source: io::Error| Error::PidFile {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temp_path(path).ok_or_else(|| {
        pid_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let mut text = format!("{} {} {}", record.pid, record.pgid, record.start_ticks);
    if let Some(b) = record.boot_id {
        text.push_str(&format!(" {b:032x}"));
    }
    text.push('\n');
    let result = (|| {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(pid_err)
}

pub(crate) fn temp_path(path: &Path) -> Option<PathBuf> {
    let mut name = path.file_name()?.to_os_string();
    name.push(".tmp");
    Some(path.with_file_name(name))
}

/// Reads the pid file; `Ok(None)` when it does not exist; a corrupt file is an error naming it.
pub fn read_pidfile(path: &Path) -> Result<Option<PidRecord>, Error> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::PidFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(PIDFILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::PidFile {
            path: path.to_path_buf(),
            source,
        })?;
    parse_pidfile(&bytes)
        .map(Some)
        .map_err(|reason| Error::PidFileCorrupt {
            path: path.to_path_buf(),
            reason,
        })
}

pub(crate) fn parse_pidfile(bytes: &[u8]) -> Result<PidRecord, String> {
    if bytes.len() as u64 > PIDFILE_MAX_BYTES {
        return Err(format!("longer than {PIDFILE_MAX_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let (pid, pgid, start, boot) = match fields[..] {
        [pid, pgid, start] => (pid, pgid, start, None),
        [pid, pgid, start, boot] => (pid, pgid, start, Some(boot)),
        _ => {
            return Err(format!(
                "expected \"pid pgid start_ticks boot_id\", found {} fields",
                fields.len()
            ))
        }
    };
    let boot_id = match boot {
        None => None,
        Some(b) => Some(parse_boot_id(b).ok_or_else(|| format!("bad boot_id {b:?}"))?),
    };
    let pid: i32 = pid.parse().map_err(|_| format!("bad pid {pid:?}"))?;
    let pgid: i32 = pgid.parse().map_err(|_| format!("bad pgid {pgid:?}"))?;
    let start_ticks: u64 = start
        .parse()
        .map_err(|_| format!("bad start_ticks {start:?}"))?;
    if pid <= 1 || pgid <= 1 {
        return Err(format!("pid {pid} / pgid {pgid} out of range"));
    }
    Ok(PidRecord {
        pid,
        pgid,
        start_ticks,
        boot_id,
    })
}

/// Kills (SIGKILL) what is left of a recorded process group whose leader is gone, as found at
/// start-up before anything new is started: never two instances of Bitbucket.
///
/// Returns true when members were found and signalled. The group is only touched when no
/// process with the leader's pid exists: while members remain, the kernel does not hand the
/// pgid out again, so a live group without a leader is the recorded one; a live process with
/// that pid is a recycled pid (the caller's `adopt` said it is not ours) and is left alone.
///
/// The group is only touched when it is provably the recorded one (`stale_members`): recorded
/// during this boot, and every live member started no earlier than the recorded leader. A pid
/// file that survived a reboot, or an old-format one, never gets a group killed.
pub fn kill_stale_group(record: &PidRecord) -> bool {
    if record.pgid == nix::unistd::getpgrp().as_raw() {
        return false;
    }
    match stale_members(record) {
        Some(members) if !members.is_empty() => {
            log::warn!(
                "SIGKILL to what is left of Bitbucket's old process group {}: pids {members:?}",
                record.pgid
            );
            kill(Pid::from_raw(-record.pgid), Signal::SIGKILL).is_ok()
        }
        _ => false,
    }
}

/// The live members of a recorded group whose leader is gone, when the group is provably the
/// recorded one; `None` when it is not (another boot, an old-format record, a live process
/// holding the leader's pid, or a member older than the recorded leader: the pgid was handed
/// out again).
pub fn stale_members(record: &PidRecord) -> Option<Vec<i32>> {
    if record.pgid <= 1 || !record.this_boot() {
        return None;
    }
    if Path::new(&format!("/proc/{}", record.pgid)).exists() {
        return None;
    }
    if matches!(kill(Pid::from_raw(-record.pgid), None), Err(Errno::ESRCH)) {
        return Some(Vec::new());
    }
    let mut members = Vec::new();
    for (pid, st) in live_stats() {
        if st.pgid == record.pgid {
            if st.start_ticks < record.start_ticks {
                return None;
            }
            members.push(pid);
        }
    }
    Some(members)
}

/// Removes the pid file; a missing file is fine.
pub fn remove_pidfile(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::PidFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// How long ago the process recorded in `record` started: its start time (clock ticks since
/// boot, from the record) against `/proc/uptime`. `None` when either cannot be read.
pub fn started_ago(record: &PidRecord) -> Option<std::time::Duration> {
    // SAFETY: sysconf takes an integer name and returns a value; no memory is involved.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_s <= 0 {
        return None;
    }
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime_s: f64 = uptime.split_ascii_whitespace().next()?.parse().ok()?;
    let started_s = record.start_ticks as f64 / ticks_per_s as f64;
    Some(std::time::Duration::from_secs_f64(
        (uptime_s - started_s).max(0.0),
    ))
}

/// Whether live members remain of a recorded group whose leader is gone (`adopt` said so):
/// the check `kill_stale_group` acts on, without signalling. A live process holding the
/// leader's pid means the pgid was handed out again, so the recorded group is empty.
/// Members of a group that is not provably the recorded one do not count.
pub fn stale_group_alive(record: &PidRecord) -> bool {
    stale_members(record).is_some_and(|m| !m.is_empty())
}
