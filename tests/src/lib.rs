//! The end-to-end test harness: per-test directories, scenario configs, the real `bbwd run`
//! daemon as a child process, and observers of the Bitbucket simulator (`bbsim`).
//!
//! Owns: everything the tests in `tests/tests/` share. A test builds a [`Scenario`] (its own
//! [`TestDir`], ports and config), starts a [`Daemon`] on it, injects faults through
//! [`sim_admin`], and asserts on `bbwd status --json`, the simulator's `events.log`
//! ([`events_log`]) and the notify log. Every scenario runs a [`SimWatch`] that records the most
//! simulator processes ever alive at once, so each test can assert "never two Bitbucket".
//!
//! Must not: end processes it did not start. The only processes it signals are the `bbwd` it
//! spawned (by PID) and `bbsim` processes whose command line names this test's own directory
//! (started by this test's `bbwd` or by the test itself), again by PID. Nothing is written
//! outside the test's directory under `std::env::temp_dir()`, which is removed on drop.
//!
//! # Invariants
//! * A `Daemon` borrows its `Scenario`, so the daemon is always stopped before the directory
//!   it uses is removed.
//! * Waits are bounded: every wait panics with the last status and the tail of `bbwd.log`
//!   instead of hanging the test run.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use serde_json::Value;

/// qemu guests: a real hardware watchdog and real systemd (`tests/tests/vm_*.rs`).
pub mod vm;

/// ipmi_sim, a real BMC per test (`tests/tests/ipmi_*.rs`).
pub mod ipmisim;

/// sushy-tools' emulator, a real Redfish service per test (`tests/tests/redfish_fence.rs`).
pub mod sushy;
/// A test BMC speaking RMCP+ suites 3 and 17, with hostile modes (`tests/tests/testbmc.rs`).
pub mod testbmc;

/// A real HAProxy in front of mirror-farm nodes (`tests/tests/mirror_haproxy.rs`).
pub mod haproxy;

/// The two-node pair lab: namespaces, a BMC per node, invariant sampler, client probe.
pub mod pairlab;
pub mod pairnode;
/// Prometheus: promtool, a real server, a scrape client (`tests/tests/metrics.rs`).
pub mod prom;

/// A real Pacemaker cluster (corosync + pacemakerd) in namespaces (`tests/tests/pacemaker.rs`).
pub mod pacemaker;

/// The pair fault soak's PRNG, fault kinds with their heals, and plan (`src/bin/soak.rs`).
pub mod soak;

/// The benchmarks behind BENCHMARKS.md, one module each (`src/bin/bench.rs` runs them).
pub mod bench;

/// Poll period of every wait in this harness.
pub const POLL: Duration = Duration::from_millis(50);
/// Upper bound for one CLI invocation (`bbwd status`, `bbwd check-config`, ...).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `Daemon`'s drop waits after SIGTERM before SIGKILL.
pub const DROP_TERM_GRACE: Duration = Duration::from_secs(5);
/// Sampling period of [`SimWatch`].
pub const SIM_WATCH_PERIOD: Duration = Duration::from_millis(10);

/// Environment a test process may have inherited from a service manager; never passed on to
/// the daemon unless a test sets it on purpose.
const SCRUBBED_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "BBWD_CONFIG",
];

// ---------------------------------------------------------------------------------------------
// Directories and binaries

static DIR_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique directory `bbwd-<name>-<pid>-<n>` under the system temp dir, removed on drop
/// (after killing any simulator still running from it).
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        // Keep paths short: the control socket path must fit in sockaddr_un (108 bytes).
        let short: String = name.chars().take(40).collect();
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("bbwd-{short}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create test dir {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        for pid in sims_alive(&self.path) {
            kill_pid(pid, libc::SIGKILL);
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `target/<profile>/` (the directory above the test executable's `deps/`, or the one holding
/// a binary of this crate, such as `bench`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

fn built_binary(name: &str, env_override: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        return PathBuf::from(path);
    }
    let path = target_profile_dir().join(name);
    if !path.is_file() {
        panic!(
            "{name} not found at {}: run `cargo build --workspace` before these tests \
             (or set {env_override})",
            path.display()
        );
    }
    path
}

/// The `bbwd` binary built next to the tests (`$BBWD_BIN` overrides).
pub fn bbwd_bin() -> PathBuf {
    built_binary("bbwd", "BBWD_BIN")
}

/// The simulator built next to the tests (`$BBSIM_BIN` overrides).
pub fn bbsim_bin() -> PathBuf {
    built_binary("bbsim", "BBSIM_BIN")
}

/// `viptool` (`src/bin/viptool.rs`) built next to the caller (`$VIPTOOL_BIN` overrides).
pub fn viptool_bin() -> PathBuf {
    built_binary("viptool", "VIPTOOL_BIN")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A TOML basic string literal for `s`.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in config text:\n{text}"))
        + 1
}

// ---------------------------------------------------------------------------------------------
// Scenario: one test's directory, ports and config

/// One test's world: directory, simulator port, config, and a [`SimWatch`].
pub struct Scenario {
    // Declared first so the watcher stops before the directory goes. `None`: an unwatched
    // scenario ([`Scenario::unwatched`]).
    watch: Option<SimWatch>,
    pub dir: TestDir,
    /// The `bbwd` this scenario runs and asks (`None`: [`bbwd_bin`]).
    bin: Option<PathBuf>,
    /// The simulator's `/status` port.
    pub port: u16,
    /// `[bitbucket]` keys overriding or adding to the defaults, as raw TOML values.
    bitbucket: Vec<(String, String)>,
    sim_args: Vec<String>,
    /// `[database]` address and timeout.
    database: Option<(String, String)>,
}

impl Scenario {
    /// Defaults: monitor every 200 ms (timeout 500 ms), startup 5 s, 2 failures, stop 1 s,
    /// kill 1 s, 1 restart per hour, notify into `notify.log`.
    pub fn new(name: &str) -> Scenario {
        let mut sc = Scenario::unwatched(name);
        sc.watch = Some(SimWatch::start(sc.dir.path()));
        sc
    }

    /// Like [`Scenario::new`] without the [`SimWatch`]: for the benchmarks (`src/bench/`), where
    /// a scan of /proc every 10 ms would be load on the machine being measured.
    /// [`Scenario::max_sims_alive`] is then 0 and [`Scenario::assert_never_two_sims`] checks
    /// nothing.
    pub fn unwatched(name: &str) -> Scenario {
        let dir = TestDir::new(name);
        let bitbucket = [
            ("monitor_interval", "\"200ms\""),
            ("monitor_timeout", "\"500ms\""),
            ("startup_timeout", "\"5s\""),
            ("failures_before_action", "2"),
            ("stop_timeout", "\"1s\""),
            ("kill_timeout", "\"1s\""),
            ("max_restarts", "1"),
            ("restart_window", "\"1h\""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Scenario {
            watch: None,
            dir,
            bin: None,
            port: free_port(),
            bitbucket,
            sim_args: Vec::new(),
            database: None,
        }
    }

    /// Runs and asks `bin` instead of [`bbwd_bin`] (a bench comparing two builds of bbwd).
    pub fn with_bbwd(mut self, bin: &Path) -> Scenario {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// The `bbwd` this scenario runs: [`Scenario::with_bbwd`]'s, else [`bbwd_bin`].
    pub fn bbwd_path(&self) -> PathBuf {
        self.bin.clone().unwrap_or_else(bbwd_bin)
    }

    /// Sets `[bitbucket] key = raw` (raw TOML: `"\"2s\""`, `"3"`).
    pub fn bitbucket(mut self, key: &str, raw: &str) -> Scenario {
        match self.bitbucket.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = raw.to_string(),
            None => self.bitbucket.push((key.to_string(), raw.to_string())),
        }
        self
    }

    /// Sets a `[bitbucket]` duration key, e.g. `.duration("startup_timeout", "2s")`.
    pub fn duration(self, key: &str, value: &str) -> Scenario {
        let raw = toml_str(value);
        self.bitbucket(key, &raw)
    }

    /// Extra simulator arguments appended to `bitbucket.command`.
    pub fn sim_args(mut self, args: &[&str]) -> Scenario {
        self.sim_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Adds `[database] address = ..., timeout = ...`.
    pub fn database(mut self, address: &str, timeout: &str) -> Scenario {
        self.database = Some((address.to_string(), timeout.to_string()));
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("bbwd.toml")
    }
    pub fn sim_dir(&self) -> PathBuf {
        self.dir.join("sim")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    pub fn bbwd_log(&self) -> PathBuf {
        self.dir.join("bbwd.log")
    }
    pub fn notify_log(&self) -> PathBuf {
        self.dir.join("notify.log")
    }
    pub fn status_url(&self) -> String {
        format!("http://127.0.0.1:{}/status", self.port)
    }

    /// The simulator command line the config names (without extra args).
    pub fn sim_command(&self) -> Vec<String> {
        let mut cmd = vec![
            bbsim_bin().display().to_string(),
            "--dir".to_string(),
            self.sim_dir().display().to_string(),
            "--port".to_string(),
            self.port.to_string(),
        ];
        cmd.extend(self.sim_args.iter().cloned());
        cmd
    }

    /// The config file text this scenario describes.
    pub fn config_text(&self) -> String {
        let dir = self.dir.path().display().to_string();
        let mut t = String::new();
        let _ = writeln!(t, "[node]");
        let _ = writeln!(t, "name = \"t1\"");
        let _ = writeln!(t, "state_dir = {}", toml_str(&format!("{dir}/state")));
        let _ = writeln!(
            t,
            "control_socket = {}",
            toml_str(&format!("{dir}/control.sock"))
        );
        let _ = writeln!(t, "\n[bitbucket]");
        let _ = writeln!(t, "status_url = {}", toml_str(&self.status_url()));
        let command: Vec<String> = self.sim_command().iter().map(|a| toml_str(a)).collect();
        let _ = writeln!(t, "command = [{}]", command.join(", "));
        for (key, raw) in &self.bitbucket {
            let _ = writeln!(t, "{key} = {raw}");
        }
        if let Some((address, timeout)) = &self.database {
            let _ = writeln!(t, "\n[database]");
            let _ = writeln!(t, "address = {}", toml_str(address));
            let _ = writeln!(t, "timeout = {}", toml_str(timeout));
        }
        let _ = writeln!(t, "\n[notify]");
        let script = format!("echo \"$BBWD_EVENT|$BBWD_NODE|$BBWD_DETAIL\" >> {dir}/notify.log");
        let _ = writeln!(t, "command = [\"/bin/sh\", \"-c\", {}]", toml_str(&script));
        t
    }

    /// Writes `config_text()` to `config_path()`.
    pub fn write_config(&self) -> PathBuf {
        self.write_config_text(&self.config_text())
    }

    /// Writes arbitrary config text (bad-config tests).
    pub fn write_config_text(&self, text: &str) -> PathBuf {
        let path = self.config_path();
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Writes the scenario's config unless a test wrote one already.
    pub fn ensure_config(&self) -> PathBuf {
        let path = self.config_path();
        if !path.exists() {
            self.write_config();
        }
        path
    }

    /// Runs `bbwd ARGS -c CONFIG` to completion (bounded by [`CLI_TIMEOUT`]).
    pub fn bbwd(&self, args: &[&str]) -> Output {
        let config = self.ensure_config();
        let mut cmd = Command::new(self.bbwd_path());
        cmd.args(args).arg("-c").arg(&config);
        scrub_env(&mut cmd);
        run_bounded(cmd, CLI_TIMEOUT)
    }

    /// `bbwd status --json -c CONFIG`: (exit code, parsed JSON). Panics when the output is
    /// not JSON.
    pub fn status_json(&self) -> (i32, Value) {
        let out = self.bbwd(&["status", "--json"]);
        let code = out.status.code().unwrap_or(-1);
        match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(v) => (code, v),
            Err(e) => panic!(
                "bbwd status --json (exit {code}) printed no JSON ({e}):\nstdout: {}\nstderr: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.diagnostics()
            ),
        }
    }

    /// The simulator's `events.log`, in file order.
    pub fn sim_events(&self) -> Vec<SimEvent> {
        events_log(&self.sim_dir())
    }

    /// PIDs of the simulator's START lines, in order.
    pub fn sim_starts(&self) -> Vec<u32> {
        self.sim_events()
            .iter()
            .filter(|e| e.kind == "START")
            .map(|e| e.pid)
            .collect()
    }

    /// `notify.log` lines split into (kind, node, detail).
    pub fn notify_lines(&self) -> Vec<(String, String, String)> {
        let text = fs::read_to_string(self.notify_log()).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut parts = line.splitn(3, '|');
                let kind = parts.next().unwrap_or("").to_string();
                let node = parts.next().unwrap_or("").to_string();
                let detail = parts.next().unwrap_or("").to_string();
                (kind, node, detail)
            })
            .collect()
    }

    /// Simulator processes of this test alive right now (zombies excluded).
    pub fn sims_alive(&self) -> Vec<u32> {
        sims_alive(self.dir.path())
    }

    /// The most simulator processes of this test ever seen alive at once.
    pub fn max_sims_alive(&self) -> usize {
        self.watch.as_ref().map_or(0, SimWatch::max_alive)
    }

    /// Panics if two simulators of this test were ever alive at the same time.
    pub fn assert_never_two_sims(&self) {
        let max = self.max_sims_alive();
        assert!(
            max <= 1,
            "{max} simulator processes were alive at once\n{}",
            self.diagnostics()
        );
    }

    /// Tails of bbwd.log, events.log and notify.log, for panic messages.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for (name, path, lines) in [
            ("bbwd.log", self.bbwd_log(), 60),
            ("sim events.log", self.sim_dir().join("events.log"), 20),
            ("notify.log", self.notify_log(), 30),
        ] {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})\n"));
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            let _ = writeln!(out, "--- {name} (last {lines} lines) ---");
            for line in &all[from..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

fn scrub_env(cmd: &mut Command) {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "debug");
}

/// Runs `cmd` with piped output; SIGKILLs it (by PID) and panics after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let description = format!("{cmd:?}");
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {description}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("wait for {description}: {e}"),
        Err(_) => {
            kill_pid(pid, libc::SIGKILL);
            panic!("{description} did not finish within {timeout:?}");
        }
    }
}

/// Polls `cond` every [`POLL`] until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon under test

/// A `bbwd run -c CONFIG` child process. Dropping it sends SIGTERM, then SIGKILL after
/// [`DROP_TERM_GRACE`].
pub struct Daemon<'a> {
    sc: &'a Scenario,
    child: Option<Child>,
}

impl<'a> Daemon<'a> {
    /// Starts `bbwd run` with the scenario's config (written if missing); output to `bbwd.log`.
    pub fn start(sc: &'a Scenario) -> Daemon<'a> {
        Daemon::start_with_env(sc, &[])
    }

    /// Like [`Daemon::start`] with extra environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`...).
    pub fn start_with_env(sc: &'a Scenario, env: &[(&str, &str)]) -> Daemon<'a> {
        let config = sc.ensure_config();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sc.bbwd_log())
            .expect("open bbwd.log");
        let log2 = log.try_clone().expect("dup bbwd.log");
        let mut cmd = Command::new(sc.bbwd_path());
        cmd.arg("run").arg("-c").arg(&config);
        scrub_env(&mut cmd);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn bbwd run: {e}"));
        Daemon {
            sc,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon already reaped").id()
    }

    pub fn status_json(&self) -> (i32, Value) {
        self.sc.status_json()
    }

    /// Sends `signal` to the daemon (only while it has not been reaped).
    pub fn signal(&self, signal: i32) {
        kill_pid(self.pid(), signal);
    }

    /// Whether the daemon exited; reaps it if so.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Waits for the daemon to exit on its own within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls `bbwd status --json` every [`POLL`] until `pred` holds and returns that status.
    /// Panics with the last status and the logs after `timeout`, or at once if the daemon
    /// exits meanwhile.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, status) = self.sc.status_json();
            if pred(&status) {
                return status;
            }
            if let Some(exit) = self.try_exit_status() {
                panic!(
                    "bbwd exited ({exit}) while waiting for {what}\nlast status (exit {code}): \
                     {status:#}\n{}",
                    self.sc.diagnostics()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nlast status (exit {code}): \
                     {status:#}\n{}",
                    self.sc.diagnostics()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `state` is `want`.
    pub fn wait_state(&mut self, timeout: Duration, want: &str) -> Value {
        self.wait_for(timeout, &format!("state {want:?}"), |s| s["state"] == want)
    }

    /// SIGTERM, then waits (bounded) for the exit. Panics if it does not exit within 20 s.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.try_exit_status() {
            return status;
        }
        self.signal(libc::SIGTERM);
        match self.wait_exit(Duration::from_secs(20)) {
            Some(status) => status,
            None => panic!(
                "bbwd did not exit within 20 s of SIGTERM\n{}",
                self.sc.diagnostics()
            ),
        }
    }

    /// SIGKILL to the daemon only (Bitbucket is left running, as after a bbwd crash).
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10))
            .expect("bbwd did not die of SIGKILL")
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(DROP_TERM_GRACE).is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.wait_exit(Duration::from_secs(5));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status JSON helpers

/// `events[].kind` in order (newest last).
pub fn event_kinds(status: &Value) -> Vec<String> {
    status["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How many events of `kind` the status holds.
pub fn count_events(status: &Value, kind: &str) -> usize {
    event_kinds(status).iter().filter(|k| *k == kind).count()
}

/// Whether `want` occurs in `kinds` in this order (other kinds may come between).
pub fn has_subsequence(kinds: &[String], want: &[&str]) -> bool {
    let mut want = want.iter().peekable();
    for kind in kinds {
        if want.peek().is_some_and(|w| *w == kind) {
            want.next();
        }
    }
    want.peek().is_none()
}

/// The first event of `kind`, if any.
pub fn find_event<'v>(status: &'v Value, kind: &str) -> Option<&'v Value> {
    status["events"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == kind)
}

// ---------------------------------------------------------------------------------------------
// The simulator

/// One line of the simulator's `events.log`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Since the Unix epoch.
    pub at: Duration,
    /// START, TERM, HANG or EXIT.
    pub kind: String,
    pub pid: u32,
    /// EXIT only.
    pub code: Option<i32>,
}

/// Parses `sim_dir/events.log` (missing file: no events). Unparseable lines panic: the file
/// is written only by bbsim.
pub fn events_log(sim_dir: &Path) -> Vec<SimEvent> {
    let text = fs::read_to_string(sim_dir.join("events.log")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| parse_sim_event(line).unwrap_or_else(|| panic!("bad events.log line {line:?}")))
        .collect()
}

fn parse_sim_event(line: &str) -> Option<SimEvent> {
    let mut words = line.split_whitespace();
    let (secs, nanos) = words.next()?.split_once('.')?;
    let at = Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    let kind = words.next()?.to_string();
    let mut pid = None;
    let mut code = None;
    for word in words {
        if let Some(v) = word.strip_prefix("pid=") {
            pid = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("code=") {
            code = v.parse().ok();
        }
    }
    Some(SimEvent {
        at,
        kind,
        pid: pid?,
        code,
    })
}

/// `GET path` on the simulator at 127.0.0.1:`port`: (status code, body). Panics on I/O errors.
pub fn sim_admin(port: u16, path: &str) -> (u16, String) {
    let (code, body) =
        http_get(port, path).unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"));
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// A minimal HTTP/1.0 GET with 2 s timeouts.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP reply");
    let head_end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&reply[..head_end]).map_err(|_| bad())?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, reply[head_end + 4..].to_vec()))
}

/// PIDs of live (not zombie) `bbsim` processes whose command line names a path under `dir`.
pub fn sims_alive(dir: &Path) -> Vec<u32> {
    let prefix = format!("{}/", dir.display());
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let proc_dir = entry.path();
        // Cheap filter first: comm is the executable's file name (truncated to 15 bytes).
        match fs::read(proc_dir.join("comm")) {
            Ok(comm) if comm.strip_suffix(b"\n").unwrap_or(&comm) == b"bbsim" => {}
            _ => continue,
        }
        let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else {
            continue;
        };
        let names_dir = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.starts_with(prefix.as_bytes()));
        if names_dir && !is_zombie(&proc_dir) {
            pids.push(pid);
        }
    }
    pids
}

/// State `Z` (or `X`) in /proc/PID/stat; a vanished process counts as one.
fn is_zombie(proc_dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return true;
    };
    // The state follows the last ')' (comm may contain spaces and parentheses).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z') | Some('X') | None)
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, clock ticks since boot), which
/// tells a process from a later one that got the same PID (pid_max is 32768 here: under a
/// loaded machine's process churn a PID comes round again within seconds).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the ')': field 3 (state) is the first; field 22 is the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that had `start_ticks` when it was seen is still alive (not a zombie):
/// a new process that reuses the PID does not count.
pub fn same_process_alive(pid: u32, ticks: Option<u64>) -> bool {
    pid_alive(pid) && ticks.is_some() && start_ticks(pid) == ticks
}

/// Whether a process with this PID exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    dir.exists() && !is_zombie(&dir)
}

pub fn kill_pid(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with a positive PID signals exactly that process; no memory is involved.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Samples /proc every [`SIM_WATCH_PERIOD`] on a thread and remembers the most simulator
/// processes of one test directory alive at once.
pub struct SimWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SimWatch {
    pub fn start(dir: &Path) -> SimWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let dir = dir.to_path_buf();
        let thread = {
            let (stop, max) = (stop.clone(), max.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(sims_alive(&dir).len(), Ordering::Relaxed);
                    std::thread::sleep(SIM_WATCH_PERIOD);
                }
            })
        };
        SimWatch {
            stop,
            max,
            thread: Some(thread),
        }
    }

    pub fn max_alive(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for SimWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Seconds since the Unix epoch, as the simulator writes them.
pub fn now_since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
