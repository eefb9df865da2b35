//! Tests of the supervised process, the pid file and /proc parsing (shared helpers for other
//! modules' tests: `TempDir`, `dead`, `eventually`, `kill_pid`, `read_pid_file`).

use super::*;
use std::time::{Duration, Instant};

pub(crate) use bbwd_testkit::TempDir;

fn sh(script: &str) -> SpawnSpec {
    SpawnSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        user: None,
        env: Vec::new(),
        capture_output: false,
    }
}

fn captured(script: &str) -> SpawnSpec {
    SpawnSpec {
        capture_output: true,
        ..sh(script)
    }
}

/// Polls `fd` for readability for up to `timeout`.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
}

/// Waits on the pidfd, then collects the exit.
fn wait_exit(p: &mut Supervised, timeout: Duration) -> ExitKind {
    let fd = p.pidfd().expect("pidfd before the exit is collected");
    assert!(wait_readable(fd, timeout), "leader did not exit in time");
    p.try_collect_exit().expect("readable pidfd means an exit")
}

/// Regression: bbwd blocks SIGTERM for its signalfd, and the mask was inherited, so
/// Bitbucket never saw the graceful stop and was always SIGKILLed after stop_timeout.
#[test]
fn the_child_starts_with_an_empty_signal_mask_although_we_block_sigterm() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).unwrap();
    // `exec grep` reads its own mask, which is the one the spawned process started with
    // (a shell may block signals for itself while it waits for a child).
    let mut p = Supervised::spawn(&sh(
        r#"exec grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status"#,
    ))
    .unwrap();
    let exit = wait_exit(&mut p, Duration::from_secs(10));
    pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None).unwrap();
    assert_eq!(
        exit,
        ExitKind::Exited(0),
        "the child inherited a blocked signal"
    );
}

/// Repeats `cond` until true or `timeout`.
pub(crate) fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Gone, or a zombie waiting for its new parent (init) to reap it: either way, dead.
pub(crate) fn dead(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(text) => {
            let close = text.iter().rposition(|&b| b == b')').unwrap();
            text.get(close + 2) == Some(&b'Z')
        }
    }
}

/// Reads a pid written by a test script, waiting for the file to be complete.
pub(crate) fn read_pid_file(path: &Path) -> i32 {
    let mut pid = 0;
    assert!(eventually(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text.strip_suffix('\n').map(str::parse::<i32>) {
            Some(Ok(p)) => {
                pid = p;
                true
            }
            _ => false,
        }
    }));
    pid
}

/// Kills a test-started process by pid (best-effort clean-up).
pub(crate) fn kill_pid(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Drains until EOF, with a deadline; returns the lines.
fn drain_all(p: &mut Supervised, timeout: Duration) -> Vec<Vec<u8>> {
    let end = Instant::now() + timeout;
    let mut lines = Vec::new();
    while let Some(fd) = p.output_fd() {
        assert!(wait_readable(fd, Duration::from_secs(5)));
        if !p.drain_output(&mut |l| lines.push(l.to_vec())) {
            break;
        }
        assert!(Instant::now() < end, "output never reached EOF");
    }
    assert!(p.output_fd().is_none());
    lines
}

#[test]
fn spawn_reports_exit_code_once() {
    let mut p = Supervised::spawn(&sh("exit 7")).unwrap();
    assert!(p.is_child());
    assert_eq!(p.record().pgid, p.pid(), "own process group");
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Exited(7)
    );
    assert!(p.pidfd().is_none());
    assert_eq!(p.try_collect_exit(), None, "reported only once");
}

#[test]
fn spawn_of_missing_program_names_it() {
    let err = Supervised::spawn(&SpawnSpec {
        argv: vec!["/nonexistent/bbwd-test-prog".into()],
        ..sh("")
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::Spawn { program, .. } if program == "/nonexistent/bbwd-test-prog")
    );
    assert!(err.to_string().contains("/nonexistent/bbwd-test-prog"));
    let err = Supervised::spawn(&SpawnSpec {
        argv: Vec::new(),
        ..sh("")
    })
    .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }));
}

#[test]
fn sigkill_is_reported_as_signaled_9() {
    let mut p = Supervised::spawn(&sh("exec sleep 30")).unwrap();
    assert_eq!(p.try_collect_exit(), None, "still running");
    assert!(p.group_alive());
    p.signal_group(GroupSignal::Kill).unwrap();
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Signaled(9)
    );
    assert!(eventually(Duration::from_secs(5), || !p.group_alive()));
    // Nobody left: ESRCH is not an error.
    p.signal_group(GroupSignal::Term).unwrap();
}

#[test]
fn group_kill_reaches_grandchild() {
    let tmp = TempDir::new("grandkill");
    let pidfile = tmp.join("grandchild");
    let mut p = Supervised::spawn(&sh(&format!(
        "sleep 30 & echo $! > {}; wait",
        pidfile.display()
    )))
    .unwrap();
    let grandchild = read_pid_file(&pidfile);
    assert!(!dead(grandchild));
    p.signal_group(GroupSignal::Kill).unwrap();
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Signaled(9)
    );
    let gone = eventually(Duration::from_secs(5), || dead(grandchild));
    if !gone {
        kill_pid(grandchild);
    }
    assert!(gone, "SIGKILL to the group must reach the grandchild");
}

#[test]
fn group_alive_while_grandchild_outlives_leader() {
    let tmp = TempDir::new("grandalive");
    let pidfile = tmp.join("grandchild");
    // The leader exits at once, leaving a member of its group behind.
    let mut p = Supervised::spawn(&sh(&format!(
        "sleep 30 & echo $! > {}; exit 0",
        pidfile.display()
    )))
    .unwrap();
    let grandchild = read_pid_file(&pidfile);
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Exited(0)
    );
    let alive = p.group_alive();
    kill_pid(grandchild);
    assert!(alive, "a group member outlives the leader");
    // Relies on init reaping the orphan (a zombie still counts as a group member).
    assert!(eventually(Duration::from_secs(5), || !p.group_alive()));
}

#[test]
fn group_alive_reaps_but_keeps_the_exit_for_collection() {
    let mut p = Supervised::spawn(&sh("exit 3")).unwrap();
    assert!(eventually(Duration::from_secs(5), || !p.group_alive()));
    // The pidfd stays open (and readable) until the exit is collected.
    let fd = p.pidfd().expect("pidfd kept until the exit is collected");
    assert!(wait_readable(fd, Duration::ZERO));
    assert_eq!(p.try_collect_exit(), Some(ExitKind::Exited(3)));
}

#[test]
fn adopt_non_child_and_see_it_exit() {
    // Double fork: `sh` (its own group) starts `sleep` in the background and exits, so
    // `sleep` is reparented to init and is not our child.
    let mut starter = Command::new("/bin/sh");
    starter
        .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let out = starter.output().unwrap();
    assert!(out.status.success());
    let pid: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = read_stat(pid).unwrap();
    let record = PidRecord {
        pid,
        pgid: stat.pgid,
        start_ticks: stat.start_ticks,
        boot_id: boot_id(),
    };

    let wrong = PidRecord {
        start_ticks: record.start_ticks + 1,
        ..record
    };
    let refused = Supervised::adopt(&wrong);
    let adopted = Supervised::adopt(&record);
    let Ok(Some(mut adopted)) = adopted else {
        kill_pid(pid);
        panic!("adopt of a live process failed: {adopted:?}");
    };
    assert!(
        matches!(refused, Ok(None)),
        "other start time => other process"
    );
    assert!(!adopted.is_child());
    assert_eq!(adopted.record(), record);
    assert_eq!(adopted.try_collect_exit(), None);
    assert!(adopted.group_alive());

    adopted.signal_group(GroupSignal::Kill).unwrap();
    assert_eq!(
        wait_exit(&mut adopted, Duration::from_secs(5)),
        ExitKind::Unknown
    );
    assert!(eventually(Duration::from_secs(5), || !adopted.group_alive()));
    // And once fully gone, the record adopts nothing.
    assert!(eventually(Duration::from_secs(5), || matches!(
        Supervised::adopt(&record),
        Ok(None)
    )));
}

#[test]
fn adopt_of_own_child_record_by_second_supervised() {
    let mut child = Supervised::spawn(&sh("exec sleep 30")).unwrap();
    let mut adopted = Supervised::adopt(&child.record()).unwrap().unwrap();
    assert!(!adopted.is_child());
    assert_eq!(adopted.pid(), child.pid());
    adopted.signal_group(GroupSignal::Kill).unwrap();
    // The parent sees the real status, the adopter only that it is gone (a zombie is gone).
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(5)),
        ExitKind::Signaled(9)
    );
    assert_eq!(
        wait_exit(&mut adopted, Duration::from_secs(5)),
        ExitKind::Unknown
    );
}

#[test]
fn adopt_refuses_dead_pid_and_own_group_signal() {
    let mut p = Supervised::spawn(&sh("exit 0")).unwrap();
    let record = p.record();
    wait_exit(&mut p, Duration::from_secs(5));
    // Reaped: the pid is free (or reused by a process with another start time).
    assert!(matches!(Supervised::adopt(&record), Ok(None)));

    // A process in bbwd's own group must never get a group signal.
    let mut same_group = Command::new("/bin/sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = same_group.id() as i32;
    let stat = read_stat(pid).unwrap();
    let adopted = Supervised::adopt(&PidRecord {
        pid,
        pgid: stat.pgid,
        start_ticks: stat.start_ticks,
        boot_id: None,
    })
    .unwrap()
    .unwrap();
    let refused = adopted.signal_group(GroupSignal::Term);
    same_group.kill().unwrap();
    same_group.wait().unwrap();
    assert!(matches!(refused, Err(Error::Signal(_))));
}

#[test]
fn capture_lines_and_a_long_line_in_pieces() {
    let long = OUTPUT_BUF_BYTES * 2 + 100;
    let mut p = Supervised::spawn(&captured(&format!(
        "echo hello; echo world >&2; head -c {long} /dev/zero | tr '\\0' a; echo; printf tail"
    )))
    .unwrap();
    let lines = drain_all(&mut p, Duration::from_secs(10));
    assert_eq!(lines[0], b"hello");
    assert_eq!(lines[1], b"world", "stderr goes to the same pipe");
    assert_eq!(lines[2].len(), OUTPUT_BUF_BYTES);
    assert_eq!(lines[3].len(), OUTPUT_BUF_BYTES);
    assert_eq!(lines[4].len(), 100);
    assert!(lines[2..5].iter().flatten().all(|&b| b == b'a'));
    assert_eq!(lines[5], b"tail", "unfinished last line is passed at EOF");
    assert_eq!(lines.len(), 6);
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Exited(0)
    );
    assert!(!p.drain_output(&mut |_| panic!("no output after EOF")));
}

#[test]
fn child_never_holds_the_read_end() {
    let mut p = Supervised::spawn(&captured("exec sleep 30")).unwrap();
    let ours = nix::sys::stat::fstat(p.output_fd().unwrap()).unwrap();
    let link = format!("pipe:[{}]", ours.st_ino);
    let mut write_ends = 0;
    for entry in std::fs::read_dir(format!("/proc/{}/fd", p.pid())).unwrap() {
        let entry = entry.unwrap();
        if std::fs::read_link(entry.path()).unwrap().to_str() != Some(&link) {
            continue;
        }
        let fd = entry.file_name().into_string().unwrap();
        let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", p.pid())).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(
            flags & libc::O_ACCMODE as u32,
            libc::O_WRONLY as u32,
            "fd {fd} of the child is the read end"
        );
        write_ends += 1;
    }
    p.signal_group(GroupSignal::Kill).unwrap();
    wait_exit(&mut p, Duration::from_secs(5));
    assert_eq!(write_ends, 2, "stdout and stderr");
    // Our read end is non-blocking and close-on-exec.
    let fd = p.output_fd().unwrap();
    let fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap());
    assert!(fl.contains(OFlag::O_NONBLOCK));
    let fdfl = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
    assert!(fdfl.contains(FdFlag::FD_CLOEXEC));
}

#[test]
fn one_mib_of_output_never_blocks_the_child() {
    const TOTAL: usize = 1 << 20;
    let mut p = Supervised::spawn(&captured(&format!("head -c {TOTAL} /dev/zero"))).unwrap();
    let mut bytes = 0;
    let end = Instant::now() + Duration::from_secs(30);
    while let Some(fd) = p.output_fd() {
        assert!(wait_readable(fd, Duration::from_secs(5)), "writer stalled");
        let started = Instant::now();
        let open = p.drain_output(&mut |l| bytes += l.len());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "drain_output took too long"
        );
        if !open {
            break;
        }
        assert!(Instant::now() < end, "1 MiB not drained in time");
    }
    assert_eq!(bytes, TOTAL);
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Exited(0)
    );
}

#[test]
fn output_dup_and_attach_output_keep_reading() {
    let tmp = TempDir::new("attach");
    let go = tmp.join("go");
    let mut p = Supervised::spawn(&captured(&format!(
        "echo before; while [ ! -e {} ]; do sleep 0.01; done; echo after",
        go.display()
    )))
    .unwrap();
    let mut lines = Vec::new();
    assert!(wait_readable(
        p.output_fd().unwrap(),
        Duration::from_secs(5)
    ));
    assert!(p.drain_output(&mut |l| lines.push(l.to_vec())));
    let dup = p.output_dup().unwrap();
    // A "restarted bbwd": adopt the process and attach the kept pipe.
    let mut adopted = Supervised::adopt(&p.record()).unwrap().unwrap();
    assert!(adopted.output_fd().is_none());
    adopted.attach_output(dup);
    drop(p.output.take());
    std::fs::write(&go, b"").unwrap();
    lines.extend(drain_all(&mut adopted, Duration::from_secs(10)));
    assert_eq!(lines, [b"before".to_vec(), b"after".to_vec()]);
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Exited(0)
    );
}

#[test]
fn run_as_sets_ids_groups_and_env() {
    // Runs as root here (switches to `nobody`); as another user, runs as that user.
    let name = if nix::unistd::geteuid().is_root() {
        "nobody".to_string()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name
    };
    let user = RunAs::lookup(&name).unwrap();
    let mut spec = captured(
        "grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo \"$HOME $USER $LOGNAME $EXTRA\"",
    );
    spec.user = Some(user.clone());
    spec.env = vec![("EXTRA".into(), "x y".into())];
    let mut p = Supervised::spawn(&spec).unwrap();
    let lines: Vec<String> = drain_all(&mut p, Duration::from_secs(10))
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect();
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(5)),
        ExitKind::Exited(0)
    );
    let ids = |l: &str| -> Vec<u32> {
        l.split_ascii_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    assert_eq!(ids(&lines[0]), [user.uid; 4]);
    assert_eq!(ids(&lines[1]), [user.gid; 4]);
    let mut groups = ids(&lines[2]);
    groups.sort_unstable();
    let mut want = user.groups.clone();
    want.sort_unstable();
    want.dedup();
    assert_eq!(groups, want, "supplementary groups of the user, not ours");
    assert_eq!(
        lines[3],
        format!("{} {name} {name} x y", user.home.display())
    );
}

#[test]
fn unknown_user_is_named() {
    let err = RunAs::lookup("bbwd-no-such-user-x").unwrap_err();
    assert!(matches!(&err, Error::UnknownUser(u) if u == "bbwd-no-such-user-x"));
    assert!(err.to_string().contains("bbwd-no-such-user-x"));
}

/// Regression: a crashed adopted Bitbucket stays a zombie until init reaps it, and
/// `kill(-pgid, 0)` still finds it: bbwd took that for a group surviving SIGKILL.
#[test]
fn a_group_whose_only_member_is_a_zombie_is_gone() {
    let dir = TempDir::new("zombie");
    let f = dir.join("zpid");
    // `sleep 0.05` gets its own group (setsid) and dies; its parent then execs `sleep 30`,
    // which never reaps it: a zombie alone in its group.
    let script = format!(
        "setsid sleep 0.05 & echo $! > {}; exec sleep 30",
        f.display()
    );
    let mut p = Supervised::spawn(&sh(&script)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let zpid: i32 = loop {
        if let Ok(t) = std::fs::read_to_string(&f) {
            if let Ok(z) = t.trim().parse() {
                if read_stat(z).map(|s| s.state == b'Z').unwrap_or(false) {
                    break z;
                }
            }
        }
        assert!(Instant::now() < deadline, "no zombie appeared");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        kill(Pid::from_raw(-zpid), None).is_ok(),
        "kill(2) still sees the zombie's group"
    );
    assert!(!group_has_live_member(zpid));
    assert!(
        group_has_live_member(p.pid()),
        "the live leader's group is alive"
    );
    p.signal_group(GroupSignal::Kill).unwrap();
    wait_exit(&mut p, Duration::from_secs(10));
}

#[test]
fn parse_stat_with_hostile_comm() {
    let line = b"4242 (a) b (c) d) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n";
    assert_eq!(
        parse_stat(line),
        Some(ProcStat {
            state: b'S',
            pgid: 4240,
            start_ticks: 987654
        })
    );
    assert_eq!(parse_stat(b"4242 (x) S 1 2"), None);
    assert_eq!(parse_stat(b"garbage"), None);
    assert_eq!(parse_stat(b""), None);
    // Our own stat parses, and the start time is stable.
    let me = std::process::id() as i32;
    assert_eq!(read_stat(me).unwrap(), read_stat(me).unwrap());
    assert_eq!(read_stat(me).unwrap().pgid, nix::unistd::getpgrp().as_raw());
}

#[test]
fn pidfile_round_trip_and_missing() {
    let tmp = TempDir::new("pidfile");
    let path = tmp.join("bitbucket.pid");
    assert!(read_pidfile(&path).unwrap().is_none());
    let record = PidRecord {
        pid: 1234,
        pgid: 1234,
        start_ticks: 98_765_432_100,
        boot_id: Some(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
    };
    write_pidfile(&path, &record).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "1234 1234 98765432100 0123456789abcdef0011223344556677\n"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(read_pidfile(&path).unwrap(), Some(record));
    let newer = PidRecord { pid: 99, ..record };
    write_pidfile(&path, &newer).unwrap();
    assert_eq!(read_pidfile(&path).unwrap(), Some(newer));
    assert!(
        !temp_path(&path).unwrap().exists(),
        "temp file renamed away"
    );
    remove_pidfile(&path).unwrap();
    remove_pidfile(&path).unwrap();
    assert!(read_pidfile(&path).unwrap().is_none());
}

#[test]
fn corrupt_pidfile_names_the_path() {
    let tmp = TempDir::new("pidcorrupt");
    let path = tmp.join("bitbucket.pid");
    for bad in [
        &b""[..],
        b"1234\n",
        b"1234 1234\n",
        b"1234 1234 12 13\n",
        b"1234 1234 12 13 14\n",
        b"abc 1234 12\n",
        b"1234 1234 -5\n",
        b"0 0 12\n",
        b"1 1 12\n",
        b"\xff\xfe 1 2\n",
        &[b'1'; 200],
    ] {
        std::fs::write(&path, bad).unwrap();
        match read_pidfile(&path) {
            Err(Error::PidFileCorrupt { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?} => {other:?}"),
        }
        let msg = read_pidfile(&path).unwrap_err().to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    }
    // Unreadable path (a directory) is an I/O error naming it.
    assert!(matches!(
        read_pidfile(tmp.path()),
        Err(Error::PidFile { .. })
    ));
    assert!(matches!(
        write_pidfile(
            &tmp.join("no/such/dir/x.pid"),
            &PidRecord {
                pid: 2,
                pgid: 2,
                start_ticks: 1,
                boot_id: None,
            }
        ),
        Err(Error::PidFile { .. })
    ));
}

#[test]
fn spawn_detached_makes_a_session_leader_writing_to_a_file() {
    let tmp = TempDir::new("detached");
    let out = tmp.join("out");
    std::fs::write(&out, b"earlier\n").unwrap();
    // Prints its session and group ids (fields 6 and 5 of /proc/self/stat: `ps` may be
    // missing), then exits once told to.
    let go = tmp.join("go");
    let script = format!(
        "read -r _ _ _ _ pgrp sid _ < /proc/self/stat; echo \"$pgrp $sid $$\"; echo err >&2; \
         while [ ! -e {} ]; do sleep 0.01; done",
        go.display()
    );
    let mut p = Supervised::spawn_detached(&sh(&script), &out).unwrap();
    assert!(p.is_child());
    assert_eq!(p.record().pgid, p.pid(), "leader of its own group");
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&out).unwrap().lines().count() == 3
    }));
    let age = started_ago(&p.record()).expect("start time readable");
    assert!(age < Duration::from_secs(3600), "{age:?}");
    std::fs::write(&go, b"").unwrap();
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(10)),
        ExitKind::Exited(0)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "earlier", "appended, not truncated");
    let ids: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(ids[0], ids[2], "pgid = pid");
    assert_eq!(ids[1], ids[2], "sid = pid: a new session");
    assert_eq!(lines[2], "err", "stderr to the same file");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "an existing file keeps its mode");
    assert!(
        !stale_group_alive(&p.record()),
        "leader reaped, group empty"
    );
}

#[test]
fn stale_group_alive_sees_members_left_by_a_dead_leader() {
    let tmp = TempDir::new("stale");
    let f = tmp.join("member");
    // The leader starts a member in its group and exits; the member lives on.
    let script = format!("sleep 30 & echo $! > {}; exit 0", f.display());
    let mut p = Supervised::spawn(&sh(&script)).unwrap();
    assert_eq!(
        wait_exit(&mut p, Duration::from_secs(10)),
        ExitKind::Exited(0)
    );
    let record = p.record();
    assert!(stale_group_alive(&record));
    assert!(kill_stale_group(&record));
    assert!(eventually(Duration::from_secs(10), || !stale_group_alive(
        &record
    )));
    let member: i32 = std::fs::read_to_string(&f).unwrap().trim().parse().unwrap();
    assert!(eventually(Duration::from_secs(10), || read_stat(member)
        .map(|s| matches!(s.state, b'Z' | b'X'))
        .unwrap_or(true)));
}

/// A group of the test's own whose leader is gone: `sh` starts a `sleep` and exits.
fn orphan_group() -> (i32, i32) {
    let out = Command::new("/bin/sh")
        .args(["-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $$ $!"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|w| w.parse::<i32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn stale_pid_file_never_kills_an_unrelated_group_whose_number_matches() {
    let (pgid, member) = orphan_group();
    let member_start = read_stat(member).unwrap().start_ticks;
    let unrelated = [
        // Written before a reboot: another boot id.
        PidRecord {
            pid: pgid,
            pgid,
            start_ticks: 1,
            boot_id: Some(boot_id().unwrap() ^ 1),
        },
        // An older bbwd's record: no boot id, no proof.
        PidRecord {
            pid: pgid,
            pgid,
            start_ticks: 1,
            boot_id: None,
        },
        // This boot, but the member is older than the recorded leader: the number was
        // handed out again after our group was gone.
        PidRecord {
            pid: pgid,
            pgid,
            start_ticks: member_start + 1,
            boot_id: boot_id(),
        },
    ];
    for record in unrelated {
        assert!(!stale_group_alive(&record), "{record:?}");
        assert!(!kill_stale_group(&record), "{record:?}");
        assert!(
            read_stat(member).is_ok_and(|s| s.state != b'Z'),
            "member killed on {record:?}"
        );
        assert!(matches!(Supervised::adopt(&record), Ok(None)));
    }
    // The provable one: this boot, leader no older than the member.
    let ours = PidRecord {
        pid: pgid,
        pgid,
        start_ticks: member_start,
        boot_id: boot_id(),
    };
    assert_eq!(stale_members(&ours), Some(vec![member]));
    assert!(kill_stale_group(&ours));
    assert!(eventually(Duration::from_secs(10), || !stale_group_alive(
        &ours
    )));
}
