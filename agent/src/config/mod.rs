//! bbwd.toml: every key of SPEC.md with its default, parsed and validated.
//!
//! Owns: the `Config` types and the entry points: [`load`] and [`parse`] (every check `bbwd
//! check-config` and `bbwd run` perform on the file), [`check_at_start`] (the timing rule R5,
//! which needs systemd's `WatchdogSec`) and [`warnings`] (W1, an unverified Redfish
//! certificate). Every problem is collected (not just the first), each naming its key and,
//! where the TOML parser knows it, its line. Unknown keys and sections are errors: a typo must
//! never fall back silently to a default. Secret files named by the config must be mode 0600 or
//! stricter.
//!
//! Must not: start anything, touch the network beyond resolving `database.address` once (so a
//! name that does not resolve is a config problem, not a surprise at the first check), or read
//! files other than the config itself, the host name (`/proc/sys/kernel/hostname`, the default
//! `node.name`), the metadata of the secret files it names and a Redfish `ca_file`. Only
//! [`load`] (the file) and `io.rs` (the rest) do I/O. What a valid config means for this node
//! (programs, users, interfaces, addresses) is `crate::hostcheck`'s, asked after a config loads.
//!
//! # Theory of operation
//!
//! ```text
//!  text --DeTable::parse_recoverable--> tables with the span of every key and value,
//!   |                                   and the TOML syntax errors (problems on their lines)
//!   v
//!  phase 1, the walk: sections.rs reads each section through its own file (node.rs ...
//!   |   metrics.rs) with values.rs's getters: each returns the value to use (the default when a
//!   |   key is absent) and records a Problem when the value is wrong, so one pass reports
//!   |   everything. No I/O: what needs this machine is deferred (io::Pending).
//!   v
//!  phase 2, io.rs: host name, secret files' modes, CA file, DNS. A failure is a Problem put
//!   |   where the walk would have put it, and invalidates its section.
//!   v
//!  phase 3: the rules between sections (cross_section.rs) and the timing rules (timing.rs)
//!   v
//!  problems sorted by line (those on a line the TOML parser rejected dropped: its recovery
//!  guessed there); a Config only when there is none
//! ```
//!
//! | file | owns |
//! |---|---|
//! | `walk.rs` | the `Checker`: spans to lines, problems and their order, deferred checks |
//! | `values.rs` | the typed getters every section uses |
//! | `hints.rs` | unknown keys and sections, and "did you mean" |
//! | `duration.rs` | `"15s"` |
//! | `node.rs`, `bitbucket.rs`, `database.rs`, `watchdog.rs`, `notify.rs`, `cluster.rs`, `vip.rs`, `fencing.rs` (with `[[fencing.device]]`), `hooks.rs`, `load_balancer.rs`, `metrics.rs` | one section each: its keys, defaults and rules |
//! | `bmc.rs` | the BMC keys shared by `[watchdog.ipmi]` and `[fencing]` |
//! | `sections.rs` | the sections as each phase hands them on |
//! | `io.rs` | phase 2 |
//! | `cross_section.rs`, `timing.rs` | phase 3 |
//!
//! # Invariants
//! * A `Config` is returned only when there is no problem; every invalid section reports why.
//! * The problems, their order and the `Config` are those of a single pass that did the I/O
//!   inline: phase 2 puts each failure in the walk's order and invalidates what an inline
//!   failure would have.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

mod bitbucket;
mod bmc;
mod cluster;
mod cross_section;
mod database;
mod duration;
mod fencing;
mod hints;
mod hooks;
mod io;
mod load_balancer;
mod metrics;
mod node;
mod notify;
mod sections;
mod timing;
mod values;
mod vip;
mod walk;
mod watchdog;

pub use duration::parse_duration;
pub use timing::{check_at_start, timings};

use sections::Read;
use walk::Checker;

/// Where the daemon looks by default (`$BBWD_CONFIG` overrides it, `-c` overrides both).
pub const DEFAULT_PATH: &str = "/etc/bbwd/bbwd.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: Node,
    pub bitbucket: Bitbucket,
    pub database: Option<Database>,
    pub watchdog: Watchdog,
    pub notify: Option<Notify>,
    pub cluster: Option<Cluster>,
    pub vip: Option<Vip>,
    pub fencing: Option<Fencing>,
    pub hooks: Hooks,
    pub load_balancer: Option<LoadBalancer>,
    /// `[metrics]`, any mode: the Prometheus endpoint and/or node_exporter's textfile.
    pub metrics: Option<Metrics>,
}

/// Which topology the config describes (SPEC "Topology it serves").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Pair,
    Mirror,
}

impl Config {
    pub fn mode(&self) -> Mode {
        if self.cluster.is_some() {
            Mode::Pair
        } else if self.load_balancer.is_some() {
            Mode::Mirror
        } else {
            Mode::Single
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Default: the host name.
    pub name: String,
    /// Default `/var/lib/bbwd`.
    pub state_dir: PathBuf,
    /// Default `/run/bbwd/control.sock`.
    pub control_socket: PathBuf,
    /// Optional: members of this group may ask the daemon for its status (read-only; every
    /// other request stays root only), e.g. a monitoring agent's `nagios`.
    pub status_group: Option<String>,
}

/// `[bitbucket]`
#[derive(Debug, Clone, PartialEq)]
pub struct Bitbucket {
    /// Default `http://127.0.0.1:7990/status`; http only.
    pub status_url: String,
    /// Default `["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"]`; must not be empty.
    pub command: Vec<String>,
    pub user: Option<String>,
    pub environment: BTreeMap<String, String>,
    /// Default 15 s.
    pub monitor_interval: Duration,
    /// Default 30 s.
    pub monitor_timeout: Duration,
    /// Default 10 min.
    pub startup_timeout: Duration,
    /// Default 2; at least 1.
    pub failures_before_action: u32,
    /// Default 120 s.
    pub stop_timeout: Duration,
    /// Default 10 s.
    pub kill_timeout: Duration,
    /// Default 1.
    pub max_restarts: u32,
    /// Default 1 h.
    pub restart_window: Duration,
    /// Added key `capture_output`, default true: read Bitbucket's stdout/stderr through bbwd
    /// (forwarded to bbwd's log) to recognise an `OutOfMemoryError` line.
    pub capture_output: bool,
}

/// `[database]`
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    /// `host:port` as written.
    pub address: String,
    /// Resolved once at load time.
    pub resolved: SocketAddr,
    /// Default 5 s.
    pub timeout: Duration,
}

/// `[watchdog] device`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchdogDevice {
    None,
    /// A watchdog character device such as `/dev/watchdog`.
    Device(PathBuf),
    /// The BMC's watchdog.
    Ipmi,
}

/// `[watchdog] action` (IPMI only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    Reset,
    PowerCycle,
    PowerOff,
}

/// `[watchdog]`
#[derive(Debug, Clone, PartialEq)]
pub struct Watchdog {
    /// Default `none`.
    pub device: WatchdogDevice,
    /// Default 60 s.
    pub timeout: Duration,
    /// Default `reset`.
    pub action: WatchdogAction,
    /// Default false.
    pub realtime: bool,
    pub ipmi: Option<IpmiLan>,
}

/// `[watchdog.ipmi]` and the RMCP+ part of `[fencing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IpmiLan {
    pub host: String,
    /// Default 623.
    pub port: u16,
    pub username: String,
    /// Checked: mode 0600 or stricter.
    pub password_file: PathBuf,
    /// Added key `cipher_suite`: 3 (default), 17, or `"auto"` (stored as
    /// `bbwd_platform::ipmi::CIPHER_SUITE_AUTO`: 17 when the BMC lists it, else 3).
    pub cipher_suite: u8,
}

/// `[notify]`
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// Must not be empty.
    pub command: Vec<String>,
    /// Added key `timeout`, default 30 s: a run longer than this is killed.
    pub timeout: Duration,
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub peer: String,
    pub listen: Vec<SocketAddr>,
    /// Same length as `listen`: link i is listen[i] <-> peer_addresses[i].
    pub peer_addresses: Vec<SocketAddr>,
    /// Checked: mode 0600 or stricter.
    pub key_file: PathBuf,
    /// Default 200 ms.
    pub heartbeat_interval: Duration,
    /// Default 1 s; at least 3 × `heartbeat_interval` (timing rule R1).
    pub peer_timeout: Duration,
    /// Default false.
    pub preferred_active: bool,
    pub witness: Option<std::net::IpAddr>,
    /// Added key (SPEC lists it): default 30 s; at least `peer_timeout` (R3). A booting node
    /// waits this long to hear its peer before it treats the silence as death and fences it.
    pub boot_wait: Duration,
    /// Added key `fence_delay`: the priority delay of the node not holding the service. Default
    /// `fencing.timeout + peer_timeout` (`bbwd_core::timing::default_fence_delay`); at least
    /// `fencing.timeout + heartbeat_interval` (R2).
    pub fence_delay: Duration,
}

/// `[vip]`
#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    pub address: std::net::IpAddr,
    pub prefix_len: u8,
    pub interface: String,
    /// Default 3.
    pub garp_count: u32,
    /// Default 200 ms.
    pub garp_interval: Duration,
}

/// `[fencing] action`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAction {
    Off,
    Cycle,
}

/// How a Redfish BMC's TLS certificate is checked (`[fencing]` with `method = "redfish"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedfishTls {
    /// `ca_file`: a PEM file of CA certificates (read and parsed by the check).
    CaFile(PathBuf),
    /// `tls_fingerprint = "sha256:..."`: this certificate exactly.
    Fingerprint([u8; 32]),
    /// `insecure = true`: not checked (a warning in check-config and `bbwd status`).
    Insecure,
}

/// The Redfish-only keys of `[fencing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedfishKeys {
    /// `system`: the ComputerSystem's path; `None` = the only one the service lists.
    pub system: Option<String>,
    /// Exactly one of `ca_file`, `tls_fingerprint`, `insecure = true`.
    pub tls: RedfishTls,
}

/// One fence device: `[fencing]` itself, or one `[[fencing.device]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FenceDevice {
    /// `ipmi` (default) or `redfish`.
    pub method: String,
    pub lan: IpmiLan,
    /// `Some` exactly when `method = "redfish"`.
    pub redfish: Option<RedfishKeys>,
    /// IPMI: 3 (default), 17, or `"auto"` (`bbwd_platform::ipmi::CIPHER_SUITE_AUTO`); anything
    /// else is refused (0 accepts any password). The same as `lan.cipher_suite`.
    pub cipher_suite: u8,
}

/// `[fencing]`. `method`, `lan`, `redfish` and `cipher_suite` are the FIRST device's (the only
/// one in the single-table form); `devices` lists every device in the order they are tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Fencing {
    /// `ipmi` (default) or `redfish`.
    pub method: String,
    /// Host, port (default 623 for ipmi, 443 for redfish), user name, password file.
    pub lan: IpmiLan,
    /// `Some` exactly when `method = "redfish"`.
    pub redfish: Option<RedfishKeys>,
    /// IPMI: 3 (default), 17 or `"auto"`; the same as `lan.cipher_suite`.
    pub cipher_suite: u8,
    /// Added key `device` (`[[fencing.device]]`, Pacemaker's fencing levels): the devices tried
    /// in order until one confirms off; at least one (the single form: `[fencing]` itself).
    pub devices: Vec<FenceDevice>,
    /// Default `off`.
    pub action: FenceAction,
    /// Default 10 s.
    pub timeout: Duration,
}

/// `[hooks]`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    pub before_start: Vec<Vec<String>>,
    pub after_stop: Vec<Vec<String>>,
}

/// `[load_balancer]`
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    pub haproxy_agent: SocketAddr,
}

/// `[metrics]`: at least one of the two is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// `GET /metrics` answered here (Prometheus text exposition format).
    pub listen: Option<SocketAddr>,
    /// node_exporter's textfile collector: written atomically once per `monitor_interval`.
    pub textfile: Option<PathBuf>,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `bitbucket.monitor_interval`; the section name for a section-level
    /// problem; empty for a problem with the file itself.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    /// `bitbucket.monitor_interval (line 12): invalid duration "15x": ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.key.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{} (line {line}): {}", self.key, self.message),
            (false, None) => write!(f, "{}: {}", self.key, self.message),
            (true, Some(line)) => write!(f, "line {line}: {}", self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

/// All problems found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for Problems {
    /// One line per problem, each prefixed with the path: `/etc/bbwd/bbwd.toml: bitbucket.x (line 3): unknown key`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {problem}", self.path.display())?;
        }
        Ok(())
    }
}
impl std::error::Error for Problems {}

/// Reads and validates `path` (including the secret files' modes).
pub fn load(path: &Path) -> Result<Config, Problems> {
    let file_problem = |message: String| Problems {
        path: path.to_path_buf(),
        problems: vec![Problem {
            key: String::new(),
            line: None,
            message,
        }],
    };
    let bytes = match bbwd_platform::fs::read_optional(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(file_problem(
                "no such file (create it, or point -c PATH or $BBWD_CONFIG at the right one)"
                    .to_string(),
            ))
        }
        Err(bbwd_platform::fs::Error::Io { op, source, .. }) => {
            return Err(file_problem(format!("cannot {op}: {source}")))
        }
        Err(e) => return Err(file_problem(e.to_string())),
    };
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, path),
        Err(e) => Err(file_problem(format!(
            "not UTF-8 text (byte {}): TOML files must be UTF-8",
            e.valid_up_to()
        ))),
    }
}

/// Parses and validates config text; `origin` names it in problems. Checks the secret files it
/// names on disk, reads the host name when `node.name` is not written, and resolves
/// `database.address` (phase 2).
pub fn parse(text: &str, origin: &Path) -> Result<Config, Problems> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    let root = doc.get_ref();
    let mut ck = Checker::new(text, &syntax_errors);
    let read = Read::walk(&mut ck, root);
    let sections = read.on_this_host(io::run(&mut ck));
    sections.cross_check(&mut ck, root);
    let config = sections.into_config();
    let mut problems = ck.into_problems();
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            if problems.is_empty() {
                // Cannot happen (every `None` above reports why); never hand out a half config.
                problems.push(Problem {
                    key: String::new(),
                    line: None,
                    message: "invalid configuration".to_string(),
                });
            }
            Err(Problems {
                path: origin.to_path_buf(),
                problems,
            })
        }
    }
}

/// What is worth saying about a valid config without refusing it (`check-config` prints these,
/// `run` logs them): today the timing warning W1, pair mode without a hardware watchdog.
pub fn warnings(cfg: &Config) -> Vec<Problem> {
    timings(cfg, None)
        .map(|t| bbwd_core::timing::check(&t))
        .unwrap_or_default()
        .iter()
        .filter(|v| v.severity == bbwd_core::timing::Severity::Warning)
        .map(|v| Problem {
            key: v.key.to_string(),
            line: None,
            message: v.to_string(),
        })
        .chain(
            cfg.fencing
                .iter()
                .flat_map(|f| f.devices.iter())
                .filter_map(|d| d.redfish.as_ref())
                .filter(|r| r.tls == RedfishTls::Insecure)
                .map(|_| Problem {
                    key: "fencing.insecure".to_string(),
                    line: None,
                    message: "the BMC's TLS certificate is NOT verified: anyone on the path can read \
                              the BMC password and fake a confirmed off; set ca_file or tls_fingerprint"
                        .to_string(),
                }),
        )
        .collect()
}

/// Most heartbeat links a pair may have.
pub const MAX_LINKS: usize = 8;
/// Longest node name, bytes (a host name's limit, HOST_NAME_MAX).
pub const MAX_NAME_BYTES: usize = 64;

#[cfg(test)]
mod tests;
