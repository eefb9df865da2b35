//! The command line: argument parsing, the client commands (`status`, `maintenance`, `reset`,
//! `check-config`, `reexec`), `run`'s checks before the daemon starts, and logging set-up.
//! Each command ends in an [`Exit`] (how it ended) or an [`Error`] (why it failed): `main`
//! reports the error ([`report`]) and `crate::exit` turns either into the exit code.
//!
//! Must not: implement daemon behaviour (that is `daemon/`), decide health (the daemon's
//! machine decides; `status.rs` gives a report its verdict) or write an exit code's number.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bbwd_core::fence::operator::Action;
use bbwd_platform::control;

use crate::config::{self, Config};
use crate::daemon;
use crate::exit::Exit;
use crate::hostcheck;
use crate::mirror::MaintMode;

mod error;
mod fence;
mod status;
pub use error::{report, Error};

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
    Fence(Action),
    Ocf { action: String },
    Version,
    Help,
}

/// Parses argv (without argv[0]): the flags, then the command their words name, then the flags
/// that command left unused (each a usage error).
fn parse(args: Vec<std::ffi::OsString>) -> Result<(Command, Option<PathBuf>), String> {
    let (words, mut flags) = match read_args(args)? {
        Read::Early(cmd) => return Ok((cmd, None)),
        Read::Args { words, flags } => (words, flags),
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let cmd = command_of(&words, &mut flags)?;
    refuse_unused_flags(&cmd, &flags)?;
    Ok((cmd, flags.config))
}

/// The flags as given, before the words say which command they go with.
#[derive(Default)]
struct Flags {
    config: Option<PathBuf>,
    json: bool,
    reason: Option<String>,
    lb: Option<MaintMode>,
}

/// What the argument loop read: an answer that needs no more (`-h`, `-V`), or the words and flags.
enum Read {
    Early(Command),
    Args { words: Vec<String>, flags: Flags },
}

/// Reads every argument in order: flags into [`Flags`], the rest as words; `-h` and `-V` end
/// the reading at once.
fn read_args(args: Vec<std::ffi::OsString>) -> Result<Read, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut flags = Flags::default();
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                flags.config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Long("json") => flags.json = true,
            Long("reason") => {
                flags.reason = Some(
                    p.value()
                        .map_err(|e| e.to_string())?
                        .string()
                        .map_err(|_| "--reason: not UTF-8")?,
                )
            }
            Long("drain") => set_lb(&mut flags.lb, MaintMode::Drain)?,
            Long("maint") => set_lb(&mut flags.lb, MaintMode::Maint)?,
            Short('h') | Long("help") => return Ok(Read::Early(Command::Help)),
            Short('V') | Long("version") => return Ok(Read::Early(Command::Version)),
            Value(v) => words.push(
                v.string()
                    .map_err(|_| "arguments must be UTF-8".to_string())?,
            ),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    Ok(Read::Args { words, flags })
}

/// `--drain` or `--maint`: either may repeat, but not both be given.
fn set_lb(lb: &mut Option<MaintMode>, mode: MaintMode) -> Result<(), String> {
    if lb.is_some_and(|m| m != mode) {
        return Err("--drain and --maint exclude each other".into());
    }
    *lb = Some(mode);
    Ok(())
}

/// The commands that are one word and take no flag but `-c`.
const ONE_WORD: [(&str, Command); 7] = [
    ("run", Command::Run),
    ("check-config", Command::CheckConfig),
    ("reset", Command::Reset),
    ("switchover", Command::Switchover),
    ("confirm-peer-down", Command::ConfirmPeerDown),
    ("reexec", Command::Reexec),
    ("version", Command::Version),
];

/// The command the words name; `maintenance on` takes `--reason` and `--drain`/`--maint` out
/// of `flags`.
fn command_of(words: &[&str], flags: &mut Flags) -> Result<Command, String> {
    if let [word] = words {
        if let Some((_, cmd)) = ONE_WORD.into_iter().find(|(w, _)| w == word) {
            return Ok(cmd);
        }
    }
    Ok(match words {
        ["status"] => Command::Status { json: flags.json },
        ["maintenance", "on"] => {
            let reason = flags.reason.take().unwrap_or_default();
            match flags.lb.take() {
                Some(lb) => Command::MaintenanceLb { reason, lb },
                None => Command::Maintenance { on: true, reason },
            }
        }
        ["maintenance", "off"] => Command::Maintenance {
            on: false,
            reason: String::new(),
        },
        ["fence", a] => match Action::parse(a) {
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
        ["help"] | [] => Command::Help,
        ["maintenance", ..] => {
            return Err(
                "usage: bbwd maintenance on [--reason TEXT] [--drain | --maint] | off".into(),
            )
        }
        [w, ..] => return Err(format!("unknown command `{w}` (see bbwd --help)")),
    })
}

/// A flag the command does not take is a usage error: `--json` outside `status`, and
/// `--drain`, `--maint` or `--reason` that `maintenance on` did not take.
fn refuse_unused_flags(cmd: &Command, flags: &Flags) -> Result<(), String> {
    if flags.json && !matches!(cmd, Command::Status { .. }) {
        return Err("--json goes with `status`".into());
    }
    if flags.lb.is_some() {
        return Err("--drain and --maint go with `maintenance on`".into());
    }
    if flags.reason.is_some() {
        return Err("--reason goes with `maintenance on`".into());
    }
    Ok(())
}

/// The config path: -c, else $BBWD_CONFIG, else the default.
fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("BBWD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// Runs the command line: how it ended, or why it failed (`main` reports the failure and turns
/// either into the exit code).
pub fn run() -> Result<Exit, Error> {
    if let Some(action) = crate::ocf::called_as_agent() {
        return Ok(crate::ocf::main(&action, None));
    }
    let (cmd, path) = parse(std::env::args_os().skip(1).collect()).map_err(Error::Usage)?;
    if let Command::Ocf { action } = &cmd {
        return Ok(crate::ocf::main(action, path));
    }
    let path = config_path(path);
    match cmd {
        Command::Help => {
            print!("{USAGE}");
            Ok(Exit::Ok)
        }
        Command::Version => {
            println!("bbwd {}", env!("CARGO_PKG_VERSION"));
            Ok(Exit::Ok)
        }
        Command::CheckConfig => check_config(&path),
        Command::Run => run_daemon(&path),
        Command::Status { json } => status::command(&path, json),
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
        Command::Ocf { action } => Ok(crate::ocf::main(&action, None)),
        Command::Fence(action) => {
            let cfg = config::load(&path).map_err(Error::Config)?;
            fence::command(&cfg, action)
        }
    }
}

/// `bbwd check-config`: the config's problems, then the host checks' errors; else the warnings
/// and `valid`.
fn check_config(path: &Path) -> Result<Exit, Error> {
    let cfg = config::load(path).map_err(Error::Config)?;
    let found = hostcheck::check(&cfg);
    let errors: Vec<_> = found
        .iter()
        .filter(|f| f.severity == hostcheck::Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(Error::HostCheck {
            path: path.to_path_buf(),
            errors,
        });
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
    Ok(Exit::Ok)
}

/// `bbwd run`: logging, the config and the checks `run` makes before it touches anything, then
/// the daemon until it stops.
fn run_daemon(path: &Path) -> Result<Exit, Error> {
    init_logging();
    let cfg = config::load(path).map_err(|problems| Error::StartConfig {
        problems,
        refusal: "refusing to start with an invalid config",
    })?;
    // Timing rule R5: only here is systemd's WatchdogSec known (WATCHDOG_USEC).
    let systemd_watchdog = bbwd_platform::sdnotify::SdNotify::watchdog_timeout();
    config::check_at_start(&cfg, path, systemd_watchdog).map_err(|problems| {
        Error::StartConfig {
            problems,
            refusal: "refusing to start: the timing rules do not hold",
        }
    })?;
    // The same host checks as check-config: what check-config calls an error, run refuses
    // (exit 2) before it touches anything.
    let found = hostcheck::check(&cfg);
    if found
        .iter()
        .any(|f| f.severity == hostcheck::Severity::Error)
    {
        return Err(Error::HostRefused {
            path: path.to_path_buf(),
            found,
        });
    }
    error::log_findings(path, &found);
    for w in config::warnings(&cfg) {
        log::warn!("{}: {w}", path.display());
    }
    daemon::run(cfg).map_err(Error::Daemon)?;
    // The last lines (bounded: a stalled reader must not hold the exit).
    bbwd_platform::logger::flush_for(error::LOG_FLUSH_LIMIT);
    Ok(Exit::Ok)
}

/// `single`, `pair` or `mirror`: the mode in words (`check-config`'s verdict, the status report
/// made without the daemon).
fn mode_word(cfg: &Config) -> &'static str {
    match cfg.mode() {
        config::Mode::Single => "single",
        config::Mode::Pair => "pair",
        config::Mode::Mirror => "mirror",
    }
}

/// Sends an operator request to the daemon; prints the outcome.
fn operator_command(path: &Path, req: &serde_json::Value) -> Result<Exit, Error> {
    let cfg = config::load(path).map_err(Error::Config)?;
    let socket = &cfg.node.control_socket;
    let reply =
        control::request(socket, req.to_string().as_bytes(), CLIENT_TIMEOUT).map_err(|source| {
            Error::Unreachable {
                socket: socket.clone(),
                source,
            }
        })?;
    let v = serde_json::from_slice::<serde_json::Value>(&reply).map_err(Error::Reply)?;
    if v.get("ok") != Some(&serde_json::Value::Bool(true)) {
        let why = v["error"].as_str().unwrap_or("no reason given");
        return Err(Error::Refused(why.to_string()));
    }
    println!("done: state is now {}", v["state"].as_str().unwrap_or("?"));
    Ok(Exit::Ok)
}

/// How long `bbwd reexec` waits for the re-executed daemon to answer (it re-adopts Bitbucket
/// and opens its sockets in well under a second; a slow BMC session start is not waited for).
const REEXEC_WAIT: Duration = Duration::from_secs(30);

/// `bbwd reexec` (the unit's `ExecReload`): asks the daemon to run the binary now installed in
/// place, then waits until the new run answers, so `systemctl reload` returns once it has.
fn reexec_command(path: &Path) -> Result<Exit, Error> {
    let cfg = config::load(path).map_err(Error::Config)?;
    let socket = &cfg.node.control_socket;
    let run_of = |reply: &[u8]| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(reply).ok()?;
        v["daemon_run"]["started_at_ms"].as_u64()
    };
    let before = control::request(socket, br#"{"cmd":"status"}"#, CLIENT_TIMEOUT)
        .ok()
        .and_then(|r| run_of(&r));
    operator_command(path, &serde_json::json!({ "cmd": "reexec" }))?;
    let deadline = std::time::Instant::now() + REEXEC_WAIT;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(reply) = control::request(socket, br#"{"cmd":"status"}"#, CLIENT_TIMEOUT) {
            let now = run_of(&reply);
            if now.is_some() && now != before {
                println!("re-executed: the new run answers");
                return Ok(Exit::Ok);
            }
        }
    }
    Err(Error::ReexecTimeout(REEXEC_WAIT))
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
            (Command::Fence(Action::Off), Some("/x.toml".into()))
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
