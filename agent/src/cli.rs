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
                for w in config::warnings(&cfg) {
                    eprintln!("{}: warning: {w}", path.display());
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
            for w in config::warnings(&cfg) {
                log::warn!("{}: {w}", path.display());
            }
            match daemon::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            }
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
                eprint!("{p}");
                2
            }
        },
    }
}

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
            eprint!("{p}");
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
            eprintln!("bbwd: the daemon does not answer: {e}");
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
            eprint!("{p}");
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

/// `bbwd status`: asks the daemon; if it is down, probes Bitbucket itself.
fn status_command(path: &Path, json: bool) -> i32 {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(p) => {
            eprint!("{p}");
            println!("BBWD UNKNOWN - cannot read the config");
            return status::UNKNOWN;
        }
    };
    let st = match control::request(
        &cfg.node.control_socket,
        br#"{"cmd":"status"}"#,
        CLIENT_TIMEOUT,
    ) {
        Ok(reply) => match serde_json::from_slice::<Status>(&reply) {
            Ok(s) => s,
            Err(e) => {
                println!("BBWD UNKNOWN - unreadable reply from the daemon: {e}");
                return status::UNKNOWN;
            }
        },
        Err(_) => daemon_down_status(&cfg),
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

/// A report made without the daemon: Bitbucket's `/status` probed directly.
fn daemon_down_status(cfg: &Config) -> Status {
    let probe = StatusTarget::parse(&cfg.bitbucket.status_url)
        .ok()
        .map(|t| {
            probe_once(
                &t,
                cfg.bitbucket.monitor_timeout.min(Duration::from_secs(10)),
            )
        });
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
            last_check: probe.as_ref().map(|p| ProbeText(p).to_string()),
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
fn init_logging() {
    use std::io::Write;
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if journal {
        b.format(|buf, rec| {
            let prio = match rec.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{prio}>{}", rec.args())
        });
    } else {
        b.format(|buf, rec| {
            let ms = bbwd_platform::clock::wall_ms();
            writeln!(
                buf,
                "{} {:<5} {}",
                bbwd_platform::clock::rfc3339(ms),
                rec.level(),
                rec.args()
            )
        });
    }
    b.target(env_logger::Target::Stderr).init();
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
