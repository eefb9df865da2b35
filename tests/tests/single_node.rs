//! End-to-end: the real `bbwd run` supervising the Bitbucket simulator on one node.
//!
//! Each test owns a `Scenario` (temp dir, ports, config with a 200 ms monitor interval) and
//! proves one row of SPEC.md's failure table or one operator-facing promise. Every test ends
//! by asserting that at most one simulator process was ever alive at once.
//!
//! Needs `cargo build --workspace` first (the harness runs `target/<profile>/bbwd`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bbwd_tests::*;

/// Upper bound of any single wait for a state: generous, the machine may be busy.
const WAIT: Duration = Duration::from_secs(20);
/// "Several monitor intervals" at the scenario's 200 ms interval.
const SEVERAL_INTERVALS: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// helpers

fn pid_of(status: &Value) -> Option<u32> {
    status["bitbucket"]["pid"].as_u64().map(|p| p as u32)
}

/// Starts the daemon and waits for `running`; returns it with Bitbucket's PID.
fn start_running(sc: &Scenario) -> (Daemon<'_>, u32) {
    let mut d = Daemon::start(sc);
    let st = d.wait_state(WAIT, "running");
    let pid = pid_of(&st).expect("bitbucket.pid while running");
    assert_eq!(sc.sim_starts(), vec![pid], "one START, of the reported pid");
    (d, pid)
}

/// Waits until Bitbucket runs again under a new PID after one restart.
fn wait_restarted(d: &mut Daemon<'_>, old_pid: u32) -> Value {
    d.wait_for(WAIT, "running again under a new pid, restarts == 1", |s| {
        s["state"] == "running" && s["restarts"] == 1 && pid_of(s).is_some_and(|p| p != old_pid)
    })
}

/// The simulator's log lines for one PID as (KIND, exit code).
fn sim_lines_of(sc: &Scenario, pid: u32) -> Vec<(String, Option<i32>)> {
    sc.sim_events()
        .into_iter()
        .filter(|e| e.pid == pid)
        .map(|e| (e.kind, e.code))
        .collect()
}

fn line(kind: &str, code: Option<i32>) -> (String, Option<i32>) {
    (kind.to_string(), code)
}

fn stop_ok(d: &mut Daemon<'_>, sc: &Scenario) {
    let exit = d.stop();
    assert_eq!(
        exit.code(),
        Some(0),
        "bbwd exit after SIGTERM: {exit}\n{}",
        sc.diagnostics()
    );
}

fn wait_notified(sc: &Scenario, kind: &str) {
    wait_until(WAIT, &format!("notify.log line for {kind}"), || {
        sc.notify_lines().iter().any(|(k, _, _)| k == kind)
    });
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// healthy operation

#[test]
fn healthy_start_reaches_running_and_notifies() {
    let sc = Scenario::new("healthy_start");
    let (mut d, pid) = start_running(&sc);
    let (code, st) = sc.status_json();
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["state"], "running");
    assert_eq!(st["daemon"], "up");
    assert_eq!(st["node"], "t1");
    assert_eq!(st["mode"], "single");
    assert_eq!(st["bitbucket"]["state"], "RUNNING");
    assert_eq!(st["bitbucket"]["http_status"], 200);
    assert_eq!(st["bitbucket"]["pid"], pid);
    assert_eq!(st["restarts"], 0);
    assert!(st["peer"].is_null() && st["vip"].is_null(), "{st:#}");
    let k = event_kinds(&st);
    assert!(
        has_subsequence(&k, &["daemon_start", "start", "healthy"]),
        "{k:?}"
    );
    assert!(!k.iter().any(|k| k == "check_failed"), "{k:?}");
    let at = st["events"][0]["at"].as_str().expect("events[].at string");
    assert!(at.contains('T'), "RFC 3339 time: {at}");

    wait_notified(&sc, "start");
    wait_notified(&sc, "healthy");
    assert!(sc.notify_lines().iter().all(|(_, node, _)| node == "t1"));

    let human = sc.bbwd(&["status"]);
    assert_eq!(human.status.code(), Some(0));
    assert!(
        output_text(&human).contains("running"),
        "{}",
        output_text(&human)
    );

    stop_ok(&mut d, &sc);
    assert_eq!(sc.sim_starts().len(), 1);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// crash and OOME: restart at once

#[test]
fn crash_is_restarted_at_once_not_at_the_next_check() {
    // A long interval: a restart driven by failed checks would come after >= 2 intervals,
    // one driven by the exit notification comes at once.
    let sc = Scenario::new("crash_restart").duration("monitor_interval", "3s");
    let (mut d, p0) = start_running(&sc);
    sim_admin(sc.port, "/_sim/crash");
    let st = wait_restarted(&mut d, p0);
    let p1 = pid_of(&st).unwrap();

    let events = sc.sim_events();
    let exit = events
        .iter()
        .find(|e| e.pid == p0 && e.kind == "EXIT")
        .expect("EXIT of the first simulator");
    assert_eq!(exit.code, Some(1));
    let second_start = events
        .iter()
        .find(|e| e.pid == p1 && e.kind == "START")
        .expect("second START");
    let gap = second_start.at - exit.at;
    assert!(
        gap < Duration::from_secs(2),
        "restart {gap:?} after the crash; a 3 s monitor interval means it waited for checks"
    );
    let k = event_kinds(&st);
    assert!(
        has_subsequence(&k, &["healthy", "crash", "restart", "healthy"]),
        "{k:?}"
    );
    assert!(!k.iter().any(|k| k == "stop" || k == "kill"), "{k:?}");
    assert_eq!(sc.sim_starts(), vec![p0, p1]);
    assert_eq!(sc.status_json().0, 0);
    wait_notified(&sc, "crash");

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn oome_exit_3_is_recognised_and_restarted() {
    let sc = Scenario::new("oome_exit3");
    let (mut d, p0) = start_running(&sc);
    sim_admin(sc.port, "/_sim/oome?exit=3");
    let st = wait_restarted(&mut d, p0);
    let k = event_kinds(&st);
    assert!(
        has_subsequence(&k, &["healthy", "oome", "restart", "healthy"]),
        "{k:?}"
    );
    assert_eq!(sim_lines_of(&sc, p0).last(), Some(&line("EXIT", Some(3))));
    assert_eq!(sc.sim_starts().len(), 2);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn oome_line_without_exit_is_recognised_and_restarted() {
    let sc = Scenario::new("oome_line");
    let (mut d, p0) = start_running(&sc);
    sim_admin(sc.port, "/_sim/oome?exit=none");
    let st = wait_restarted(&mut d, p0);
    let k = event_kinds(&st);
    assert!(
        has_subsequence(&k, &["healthy", "oome", "stop", "restart", "healthy"]),
        "{k:?}"
    );
    // The JVM that kept running after the OOME was stopped gracefully before the new start.
    assert_eq!(
        sim_lines_of(&sc, p0),
        vec![
            line("START", None),
            line("TERM", None),
            line("EXIT", Some(0))
        ]
    );
    assert_eq!(sc.sim_starts().len(), 2);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// failed checks: correction = stop, kill, confirm gone, start, check

#[test]
fn hang_ignoring_sigterm_is_killed_after_stop_timeout_and_restarted() {
    let sc = Scenario::new("hang_kill");
    let (mut d, p0) = start_running(&sc);
    sim_admin(sc.port, "/_sim/hang");

    d.wait_for(WAIT, "stop event", |s| count_events(s, "stop") >= 1);
    let stop_seen = Instant::now();
    d.wait_for(WAIT, "kill event", |s| count_events(s, "kill") >= 1);
    let stop_to_kill = stop_seen.elapsed();
    assert!(
        stop_to_kill >= Duration::from_millis(500),
        "SIGKILL {stop_to_kill:?} after SIGTERM; stop_timeout is 1 s"
    );

    let st = wait_restarted(&mut d, p0);
    let k = event_kinds(&st);
    assert!(
        has_subsequence(
            &k,
            &[
                "healthy",
                "check_failed",
                "check_failed",
                "stop",
                "kill",
                "restart",
                "healthy"
            ]
        ),
        "{k:?}"
    );
    assert_eq!(
        sim_lines_of(&sc, p0),
        vec![line("START", None), line("HANG", None)],
        "the hung simulator neither saw SIGTERM nor exited by itself"
    );
    assert!(!pid_alive(p0));
    assert_eq!(sc.sim_starts().len(), 2);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

/// Injects a bad `/status` reply and asserts a graceful correction (stop, exit 0, start).
fn assert_bad_status_is_corrected(name: &str, admin_path: &str) {
    let sc = Scenario::new(name);
    let (mut d, p0) = start_running(&sc);
    sim_admin(sc.port, admin_path);
    let st = wait_restarted(&mut d, p0);
    let k = event_kinds(&st);
    assert!(
        has_subsequence(
            &k,
            &[
                "healthy",
                "check_failed",
                "check_failed",
                "stop",
                "restart",
                "healthy"
            ]
        ),
        "{k:?}"
    );
    assert!(
        !k.iter().any(|k| k == "kill"),
        "graceful stop sufficed: {k:?}"
    );
    assert_eq!(
        sim_lines_of(&sc, p0),
        vec![
            line("START", None),
            line("TERM", None),
            line("EXIT", Some(0))
        ]
    );
    assert_eq!(sc.sim_starts().len(), 2);
    assert_eq!(sc.status_json().0, 0);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn status_500_error_is_corrected() {
    assert_bad_status_is_corrected("status_500", "/_sim/status?code=500&state=ERROR");
}

#[test]
fn garbage_status_reply_is_corrected() {
    assert_bad_status_is_corrected("status_garbage", "/_sim/garbage");
}

#[test]
fn status_404_is_corrected() {
    assert_bad_status_is_corrected("status_404", "/_sim/status?code=404&state=");
}

#[test]
fn unknown_state_with_200_is_corrected() {
    assert_bad_status_is_corrected("status_bogus", "/_sim/status?code=200&state=BOGUS");
}

#[test]
fn bitbucket_maintenance_state_is_healthy() {
    let sc = Scenario::new("bb_maintenance");
    let (mut d, _p0) = start_running(&sc);
    sim_admin(sc.port, "/_sim/status?code=200&state=MAINTENANCE");
    d.wait_for(WAIT, "bitbucket.state MAINTENANCE", |s| {
        s["bitbucket"]["state"] == "MAINTENANCE"
    });
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["state"], "running");
    assert_eq!(st["bitbucket"]["state"], "MAINTENANCE");
    assert_eq!(st["restarts"], 0);
    let k = event_kinds(&st);
    assert!(
        !k.iter().any(|k| k == "check_failed" || k == "stop"),
        "{k:?}"
    );
    assert_eq!(sc.sim_starts().len(), 1);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn starting_within_startup_timeout_is_not_corrected() {
    let sc = Scenario::new("slow_start").sim_args(&["--starting-for", "2s"]);
    let mut d = Daemon::start(&sc);
    let mut starting_code = None;
    wait_until(WAIT, "state starting with bitbucket.state STARTING", || {
        let (code, st) = sc.status_json();
        let hit = st["state"] == "starting" && st["bitbucket"]["state"] == "STARTING";
        if hit {
            starting_code = Some(code);
        }
        hit
    });
    assert_eq!(starting_code, Some(1), "starting is a WARNING");
    let st = d.wait_state(WAIT, "running");
    let k = event_kinds(&st);
    assert!(
        !k.iter()
            .any(|k| k == "check_failed" || k == "stop" || k == "failed"),
        "{k:?}"
    );
    assert_eq!(st["restarts"], 0);
    assert_eq!(sc.sim_starts().len(), 1);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// giving up: failed, no flapping

#[test]
fn start_that_exits_fails_without_flapping() {
    let sc = Scenario::new("fail_start_exit").sim_args(&["--fail-start", "exit"]);
    let mut d = Daemon::start(&sc);
    d.wait_state(WAIT, "failed");
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["state"], "failed");
    assert!(event_kinds(&st).iter().any(|k| k == "failed"));
    assert_eq!(sc.sim_starts().len(), 1, "no flapping");
    assert!(sc.sims_alive().is_empty());
    wait_notified(&sc, "failed");

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn start_stuck_in_starting_fails_after_startup_timeout_and_is_stopped() {
    let sc = Scenario::new("fail_start_hang")
        .sim_args(&["--fail-start", "hang"])
        .duration("startup_timeout", "2s");
    let mut d = Daemon::start(&sc);
    d.wait_state(WAIT, "failed");
    wait_until(
        Duration::from_secs(5),
        "the stuck simulator stopped",
        || sc.sims_alive().is_empty(),
    );
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["state"], "failed");
    assert!(event_kinds(&st).iter().any(|k| k == "failed"));
    let starts = sc.sim_starts();
    assert_eq!(starts.len(), 1, "no flapping");
    assert_eq!(
        sim_lines_of(&sc, starts[0]),
        vec![
            line("START", None),
            line("TERM", None),
            line("EXIT", Some(0))
        ]
    );

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn restarts_exhausted_fails_without_a_third_start() {
    let sc = Scenario::new("restarts_exhausted");
    let (mut d, p0) = start_running(&sc);
    sim_admin(sc.port, "/_sim/crash");
    let st = wait_restarted(&mut d, p0);
    let p1 = pid_of(&st).unwrap();
    sim_admin(sc.port, "/_sim/crash");
    d.wait_state(WAIT, "failed");
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["state"], "failed");
    let k = event_kinds(&st);
    assert!(
        has_subsequence(
            &k,
            &["crash", "restart", "crash", "restarts_exhausted", "failed"]
        ),
        "{k:?}"
    );
    assert_eq!(sc.sim_starts(), vec![p0, p1], "no third START");
    assert!(sc.sims_alive().is_empty());

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn reset_after_failed_starts_bitbucket_again() {
    let sc = Scenario::new("reset_failed");
    std::fs::create_dir_all(sc.sim_dir()).unwrap();
    std::fs::write(sc.sim_dir().join("fail-start"), "exit\n").unwrap();
    let mut d = Daemon::start(&sc);
    d.wait_state(WAIT, "failed");
    assert_eq!(sc.sim_starts().len(), 1);

    std::fs::remove_file(sc.sim_dir().join("fail-start")).unwrap();
    let out = sc.bbwd(&["reset"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let st = d.wait_state(WAIT, "running");
    assert!(has_subsequence(
        &event_kinds(&st),
        &["failed", "reset", "start", "healthy"]
    ));
    let starts = sc.sim_starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(pid_of(&st), Some(starts[1]));
    assert_eq!(sc.status_json().0, 0);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// database hold

/// A stand-in database: a loopback listener that accepts and drops connections.
struct FakeDb {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDb {
    fn open(port: u16) -> FakeDb {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    // Another test may hold the port for a moment; it was ours a moment ago.
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("bind fake database on {port}: {e}"),
            }
        };
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    drop(conn);
                }
            })
        };
        FakeDb {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeDb {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs until the database is down and Bitbucket answers 500 for several intervals; asserts
/// nothing was corrected meanwhile. Returns the daemon and the first PID.
fn hold_with_failing_bitbucket<'a>(sc: &'a Scenario, db: FakeDb) -> (Daemon<'a>, u32) {
    let (mut d, p0) = start_running(sc);
    drop(db);
    d.wait_state(WAIT, "holding");
    sim_admin(sc.port, "/_sim/status?code=500&state=ERROR");
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(code, 1, "holding is a WARNING: {st:#}");
    assert_eq!(st["state"], "holding");
    assert_eq!(st["restarts"], 0);
    let k = event_kinds(&st);
    assert!(k.iter().any(|k| k == "db_down"), "{k:?}");
    assert!(!k.iter().any(|k| k == "stop" || k == "kill"), "{k:?}");
    assert_eq!(
        sc.sim_starts(),
        vec![p0],
        "no restart while the database is down"
    );
    (d, p0)
}

#[test]
fn database_down_holds_correction_which_resumes_when_it_returns() {
    let db = FakeDb::open(0);
    let db_port = db.port;
    let sc = Scenario::new("db_hold_resume").database(&format!("127.0.0.1:{db_port}"), "300ms");
    let (mut d, p0) = hold_with_failing_bitbucket(&sc, db);

    let _db = FakeDb::open(db_port);
    // Bitbucket still answers 500: correction resumes and restarts it.
    let st = wait_restarted(&mut d, p0);
    let k = event_kinds(&st);
    // (db_down was asserted during the hold; check_failed events since may have pushed it
    // out of the status ring.)
    assert!(has_subsequence(&k, &["db_up", "stop", "restart"]), "{k:?}");
    assert_eq!(sc.sim_starts().len(), 2);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn database_down_then_bitbucket_recovers_without_restart() {
    let db = FakeDb::open(0);
    let db_port = db.port;
    let sc = Scenario::new("db_hold_recover").database(&format!("127.0.0.1:{db_port}"), "300ms");
    let (mut d, p0) = hold_with_failing_bitbucket(&sc, db);

    sim_admin(sc.port, "/_sim/reset");
    let _db = FakeDb::open(db_port);
    let st = d.wait_state(WAIT, "running");
    assert!(event_kinds(&st).iter().any(|k| k == "db_up"));
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["restarts"], 0);
    assert_eq!(sc.sim_starts(), vec![p0]);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// operator maintenance

#[test]
fn operator_maintenance_pauses_correction_and_survives_a_daemon_restart() {
    let sc = Scenario::new("op_maintenance");
    let (mut d, p0) = start_running(&sc);
    let out = sc.bbwd(&["maintenance", "on", "--reason", "upgrade"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let st = d.wait_state(WAIT, "maintenance");
    let on = find_event(&st, "maintenance_on").expect("maintenance_on event");
    assert!(
        on["detail"].as_str().unwrap_or("").contains("upgrade"),
        "the reason is recorded: {on}"
    );
    assert_eq!(sc.status_json().0, 1, "maintenance is a WARNING");

    sim_admin(sc.port, "/_sim/crash");
    wait_until(WAIT, "the simulator's EXIT", || {
        sim_lines_of(&sc, p0).iter().any(|(k, _)| k == "EXIT")
    });
    std::thread::sleep(SEVERAL_INTERVALS);
    let (_, st) = sc.status_json();
    assert_eq!(st["state"], "maintenance");
    assert_eq!(sc.sim_starts(), vec![p0], "no restart during maintenance");

    stop_ok(&mut d, &sc);
    let mut d = Daemon::start(&sc);
    d.wait_state(WAIT, "maintenance");
    std::thread::sleep(SEVERAL_INTERVALS);
    let (code, st) = sc.status_json();
    assert_eq!(
        (code, st["state"].as_str()),
        (1, Some("maintenance")),
        "{st:#}"
    );
    assert_eq!(
        sc.sim_starts(),
        vec![p0],
        "a restarted bbwd keeps maintenance"
    );

    let out = sc.bbwd(&["maintenance", "off"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let st = d.wait_state(WAIT, "running");
    assert!(has_subsequence(
        &event_kinds(&st),
        &["maintenance_off", "start"]
    ));
    assert_eq!(sc.sim_starts().len(), 2);
    assert_eq!(sc.status_json().0, 0);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// daemon lifecycle

#[test]
fn sigkilled_daemon_is_replaced_and_readopts_running_bitbucket() {
    let sc = Scenario::new("readopt");
    let (mut d, p0) = start_running(&sc);
    d.kill9();
    assert!(pid_alive(p0), "Bitbucket survives its supervisor");

    // Meanwhile `bbwd status` finds nobody on the (stale) socket and probes Bitbucket itself.
    let (code, st) = sc.status_json();
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["daemon"], "down");
    assert_eq!(st["bitbucket"]["http_status"], 200);

    let mut d = Daemon::start(&sc);
    let st = d.wait_for(WAIT, "running with the adopted pid", |s| {
        s["state"] == "running" && pid_of(s) == Some(p0)
    });
    assert!(event_kinds(&st).iter().any(|k| k == "adopted"), "{st:#}");
    assert_eq!(sc.sim_starts(), vec![p0], "adopted, not restarted");

    // The adopted process is really supervised: its crash is noticed and corrected.
    sim_admin(sc.port, "/_sim/crash");
    let st = d.wait_for(WAIT, "running under a new pid", |s| {
        s["state"] == "running" && pid_of(s).is_some_and(|p| p != p0)
    });
    let p1 = pid_of(&st).unwrap();
    assert_eq!(sc.sim_starts(), vec![p0, p1]);

    stop_ok(&mut d, &sc);
    assert_eq!(
        sim_lines_of(&sc, p1),
        vec![
            line("START", None),
            line("TERM", None),
            line("EXIT", Some(0))
        ]
    );
    sc.assert_never_two_sims();
}

#[test]
fn sigterm_stops_bitbucket_gracefully_then_exits_0() {
    let sc = Scenario::new("sigterm");
    let (mut d, p0) = start_running(&sc);
    stop_ok(&mut d, &sc);
    assert_eq!(
        sim_lines_of(&sc, p0),
        vec![
            line("START", None),
            line("TERM", None),
            line("EXIT", Some(0))
        ]
    );
    assert!(sc.sims_alive().is_empty());
    assert_eq!(sc.sim_starts().len(), 1);
    let (code, st) = sc.status_json();
    assert_eq!((code, st["daemon"].as_str()), (2, Some("down")));
    sc.assert_never_two_sims();
}

#[test]
fn a_second_daemon_with_the_same_config_refuses_to_start() {
    let sc = Scenario::new("second");
    let (mut d, p0) = start_running(&sc);
    let out = sc.bbwd(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("already running"),
        "{}",
        output_text(&out)
    );
    // The first one is untouched: same Bitbucket, still answering.
    let (code, st) = d.status_json();
    assert_eq!((code, pid_of(&st)), (0, Some(p0)), "{st:#}");
    assert_eq!(sc.sim_starts(), vec![p0]);
    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// configuration

/// Writes `text`, runs check-config (exit 2, every expected key and line named) and `bbwd run`
/// (exit 2, nothing started).
fn assert_config_refused(sc: &Scenario, text: &str, expected: &[(&str, usize)]) {
    sc.write_config_text(text);
    let out = sc.bbwd(&["check-config"]);
    let report = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    for (key, line_no) in expected {
        let mentions: Vec<&str> = report.lines().filter(|l| l.contains(key)).collect();
        assert!(
            mentions
                .iter()
                .any(|l| l.contains(&format!("line {line_no}"))),
            "check-config names {key} at line {line_no}:\n{report}"
        );
    }
    assert_run_refused(sc);
}

fn assert_run_refused(sc: &Scenario) {
    let mut cmd = std::process::Command::new(bbwd_bin());
    cmd.arg("run").arg("-c").arg(sc.config_path());
    for var in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "BBWD_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    let out = run_bounded(cmd, CLI_TIMEOUT);
    assert_eq!(
        out.status.code(),
        Some(2),
        "bbwd run: {}",
        output_text(&out)
    );
    assert!(sc.sim_events().is_empty(), "nothing started");
    assert!(!sc.control_socket().exists(), "no control socket");
    assert!(sc.sims_alive().is_empty());
}

#[test]
fn check_config_accepts_the_scenario_config() {
    let sc = Scenario::new("cfg_ok").database("127.0.0.1:5432", "300ms");
    sc.write_config();
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
fn unknown_key_is_refused_naming_key_and_line() {
    let sc = Scenario::new("cfg_unknown_key");
    let text = sc
        .config_text()
        .replace("monitor_interval = ", "monitor_intervall = ");
    let n = line_of(&text, "monitor_intervall");
    assert_config_refused(&sc, &text, &[("bitbucket.monitor_intervall", n)]);
}

#[test]
fn unknown_section_is_refused_naming_it() {
    let sc = Scenario::new("cfg_unknown_section");
    let text = format!("{}\n[bitbukcet]\nx = 1\n", sc.config_text());
    sc.write_config_text(&text);
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("bitbukcet"),
        "{}",
        output_text(&out)
    );
    assert_run_refused(&sc);
}

#[test]
fn bad_duration_is_refused_naming_key_and_line() {
    let sc = Scenario::new("cfg_bad_duration");
    let text = sc
        .config_text()
        .replace("stop_timeout = \"1s\"", "stop_timeout = \"1x\"");
    let n = line_of(&text, "stop_timeout");
    assert_config_refused(&sc, &text, &[("bitbucket.stop_timeout", n)]);
}

#[test]
fn every_problem_is_reported_one_per_line() {
    let sc = Scenario::new("cfg_many");
    let text = sc
        .config_text()
        .replace("stop_timeout = \"1s\"", "stop_timeout = \"soon\"")
        .replace("kill_timeout = ", "kill_timout = ");
    let a = line_of(&text, "stop_timeout");
    let b = line_of(&text, "kill_timout");
    assert_config_refused(
        &sc,
        &text,
        &[("bitbucket.stop_timeout", a), ("bitbucket.kill_timout", b)],
    );
    let report = output_text(&sc.bbwd(&["check-config"]));
    assert!(
        !report
            .lines()
            .any(|l| l.contains("stop_timeout") && l.contains("kill_timout")),
        "one problem per line:\n{report}"
    );
}

#[test]
fn missing_config_file_is_refused() {
    let sc = Scenario::new("cfg_missing");
    let missing = sc.dir.join("nope.toml");
    let mut cmd = std::process::Command::new(bbwd_bin());
    cmd.arg("check-config").arg("-c").arg(&missing);
    cmd.env_remove("BBWD_CONFIG");
    let out = run_bounded(cmd, CLI_TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains(&*missing.to_string_lossy()),
        "names the file: {}",
        output_text(&out)
    );
    let mut cmd = std::process::Command::new(bbwd_bin());
    cmd.arg("run").arg("-c").arg(&missing);
    cmd.env_remove("BBWD_CONFIG").env_remove("NOTIFY_SOCKET");
    let out = run_bounded(cmd, CLI_TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

// ---------------------------------------------------------------------------------------------
// control socket and `bbwd status`

/// Sends raw bytes on the control socket and returns whatever reply arrives before EOF (a
/// reset after the reply is tolerated: the server may close with our excess bytes unread).
fn raw_control_request(sc: &Scenario, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(sc.control_socket()).expect("connect control socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

fn assert_error_reply(reply: &str) {
    let v: Value = serde_json::from_str(reply.trim())
        .unwrap_or_else(|e| panic!("reply is JSON ({e}): {reply:?}"));
    assert!(v.get("error").is_some(), "an error reply: {reply}");
}

#[test]
fn malformed_control_requests_get_an_error_and_the_daemon_keeps_answering() {
    let sc = Scenario::new("control_malformed");
    let (mut d, _p0) = start_running(&sc);
    for bad in [
        &b"\x00\xff\xfe garbage\n"[..],
        b"{\"command\":\n",
        b"{\"command\":\"no-such-command\"}\n",
        b"\n",
    ] {
        assert_error_reply(&raw_control_request(&sc, bad));
    }
    // Oversized: far above the request limit, no newline until the end.
    let mut big = vec![b'a'; 64 * 1024];
    big.push(b'\n');
    assert_error_reply(&raw_control_request(&sc, &big));

    // A client that connects and says nothing must not stall the daemon.
    let _idle = UnixStream::connect(sc.control_socket()).unwrap();
    let t = Instant::now();
    let (code, st) = sc.status_json();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "status took {:?} with an idle client connected",
        t.elapsed()
    );
    assert_eq!((code, st["state"].as_str()), (0, Some("running")));
    assert_eq!(st["restarts"], 0);

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

#[test]
fn status_with_the_daemon_down_probes_bitbucket_and_exits_2() {
    let sc = Scenario::new("status_down");
    sc.write_config();
    let cmd = sc.sim_command();
    let mut sim = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn bbsim");
    wait_until(WAIT, "bbsim listening", || {
        http_get(sc.port, "/status").is_ok()
    });

    let (code, st) = sc.status_json();
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(st["daemon"], "down");
    assert_eq!(st["bitbucket"]["http_status"], 200);

    sim_admin(sc.port, "/_sim/status?code=500&state=ERROR");
    let (code, st) = sc.status_json();
    assert_eq!(code, 2);
    assert_eq!(st["bitbucket"]["http_status"], 500, "really probed: {st:#}");

    let human = sc.bbwd(&["status"]);
    assert_eq!(human.status.code(), Some(2));
    assert!(
        output_text(&human).to_lowercase().contains("down"),
        "{}",
        output_text(&human)
    );

    // SAFETY: kill(2) on the simulator this test spawned; no memory is involved.
    unsafe {
        libc::kill(sim.id() as libc::pid_t, libc::SIGTERM);
    }
    sim.wait().unwrap();
    let (code, st) = sc.status_json();
    assert_eq!((code, st["daemon"].as_str()), (2, Some("down")));
    assert!(
        st["bitbucket"]["http_status"].is_null(),
        "nothing answered: {st:#}"
    );
    sc.assert_never_two_sims();
}

// ---------------------------------------------------------------------------------------------
// systemd notification

/// Collects sd_notify datagrams (one entry per `KEY=value` line) with their arrival time.
struct NotifyCollector {
    path: std::path::PathBuf,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NotifyCollector {
    fn bind(sc: &Scenario) -> NotifyCollector {
        let path = sc.dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (lines, stop) = (lines.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let now = Instant::now();
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let mut lines = lines.lock().unwrap();
                        for l in text.lines().filter(|l| !l.is_empty()) {
                            lines.push((now, l.to_string()));
                        }
                    }
                }
            })
        };
        NotifyCollector {
            path,
            lines,
            stop,
            thread: Some(thread),
        }
    }

    fn lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap().clone()
    }

    fn first(&self, line: &str) -> Option<Instant> {
        self.lines()
            .into_iter()
            .find(|(_, l)| l == line)
            .map(|(t, _)| t)
    }

    fn watchdog_times(&self) -> Vec<Instant> {
        self.lines()
            .into_iter()
            .filter(|(_, l)| l == "WATCHDOG=1")
            .map(|(t, _)| t)
            .collect()
    }
}

impl Drop for NotifyCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn sd_notify_ready_status_watchdog_and_stopping() {
    let sc = Scenario::new("sd_notify");
    let notify = NotifyCollector::bind(&sc);
    let socket = notify.path.display().to_string();
    let mut d = Daemon::start_with_env(
        &sc,
        &[
            ("NOTIFY_SOCKET", socket.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    wait_until(WAIT, "READY=1", || notify.first("READY=1").is_some());
    d.wait_state(WAIT, "running");
    assert!(
        notify.lines().iter().any(|(_, l)| l.starts_with("STATUS=")),
        "STATUS= lines: {:?}",
        notify.lines()
    );

    let window_start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let pings = notify
        .watchdog_times()
        .into_iter()
        .filter(|t| *t >= window_start)
        .count();
    assert!(
        pings >= 5,
        "{pings} WATCHDOG=1 in 2 s with WATCHDOG_USEC=400000"
    );

    let stop_sent = Instant::now();
    stop_ok(&mut d, &sc);
    wait_until(Duration::from_secs(5), "STOPPING=1", || {
        notify.first("STOPPING=1").is_some_and(|t| t >= stop_sent)
    });
    sc.assert_never_two_sims();
}

#[test]
fn watchdog_keepalives_never_stall_while_bitbucket_hangs() {
    // A hung /status with a 2 s timeout: a loop that waited on the check would miss the
    // 1 s systemd watchdog.
    let sc = Scenario::new("sd_watchdog_hang").duration("monitor_timeout", "2s");
    let notify = NotifyCollector::bind(&sc);
    let socket = notify.path.display().to_string();
    let mut d = Daemon::start_with_env(
        &sc,
        &[
            ("NOTIFY_SOCKET", socket.as_str()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let st = d.wait_state(WAIT, "running");
    let p0 = pid_of(&st).unwrap();
    let hang_at = Instant::now();
    sim_admin(sc.port, "/_sim/hang");
    wait_restarted(&mut d, p0);
    let end = Instant::now();

    let mut times: Vec<Instant> = notify
        .watchdog_times()
        .into_iter()
        .filter(|t| *t >= hang_at && *t <= end)
        .collect();
    times.insert(0, hang_at);
    times.push(end);
    let worst = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        worst < Duration::from_millis(1000),
        "longest gap between WATCHDOG=1 during the hang and its correction: {worst:?}"
    );

    stop_ok(&mut d, &sc);
    sc.assert_never_two_sims();
}

/// The pair timing rules (bbwd_core::timing): a config breaking R2 is refused by check-config and
/// `bbwd run` (exit 2) with one line naming both keys; R5 (systemd's WatchdogSec against the
/// hardware watchdog) is refused by `bbwd run` alone, where WATCHDOG_USEC tells it, before
/// anything starts; pair mode without a hardware watchdog is only a warning.
#[test]
fn pair_timing_rules_are_refused_naming_both_keys() {
    let sc = Scenario::new("pairtiming");
    let key = sc.dir.join("cluster.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pass = sc.dir.join("peer-bmc.pass");
    std::fs::write(&pass, "secret\n").unwrap();
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pair = |cluster_extra: &str, extra: &str| {
        format!(
            "{}\n[cluster]\npeer = \"t2\"\nlisten = [\"127.0.0.1:15405\"]\npeer_addresses = [\"127.0.0.2:15405\"]\nkey_file = \"{}\"\n{cluster_extra}\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"lo\"\n[fencing]\nhost = \"127.0.0.1\"\nusername = \"fence\"\npassword_file = \"{}\"\ntimeout = \"10s\"\n{extra}",
            sc.config_text(),
            key.display(),
            pass.display()
        )
    };

    // R2: the priority delay shorter than the peer's whole fence attempt.
    let text = pair("fence_delay = \"5s\"\n", "");
    let n = line_of(&text, "fence_delay");
    assert_config_refused(&sc, &text, &[("cluster.fence_delay", n)]);
    let report = output_text(&sc.bbwd(&["check-config"]));
    assert!(
        report.lines().any(|l| l.contains("cluster.fence_delay")
            && l.contains("fencing.timeout")
            && l.contains("(R2)")),
        "{report}"
    );

    // Valid, without a hardware watchdog: exit 0 with the W1 warning.
    sc.write_config_text(&pair("", ""));
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: watchdog.device"),
        "{}",
        output_text(&out)
    );

    // R5: a hardware watchdog of 60 s under a unit with WatchdogSec=30s. check-config cannot
    // know the unit (exit 0); `bbwd run` under it refuses before opening anything. (The device
    // is /dev/null: check-config checks that a character device is there, and this machine has
    // no watchdog driver; R5 refuses before the device is opened.)
    sc.write_config_text(&pair(
        "",
        "\n[watchdog]\ndevice = \"/dev/null\"\ntimeout = \"60s\"\n",
    ));
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let mut cmd = std::process::Command::new(bbwd_bin());
    cmd.arg("run").arg("-c").arg(sc.config_path());
    for var in ["NOTIFY_SOCKET", "WATCHDOG_PID", "BBWD_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.env("WATCHDOG_USEC", "30000000");
    let out = run_bounded(cmd, CLI_TIMEOUT);
    let report = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(
        report.lines().any(|l| l.contains("watchdog.timeout")
            && l.contains("WatchdogSec = 30s")
            && l.contains("(R5)")),
        "{report}"
    );
    assert!(sc.sim_events().is_empty(), "nothing started");
    assert!(!sc.control_socket().exists(), "no control socket");
}

/// A pair config that `bbwd run` cannot serve safely (no `[vip]` to move) is refused by
/// check-config and by run alike (exit 2, naming `vip`), before anything is started.
#[test]
fn a_pair_config_without_a_vip_is_refused_before_anything_starts() {
    let sc = Scenario::new("pairrefused");
    let key = sc.dir.join("cluster.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pass = sc.dir.join("peer-bmc.pass");
    std::fs::write(&pass, "secret\n").unwrap();
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        "{}\n[cluster]\npeer = \"t2\"\nlisten = [\"127.0.0.1:15405\"]\npeer_addresses = [\"127.0.0.2:15405\"]\nkey_file = \"{}\"\n\n[fencing]\nhost = \"127.0.0.1\"\nusername = \"fence\"\npassword_file = \"{}\"\n",
        sc.config_text(),
        key.display(),
        pass.display()
    );
    sc.write_config_text(&text);
    let out = sc.bbwd(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("pair mode needs [vip]"),
        "{}",
        output_text(&out)
    );
    let out = sc.bbwd(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("[vip]"), "{}", output_text(&out));
    assert!(sc.sim_starts().is_empty(), "nothing was started");
}

/// check-config agrees with run (issue: check-config said valid where run then failed): a
/// config naming a program this node does not have is refused by both with exit 2 and the same
/// key; a status URL host that does not resolve now is a warning line for check-config (it may
/// resolve later), and run refuses it with exit 2 naming the key. Nothing is started.
#[test]
fn check_config_and_run_agree_on_what_this_node_lacks() {
    let sc = Scenario::new("agree");
    let text = sc.config_text().replace(
        "command = [\"/bin/sh\", \"-c\"",
        "command = [\"/nonexistent/bbwd-mailer\", \"-c\"",
    );
    assert_ne!(
        text,
        sc.config_text(),
        "the scenario notifies through /bin/sh"
    );
    sc.write_config_text(&text);
    for args in [&["check-config"][..], &["run"]] {
        let out = sc.bbwd(args);
        let report = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {report}");
        assert!(
            report.lines().any(|l| l.contains("notify.command")
                && l.contains("\"/nonexistent/bbwd-mailer\" is not an executable file")),
            "{args:?}: {report}"
        );
    }

    // `.invalid` never resolves (RFC 6761).
    let text = sc
        .config_text()
        .replace("http://127.0.0.1:", "http://bitbucket.invalid:");
    assert_ne!(
        text,
        sc.config_text(),
        "the scenario's status_url is on 127.0.0.1"
    );
    sc.write_config_text(&text);
    let out = sc.bbwd(&["check-config"]);
    let report = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.lines().any(|l| l.contains("warning: bitbucket.status_url")
            && l.contains("bitbucket.invalid")),
        "a warning line, not a silent valid: {report}"
    );
    let out = sc.bbwd(&["run"]);
    let report = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(report.contains("bitbucket.status_url"), "{report}");
    assert!(sc.sim_starts().is_empty(), "nothing was started");
}
