//! The command line: argument parsing, the client commands (`status`, `maintenance`, `reset`,
//! `check-config`), logging set-up, and the mapping of every outcome to an exit code.
//!
//! Must not: implement daemon behaviour (that is `daemon.rs`) or decide health (the daemon's
//! machine decides; `status.rs` maps a report to an exit code).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bbwd_platform::control;
use bbwd_platform::http::{HttpProbe, Interest, ProbeOutcome, StatusTarget};
use bbwd_platform::poll::{PollSet, Want};

use crate::config::{self, Config};
use crate::daemon;
use crate::hostcheck;
use crate::machine::ProbeText;
use crate::mirror::MaintMode;
use crate::status::{self, Status};

/// How long a client waits for the daemon's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
bbwd - keeps Bitbucket Server highly available on bare-metal nodes

usage:
  bbwd run [-c PATH]                          the daemon (systemd Type=notify)
  bbwd status [-c PATH] [--json]              health of this node (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
  bbwd check-config [-c PATH]                 validate the config (exit 0 valid, 2 invalid)
  bbwd maintenance on [--reason TEXT] [-c PATH]  pause automatic correction (survives restarts)
       [--drain | --maint]                    mirror-farm node: HAProxy's agent check answers
                                              `drain` (default: sticky sessions finish, no new
                                              ones) or `maint` (no traffic at all)
  bbwd maintenance off [-c PATH]              resume automatic correction
  bbwd reset [-c PATH]                        clear a `failed` state and start Bitbucket again
  bbwd switchover [-c PATH]                   pair: planned move to the peer (refused unless it is a healthy standby)
  bbwd confirm-peer-down [-c PATH]            pair: the peer is off (its BMC cannot say so); lets a blocked takeover go on
  bbwd fence status|off|on|cycle [-c PATH]    act on the peer's BMC ([fencing]) without the daemon;
                                              prints on/off; `off` returns once the BMC confirms off
  bbwd ocf start|stop|monitor|meta-data|validate-all  Pacemaker OCF resource agent
                                              (config from OCF_RESKEY_config; see bbwd(8))
  bbwd reexec                                 run the bbwd binary now installed in place of the
                                              daemon (systemctl reload; upgrades): Bitbucket,
                                              the VIP and the role are kept
  bbwd version                                print the version

The config is -c PATH, else $BBWD_CONFIG, else /etc/bbwd/bbwd.toml.
Logging: RUST_LOG=debug|info|warn (default info), to stderr (journald priorities under systemd).
";

/// What the command line asked for.
#[derive(Debug, PartialEq)]
enum Command {
    Run,
    Status { json: bool },
    CheckConfig,
    Maintenance { on: bool, reason: String },
    MaintenanceLb { reason: String, lb: MaintMode },
    Reset,
    Switchover,
    ConfirmPeerDown,
    Reexec,
    Fence(crate::fence::Action),
    Ocf { action: String },
    Version,
    Help,
}

/// Parses argv (without argv[0]).
fn parse(args: Vec<std::ffi::OsString>) -> Result<(Command, Option<PathBuf>), String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut config = None;
    let mut json = false;
    let mut reason = None;
    let mut lb = None;
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Long("json") => json = true,
            Long("reason") => {
                reason = Some(
                    p.value()
                        .map_err(|e| e.to_string())?
                        .string()
                        .map_err(|_| "--reason: not UTF-8")?,
                )
            }
            Long("drain") | Long("maint") => {
                let mode = if arg == Long("drain") {
                    MaintMode::Drain
                } else {
                    MaintMode::Maint
                };
                if lb.is_some_and(|m| m != mode) {
                    return Err("--drain and --maint exclude each other".into());
                }
                lb = Some(mode);
            }
            Short('h') | Long("help") => return Ok((Command::Help, None)),
            Short('V') | Long("version") => return Ok((Command::Version, None)),
            Value(v) => words.push(
                v.string()
                    .map_err(|_| "arguments must be UTF-8".to_string())?,
            ),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let cmd = match words.as_slice() {
        ["run"] => Command::Run,
        ["status"] => Command::Status { json },
        ["check-config"] => Command::CheckConfig,
        ["maintenance", "on"] => match lb.take() {
            Some(lb) => Command::MaintenanceLb {
                reason: reason.take().unwrap_or_default(),
                lb,
            },
            None => Command::Maintenance {
                on: true,
                reason: reason.take().unwrap_or_default(),
            },
        },
        ["maintenance", "off"] => Command::Maintenance {
            on: false,
            reason: String::new(),
        },
        ["reset"] => Command::Reset,
        ["switchover"] => Command::Switchover,
        ["confirm-peer-down"] => Command::ConfirmPeerDown,
        ["reexec"] => Command::Reexec,
        ["fence", a] => match crate::fence::Action::parse(a) {
            Some(a) => Command::Fence(a),
            None => return Err("usage: bbwd fence status|off|on|cycle".into()),
        },
        ["fence", ..] => return Err("usage: bbwd fence status|off|on|cycle".into()),
        ["ocf"] => Command::Ocf {
            action: String::new(),
        },
        ["ocf", a] => Command::Ocf {
            action: a.to_string(),
        },
        ["ocf", ..] => return Err("usage: bbwd ocf ACTION".into()),
        ["version"] => Command::Version,
        ["help"] | [] => Command::Help,
        ["maintenance", ..] => {
            return Err(
                "usage: bbwd maintenance on [--reason TEXT] [--drain | --maint] | off".into(),
            )
        }
        [w, ..] => return Err(format!("unknown command `{w}` (see bbwd --help)")),
    };
    if json && !matches!(cmd, Command::Status { .. }) {
        return Err("--json goes with `status`".into());
    }
    if lb.is_some() {
        return Err("--drain and --maint go with `maintenance on`".into());
    }
    if reason.is_some() {
        return Err("--reason goes with `maintenance on`".into());
    }
    Ok((cmd, config))
}

/// The config path: -c, else $BBWD_CONFIG, else the default.
fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("BBWD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    if let Some(action) = crate::ocf::called_as_agent() {
        return crate::ocf::main(&action, None);
    }
    let (cmd, path) = match parse(std::env::args_os().skip(1).collect()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bbwd: {e}");
            return 2;
        }
    };
    if let Command::Ocf { action } = &cmd {
        return crate::ocf::main(action, path);
    }
    let path = config_path(path);
    match cmd {
        Command::Help => {
            print!("{USAGE}");
            0
        }
        Command::Version => {
            println!("bbwd {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::CheckConfig => match config::load(&path) {
            Ok(cfg) => {
                let found = hostcheck::check(&cfg);
                let errors: Vec<_> = found
                    .iter()
                    .filter(|f| f.severity == hostcheck::Severity::Error)
                    .collect();
                if !errors.is_empty() {
                    for f in errors {
                        eprintln!("{}: {f}", path.display());
                    }
                    return 2;
                }
                for w in config::warnings(&cfg) {
                    eprintln!("{}: warning: {w}", path.display());
                }
                for f in found
                    .iter()
                    .filter(|f| f.severity == hostcheck::Severity::Warning)
                {
                    eprintln!("{}: warning: {f}", path.display());
                }
                println!(
                    "{}: valid ({} node `{}`)",
                    path.display(),
                    mode_word(&cfg),
                    cfg.node.name
                );
                0
            }
            Err(problems) => {
                eprint!("{problems}");
                if !problems.to_string().ends_with('\n') {
                    eprintln!();
                }
                2
            }
        },
        Command::Run => {
            init_logging();
            let cfg = match config::load(&path) {
                Ok(c) => c,
                Err(problems) => {
                    for line in problems.to_string().lines() {
                        log::error!("{line}");
                    }
                    log::error!("refusing to start with an invalid config");
                    return 2;
                }
            };
            // Timing rule R5: only here is systemd's WatchdogSec known (WATCHDOG_USEC).
            let systemd_watchdog = bbwd_platform::sdnotify::SdNotify::watchdog_timeout();
            if let Err(problems) = config::check_at_start(&cfg, &path, systemd_watchdog) {
                for line in problems.to_string().lines() {
                    log::error!("{line}");
                }
                log::error!("refusing to start: the timing rules do not hold");
                return 2;
            }
            // The same host checks as check-config: what check-config calls an error, run
            // refuses (exit 2) before it touches anything.
            let found = hostcheck::check(&cfg);
            let mut refused = false;
            for f in &found {
                match f.severity {
                    hostcheck::Severity::Error => {
                        log::error!("{}: {f}", path.display());
                        refused = true;
                    }
                    hostcheck::Severity::Warning => log::warn!("{}: {f}", path.display()),
                }
            }
            if refused {
                log::error!("refusing to start: the config does not fit this node (bbwd check-config lists the same)");
                bbwd_platform::logger::flush_for(Duration::from_secs(1));
                return 2;
            }
            for w in config::warnings(&cfg) {
                log::warn!("{}: {w}", path.display());
            }
            let code = match daemon::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    e.exit_code()
                }
            };
            // The last lines (bounded: a stalled reader must not hold the exit).
            bbwd_platform::logger::flush_for(Duration::from_secs(1));
            code
        }
        Command::Status { json } => status_command(&path, json),
        Command::MaintenanceLb { reason, lb } => {
            let req =
                serde_json::json!({ "cmd": "maintenance", "on": true, "reason": reason, "lb": lb });
            operator_command(&path, &req)
        }
        Command::Maintenance { on, reason } => {
            let req = serde_json::json!({ "cmd": "maintenance", "on": on, "reason": reason });
            operator_command(&path, &req)
        }
        Command::Reset => operator_command(&path, &serde_json::json!({ "cmd": "reset" })),
        Command::Switchover => operator_command(&path, &serde_json::json!({ "cmd": "switchover" })),
        Command::ConfirmPeerDown => {
            operator_command(&path, &serde_json::json!({ "cmd": "confirm_peer_down" }))
        }
        Command::Reexec => reexec_command(&path),
        // Dispatched above, before $BBWD_CONFIG could hide OCF_RESKEY_config.
        Command::Ocf { action } => crate::ocf::main(&action, None),
        Command::Fence(action) => match config::load(&path) {
            Ok(cfg) => crate::fence::command(&cfg, action),
            Err(p) => {
                print_config_error(&p);
                2
            }
        },
    }
}

/// A config error on stderr, ending in a newline.
fn print_config_error(p: &dyn std::fmt::Display) {
    let text = p.to_string();
    if text.ends_with('\n') {
        eprint!("{text}");
    } else {
        eprintln!("{text}");
    }
}

/// What the config names but this node lacks, as `run` and `ocf validate-all` would find it:
/// each problem on one line naming its key.
fn mode_word(cfg: &Config) -> &'static str {
    match cfg.mode() {
        config::Mode::Single => "single",
        config::Mode::Pair => "pair",
        config::Mode::Mirror => "mirror",
    }
}

/// Sends an operator request to the daemon; prints the outcome.
fn operator_command(path: &Path, req: &serde_json::Value) -> i32 {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(p) => {
            print_config_error(&p);
            return 2;
        }
    };
    let socket = &cfg.node.control_socket;
    match control::request(socket, req.to_string().as_bytes(), CLIENT_TIMEOUT) {
        Ok(reply) => match serde_json::from_slice::<serde_json::Value>(&reply) {
            Ok(v) if v.get("ok") == Some(&serde_json::Value::Bool(true)) => {
                println!("done: state is now {}", v["state"].as_str().unwrap_or("?"));
                0
            }
            Ok(v) => {
                eprintln!(
                    "bbwd: refused: {}",
                    v["error"].as_str().unwrap_or("no reason given")
                );
                1
            }
            Err(e) => {
                eprintln!("bbwd: unreadable reply from the daemon: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("bbwd: {}", unreachable_reason(&e, socket));
            1
        }
    }
}

/// How long `bbwd reexec` waits for the re-executed daemon to answer (it re-adopts Bitbucket
/// and opens its sockets in well under a second; a slow BMC session start is not waited for).
const REEXEC_WAIT: Duration = Duration::from_secs(30);

/// `bbwd reexec` (the unit's `ExecReload`): asks the daemon to run the binary now installed in
/// place, then waits until the new run answers, so `systemctl reload` returns once it has.
fn reexec_command(path: &Path) -> i32 {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(p) => {
            print_config_error(&p);
            return 2;
        }
    };
    let socket = &cfg.node.control_socket;
    let run_of = |reply: &[u8]| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(reply).ok()?;
        v["daemon_run"]["started_at_ms"].as_u64()
    };
    let before = control::request(socket, br#"{"cmd":"status"}"#, CLIENT_TIMEOUT)
        .ok()
        .and_then(|r| run_of(&r));
    let code = operator_command(path, &serde_json::json!({ "cmd": "reexec" }));
    if code != 0 {
        return code;
    }
    let deadline = std::time::Instant::now() + REEXEC_WAIT;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(reply) = control::request(socket, br#"{"cmd":"status"}"#, CLIENT_TIMEOUT) {
            let now = run_of(&reply);
            if now.is_some() && now != before {
                println!("re-executed: the new run answers");
                return 0;
            }
        }
    }
    eprintln!(
        "bbwd: the re-executed daemon did not answer within {} s",
        REEXEC_WAIT.as_secs()
    );
    1
}

/// Why the daemon's control socket gave no answer, and whether that means it is down.
enum Unreachable {
    /// Nobody listens: the daemon is down.
    Down,
    /// It may well run; this caller cannot tell (permission, busy, no reply in time).
    Unknown(String),
}

fn classify_unreachable(e: &control::Error, socket: &Path) -> Unreachable {
    use std::io::ErrorKind;
    match e {
        control::Error::Connect { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc_errno::ENOENT | libc_errno::ECONNREFUSED)
            ) =>
        {
            Unreachable::Down
        }
        control::Error::Connect { source, .. } if source.kind() == ErrorKind::PermissionDenied => {
            Unreachable::Unknown(format!(
                "no permission to use the control socket {} (run as root, or set [node] \
                 status_group to a group of this user for read-only status)",
                socket.display()
            ))
        }
        control::Error::Io(source) if source.kind() == ErrorKind::UnexpectedEof => {
            Unreachable::Unknown(
                "the daemon closed the connection: all its control slots are busy".into(),
            )
        }
        control::Error::Timeout => Unreachable::Unknown(format!(
            "no reply on {} within {} s (the daemon is busy or stalled)",
            socket.display(),
            CLIENT_TIMEOUT.as_secs()
        )),
        other => Unreachable::Unknown(other.to_string()),
    }
}

fn unreachable_reason(e: &control::Error, socket: &Path) -> String {
    match classify_unreachable(e, socket) {
        Unreachable::Down => format!("the daemon does not answer: {e}"),
        Unreachable::Unknown(why) => why,
    }
}

/// errno values the classification needs (std has no named constants).
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const ECONNREFUSED: i32 = 111;
}

/// `bbwd status`: asks the daemon; if it is down, probes Bitbucket itself.
fn status_command(path: &Path, json: bool) -> i32 {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(p) => {
            print_config_error(&p);
            if json {
                let v = serde_json::json!({
                    "daemon": "unknown",
                    "state": "unknown",
                    "error": format!("cannot read the config {}", path.display()),
                    "problems": p.to_string().lines().collect::<Vec<_>>(),
                });
                println!("{v:#}");
            } else {
                println!("BBWD UNKNOWN - cannot read the config");
            }
            return status::UNKNOWN;
        }
    };
    let socket = &cfg.node.control_socket;
    let st = match control::request(socket, br#"{"cmd":"status"}"#, CLIENT_TIMEOUT) {
        Ok(reply) => match serde_json::from_slice::<Status>(&reply) {
            Ok(s) => s,
            Err(e) => {
                let why = serde_json::from_slice::<serde_json::Value>(&reply)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("unreadable reply from the daemon: {e}"));
                unknown_status(&cfg, why)
            }
        },
        Err(e) => match classify_unreachable(&e, socket) {
            Unreachable::Down => daemon_down_status(&cfg),
            Unreachable::Unknown(why) => unknown_status(&cfg, why),
        },
    };
    if json {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &st);
        let _ = writeln!(out);
    } else {
        print!("{}", st.render());
    }
    st.exit_code()
}

/// A report of a daemon whose state this caller cannot know (UNKNOWN): no probe either (a
/// monitoring user without permission must not be told DOWN).
fn unknown_status(cfg: &Config, why: String) -> Status {
    let mut st = daemon_down_status_with(cfg, None);
    st.daemon = "unknown".into();
    st.state = "unknown".into();
    st.daemon_error = Some(why);
    st
}

/// How long `status` waits for Bitbucket's `/status` itself when the daemon is down.
const DIRECT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A report made without the daemon: Bitbucket's `/status` probed directly.
fn daemon_down_status(cfg: &Config) -> Status {
    let timeout = cfg.bitbucket.monitor_timeout.min(DIRECT_PROBE_TIMEOUT);
    let probe = StatusTarget::parse(&cfg.bitbucket.status_url)
        .ok()
        .map(|t| (probe_once(&t, timeout), timeout));
    daemon_down_status_with(cfg, probe)
}

fn daemon_down_status_with(cfg: &Config, probe: Option<(ProbeOutcome, Duration)>) -> Status {
    let last_check = probe.as_ref().map(|(p, t)| match p {
        // The CLI's own wait, not the daemon's monitor_timeout.
        ProbeOutcome::Failed(bbwd_platform::http::ProbeFailure::Timeout) => {
            format!("no reply within {} s", t.as_secs_f32())
        }
        p => ProbeText(p).to_string(),
    });
    let probe = probe.map(|(p, _)| p);
    let (state, http_status) = match probe {
        Some(ProbeOutcome::Reply { http_status, state }) => {
            (state.map(|s| s.as_str().to_string()), Some(http_status))
        }
        _ => (None, None),
    };
    Status {
        node: cfg.node.name.clone(),
        mode: mode_word(cfg).into(),
        role: "none".into(),
        state: "stopped".into(),
        daemon: "down".into(),
        bitbucket: status::Bitbucket {
            state,
            http_status,
            pid: None,
            consecutive_failures: 0,
            last_check,
        },
        restarts: 0,
        peer: None,
        vip: None,
        fencing: None,
        watchdog: status::Watchdog {
            device: "unknown".into(),
            armed: false,
            petting: true,
            systemd_interval_ms: None,
            ..Default::default()
        },
        database: None,
        maintenance: None,
        failed: None,
        version: env!("CARGO_PKG_VERSION").into(),
        events: Vec::new(),
        load_balancer: None,
        clock: bbwd_platform::clock::kernel_sync()
            .ok()
            .map(crate::mirror::clock_report),
        daemon_error: None,
        loop_stats: None,
        daemon_run: None,
    }
}

/// One blocking probe (the CLI may block; the daemon never does).
pub(crate) fn probe_once(target: &StatusTarget, timeout: Duration) -> ProbeOutcome {
    let mut probe = HttpProbe::new();
    let now = Instant::now();
    if let Err(outcome) = probe.start(target, now, timeout) {
        return outcome;
    }
    let mut set = PollSet::new();
    loop {
        set.clear();
        if let Some((fd, i)) = probe.interest() {
            let want = match i {
                Interest::Readable => Want::Read,
                Interest::Writable => Want::Write,
            };
            let _ = set.add(fd, want);
        }
        let now = Instant::now();
        let wait = probe.deadline().map(|d| d.saturating_duration_since(now));
        let _ = set.wait(wait);
        if let Some(o) = probe.advance(Instant::now()) {
            return o;
        }
    }
}

/// Logging to stderr: journald priority prefixes and no timestamps under systemd
/// (`JOURNAL_STREAM` set), timestamps otherwise.
///
/// Never blocking: lines go through a bounded buffer and non-blocking writes
/// (`bbwd_platform::logger`); a stalled reader costs counted lines, not the loop's pace.
fn init_logging() {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let level = bbwd_platform::logger::level_from_env(std::env::var("RUST_LOG").ok().as_deref());
    bbwd_platform::logger::init(journal, level);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<(Command, Option<PathBuf>), String> {
        parse(args.iter().map(Into::into).collect())
    }

    #[test]
    fn parses_the_spec_commands() {
        assert_eq!(
            p(&["run", "-c", "/x.toml"]).unwrap(),
            (Command::Run, Some("/x.toml".into()))
        );
        assert_eq!(
            p(&["status", "--json"]).unwrap().0,
            Command::Status { json: true }
        );
        assert_eq!(p(&["check-config"]).unwrap().0, Command::CheckConfig);
        assert_eq!(
            p(&["maintenance", "on", "--reason", "upgrade to 9.4"])
                .unwrap()
                .0,
            Command::Maintenance {
                on: true,
                reason: "upgrade to 9.4".into()
            }
        );
        assert_eq!(
            p(&["maintenance", "off"]).unwrap().0,
            Command::Maintenance {
                on: false,
                reason: String::new()
            }
        );
        assert_eq!(p(&["reset"]).unwrap().0, Command::Reset);
        assert_eq!(
            p(&["fence", "off", "-c", "/x.toml"]).unwrap(),
            (
                Command::Fence(crate::fence::Action::Off),
                Some("/x.toml".into())
            )
        );
        assert!(p(&["fence", "reboot"]).is_err());
        assert_eq!(p(&["version"]).unwrap().0, Command::Version);
        assert_eq!(
            p(&["ocf", "monitor", "-c", "/x.toml"]).unwrap(),
            (
                Command::Ocf {
                    action: "monitor".into()
                },
                Some("/x.toml".into())
            )
        );
        assert!(p(&["ocf", "start", "now"]).is_err());
    }

    #[test]
    fn maintenance_tells_the_load_balancer_drain_or_maint() {
        let lb = |args: &[&str]| match p(args).unwrap().0 {
            Command::MaintenanceLb { reason, lb } => Some((reason, lb)),
            Command::Maintenance { on: true, .. } => None,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(lb(&["maintenance", "on"]), None);
        assert_eq!(
            lb(&["maintenance", "on", "--drain"]),
            Some((String::new(), MaintMode::Drain))
        );
        assert_eq!(
            lb(&["maintenance", "--maint", "on", "--reason", "disk"]),
            Some(("disk".into(), MaintMode::Maint))
        );
        assert_eq!(
            lb(&["maintenance", "on", "--maint", "--maint"]),
            Some((String::new(), MaintMode::Maint))
        );
        assert!(p(&["maintenance", "on", "--drain", "--maint"])
            .unwrap_err()
            .contains("exclude"));
        assert!(p(&["maintenance", "off", "--maint"])
            .unwrap_err()
            .contains("--maint go with `maintenance on`"));
        assert!(p(&["status", "--drain"]).is_err());
        assert!(USAGE.contains("[--drain | --maint]"));
    }

    #[test]
    fn refuses_bad_usage_with_a_reason() {
        assert!(p(&["frobnicate"])
            .unwrap_err()
            .contains("unknown command `frobnicate`"));
        assert!(p(&["run", "--json"]).unwrap_err().contains("--json"));
        assert!(p(&["maintenance", "off", "--reason", "x"])
            .unwrap_err()
            .contains("--reason"));
        assert!(p(&["maintenance"]).is_err());
        assert!(p(&["status", "--bogus"]).is_err());
    }
}
