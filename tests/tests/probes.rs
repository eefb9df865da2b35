//! The adversarial probe suite: hostile children, filesystems, callers and signals against the
//! real `bbwd run` on one node. Each test is named after the defect it found (the single-node
//! hardening issue) or after what it proves, and asserts the outcome and that the loop kept its
//! pace (the gaps between `WATCHDOG=1` stay within 2x the interval: [`assert_pace`]); only the
//! probes in which no daemon loop runs (`bbwd run` refusing to start, `check-config`) have no
//! pace to assert.
//!
//! Hostile `/status` servers are modes of the simulator (`/_sim/hostile`), so that bbwd's
//! correction ends them as it would end a misbehaving Bitbucket: a server that is not the
//! supervised process would make bbwd refuse to start a second Bitbucket beside it.
//!
//! Root-only probes (mounts, another uid) run under `CI=true`, where missing root fails them;
//! elsewhere they say SKIPPED. Every process a test starts is ended by PID; mounts are undone
//! on drop.
//!
//! Needs `cargo build --workspace` first (the harness runs `target/<profile>/bbwd`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bbwd_tests::*;

const WAIT: Duration = Duration::from_secs(20);

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn pid_of(status: &Value) -> Option<u32> {
    status["bitbucket"]["pid"].as_u64().map(|p| p as u32)
}

/// Root is there, or the test fails saying what needs it (tests that call this are
/// `#[ignore = "needs root: ..."]`; `scripts/test.sh` runs them with `--include-ignored`).
fn root(what: &str) -> bool {
    bbwd_testkit::require_root(what);
    true
}

/// A tmpfs of the test's own at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, opts: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "bbwd-probe"])
            .arg(path)
            .output()
            .expect("mount(8)");
        assert!(out.status.success(), "mount: {}", output_text(&out));
        Tmpfs(path.to_path_buf())
    }
    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", output_text(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Collects `WATCHDOG=1` times from a notify socket in the test's directory.
struct Notify {
    path: PathBuf,
    times: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Notify {
    fn bind(sc: &Scenario) -> Notify {
        let path = sc.dir.join("notify.sock");
        // A collector of an earlier daemon in the same test may have left its socket.
        let _ = fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let times = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (times, stop) = (times.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        if buf[..n].split(|b| *b == b'\n').any(|l| l == b"WATCHDOG=1") {
                            times.lock().unwrap().push(Instant::now());
                        }
                    }
                }
            })
        };
        Notify {
            path,
            times,
            stop,
            thread: Some(thread),
        }
    }

    /// The largest gap between keep-alives within [from, to] (the window's ends count).
    fn worst_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut t: Vec<Instant> = self
            .times
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|t| *t >= from && *t <= to)
            .collect();
        t.insert(0, from);
        t.push(to);
        t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// `WATCHDOG_USEC` the pace probes run with, and the gap they accept (2x the interval systemd
/// expects: keep-alives go every half of it).
const WATCHDOG_USEC: &str = "600000";
const MAX_GAP: Duration = Duration::from_millis(600);

/// Starts the daemon with the notify socket and the watchdog interval.
fn start_paced<'a>(sc: &'a Scenario, n: &Notify) -> Daemon<'a> {
    let socket = n.path.display().to_string();
    Daemon::start_with_env(
        sc,
        &[
            ("NOTIFY_SOCKET", socket.as_str()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
        ],
    )
}

/// Asserts that the loop kept its pace from `from` to now: no gap between `WATCHDOG=1` (the
/// window's ends included) longer than [`MAX_GAP`].
fn assert_pace(sc: &Scenario, n: &Notify, from: Instant, what: &str) {
    let gap = n.worst_gap(from, Instant::now());
    assert!(
        gap <= MAX_GAP,
        "{what}: a {gap:?} gap between WATCHDOG=1 (at most {MAX_GAP:?})\n{}",
        sc.diagnostics()
    );
}

/// The event log as (kind, detail), in order.
fn event_log(sc: &Scenario) -> Vec<(String, String)> {
    let text = fs::read_to_string(sc.state_dir().join("events.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("torn or odd event-log line {l:?}: {e}"));
            (
                v["kind"].as_str().unwrap_or("").to_string(),
                v["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn event_log_kinds(sc: &Scenario) -> Vec<String> {
    let text = fs::read_to_string(sc.state_dir().join("events.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("torn or odd event-log line {l:?}: {e}"));
            v["kind"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Never two Bitbuckets

/// Point 1: an unwritable state_dir let bbwd start Bitbucket without a pid file.
#[test]
#[ignore = "needs root: a read-only tmpfs"]
fn unwritable_state_dir_refuses_to_start_bitbucket() {
    if !root("a read-only tmpfs") {
        return;
    }
    let sc = Scenario::new("probe_rostate");
    let fsys = Tmpfs::mount(&sc.state_dir(), "size=1m,mode=0750");
    fsys.remount("ro");
    // Exit 2, as check-config's below: run and check-config run the same host checks.
    let out = sc.bbwd(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("not writable"),
        "{}",
        output_text(&out)
    );
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("node.state_dir"));
    assert!(sc.sim_starts().is_empty(), "nothing was started");
}

/// Point 2: two daemons with one state_dir and two sockets both adopted the same Bitbucket.
#[test]
fn no_lock_on_state_dir_a_second_daemon_on_another_socket_is_refused() {
    let sc = Scenario::new("probe_lock");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    let other = sc.config_text().replace(
        &format!("{}/control.sock", sc.dir.path().display()),
        &format!("{}/other.sock", sc.dir.path().display()),
    );
    let other_path = sc.dir.join("other.toml");
    fs::write(&other_path, other).unwrap();
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["run", "-c"]).arg(&other_path);
    let out = run_bounded(cmd, CLI_TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(output_text(&out).contains("already running"));
    assert_eq!(sc.sim_starts(), vec![pid_of(&st).unwrap()]);
    assert_pace(&sc, &n, from, "a second daemon refused");
    d.stop();
    sc.assert_never_two_sims();
}

/// Writes `sc`'s config with `bitbucket.command` run through `/bin/sh -c SHELL sh <simulator
/// command...>` (`"$@"` in SHELL is the simulator's command line): a start script that forks,
/// daemonizes or wraps Bitbucket.
fn wrap_command(sc: &Scenario, shell: &str) {
    let quoted = |argv: &[String]| {
        argv.iter()
            .map(|a| toml_str(a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        shell.to_string(),
        "sh".to_string(),
    ];
    argv.extend(sc.sim_command());
    let text = sc.config_text().replace(
        &format!("command = [{}]", quoted(&sc.sim_command())),
        &format!("command = [{}]", quoted(&argv)),
    );
    sc.write_config_text(&text);
}

/// Point 3: a child that left the process group (setsid) still answered /status after "stopped",
/// and the next bbwd started a second copy.
#[test]
fn a_child_that_escapes_the_process_group_is_never_started_twice() {
    let sc = Scenario::new("probe_setsid");
    wrap_command(&sc, "setsid \"$@\" & wait");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let exit = d.stop();
    // Running, then the stop (SIGTERM, the check that finds the escaped copy), at pace.
    assert_pace(
        &sc,
        &n,
        from,
        "running, then stopping with an escaped child",
    );
    drop(n);
    assert_eq!(exit.code(), Some(0));
    let escaped = sc.sims_alive();
    assert_eq!(escaped.len(), 1, "the escaped copy still runs");
    let kinds = event_log_kinds(&sc);
    assert!(kinds.iter().any(|k| k == "escaped"), "{kinds:?}");
    assert!(
        !kinds.iter().rev().take(1).any(|k| k == "stopped"),
        "no false 'stopped': {kinds:?}"
    );
    // The next bbwd must not start a second one.
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "failed");
    let from = Instant::now();
    assert_eq!(st["failed"], "already_serving", "{st:#}");
    assert!(find_event(&st, "start_refused").is_some(), "{st:#}");
    std::thread::sleep(Duration::from_secs(1));
    assert_pace(&sc, &n, from, "failed: already serving");
    d.stop();
    sc.assert_never_two_sims();
    for pid in escaped {
        // SAFETY: kill(2) on the escaped simulator this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

// ---------------------------------------------------------------------------------------------
// Never kill what is not ours

/// An unrelated process group of the test's own whose leader is gone: (pgid, member pid).
fn unrelated_group() -> (i32, u32) {
    let out = Command::new("/bin/sh")
        .args(["-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $$ $!"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

/// Point 5: a pid file from before a reboot made bbwd (run, ocf start/stop) SIGKILL an
/// unrelated process group whose number matched.
#[test]
fn stale_pid_file_from_another_boot_never_kills_an_unrelated_group() {
    let sc = Scenario::new("probe_stalepid");
    fs::create_dir_all(sc.state_dir()).unwrap();
    let (pgid, member) = unrelated_group();
    let stale = format!("{pgid} {pgid} 1 0123456789abcdef0123456789abcdef\n");
    fs::write(sc.state_dir().join("bitbucket.pid"), &stale).unwrap();
    let n = Notify::bind(&sc);
    let from = Instant::now();
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    assert!(pid_alive(member), "bbwd run killed an unrelated group");
    // From start-up on (the stale record is judged there) plus a second of running.
    std::thread::sleep(Duration::from_secs(1));
    assert_pace(
        &sc,
        &n,
        from + Duration::from_millis(300),
        "a stale pid file",
    );
    d.stop();
    // The OCF agent: stop and start with a stale record.
    fs::write(sc.state_dir().join("ocf-bitbucket.pid"), &stale).unwrap();
    let out = sc.bbwd(&["ocf", "stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(pid_alive(member), "ocf stop killed an unrelated group");
    // An old-format record (no boot id) proves nothing either.
    fs::write(
        sc.state_dir().join("ocf-bitbucket.pid"),
        format!("{pgid} {pgid} 1\n"),
    )
    .unwrap();
    let out = sc.bbwd(&["ocf", "stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(pid_alive(member), "ocf stop killed an unrelated group");
    // SAFETY: kill(2) on the sleep this test started.
    unsafe { libc::kill(member as i32, libc::SIGKILL) };
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// Never a stalled loop

/// Point 7: with a stalled reader of bbwd's stderr and a Bitbucket flooding its output, blocking
/// log writes froze the loop (no WATCHDOG=1, status timed out, a healthy Bitbucket stopped).
/// Also the measurement for BENCHMARKS.md (largest keep-alive gap, bytes dropped).
#[test]
fn blocking_writes_to_stderr_stall_the_main_loop_no_more() {
    let sc = Scenario::new("probe_stderr");
    // The leader floods stdout; the simulator serves /status beside it.
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        "\"$@\" & exec yes 'flood: a line of Bitbucket output that nobody reads, 80 bytes long...'"
            .to_string(),
        "sh".to_string(),
    ];
    argv.extend(sc.sim_command());
    let command: Vec<String> = argv.iter().map(|a| toml_str(a)).collect();
    let mut text = String::new();
    for line in sc.config_text().lines() {
        if line.starts_with("command = [") && !text.contains("[notify]") {
            text.push_str(&format!("command = [{}]\n", command.join(", ")));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    sc.write_config_text(&text);
    let n = Notify::bind(&sc);
    // bbwd's stderr: a pipe nobody reads.
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: both fds are new and owned by nothing else.
    let (read_end, write_end) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let mut cmd = Command::new(bbwd_bin());
    cmd.arg("run")
        .arg("-c")
        .arg(sc.config_path())
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &n.path)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write_end));
    let mut child = cmd.spawn().unwrap();
    let from = Instant::now();
    let mut st = Value::Null;
    wait_until(WAIT, "running under a flood", || {
        st = sc.status_json().1;
        st["state"] == "running"
    });
    std::thread::sleep(Duration::from_secs(4));
    let (code, st2) = sc.status_json();
    let to = Instant::now();
    let gap = n.worst_gap(from + Duration::from_millis(500), to);
    let dropped = st2["loop"]["log_dropped_bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "MEASURE stalled-stderr flood: largest WATCHDOG=1 gap {gap:?} (interval {} ms), \
         {} lines / {dropped} bytes dropped, pass_max {} ms, late_max {} ms",
        WATCHDOG_USEC.parse::<u64>().unwrap() / 2000,
        st2["loop"]["log_dropped_lines"],
        st2["loop"]["pass_max_ms"],
        st2["loop"]["late_max_ms"]
    );
    // SAFETY: SIGTERM to the bbwd this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exited = wait_child(&mut child, Duration::from_secs(15));
    drop(read_end);
    assert_eq!(code, 0, "{st2:#}");
    assert_eq!(
        st2["restarts"], 0,
        "a healthy Bitbucket was not touched: {st2:#}"
    );
    assert!(dropped > 0, "the flood cost counted bytes: {st2:#}");
    assert!(
        gap <= MAX_GAP,
        "keep-alive gap {gap:?} under a stalled stderr"
    );
    assert!(exited, "bbwd exits on SIGTERM even with a stalled stderr");
    sc.assert_never_two_sims();
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: SIGKILL to the bbwd this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    false
}

/// Point 8: SIGUSR1 / SIGUSR2 (and the other fatal-by-default signals) killed bbwd silently.
#[test]
fn sigusr1_and_sigusr2_kill_bbwd_no_more() {
    let sc = Scenario::new("probe_signals");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    for sig in [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGRTMIN() + 2,
        libc::SIGRTMAX(),
    ] {
        d.signal(sig);
        std::thread::sleep(Duration::from_millis(100));
        assert!(d.try_exit_status().is_none(), "bbwd died of signal {sig}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, after) = sc.status_json();
    assert_eq!(code, 0);
    assert_eq!(pid_of(&after), pid_of(&st), "Bitbucket untouched");
    assert!(n.worst_gap(from, Instant::now()) <= MAX_GAP);
    let log = fs::read_to_string(sc.bbwd_log()).unwrap();
    assert!(log.contains("received and ignored"), "said so in the log");
    let exit = d.stop();
    assert_eq!(exit.code(), Some(0));
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// Never a false page, never a false "done"

/// Point 10: on a full disk `maintenance on` answered done while the flag was not saved, and the
/// event log got a torn JSON line.
#[test]
#[ignore = "needs root: a small tmpfs"]
fn disk_full_maintenance_on_is_not_a_false_done_and_the_event_log_is_not_torn() {
    if !root("a small tmpfs") {
        return;
    }
    let sc = Scenario::new("probe_diskfull");
    let _fsys = Tmpfs::mount(&sc.state_dir(), "size=256k,mode=0750");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    // Fill it up (the filler is written until ENOSPC).
    let filler = sc.state_dir().join("filler");
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        let chunk = [b'x'; 997];
        while f.write_all(&chunk).is_ok() {}
    }
    let out = sc.bbwd(&["maintenance", "on", "--reason", "upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("NOT saved"),
        "{}",
        output_text(&out)
    );
    // More events on the full disk: whole lines or none.
    sim_admin(sc.port, "/_sim/status?code=500&state=ERROR");
    std::thread::sleep(Duration::from_millis(600));
    sim_admin(sc.port, "/_sim/reset");
    let _ = event_log_kinds(&sc); // panics on a torn line
    fs::remove_file(&filler).unwrap();
    let out = sc.bbwd(&["maintenance", "on", "--reason", "upgrade"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(sc.state_dir().join("maintenance").exists());
    let _ = event_log_kinds(&sc);
    assert_pace(&sc, &n, from, "a full state_dir");
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 11: a corrupt `failed` file was dropped silently and Bitbucket started.
#[test]
fn a_corrupt_failed_file_stays_failed_and_starts_nothing() {
    let sc = Scenario::new("probe_corrupt");
    fs::create_dir_all(sc.state_dir()).unwrap();
    fs::write(sc.state_dir().join("failed"), b"\xff\x00garbage").unwrap();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "failed");
    let from = Instant::now();
    assert_eq!(st["failed"], "unreadable_state", "{st:#}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(sc.sim_starts().is_empty(), "nothing started");
    let out = sc.bbwd(&["reset"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    d.wait_state(WAIT, "running");
    assert_pace(&sc, &n, from, "failed on a corrupt file, then reset");
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 12: re-adopted in the middle of a start, status said "running ... 503 STARTING", OK.
#[test]
fn readopted_in_the_middle_of_a_start_status_is_starting_warning() {
    let sc = Scenario::new("probe_readopt")
        .sim_args(&["--starting-for", "30s"])
        .duration("startup_timeout", "60s");
    let mut d = Daemon::start(&sc);
    d.wait_for(WAIT, "a STARTING reply", |s| {
        s["bitbucket"]["state"] == "STARTING"
    });
    d.kill9();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_for(WAIT, "the adopted process checked", |s| {
        s["bitbucket"]["state"] == "STARTING" && find_event(s, "adopted").is_some()
    });
    let from = Instant::now();
    let (code, st2) = sc.status_json();
    assert_eq!(st2["state"], "starting", "{st:#}");
    assert_eq!(code, 1, "WARNING while starting");
    std::thread::sleep(Duration::from_secs(1));
    assert_pace(&sc, &n, from, "re-adopted while starting");
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 14: any output line quoting java.lang.OutOfMemoryError triggered an OOME restart.
#[test]
fn a_line_merely_quoting_outofmemoryerror_is_counted_not_restarted() {
    let sc = Scenario::new("probe_oomequote");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    sim_admin(
        sc.port,
        "/_sim/say?text=login+failed+for+user+%27java.lang.OutOfMemoryError%27",
    );
    let st2 = d.wait_for(WAIT, "the mention counted", |s| {
        s["loop"]["oome_mentions"] == 1
    });
    std::thread::sleep(Duration::from_millis(600));
    let (_, st3) = sc.status_json();
    assert_eq!(st3["restarts"], 0, "{st2:#}");
    assert_eq!(pid_of(&st3), pid_of(&st));
    assert!(find_event(&st3, "oome").is_none(), "{st3:#}");
    assert_pace(&sc, &n, from, "an output line quoting an OOME");
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 9: `bbwd status` as a monitoring user said "daemon DOWN", CRITICAL; busy slots too.
#[test]
#[ignore = "needs root: running status as nobody"]
fn status_as_non_root_is_unknown_naming_permission_and_status_group_grants_it() {
    if !root("running status as nobody") {
        return;
    }
    let sc = Scenario::new("probe_nonroot");
    fs::set_permissions(sc.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new(bbwd_bin());
        cmd.args(args)
            .arg("-c")
            .arg(sc.config_path())
            .uid(65534)
            .gid(65534);
        run_bounded(cmd, CLI_TIMEOUT)
    };
    let out = as_nobody(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("UNKNOWN") && text.contains("permission"),
        "{text}"
    );
    assert!(!text.contains("DOWN"), "{text}");
    assert_pace(&sc, &n, from, "status as nobody");
    d.stop();
    drop(n);

    // With [node] status_group = "nogroup": status works, mutations stay root's.
    let text = sc
        .config_text()
        .replace("[node]\n", "[node]\nstatus_group = \"nogroup\"\n");
    sc.write_config_text(&text);
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    let out = as_nobody(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = as_nobody(&["maintenance", "on"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(output_text(&out).contains("permission denied"));
    assert_eq!(sc.status_json().1["state"], "running");

    // Busy control slots are UNKNOWN, not DOWN.
    let held: Vec<_> = (0..8)
        .map(|_| std::os::unix::net::UnixStream::connect(sc.control_socket()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let out = sc.bbwd(&["status"]);
    // Every control slot held by a silent client: the loop keeps its pace all the same.
    assert_pace(&sc, &n, from, "control slots exhausted");
    drop(held);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(output_text(&out).contains("busy"), "{}", output_text(&out));
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 15: check-config said valid for a missing user and a missing program.
#[test]
fn check_config_refuses_a_missing_user_and_program_as_run_does() {
    let sc = Scenario::new("probe_checkcfg");
    let text = sc.config_text().replace(
        "[bitbucket]\n",
        "[bitbucket]\nuser = \"no-such-user-bbwd\"\n",
    );
    let text = text.replacen(
        &toml_str(&bbsim_bin().display().to_string()),
        "\"/nonexistent/start-bitbucket.sh\"",
        1,
    );
    sc.write_config_text(&text);
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let t = output_text(&out);
    assert!(
        t.contains("bitbucket.user") && t.contains("bitbucket.command"),
        "{t}"
    );
    let out = sc.bbwd(&["ocf", "validate-all"]);
    assert_eq!(out.status.code(), Some(5), "{}", output_text(&out));
}

/// Point 16: small ones: `status --json` on a bad config printed text; config errors lacked a
/// newline; `maintenance on` without a reason overwrote the reason.
#[test]
fn small_cli_defects_json_on_bad_config_newlines_and_kept_reason() {
    let sc = Scenario::new("probe_small");
    sc.write_config_text("[node]\nbogus = 1\n");
    let out = sc.bbwd(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on a bad config");
    assert_eq!(v["daemon"], "unknown");
    for args in [&["maintenance", "on"][..], &["reset"], &["status"]] {
        let out = sc.bbwd(args);
        assert!(
            out.stderr.ends_with(b"\n"),
            "{args:?}: {}",
            output_text(&out)
        );
    }
    sc.write_config();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    let out = sc.bbwd(&["maintenance", "on", "--reason", "upgrade to 9.4"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = sc.bbwd(&["maintenance", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let (_, st) = sc.status_json();
    assert_eq!(st["maintenance"]["reason"], "upgrade to 9.4", "{st:#}");
    assert_pace(&sc, &n, from, "maintenance on, twice");
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 4: `ocf monitor` said 7 (not running) while bbwd's own daemon ran Bitbucket here, and
/// concurrent `ocf start`s started several processes.
#[test]
fn ocf_monitor_sees_the_daemons_bitbucket_and_concurrent_starts_start_one() {
    let sc = Scenario::new("probe_ocf");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    let out = sc.bbwd(&["ocf", "monitor"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("bbwd's daemon"),
        "{}",
        output_text(&out)
    );
    assert_pace(&sc, &n, from, "ocf monitor beside the daemon");
    d.stop();
    assert!(sc.sims_alive().is_empty());
    let out = sc.bbwd(&["ocf", "monitor"]);
    assert_eq!(out.status.code(), Some(7), "{}", output_text(&out));

    // Five starts at once: one Bitbucket.
    let config = sc.config_path();
    let starts: Vec<_> = (0..5)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut cmd = Command::new(bbwd_bin());
                cmd.args(["ocf", "start", "-c"])
                    .arg(&config)
                    .env("OCF_RESKEY_CRM_meta_timeout", "20000");
                run_bounded(cmd, Duration::from_secs(30))
            })
        })
        .collect();
    let outs: Vec<_> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", output_text(out));
    }
    let all_starts = sc.sim_starts();
    // The daemon's run started one earlier; the five OCF starts add exactly one.
    assert_eq!(all_starts.len(), 2, "{all_starts:?}");
    let out = sc.bbwd(&["ocf", "stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// Hostile /status servers (the simulator's `/_sim/hostile` modes)

/// A scenario for the hostile-server probes: room for a correction per mode.
fn hostile_scenario(name: &str) -> Scenario {
    Scenario::new(name).bitbucket("max_restarts", "20")
}

/// Turns the running simulator hostile (`/_sim/hostile?QUERY`) and asserts SPEC's failure
/// table: `failures_before_action` (2) failed checks, each naming `why`, then a correction,
/// after which the restarted (polite) simulator is running again.
fn hostile_is_a_failed_check(sc: &Scenario, d: &mut Daemon, query: &str, why: &str) {
    let st = d.wait_state(WAIT, "running");
    let pid = pid_of(&st);
    let before = event_log(sc).len();
    sim_admin(sc.port, &format!("/_sim/hostile?{query}"));
    d.wait_for(
        WAIT,
        &format!("a correction of {query:?}, running again"),
        |s| s["state"] == "running" && pid_of(s).is_some() && pid_of(s) != pid,
    );
    let events: Vec<(String, String)> = event_log(sc).split_off(before);
    let kinds: Vec<String> = events.iter().map(|(k, _)| k.clone()).collect();
    assert!(
        has_subsequence(
            &kinds,
            &[
                "check_failed",
                "check_failed",
                "correcting",
                "stop",
                "healthy"
            ]
        ),
        "{query}: {events:#?}"
    );
    let failed: Vec<&String> = events
        .iter()
        .take_while(|(k, _)| k != "correcting")
        .filter(|(k, _)| k == "check_failed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(failed.len(), 2, "{query}: {events:#?}");
    for detail in failed {
        assert!(
            detail.contains(why),
            "{query}: {detail:?} should say {why:?}"
        );
    }
}

/// Turns the running simulator to `/_sim/hostile?QUERY` for a few checks and asserts that it
/// stays healthy: no failed check, same pid; then back to normal.
fn hostile_is_healthy(sc: &Scenario, d: &mut Daemon, query: &str) {
    let st = d.wait_state(WAIT, "running");
    let before = event_log(sc).len();
    sim_admin(sc.port, &format!("/_sim/hostile?{query}"));
    // Six checks at the 200 ms interval.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, st2) = sc.status_json();
    let events: Vec<(String, String)> = event_log(sc).split_off(before);
    assert_eq!(code, 0, "{query}: {st2:#}");
    assert_eq!(st2["state"], "running", "{query}: {st2:#}");
    assert_eq!(pid_of(&st2), pid_of(&st), "{query}: untouched");
    assert_eq!(st2["bitbucket"]["http_status"], 200, "{query}: {st2:#}");
    assert!(events.is_empty(), "{query}: no event at all: {events:#?}");
    sim_admin(sc.port, "/_sim/reset");
}

/// A `/status` that never answers, trickles a byte every 100 ms, or holds a keep-alive
/// connection with no length (the body never ends) is a failed check ("no reply within
/// monitor_timeout"), corrected after two, and the loop never waits for it.
#[test]
fn status_that_hangs_trickles_or_never_ends_is_a_failed_check_and_the_loop_keeps_pace() {
    let sc = hostile_scenario("probe_hang");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    for mode in ["hang", "trickle", "keep-alive-no-length"] {
        hostile_is_a_failed_check(
            &sc,
            &mut d,
            &format!("mode={mode}"),
            "no reply within monitor_timeout",
        );
    }
    assert_pace(&sc, &n, from, "hanging and trickling /status");
    d.stop();
    sc.assert_never_two_sims();
}

/// A `/status` answering 100 MiB (with or without `Content-Length`) is "reply too large"
/// without reading it all, and broken chunked framing is "malformed": failed checks, corrected,
/// at pace.
#[test]
fn status_huge_or_badly_chunked_is_a_failed_check_and_the_loop_keeps_pace() {
    let sc = hostile_scenario("probe_huge");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    hostile_is_a_failed_check(&sc, &mut d, "mode=huge", "reply too large");
    hostile_is_a_failed_check(&sc, &mut d, "mode=huge-close", "reply too large");
    hostile_is_a_failed_check(&sc, &mut d, "mode=chunked-bad", "malformed reply");
    assert_pace(&sc, &n, from, "huge and malformed /status replies");
    d.stop();
    sc.assert_never_two_sims();
}

/// 301 to itself and 302 to another server are failed checks ("HTTP 301 without a state");
/// the redirect is never followed (the other server is never connected to).
#[test]
fn status_redirects_are_failed_checks_and_never_followed() {
    let sc = hostile_scenario("probe_redirect");
    // The "elsewhere" of the 302: a listener nobody accepts on; a followed redirect would
    // leave a connection in its queue.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = elsewhere.local_addr().unwrap().port();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    hostile_is_a_failed_check(
        &sc,
        &mut d,
        "mode=redirect&code=301&location=%2Fstatus",
        "HTTP 301 without a state",
    );
    hostile_is_a_failed_check(
        &sc,
        &mut d,
        &format!("mode=redirect&code=302&location=http%3A%2F%2F127.0.0.1%3A{other}%2Fstatus"),
        "HTTP 302 without a state",
    );
    assert_pace(&sc, &n, from, "redirecting /status");
    d.stop();
    elsewhere.set_nonblocking(true).unwrap();
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "bbwd followed the redirect to 127.0.0.1:{other}"
    );
    sc.assert_never_two_sims();
}

/// Odd JSON in a 200: duplicate `state` keys, `state` nested in an object, a non-UTF-8 state,
/// `state` a number, no body at all. Healthy is only a 200 whose top-level `state` is the
/// string RUNNING, MAINTENANCE or FIRST_RUN; each of these is a failed check.
#[test]
fn status_odd_json_is_a_failed_check_unless_state_is_a_healthy_string() {
    let sc = hostile_scenario("probe_json");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    for (body, why) in [
        // {"state":"RUNNING","state":"ERROR"}
        (
            "%7B%22state%22%3A%22RUNNING%22%2C%22state%22%3A%22ERROR%22%7D",
            "HTTP 200 without a state",
        ),
        // {"state":{"state":"RUNNING"}}
        (
            "%7B%22state%22%3A%7B%22state%22%3A%22RUNNING%22%7D%7D",
            "HTTP 200 without a state",
        ),
        // {"state":"RUNN\xffING"}
        ("%7B%22state%22%3A%22RUNN%FFING%22%7D", "HTTP 200 OTHER"),
        // {"state":1}
        ("%7B%22state%22%3A1%7D", "HTTP 200 without a state"),
        // [{"state":"RUNNING"}]
        (
            "%5B%7B%22state%22%3A%22RUNNING%22%7D%5D",
            "HTTP 200 without a state",
        ),
        // no body
        ("", "HTTP 200 without a state"),
    ] {
        hostile_is_a_failed_check(&sc, &mut d, &format!("mode=body&code=200&body={body}"), why);
    }
    assert_pace(&sc, &n, from, "odd JSON from /status");
    d.stop();
    sc.assert_never_two_sims();
}

/// The other side of the table: valid chunked encoding (with a trailer), a keep-alive reply
/// that is complete by its `Content-Length` but left open, nested fields beside a top-level
/// RUNNING, MAINTENANCE and FIRST_RUN are all healthy: no failed check, nothing restarted.
#[test]
fn status_chunked_keep_alive_and_extra_fields_are_healthy_and_the_loop_keeps_pace() {
    let sc = hostile_scenario("probe_healthy");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    d.wait_state(WAIT, "running");
    let from = Instant::now();
    hostile_is_healthy(&sc, &mut d, "mode=chunked");
    hostile_is_healthy(&sc, &mut d, "mode=keep-alive");
    // {"progress":{"state":"ERROR","n":[1,{"x":"]"}]},"state":"RUNNING"}
    hostile_is_healthy(
        &sc,
        &mut d,
        "mode=body&code=200&body=%7B%22progress%22%3A%7B%22state%22%3A%22ERROR%22%2C%22n%22%3A%5B1%2C%7B%22x%22%3A%22%5D%22%7D%5D%7D%2C%22state%22%3A%22RUNNING%22%7D",
    );
    hostile_is_healthy(
        &sc,
        &mut d,
        "mode=body&code=200&body=%7B%22state%22%3A%22MAINTENANCE%22%7D",
    );
    hostile_is_healthy(
        &sc,
        &mut d,
        "mode=body&code=200&body=%7B%22state%22%3A%22FIRST_RUN%22%7D",
    );
    assert_pace(&sc, &n, from, "unusual but valid /status replies");
    d.stop();
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// What is left of a crashed leader's group

/// Starts the simulator's helper child (`/_sim/spawn-child?term=TERM`), waits until it runs,
/// and returns its pid.
fn spawn_helper(sc: &Scenario, term: &str) -> u32 {
    let (code, body) = sim_admin(sc.port, &format!("/_sim/spawn-child?term={term}"));
    assert_eq!(code, 200, "{body}");
    let pid: u32 = body.trim().parse().unwrap();
    wait_until(WAIT, "the helper is ready", || {
        helper_signals(sc).iter().any(|l| l == "READY")
    });
    pid
}

/// The lines the helper child wrote: READY, then TERM per SIGTERM.
fn helper_signals(sc: &Scenario) -> Vec<String> {
    fs::read_to_string(sc.sim_dir().join("child-signals.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Point 6: when the leader exited, the rest of its group was SIGKILLed with no SIGTERM, no
/// event and no log line. Now a helper left behind gets SIGTERM first, goes, no `kill` follows,
/// and the log names the pids signalled and why.
#[test]
fn a_crashed_leaders_helper_gets_sigterm_first_and_a_log_line_naming_it() {
    let sc = Scenario::new("probe_orphan").duration("stop_timeout", "3s");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    let helper = spawn_helper(&sc, "exit");
    let before = event_log(&sc).len();
    sim_admin(sc.port, "/_sim/crash");
    d.wait_for(WAIT, "restarted after the crash", |s| {
        s["state"] == "running" && pid_of(s).is_some() && pid_of(s) != pid_of(&st)
    });
    assert_pace(&sc, &n, from, "a crash with a helper left in the group");
    assert_eq!(helper_signals(&sc), ["READY", "TERM"], "one SIGTERM");
    assert!(!pid_alive(helper), "the helper is gone");
    let events = event_log(&sc).split_off(before);
    let kinds: Vec<String> = events.iter().map(|(k, _)| k.clone()).collect();
    assert!(
        has_subsequence(&kinds, &["crash", "healthy"]),
        "{events:#?}"
    );
    assert!(
        !kinds.iter().any(|k| k == "kill"),
        "no SIGKILL for a helper that went on SIGTERM: {events:#?}"
    );
    let log = fs::read_to_string(sc.bbwd_log()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("to what is left of its process group"))
        .unwrap_or_else(|| panic!("no log line names what is signalled\n{log}"));
    assert!(
        line.contains("Term") && line.contains(&helper.to_string()),
        "{line}"
    );
    d.stop();
    sc.assert_never_two_sims();
}

/// Point 6, the other half: a helper that ignores SIGTERM still gets it first, then SIGKILL
/// once `stop_timeout` has passed, with a `kill` event saying why, and the restart follows.
#[test]
fn a_crashed_leaders_helper_ignoring_sigterm_is_killed_after_stop_timeout_with_an_event() {
    let sc = Scenario::new("probe_orphan_kill").duration("stop_timeout", "1s");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    let helper = spawn_helper(&sc, "ignore");
    let before = event_log(&sc).len();
    let crashed = Instant::now();
    sim_admin(sc.port, "/_sim/crash");
    wait_until(WAIT, "the helper gone", || !pid_alive(helper));
    let gone_after = crashed.elapsed();
    d.wait_for(WAIT, "restarted after the crash", |s| {
        s["state"] == "running" && pid_of(s).is_some() && pid_of(s) != pid_of(&st)
    });
    assert_pace(&sc, &n, from, "a crash with a helper ignoring SIGTERM");
    assert_eq!(helper_signals(&sc), ["READY", "TERM"], "SIGTERM first");
    assert!(
        gone_after >= Duration::from_secs(1),
        "SIGKILL only after stop_timeout: gone {gone_after:?} after the crash"
    );
    let events = event_log(&sc).split_off(before);
    let kinds: Vec<String> = events.iter().map(|(k, _)| k.clone()).collect();
    assert!(
        has_subsequence(&kinds, &["crash", "kill", "healthy"]),
        "{events:#?}"
    );
    let (_, kill) = events.iter().find(|(k, _)| k == "kill").unwrap();
    assert!(kill.contains("after it exited: SIGKILL"), "{kill}");
    let log = fs::read_to_string(sc.bbwd_log()).unwrap();
    for sig in ["Term", "Kill"] {
        assert!(
            log.lines()
                .any(|l| l.contains("to what is left of its process group")
                    && l.contains(sig)
                    && l.contains(&helper.to_string())),
            "no log line says {sig} goes to pid {helper}\n{log}"
        );
    }
    d.stop();
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// An unkillable group: frozen in a cgroup freezer

/// Where the cgroup v1 freezer hierarchy is mounted (`/proc/self/mountinfo`), if anywhere.
///
/// The v1 freezer, not cgroup v2's `cgroup.freeze`: v2 lets fatal signals through (the kernel
/// kills a frozen task on SIGKILL: Documentation/admin-guide/cgroup-v2.rst, "Processes in the
/// frozen cgroup can be killed by a fatal signal"), so only v1 makes a group that SIGKILL cannot
/// end (its tasks sit in `D`, the signal pending, until thawed).
fn v1_freezer_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut after = after.split_whitespace();
        let (fstype, _source, options) = (after.next()?, after.next()?, after.next()?);
        if fstype == "cgroup" && options.split(',').any(|o| o == "freezer") {
            before.split_whitespace().nth(4).map(PathBuf::from)
        } else {
            None
        }
    })
}

/// A cgroup of the test's own in the v1 freezer hierarchy (mounted in the test's directory if
/// the host has none mounted). Drop thaws it, SIGKILLs what is still in it (only processes this
/// test moved there), waits for it to empty, removes it and unmounts what it mounted.
struct Freezer {
    dir: PathBuf,
    mounted: Option<PathBuf>,
}

impl Freezer {
    /// `None` (with the reason) when no v1 freezer can be had here.
    fn new(sc: &Scenario) -> Result<Freezer, String> {
        let (root, mounted) = match v1_freezer_mount() {
            Some(root) => (root, None),
            None => {
                let at = sc.dir.join("freezer");
                fs::create_dir_all(&at).map_err(|e| e.to_string())?;
                let out = Command::new("mount")
                    .args(["-t", "cgroup", "-o", "freezer", "bbwd-probe"])
                    .arg(&at)
                    .output()
                    .map_err(|e| format!("mount(8): {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "no cgroup v1 freezer mounted and mounting one failed: {}",
                        output_text(&out).trim()
                    ));
                }
                (at.clone(), Some(at))
            }
        };
        let dir = root.join(format!(
            "bbwd-probe-{}-{}",
            std::process::id(),
            sc.dir.path().file_name().unwrap().to_string_lossy()
        ));
        let mut f = Freezer { dir, mounted };
        fs::create_dir(&f.dir).map_err(|e| {
            let why = format!("mkdir {}: {e}", f.dir.display());
            f.dir = PathBuf::new();
            why
        })?;
        Ok(f)
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        fs::write(&path, value).unwrap_or_else(|e| panic!("write {value:?} to {path:?}: {e}"));
    }

    fn state(&self) -> String {
        fs::read_to_string(self.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn procs(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Moves `pid` in and freezes the cgroup (returns once the kernel says FROZEN).
    fn freeze(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
        self.write("freezer.state", "FROZEN");
        wait_until(WAIT, "the cgroup FROZEN", || self.state() == "FROZEN");
    }

    fn thaw(&self) {
        self.write("freezer.state", "THAWED");
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        if self.dir.as_os_str().is_empty() {
            return;
        }
        let _ = fs::write(self.dir.join("freezer.state"), "THAWED");
        let until = Instant::now() + Duration::from_secs(10);
        while !self.procs().is_empty() && Instant::now() < until {
            for pid in self.procs() {
                kill_pid(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fs::remove_dir(&self.dir);
        if let Some(at) = &self.mounted {
            let _ = Command::new("umount").arg(at).output();
        }
    }
}

/// Point 13: with `[watchdog] device = "none"` an unkillable episode that ends left bbwd failed
/// for good, and `bbwd reset` answered "the watchdog will do it" though there was no watchdog.
/// Now: a Bitbucket frozen in a cgroup freezer (SIGTERM and SIGKILL stay pending) makes bbwd
/// go `failed` (unkillable) at pace; reset is refused while the group is there, saying why;
/// once the group is thawed and dies of its pending SIGKILL, reset starts a new Bitbucket.
#[test]
#[ignore = "needs root: a cgroup freezer"]
fn unkillable_frozen_group_fails_at_pace_and_reset_recovers_once_it_is_gone() {
    if !root("a cgroup freezer") {
        return;
    }
    let sc = Scenario::new("probe_frozen");
    let freezer = match Freezer::new(&sc) {
        Ok(f) => f,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "this probe needs the cgroup v1 freezer (cgroup v2's freezer lets SIGKILL \
                 through, so it cannot make an unkillable group): {why}"
            );
            eprintln!("SKIPPED (not CI): {why}");
            return;
        }
    };
    sc.write_config_text(&format!(
        "{}\n[watchdog]\ndevice = \"none\"\n",
        sc.config_text()
    ));
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    let pid = pid_of(&st).unwrap();
    freezer.freeze(pid);

    // Checks time out, the correction's SIGTERM and SIGKILL stay pending: unkillable.
    let st = d.wait_state(WAIT, "failed");
    assert_eq!(st["failed"], "unkillable", "{st:#}");
    assert!(find_event(&st, "unkillable").is_some(), "{st:#}");
    assert!(pid_alive(pid), "frozen, not dead");
    let out = sc.bbwd(&["reset"]);
    assert_ne!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("still there") && !text.contains("the watchdog will do it"),
        "reset refused, saying why: {text}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_pace(&sc, &n, from, "an unkillable group");

    // Thawed, it dies of the pending SIGKILL; bbwd stays failed until the operator's reset.
    freezer.thaw();
    wait_until(WAIT, "the thawed simulator dead", || !pid_alive(pid));
    std::thread::sleep(Duration::from_millis(500));
    let (_, st) = sc.status_json();
    assert_eq!(st["state"], "failed", "no start without reset: {st:#}");
    assert_eq!(sc.sim_starts(), vec![pid], "nothing started meanwhile");
    let mut out = sc.bbwd(&["reset"]);
    let until = Instant::now() + Duration::from_secs(5);
    while out.status.code() != Some(0) && Instant::now() < until {
        // The group's exit may still be on its way to the loop.
        std::thread::sleep(Duration::from_millis(200));
        out = sc.bbwd(&["reset"]);
    }
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let st = d.wait_state(WAIT, "running");
    assert_ne!(pid_of(&st), Some(pid), "{st:#}");
    assert_pace(&sc, &n, from, "an unkillable group, thawed, reset");
    d.stop();
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// A daemonizing command

/// `bitbucket.command` that daemonizes (forks a `setsid` copy and exits at once, as
/// `start-bitbucket.sh` without `-fg` does): the leader's exit during start-up is a failed
/// start, not a crash to restart; the daemonized copy still serving is never joined by a
/// second one, not by a reset either (bbwd refuses, naming what answers), and the loop keeps
/// its pace throughout.
#[test]
fn a_daemonizing_command_fails_the_start_and_is_never_started_twice() {
    let sc = Scenario::new("probe_daemonize");
    wrap_command(&sc, "setsid \"$@\" </dev/null >/dev/null 2>&1 & exit 0");
    let n = Notify::bind(&sc);
    let from = Instant::now();
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "failed");
    assert_eq!(st["failed"], "start_failed", "{st:#}");
    wait_until(WAIT, "the daemonized copy serving", || {
        http_get(sc.port, "/status").is_ok_and(|(code, _)| code == 200)
    });
    let daemonized = sc.sims_alive();
    assert_eq!(daemonized.len(), 1, "the daemonized copy runs");
    let out = sc.bbwd(&["reset"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let st = d.wait_for(WAIT, "the reset's start refused", |s| {
        s["failed"] == "already_serving"
    });
    assert!(find_event(&st, "start_refused").is_some(), "{st:#}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sc.sim_starts().len(), 1, "one start only");
    assert_pace(
        &sc,
        &n,
        from + Duration::from_millis(300),
        "a daemonizing command",
    );
    d.stop();
    sc.assert_never_two_sims();
    for pid in daemonized {
        // SAFETY: kill(2) on the daemonized simulator this test's bbwd started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrent OCF actions

/// Pacemaker never runs two actions on one resource at once, but an operator's `crm_resource
/// --force-*` beside it can. Starts, stops and monitors racing each other, three rounds: never
/// two Bitbuckets, every action answers within its timeout with an OCF code, and a final stop
/// leaves nothing running (monitor: 7).
#[test]
fn concurrent_ocf_starts_stops_and_monitors_never_run_two_bitbuckets() {
    let sc = Scenario::new("probe_ocf_race");
    let config = sc.ensure_config();
    let mut said = String::new();
    for round in 0..3 {
        let actions: Vec<_> = [
            "start", "stop", "monitor", "start", "monitor", "stop", "start",
        ]
        .into_iter()
        .map(|action| {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut cmd = Command::new(bbwd_bin());
                cmd.args(["ocf", action, "-c"])
                    .arg(&config)
                    .env("OCF_RESKEY_CRM_meta_timeout", "20000");
                (action, run_bounded(cmd, Duration::from_secs(30)))
            })
        })
        .collect();
        for t in actions {
            let (action, out) = t.join().unwrap();
            let code = out.status.code();
            said.push_str(&format!(
                "round {round} ocf {action}: exit {code:?}: {}\n",
                output_text(&out).trim()
            ));
            let allowed: &[i32] = match action {
                // 0 success; 1 generic error (a stop in the middle of a start; a monitor that
                // catches a 503 STOPPING); monitor: 7 not running.
                "monitor" => &[0, 1, 7],
                _ => &[0, 1],
            };
            assert!(
                code.is_some_and(|c| allowed.contains(&c)),
                "round {round}: ocf {action} exit {code:?}: {}",
                output_text(&out)
            );
        }
        sc.assert_never_two_sims();
    }
    let out = sc.bbwd(&["ocf", "stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        sc.sims_alive().is_empty(),
        "ocf stop said done while {:?} runs: {}\n{said}",
        sc.sims_alive(),
        output_text(&out)
    );
    let out = sc.bbwd(&["ocf", "monitor"]);
    assert_eq!(out.status.code(), Some(7), "{}", output_text(&out));
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// More corrupt state files

/// A pid file turned to garbage while Bitbucket runs (bbwd killed, the file damaged, bbwd
/// started again): the record is dropped with a warning, but the Bitbucket still answering is
/// found before any start: no second one, `failed` (already serving), the first untouched.
#[test]
fn a_corrupt_pid_file_over_a_running_bitbucket_never_starts_a_second() {
    let sc = Scenario::new("probe_corruptpid");
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(WAIT, "running");
    let pid = pid_of(&st).unwrap();
    d.kill9();
    fs::write(sc.state_dir().join("bitbucket.pid"), b"\x00\xffnot a pid\n").unwrap();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "failed");
    let from = Instant::now();
    assert_eq!(st["failed"], "already_serving", "{st:#}");
    assert!(find_event(&st, "start_refused").is_some(), "{st:#}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sc.sim_starts(), vec![pid], "one start only");
    assert!(pid_alive(pid), "the running Bitbucket untouched");
    assert_pace(&sc, &n, from, "failed over a corrupt pid file");
    d.stop();
    sc.assert_never_two_sims();
}

/// A damaged maintenance file keeps the operator's intent: bbwd stays in maintenance (saying the
/// file is unreadable) and starts nothing; `maintenance off` resumes and starts Bitbucket.
#[test]
fn a_corrupt_maintenance_file_stays_in_maintenance_and_starts_nothing() {
    let sc = Scenario::new("probe_corruptmaint");
    fs::create_dir_all(sc.state_dir()).unwrap();
    fs::write(
        sc.state_dir().join("maintenance"),
        b"{\"reason\": \"upgr\xff",
    )
    .unwrap();
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "maintenance");
    let from = Instant::now();
    assert!(
        st["maintenance"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unreadable")),
        "{st:#}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(sc.sim_starts().is_empty(), "nothing started in maintenance");
    let out = sc.bbwd(&["maintenance", "off"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    d.wait_state(WAIT, "running");
    assert_pace(&sc, &n, from, "maintenance from a corrupt file");
    d.stop();
    sc.assert_never_two_sims();
}

/// Signals bbwd may get from a stray `kill` or a terminal: SIGHUP (reopen the event log),
/// SIGPIPE, SIGWINCH, SIGURG, SIGCHLD, and the terminal stop signals SIGTSTP, SIGTTIN, SIGTTOU
/// (stopping the loop would stop the keep-alives). None of them stops, kills or stalls bbwd, or
/// touches Bitbucket.
#[test]
fn terminal_stop_signals_hup_and_pipe_neither_stop_nor_kill_bbwd() {
    let sc = Scenario::new("probe_tstp");
    let n = Notify::bind(&sc);
    let mut d = start_paced(&sc, &n);
    let st = d.wait_state(WAIT, "running");
    let from = Instant::now();
    for sig in [
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGWINCH,
        libc::SIGURG,
        libc::SIGCHLD,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ] {
        d.signal(sig);
        std::thread::sleep(Duration::from_millis(150));
        assert!(d.try_exit_status().is_none(), "bbwd died of signal {sig}");
        let stat = fs::read_to_string(format!("/proc/{}/stat", d.pid())).unwrap();
        let state = stat.rsplit_once(')').unwrap().1.trim_start().chars().next();
        assert_ne!(state, Some('T'), "bbwd stopped by signal {sig}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, after) = sc.status_json();
    assert_eq!(code, 0, "{after:#}");
    assert_eq!(pid_of(&after), pid_of(&st), "Bitbucket untouched");
    assert_pace(&sc, &n, from, "stray signals");
    let exit = d.stop();
    assert_eq!(exit.code(), Some(0));
    sc.assert_never_two_sims();
}
