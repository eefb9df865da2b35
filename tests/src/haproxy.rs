//! A real HAProxy (Debian package `haproxy`) in front of mirror-farm nodes, for the end-to-end
//! tests of bbwd's agent-check server, plus a client loop that counts requests through it.
//!
//! Owns: one `haproxy -db` child per [`Haproxy`], its config, stats socket and log in the test's
//! own directory; the [`ClientLoop`] thread. Must not: touch any HAProxy it did not start (it
//! signals only its own child, by PID), or listen anywhere but 127.0.0.1.
//!
//! The config is what a mirror farm's load balancer would use, scaled down in time: every
//! server has a plain HTTP check of `/status` (`check`, every second) and bbwd's agent check
//! (`agent-check`, every 200 ms); a request that meets a dead or restarting server is retried on
//! another one (`retry-on conn-failure empty-response response-timeout 503`, `option redispatch
//! 1`): a restarted Bitbucket answers 503 STARTING, and until HAProxy's next agent check (at
//! most one `agent-inter` later) it may still send requests there.
//!
//! # Invariants
//! * Dropping a `Haproxy` ends its process (SIGTERM, then SIGKILL) and reaps it.
//! * Every wait is bounded and panics with the last stats and the HAProxy log.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{free_port, http_get, kill_pid, Scenario, POLL};

/// The agent-check interval the tests configure (HAProxy's `agent-inter`).
pub const AGENT_INTER: &str = "200ms";
/// How long `start` waits for the stats socket to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll period of `wait_server` (finer than [`POLL`]: the bench measures with it).
const STAT_POLL: Duration = Duration::from_millis(10);

/// Whether `haproxy` can be run: true, or the test fails saying what is missing.
/// Tests that call this are `#[ignore = "needs ..."]`: `scripts/test.sh` runs them with `--include-ignored`; run, they fail when a piece is missing (never pass unrun).
pub fn available() -> bool {
    let ok = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "haproxy is not installed (scripts/setup.sh installs it)"
    );
    ok
}

/// How long a restarted simulator of [`mirror_node`] answers 503 STARTING (five agent-check
/// intervals).
pub const STARTING_FOR: &str = "1s";

/// A mirror node: `sc`'s single-node config plus `[load_balancer]` on a free loopback port (the
/// agent port, returned), written. Restarts are not budgeted tightly (the mirror benchmark
/// crashes the node repeatedly). The simulator answers STARTING for [`STARTING_FOR`] after each
/// start, as a real Bitbucket does for minutes: without it a restart can be quicker than one
/// `agent-inter`, and HAProxy would never see the node down (harmless, but nothing to measure).
pub fn mirror_node(sc: Scenario) -> (Scenario, u16) {
    let sc = sc
        .bitbucket("max_restarts", "1000")
        .sim_args(&["--starting-for", STARTING_FOR]);
    let agent_port = free_port();
    let text = format!(
        "{}\n[load_balancer]\nhaproxy_agent = \"127.0.0.1:{agent_port}\"\n",
        sc.config_text()
    );
    sc.write_config_text(&text);
    (sc, agent_port)
}

/// One mirror node as HAProxy sees it.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    /// Bitbucket's (the simulator's) HTTP port.
    pub port: u16,
    /// bbwd's `[load_balancer] haproxy_agent` port.
    pub agent_port: u16,
}

/// A running `haproxy -db`.
pub struct Haproxy {
    child: Option<Child>,
    dir: PathBuf,
    /// The frontend port on 127.0.0.1 (the farm's address).
    pub port: u16,
}

/// The config text for a farm of `servers` behind 127.0.0.1:`port`, stats socket in `dir`.
pub fn config_text(dir: &Path, port: u16, servers: &[Server]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "global");
    let _ = writeln!(
        t,
        "    stats socket {}/haproxy.sock mode 600 level admin",
        dir.display()
    );
    let _ = writeln!(t, "    stats timeout 10s");
    let _ = writeln!(t, "defaults");
    let _ = writeln!(t, "    mode http");
    let _ = writeln!(t, "    timeout connect 1s");
    let _ = writeln!(t, "    timeout client 10s");
    let _ = writeln!(t, "    timeout server 10s");
    let _ = writeln!(t, "    timeout check 1s");
    let _ = writeln!(t, "    retries 3");
    let _ = writeln!(t, "    option redispatch 1");
    let _ = writeln!(
        t,
        "    retry-on conn-failure empty-response response-timeout 503"
    );
    let _ = writeln!(t, "frontend mirror_farm");
    let _ = writeln!(t, "    bind 127.0.0.1:{port}");
    let _ = writeln!(t, "    default_backend mirrors");
    let _ = writeln!(t, "backend mirrors");
    let _ = writeln!(t, "    balance roundrobin");
    let _ = writeln!(t, "    option httpchk GET /status");
    let _ = writeln!(t, "    http-check expect status 200");
    for s in servers {
        let _ = writeln!(
            t,
            "    server {} 127.0.0.1:{} check inter 1s fall 3 rise 2 agent-check \
             agent-addr 127.0.0.1 agent-port {} agent-inter {AGENT_INTER}",
            s.name, s.port, s.agent_port
        );
    }
    t
}

impl Haproxy {
    /// Writes `dir/haproxy.cfg`, validates it (`haproxy -c`), starts `haproxy -db` with its
    /// output in `dir/haproxy.log`, and waits until the stats socket answers.
    pub fn start(dir: &Path, servers: &[Server]) -> Haproxy {
        let port = free_port();
        let cfg = dir.join("haproxy.cfg");
        fs::write(&cfg, config_text(dir, port, servers)).expect("write haproxy.cfg");
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c rejects the config:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = fs::File::create(dir.join("haproxy.log")).expect("create haproxy.log");
        let log2 = log.try_clone().expect("dup haproxy.log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn haproxy");
        let mut h = Haproxy {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if h.command("show info").is_ok() {
                return h;
            }
            if let Some(Ok(Some(status))) = h.child.as_mut().map(|c| c.try_wait()) {
                h.child = None;
                panic!("haproxy exited at start ({status})\n{}", h.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy's stats socket did not answer within {START_TIMEOUT:?}\n{}",
                h.log()
            );
            std::thread::sleep(POLL);
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("haproxy.sock")
    }

    /// HAProxy's own output (its warnings name every server state change).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// One command on the stats socket (HAProxy answers and closes).
    pub fn command(&self, cmd: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(self.socket())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(cmd.as_bytes())?;
        s.write_all(b"\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// `show stat`, one map per row (column name -> value).
    pub fn stat(&self) -> Vec<HashMap<String, String>> {
        let text = self
            .command("show stat")
            .unwrap_or_else(|e| panic!("show stat: {e}\n{}", self.log()));
        parse_stat(&text)
    }

    /// The `show stat` row of server `name` in backend `mirrors`.
    pub fn server(&self, name: &str) -> HashMap<String, String> {
        self.stat()
            .into_iter()
            .find(|r| r.get("pxname").is_some_and(|p| p == "mirrors") && r["svname"] == name)
            .unwrap_or_else(|| panic!("no server {name} in show stat\n{}", self.log()))
    }

    /// Polls `show stat` until server `name`'s row satisfies `pred` (e.g. on `status`,
    /// `last_agt`); returns the row and the time it took. Panics after `timeout` with the row
    /// and the log.
    /// HAProxy in front of two mirrors, `m1` and `m2` (each its HTTP port and agent-check
    /// port), once both are UP by their agent check (`within` each).
    pub fn start_mirrors_up(dir: &Path, mirrors: [(u16, u16); 2], within: Duration) -> Haproxy {
        let servers =
            [("m1", mirrors[0]), ("m2", mirrors[1])].map(|(name, (port, agent))| Server {
                name: name.into(),
                port,
                agent_port: agent,
            });
        let proxy = Haproxy::start(dir, &servers);
        for s in &servers {
            proxy.wait_server(&s.name, within, "UP by the agent check", |r| {
                r["status"] == "UP" && r["last_agt"] == "via agent : up (RUNNING)"
            });
        }
        proxy
    }

    pub fn wait_server(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&HashMap<String, String>) -> bool,
    ) -> (HashMap<String, String>, Duration) {
        let start = Instant::now();
        loop {
            let row = self.server(name);
            if pred(&row) {
                return (row, start.elapsed());
            }
            if start.elapsed() >= timeout {
                panic!(
                    "server {name}: timed out after {timeout:?} waiting for {what}; last row: \
                     status={:?} last_agt={:?} last_chk={:?}\n--- haproxy.log ---\n{}",
                    row["status"],
                    row.get("last_agt"),
                    row.get("last_chk"),
                    self.log()
                );
            }
            std::thread::sleep(STAT_POLL);
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        kill_pid(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_pid(child.id(), libc::SIGKILL);
        let _ = child.wait();
    }
}

/// Parses `show stat` CSV (first line `# pxname,svname,...`). Values hold no commas in the
/// columns the tests read; a row shorter than the header gets the missing columns empty.
pub fn parse_stat(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let values: Vec<&str> = l.split(',').collect();
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), values.get(i).unwrap_or(&"").to_string()))
                .collect()
        })
        .collect()
}

/// What a [`ClientLoop`] saw.
#[derive(Debug, Clone, Default)]
pub struct ClientReport {
    pub ok: usize,
    /// (time since the loop started, what went wrong), in order.
    pub failures: Vec<(Duration, String)>,
    pub elapsed: Duration,
}

/// A thread sending `GET path` to 127.0.0.1:`port` every `period` until stopped, at most
/// `max_requests` times or for `max_duration` (bounded in count and time).
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<ClientReport>>,
    thread: Option<JoinHandle<()>>,
}

impl ClientLoop {
    pub fn start(
        port: u16,
        path: &'static str,
        period: Duration,
        max_requests: usize,
        max_duration: Duration,
    ) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(ClientReport::default()));
        let thread = {
            let (stop, report) = (stop.clone(), report.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                for _ in 0..max_requests {
                    if stop.load(Ordering::Relaxed) || start.elapsed() >= max_duration {
                        break;
                    }
                    let outcome = http_get(port, path);
                    let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                    match outcome {
                        Ok((200, _)) => r.ok += 1,
                        Ok((code, body)) => r.failures.push((
                            start.elapsed(),
                            format!("HTTP {code}: {}", String::from_utf8_lossy(&body)),
                        )),
                        Err(e) => r.failures.push((start.elapsed(), e.to_string())),
                    }
                    r.elapsed = start.elapsed();
                    drop(r);
                    std::thread::sleep(period);
                }
            })
        };
        ClientLoop {
            stop,
            report,
            thread: Some(thread),
        }
    }

    /// Requests so far (successes, failures).
    pub fn counts(&self) -> (usize, usize) {
        let r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        (r.ok, r.failures.len())
    }

    /// Waits (bounded) until `more` further requests have succeeded.
    pub fn wait_more_ok(&self, more: usize, timeout: Duration) {
        let want = self.counts().0 + more;
        let deadline = Instant::now() + timeout;
        while self.counts().0 < want {
            assert!(
                Instant::now() < deadline,
                "fewer than {more} requests succeeded through HAProxy within {timeout:?}: {:?}",
                self.counts()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the loop and returns what it saw.
    pub fn finish(mut self) -> ClientReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.clone()
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_csv_is_read_by_column_name() {
        let text = "# pxname,svname,status,last_agt\n\
                    mirrors,m1,DOWN (agent),via agent : down (correcting)\n\
                    mirrors,BACKEND,UP\n\n";
        let rows = parse_stat(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["status"], "DOWN (agent)");
        assert_eq!(rows[0]["last_agt"], "via agent : down (correcting)");
        assert_eq!(rows[1]["last_agt"], "");
    }

    #[test]
    fn config_has_an_agent_check_per_server() {
        let servers = [
            Server {
                name: "m1".into(),
                port: 1001,
                agent_port: 2001,
            },
            Server {
                name: "m2".into(),
                port: 1002,
                agent_port: 2002,
            },
        ];
        let t = config_text(Path::new("/tmp/x"), 3000, &servers);
        assert!(t.contains("stats socket /tmp/x/haproxy.sock"));
        assert!(t.contains("bind 127.0.0.1:3000"));
        for (p, a) in [(1001, 2001), (1002, 2002)] {
            assert!(
                t.contains(&format!(
                    "127.0.0.1:{p} check inter 1s fall 3 rise 2 agent-check agent-addr \
                     127.0.0.1 agent-port {a} agent-inter 200ms"
                )),
                "{t}"
            );
        }
    }
}
