//! The second phase of checking a config: what only this node can tell about a config that
//! parsed and validated (`config::load`, whose own I/O phase, `config/io.rs`, only decides
//! whether the config is valid at all: secret-file modes, the host name, a CA file, DNS of
//! `database.address`).
//!
//! Owns: every check of a valid config against this node, and the severity of each. One list,
//! used by `bbwd check-config`, by `bbwd run` before it starts anything, and by the OCF
//! agent's `validate-all`, so the three agree: a config that `run` refuses fails
//! `check-config` (exit 2, naming the key), and what only the future can tell (a host name that
//! may resolve later) is a warning line, never a silent "valid".
//!
//! Must not: change the node. Nothing is created: an address is tested by binding port 0 and
//! closing at once; files are only stat'ed or read (the cluster key). Must not block for long:
//! one DNS lookup per host name (the resolver's own timeout), nothing else on the network.
//!
//! | key | checked | severity | why |
//! |---|---|---|---|
//! | `bitbucket.command` | the program is an executable file (or on `PATH`) | error | `run` cannot start Bitbucket |
//! | `bitbucket.user` | the user exists | error | `run` cannot start Bitbucket as that user |
//! | `node.status_group` | the group exists | error | `run` cannot set the control socket's group |
//! | `node.state_dir` | an existing directory takes a file | error | no pid file: the next bbwd would start a second Bitbucket |
//! | `bitbucket.status_url` | a host name resolves | warning | it may resolve later; `run` refuses (exit 2) while it does not |
//! | `hooks.before_start`, `hooks.after_stop` | each program is executable | error | a takeover or a release would fail at the worst moment |
//! | `notify.command` | the program is executable | error | every notification would be lost |
//! | `vip.interface` | the interface exists | error | the VIP cannot be added: the takeover would fail |
//! | `cluster.listen` | each address is this node's | error | the heartbeat link cannot bind |
//! | `load_balancer.haproxy_agent` | the address is this node's (or unspecified) | error | HAProxy's agent check cannot be answered |
//! | `metrics.listen` | the address is this node's (or unspecified) | error | Prometheus could not scrape it |
//! | `cluster.key_file` | at least 32 bytes (the README's advice) | warning (under 16: error, `run` refuses) | a short key is guessable |
//! | `watchdog.device` | a character device exists at the path | error | the node could not be reset when bbwd hangs |

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::config::{Config, WatchdogDevice};

/// Bytes of cluster key the README asks for (`openssl rand -hex 32`).
pub const ADVISED_KEY_BYTES: usize = 32;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `check-config` exits 2; `run` refuses to start (exit 2).
    Error,
    /// Printed by both; nothing refused.
    Warning,
}

/// What kind of trouble, for the OCF agent's codes (OCF_ERR_INSTALLED vs OCF_ERR_CONFIGURED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something the config names is not installed here (a program, a user, a device).
    Missing,
    /// The config does not fit this node (an address, an interface, a key).
    Mismatch,
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Dotted key, e.g. `hooks.before_start`.
    pub key: String,
    pub severity: Severity,
    pub kind: Kind,
    pub message: String,
}

impl std::fmt::Display for Finding {
    /// `hooks.before_start[1]: "/usr/local/sbin/promote" is not an executable file on this node`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every finding for `cfg` on this node, errors and warnings, in config order.
pub fn check(cfg: &Config) -> Vec<Finding> {
    let mut out = Findings(Vec::new());
    node_findings(cfg, &mut out);
    bitbucket_findings(cfg, &mut out);
    program_findings(cfg, &mut out);
    network_findings(cfg, &mut out);
    if let WatchdogDevice::Device(path) = &cfg.watchdog.device {
        if let Some(problem) = device_problem(path) {
            out.add("watchdog.device", Severity::Error, Kind::Missing, problem);
        }
    }
    out.0
}

/// The list being built, in config order.
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, key: impl Into<String>, severity: Severity, kind: Kind, message: String) {
        self.0.push(Finding {
            key: key.into(),
            severity,
            kind,
            message,
        })
    }
}

/// `[node]`: the control socket's group, and a state_dir that takes a file.
fn node_findings(cfg: &Config, out: &mut Findings) {
    if let Some(group) = &cfg.node.status_group {
        if let Err(e) = bbwd_platform::control::group_id(group) {
            out.add("node.status_group", Severity::Error, Kind::Missing, e);
        }
    }
    // Only where it can tell without creating anything: an existing state_dir must take a file.
    let dir = &cfg.node.state_dir;
    if dir.is_dir() {
        if let Err(e) = bbwd_platform::fs::check_writable(dir) {
            out.add(
                "node.state_dir",
                Severity::Error,
                Kind::Mismatch,
                format!("not writable ({e}); bbwd refuses to start Bitbucket without a pid file"),
            );
        }
    }
}

/// `[bitbucket]`: the program, the user it runs as, the status URL's host.
fn bitbucket_findings(cfg: &Config, out: &mut Findings) {
    if let Some(problem) = program_problem(&cfg.bitbucket.command) {
        out.add("bitbucket.command", Severity::Error, Kind::Missing, problem);
    }
    if let Some(user) = &cfg.bitbucket.user {
        if let Err(e) = bbwd_platform::process::RunAs::lookup(user) {
            out.add(
                "bitbucket.user",
                Severity::Error,
                Kind::Missing,
                e.to_string(),
            );
        }
    }
    if let Some(message) = status_url_unresolved(&cfg.bitbucket.status_url) {
        out.add(
            "bitbucket.status_url",
            Severity::Warning,
            Kind::Mismatch,
            message,
        );
    }
}

/// `[hooks]` and `[notify]`: every program bbwd will run at a takeover, a release or an event.
fn program_findings(cfg: &Config, out: &mut Findings) {
    for (name, list) in [
        ("before_start", &cfg.hooks.before_start),
        ("after_stop", &cfg.hooks.after_stop),
    ] {
        for (i, argv) in list.iter().enumerate() {
            if let Some(problem) = program_problem(argv) {
                out.add(
                    format!("hooks.{name}[{i}]"),
                    Severity::Error,
                    Kind::Missing,
                    problem,
                );
            }
        }
    }
    if let Some(notify) = &cfg.notify {
        if let Some(problem) = program_problem(&notify.command) {
            out.add("notify.command", Severity::Error, Kind::Missing, problem);
        }
    }
}

/// Interfaces and addresses: the VIP's interface, the heartbeat links, the cluster key, the
/// agent-check and metrics listeners.
fn network_findings(cfg: &Config, out: &mut Findings) {
    if let Some(vip) = &cfg.vip {
        if !interface_exists(&vip.interface) {
            out.add(
                "vip.interface",
                Severity::Error,
                Kind::Mismatch,
                format!(
                    "no network interface {:?} on this node (`ip link` lists them)",
                    vip.interface
                ),
            );
        }
    }
    if let Some(cluster) = &cfg.cluster {
        for (i, addr) in cluster.listen.iter().enumerate() {
            if let Err(e) = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)) {
                out.add(
                    format!("cluster.listen[{i}]"),
                    Severity::Error,
                    Kind::Mismatch,
                    not_local(addr.ip(), &e),
                );
            }
        }
        key_findings(&cluster.key_file, out);
    }
    let tcp_listeners = [
        (
            "load_balancer.haproxy_agent",
            cfg.load_balancer.as_ref().map(|lb| lb.haproxy_agent),
        ),
        (
            "metrics.listen",
            cfg.metrics.as_ref().and_then(|m| m.listen),
        ),
    ];
    for (key, addr) in tcp_listeners {
        let Some(ip) = addr.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()) else {
            continue;
        };
        if let Err(e) = TcpListener::bind(SocketAddr::new(ip, 0)) {
            out.add(key, Severity::Error, Kind::Mismatch, not_local(ip, &e));
        }
    }
}

/// Why `argv[0]` cannot be run here, if it cannot.
fn program_problem(argv: &[String]) -> Option<String> {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    (!program_installed(program)).then(|| {
        if program.contains('/') {
            format!("{program:?} is not an executable file on this node")
        } else {
            format!("{program:?} is not an executable file in any directory of PATH on this node")
        }
    })
}

/// Whether `program` is an executable file: an absolute or relative path as given, or a bare
/// name found in `$PATH`.
fn program_installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return false;
    }
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// Why the status URL's host does not resolve now (None for an IP literal, or a name that does).
fn status_url_unresolved(url: &str) -> Option<String> {
    let parsed = bbwd_core::status_url::StatusUrl::parse(url).ok()?;
    let bbwd_core::status_url::Host::Name(name) = &parsed.host else {
        return None;
    };
    let problem = match (name.as_str(), parsed.port).to_socket_addrs() {
        Ok(addrs) if addrs.len() > 0 => return None,
        Ok(_) => "resolves to no address".to_string(),
        Err(e) => format!("does not resolve ({e})"),
    };
    Some(format!(
        "host {name} {problem} now; `bbwd run` refuses to start (exit 2) until it does: \
         use an IP address such as 127.0.0.1 for Bitbucket on this node"
    ))
}

fn interface_exists(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && Path::new("/sys/class/net").join(name).exists()
}

fn not_local(ip: IpAddr, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::AddrNotAvailable {
        format!("{ip} is not an address of this node (`ip addr` lists them)")
    } else {
        format!("cannot bind to {ip}: {e}")
    }
}

fn key_findings(path: &Path, out: &mut Findings) {
    let key = "cluster.key_file";
    match bbwd_platform::fs::read_secret_file(path) {
        Err(e) => out.add(key, Severity::Error, Kind::Missing, e.to_string()),
        Ok(bytes) if bytes.len() < bbwd_core::heartbeat::MIN_KEY_BYTES => {
            let e = bbwd_core::heartbeat::KeyError::TooShort { bytes: bytes.len() };
            out.add(key, Severity::Error, Kind::Mismatch, e.to_string())
        }
        Ok(bytes) if bytes.len() < ADVISED_KEY_BYTES => out.add(
            key,
            Severity::Warning,
            Kind::Mismatch,
            format!(
                "the key is {} bytes; use at least {ADVISED_KEY_BYTES} random bytes \
                 (`openssl rand -hex 32 > FILE`, the same file on both nodes)",
                bytes.len()
            ),
        ),
        Ok(_) => {}
    }
}

fn device_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_char_device() => None,
        Ok(_) => Some(format!(
            "{} is not a character device (a watchdog driver's device, e.g. /dev/watchdog0)",
            path.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(format!(
            "{} does not exist: load the watchdog driver (e.g. `modprobe iTCO_wdt`, or softdog), \
             or set device = \"ipmi\" or \"none\"",
            path.display()
        )),
        Err(e) => Some(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lookup_follows_path_rules() {
        assert!(program_installed("/bin/sh"));
        assert!(program_installed("sh"), "found in PATH");
        assert!(!program_installed("/etc/passwd"), "not executable");
        assert!(!program_installed("/no/such/program"));
        assert!(!program_installed("bbwd-no-such-program"));
        assert!(!program_installed(""));
        assert!(!program_installed("/bin"), "a directory");
    }
    use std::os::unix::fs::PermissionsExt;

    use bbwd_testkit::TempDir as Dir;

    fn config(dir: &Dir, extra: &str) -> Config {
        let text = format!(
            "[node]\nname = \"bb1\"\nstate_dir = \"{0}/state\"\n[bitbucket]\n\
             status_url = \"http://127.0.0.1:7990/status\"\ncommand = [\"/bin/sh\"]\n{extra}",
            dir.path().display()
        );
        crate::config::parse(&text, Path::new("test.toml")).expect("valid config")
    }

    fn keys(findings: &[Finding], severity: Severity) -> Vec<String> {
        findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| f.key.clone())
            .collect()
    }

    #[test]
    fn a_config_that_fits_this_node_has_no_findings() {
        let dir = Dir::new("fits");
        assert_eq!(check(&config(&dir, "")), vec![]);
    }

    #[test]
    fn missing_hook_and_notify_programs_are_errors_naming_the_key() {
        let dir = Dir::new("programs");
        let not_exec = dir.path().join("not-exec");
        std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = config(
            &dir,
            &format!(
                "[hooks]\nbefore_start = [[\"/bin/true\"], [\"/nonexistent/promote\", \"r0\"]]\n\
                 after_stop = [[\"{}\"]]\n[notify]\ncommand = [\"no-such-mailer-bbwd\"]\n",
                not_exec.display()
            ),
        );
        let found = check(&cfg);
        assert_eq!(
            keys(&found, Severity::Error),
            [
                "hooks.before_start[1]",
                "hooks.after_stop[0]",
                "notify.command"
            ]
        );
        assert!(found[0]
            .message
            .contains("\"/nonexistent/promote\" is not an executable"));
        assert!(found[2].message.contains("in any directory of PATH"));
        assert!(found.iter().all(|f| f.kind == Kind::Missing));
    }

    #[test]
    fn an_unresolvable_status_host_is_a_warning_not_valid() {
        let dir = Dir::new("dns");
        let mut cfg = config(&dir, "");
        // .invalid never resolves (RFC 6761).
        cfg.bitbucket.status_url = "http://bitbucket.invalid:7990/status".into();
        let found = check(&cfg);
        assert_eq!(keys(&found, Severity::Warning), ["bitbucket.status_url"]);
        assert!(found[0]
            .message
            .contains("refuses to start (exit 2) until it does"));
        assert_eq!(keys(&found, Severity::Error), Vec::<String>::new());
    }

    #[test]
    fn a_watchdog_device_that_is_not_there_is_an_error() {
        let dir = Dir::new("wd");
        let cfg = config(
            &dir,
            &format!(
                "[watchdog]\ndevice = \"{}/watchdog9\"\n",
                dir.path().display()
            ),
        );
        let found = check(&cfg);
        assert_eq!(keys(&found, Severity::Error), ["watchdog.device"]);
        assert!(found[0].message.contains("does not exist"));
        let cfg = config(&dir, "[watchdog]\ndevice = \"/dev/null\"\n");
        assert_eq!(check(&cfg), vec![], "/dev/null is a character device");
    }

    #[test]
    fn an_agent_address_not_on_this_node_is_an_error() {
        let dir = Dir::new("lb");
        // TEST-NET-1 (RFC 5737): never an address of a test machine.
        let cfg = config(
            &dir,
            "[load_balancer]\nhaproxy_agent = \"192.0.2.1:7777\"\n",
        );
        let found = check(&cfg);
        assert_eq!(
            keys(&found, Severity::Error),
            ["load_balancer.haproxy_agent"]
        );
        assert!(found[0]
            .message
            .contains("192.0.2.1 is not an address of this node"));
        let cfg = config(&dir, "[load_balancer]\nhaproxy_agent = \"0.0.0.0:7777\"\n");
        assert_eq!(check(&cfg), vec![]);
        let cfg = config(&dir, "[metrics]\nlisten = \"192.0.2.1:9776\"\n");
        assert_eq!(keys(&check(&cfg), Severity::Error), ["metrics.listen"]);
    }

    #[test]
    fn short_cluster_keys() {
        let dir = Dir::new("key");
        let key = dir.path().join("cluster.key");
        let write_key = |bytes: usize| {
            std::fs::write(&key, vec![b'k'; bytes]).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        let mut out = Findings(Vec::new());
        write_key(20);
        key_findings(&key, &mut out);
        write_key(8);
        key_findings(&key, &mut out);
        write_key(32);
        key_findings(&key, &mut out);
        let found = out.0;
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains("the key is 20 bytes"));
        assert_eq!(found[1].severity, Severity::Error);
    }
}
