//! The Bitbucket simulator and the harness on their own (no bbwd): each scripted fault does
//! what the end-to-end tests rely on, and the process observers see what really runs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bbwd_tests::*;

/// A bbsim started by the test itself, SIGKILLed by PID on drop if still running.
struct Sim {
    child: Child,
    port: u16,
}

impl Sim {
    fn start(sc: &Scenario, extra: &[&str]) -> Sim {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bbsim"));
        cmd.arg("--dir")
            .arg(sc.sim_dir())
            .arg("--port")
            .arg(sc.port.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn bbsim");
        Sim {
            child,
            port: sc.port,
        }
    }

    /// Waits until /status answers at all.
    fn wait_listening(&self) {
        wait_until(Duration::from_secs(5), "bbsim to listen", || {
            http_get(self.port, "/status").is_ok()
        });
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's PID; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn status(port: u16) -> (u16, String) {
    sim_admin(port, "/status")
}

#[test]
fn status_reports_starting_then_running_then_stopping_and_exits_0_on_sigterm() {
    let sc = Scenario::new("sim_lifecycle");
    let mut sim = Sim::start(&sc, &["--starting-for", "600ms", "--stop-delay", "500ms"]);
    sim.wait_listening();
    assert_eq!(
        status(sim.port),
        (503, r#"{"state":"STARTING"}"#.to_string())
    );
    wait_until(Duration::from_secs(5), "RUNNING", || {
        status(sim.port) == (200, r#"{"state":"RUNNING"}"#.to_string())
    });
    sim.signal(libc::SIGTERM);
    wait_until(Duration::from_secs(2), "STOPPING", || {
        status(sim.port) == (503, r#"{"state":"STOPPING"}"#.to_string())
    });
    let exit = sim
        .wait(Duration::from_secs(5))
        .expect("bbsim exits after SIGTERM");
    assert_eq!(exit.code(), Some(0));
    let events = sc.sim_events();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["START", "TERM", "EXIT"]);
    assert!(events.iter().all(|e| e.pid == sim.child.id()));
    assert_eq!(events[2].code, Some(0));
    assert!(events[0].at <= events[1].at && events[1].at <= events[2].at);
    assert!(
        events[2].at - events[1].at >= Duration::from_millis(450),
        "stop delay honoured: {events:?}"
    );
}

#[test]
fn replies_are_well_formed_for_http_1_0_and_1_1() {
    let sc = Scenario::new("sim_http");
    let sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    for version in ["HTTP/1.0", "HTTP/1.1"] {
        let mut s = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write!(s, "GET /status {version}\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap(); // the server closes after one reply
        assert!(
            reply.starts_with(&format!("{version} 200 OK\r\n")),
            "{reply}"
        );
        assert!(reply.contains("Content-Type: application/json"), "{reply}");
        assert!(reply.contains("Content-Length: 19\r\n"), "{reply}");
        assert!(
            reply.ends_with("\r\n\r\n{\"state\":\"RUNNING\"}"),
            "{reply}"
        );
    }
    let (code, _) = sim_admin(sim.port, "/nope");
    assert_eq!(code, 404);
}

#[test]
fn status_override_garbage_and_reset() {
    let sc = Scenario::new("sim_override");
    let sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    assert_eq!(
        sim_admin(sim.port, "/_sim/status?code=500&state=ERROR").0,
        200
    );
    assert_eq!(status(sim.port), (500, r#"{"state":"ERROR"}"#.to_string()));
    sim_admin(sim.port, "/_sim/status?code=404&state=");
    assert_eq!(
        status(sim.port),
        (404, "<html>not found</html>".to_string())
    );
    sim_admin(sim.port, "/_sim/status?code=200&state=MAINTENANCE");
    assert_eq!(
        status(sim.port),
        (200, r#"{"state":"MAINTENANCE"}"#.to_string())
    );
    sim_admin(sim.port, "/_sim/garbage");
    let err = http_get(sim.port, "/status").expect_err("garbage is not HTTP");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    sim_admin(sim.port, "/_sim/reset");
    assert_eq!(
        status(sim.port),
        (200, r#"{"state":"RUNNING"}"#.to_string())
    );
}

#[test]
fn requests_counts_status_requests_only() {
    let sc = Scenario::new("sim_requests");
    let sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    let count = || -> u64 {
        let (code, body) = sim_admin(sim.port, "/_sim/requests");
        assert_eq!(code, 200, "{body}");
        body.trim().parse().expect("a number")
    };
    let before = count();
    assert!(before >= 1, "wait_listening asked /status");
    for _ in 0..3 {
        status(sim.port);
    }
    // Admin requests (the counting ones too) are not counted; an override still is.
    sim_admin(sim.port, "/_sim/status?code=200&state=MAINTENANCE");
    assert_eq!(count(), before + 3);
    status(sim.port);
    assert_eq!(count(), before + 4);
}

#[test]
fn crash_exits_1_after_answering() {
    let sc = Scenario::new("sim_crash");
    let mut sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    assert_eq!(sim_admin(sim.port, "/_sim/crash"), (200, "ok".to_string()));
    assert_eq!(sim.wait(Duration::from_secs(5)).unwrap().code(), Some(1));
    let last = sc.sim_events().pop().unwrap();
    assert_eq!((last.kind.as_str(), last.code), ("EXIT", Some(1)));
}

#[test]
fn oome_prints_the_jvm_line_then_exits_3() {
    let sc = Scenario::new("sim_oome3");
    let mut sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    sim_admin(sim.port, "/_sim/oome?exit=3");
    assert_eq!(sim.wait(Duration::from_secs(5)).unwrap().code(), Some(3));
    assert!(sim
        .stderr()
        .contains("Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space"));
    assert_eq!(sc.sim_events().pop().unwrap().code, Some(3));
}

#[test]
fn oome_without_exit_keeps_serving() {
    let sc = Scenario::new("sim_oome_none");
    let mut sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    sim_admin(sim.port, "/_sim/oome?exit=none");
    assert_eq!(status(sim.port).0, 200);
    sim.signal(libc::SIGTERM);
    sim.wait(Duration::from_secs(5)).unwrap();
    assert!(sim.stderr().contains("java.lang.OutOfMemoryError"));
}

#[test]
fn hang_ignores_sigterm_and_stops_answering() {
    let sc = Scenario::new("sim_hang");
    let mut sim = Sim::start(&sc, &["--stop-delay", "0ms"]);
    sim.wait_listening();
    sim_admin(sim.port, "/_sim/hang");
    wait_until(Duration::from_secs(2), "HANG logged", || {
        sc.sim_events().iter().any(|e| e.kind == "HANG")
    });
    sim.signal(libc::SIGTERM);
    assert!(
        sim.wait(Duration::from_millis(800)).is_none(),
        "SIGTERM ignored"
    );
    let err = http_get(sim.port, "/status").expect_err("no reply while hung");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    sim.signal(libc::SIGKILL);
    assert!(sim.wait(Duration::from_secs(5)).is_some());
    assert!(!sc.sim_events().iter().any(|e| e.kind == "TERM"));
}

#[test]
fn fail_start_exit_exits_1_without_listening() {
    let sc = Scenario::new("sim_fail_exit");
    let mut sim = Sim::start(&sc, &["--fail-start", "exit"]);
    assert_eq!(sim.wait(Duration::from_secs(5)).unwrap().code(), Some(1));
    assert!(http_get(sim.port, "/status").is_err());
    let kinds: Vec<String> = sc.sim_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["START", "EXIT"]);
}

#[test]
fn fail_start_file_makes_the_next_start_hang_in_starting() {
    let sc = Scenario::new("sim_fail_file");
    std::fs::create_dir_all(sc.sim_dir()).unwrap();
    std::fs::write(sc.sim_dir().join("fail-start"), "hang\n").unwrap();
    let mut sim = Sim::start(&sc, &[]);
    sim.wait_listening();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(sim.port).1, r#"{"state":"STARTING"}"#);
    sim.signal(libc::SIGTERM);
    assert_eq!(sim.wait(Duration::from_secs(5)).unwrap().code(), Some(0));
    std::fs::write(sc.sim_dir().join("fail-start"), "exit\n").unwrap();
    let mut sim = Sim::start(&sc, &[]);
    assert_eq!(sim.wait(Duration::from_secs(5)).unwrap().code(), Some(1));
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_bbsim"))
        .args(["--port", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dir"));
}

#[test]
fn sim_watch_counts_live_simulators_of_its_own_dir_only() {
    let sc = Scenario::new("sim_watch");
    let other = Scenario::new("sim_watch_other");
    let a = Sim::start(&sc, &[]);
    let mut b = Sim::start(&other, &[]);
    a.wait_listening();
    b.wait_listening();
    assert_eq!(sc.sims_alive(), vec![a.child.id()]);
    wait_until(Duration::from_secs(2), "watch sees one", || {
        sc.max_sims_alive() == 1
    });
    // A second simulator of the same dir, on another port: two alive at once.
    let mut second = Command::new(env!("CARGO_BIN_EXE_bbsim"))
        .arg("--dir")
        .arg(sc.sim_dir())
        .arg("--port")
        .arg(free_port().to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(5), "watch sees two", || {
        sc.max_sims_alive() == 2
    });
    second.kill().unwrap();
    second.wait().unwrap();
    // The other scenario's simulator never counted here; a dead one is not alive.
    b.signal(libc::SIGTERM);
    b.wait(Duration::from_secs(5)).unwrap();
    assert_eq!(other.max_sims_alive(), 1);
    assert!(other.sims_alive().is_empty());
    assert_eq!(sc.sims_alive(), vec![a.child.id()]);
}

#[test]
fn test_dir_drop_kills_leftover_simulators_and_removes_the_dir() {
    let sc = Scenario::new("sim_dir_drop");
    // Spawned without the `Sim` wrapper so that only the TestDir's drop can end it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_bbsim"))
        .arg("--dir")
        .arg(sc.sim_dir())
        .arg("--port")
        .arg(sc.port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(5), "bbsim to listen", || {
        http_get(sc.port, "/status").is_ok()
    });
    let path = sc.dir.path().to_path_buf();
    drop(sc);
    let exit = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&exit),
        Some(libc::SIGKILL)
    );
    assert!(!path.exists());
}

#[test]
fn config_text_is_the_documented_shape() {
    let sc = Scenario::new("cfg_shape")
        .duration("startup_timeout", "2s")
        .sim_args(&["--starting-for", "1s"])
        .database("127.0.0.1:5432", "300ms");
    let text = sc.config_text();
    let dir = sc.dir.path().display().to_string();
    assert!(
        text.contains(&format!("state_dir = \"{dir}/state\"")),
        "{text}"
    );
    assert!(text.contains(&format!("control_socket = \"{dir}/control.sock\"")));
    assert!(text.contains(&format!(
        "status_url = \"http://127.0.0.1:{}/status\"",
        sc.port
    )));
    assert!(text.contains(&format!(
        "\"--dir\", \"{dir}/sim\", \"--port\", \"{}\", \"--starting-for\", \"1s\"]",
        sc.port
    )));
    assert!(text.contains("startup_timeout = \"2s\"\n"));
    assert_eq!(text.matches("startup_timeout").count(), 1);
    assert!(text.contains("[database]\naddress = \"127.0.0.1:5432\"\ntimeout = \"300ms\"\n"));
    assert!(text.contains(
        r#"command = ["/bin/sh", "-c", "echo \"$BBWD_EVENT|$BBWD_NODE|$BBWD_DETAIL\" >> "#
    ));
    assert_eq!(line_of(&text, "[bitbucket]"), 6);
}

#[test]
fn subsequence_matching() {
    let kinds: Vec<String> = ["start", "healthy", "crash", "restart", "start"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(has_subsequence(&kinds, &["start", "crash", "start"]));
    assert!(!has_subsequence(&kinds, &["crash", "healthy"]));
    assert!(!has_subsequence(&kinds, &["start", "start", "start"]));
}
