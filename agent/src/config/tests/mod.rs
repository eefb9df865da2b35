//! Tests of `config`, one module per part of it; the helpers every module shares are here:
//! `ok` / `problems` / `one_problem` parse a text and assert on the result, `pair` builds a valid
//! pair config around the lines under test, and secret files go in a per-test `TempDir`.

use super::*;

use bbwd_testkit::TempDir;

use crate::config::io::HOSTNAME_FILE;

mod bitbucket;
mod cluster;
mod cross_section;
mod duration;
mod fencing;
mod fuzz;
mod hints;
mod io;
mod metrics;
mod node;
mod timing;
mod values;
mod vip;
mod watchdog;
mod whole;

/// Secret files in a test's directory.
trait Secrets {
    /// Writes a secret file with `mode` and returns its path as a string.
    fn secret(&self, name: &str, mode: u32) -> String;
}

impl Secrets for TempDir {
    fn secret(&self, name: &str, mode: u32) -> String {
        self.file(name, b"secret\n", mode).display().to_string()
    }
}

const ORIGIN: &str = "/etc/bbwd/bbwd.toml";

fn ok(text: &str) -> Config {
    match parse(text, Path::new(ORIGIN)) {
        Ok(config) => config,
        Err(problems) => panic!("unexpected problems:\n{problems}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new(ORIGIN)) {
        Ok(config) => panic!("expected problems, parsed {config:?}"),
        Err(p) => {
            assert_eq!(p.path, Path::new(ORIGIN));
            p.problems
        }
    }
}

/// The one problem of `text`, which must be about `key` on `line` and mention `needle`.
fn one_problem(text: &str, key: &str, line: Option<usize>, needle: &str) {
    let found = problems(text);
    assert_eq!(
        found.len(),
        1,
        "expected one problem in\n{text}\ngot {found:#?}"
    );
    let p = &found[0];
    assert_eq!(p.key, key, "{p:?}");
    assert_eq!(p.line, line, "{p:?}");
    assert!(
        p.message.contains(needle),
        "{:?} does not contain {needle:?}",
        p.message
    );
}

/// [`one_problem`] for each `(text, key, line, needle)`.
fn one_problem_each<T: AsRef<str>>(cases: &[(T, &str, Option<usize>, &str)]) {
    for (text, key, line, needle) in cases {
        one_problem(text.as_ref(), key, *line, needle);
    }
}

fn host_name() -> String {
    std::fs::read_to_string(HOSTNAME_FILE)
        .unwrap()
        .trim()
        .to_string()
}

/// SPEC.md's config block, verbatim but for the places marked `@...@`.
const SPEC_EXAMPLE: &str = r#"[node]
name = "bb1"
state_dir = "/var/lib/bbwd"                 # persistent state: maintenance flag, event log
control_socket = "/run/bbwd/control.sock"   # mode 0600, root only

[bitbucket]
status_url = "http://127.0.0.1:7990/status"
command = ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"]  # bbwd starts and supervises it
user = "atlbitbucket"          # optional: run the command as this user
environment = { BITBUCKET_HOME = "/var/atlassian/application-data/bitbucket" }
monitor_interval = "15s"       # seed: not more often than every 15 s in production
monitor_timeout = "30s"        # seed: first check after start can be slow
startup_timeout = "10m"        # how long STARTING (503) is accepted after a start
failures_before_action = 2     # consecutive failed checks before correcting (GC pauses)
stop_timeout = "120s"          # graceful stop (SIGTERM to the process group), then SIGKILL
kill_timeout = "10s"           # after SIGKILL; still not gone => the node cannot correct itself
max_restarts = 1               # restarts within restart_window before escalating
restart_window = "1h"

[database]                     # optional
address = "@DB@"   # TCP connect check
timeout = "5s"

[watchdog]
device = "@DEVICE@"       # or "ipmi" (the BMC's watchdog), or "none"
timeout = "60s"
action = "reset"               # ipmi only: reset | power_cycle | power_off
realtime = false               # mlockall + real-time priority for the loop

[watchdog.ipmi]                # ipmi only; omit to use the local /dev/ipmi0
host = "10.0.1.1"              # this node's own BMC over RMCP+
port = 623
username = "watchdog"
password_file = "@OWN@"    # must be mode 0600

[notify]
command = ["/etc/bbwd/notify.sh"]  # run on every event; BBWD_EVENT, BBWD_NODE, BBWD_DETAIL in env

# ---- pair mode ----
[cluster]
peer = "bb2"
listen = ["10.0.0.1:5405", "192.168.100.1:5405"]          # one per heartbeat link
peer_addresses = ["10.0.0.2:5405", "192.168.100.2:5405"]
key_file = "@KEY@"                        # shared secret, must be mode 0600
heartbeat_interval = "200ms"
peer_timeout = "1s"
preferred_active = true        # this node wins a fence race and starts active on a cold boot
                               # (exactly one node of a pair; both = a reported misconfiguration)
witness = "10.0.0.254"         # optional: reachable => I am not the isolated one
boot_wait = "30s"              # a booting node waits this long to hear its peer before fencing it

[vip]
address = "10.0.0.50/24"       # IPv4 or IPv6
interface = "eth0"
garp_count = 3
garp_interval = "200ms"

[fencing]                      # how to fence the PEER
method = "ipmi"
host = "10.0.1.2"
port = 623
username = "fence"
password_file = "@PEER@"   # must be mode 0600
cipher_suite = 3               # ipmi: RMCP+ (lanplus) 3 | 17 | "auto" (17, else 3); 0 is refused
action = "off"                 # off | cycle
timeout = "10s"

[hooks]                        # extra ordered steps, e.g. DRBD promote + mount
before_start = [["/sbin/drbdadm", "primary", "bitbucket"], ["/bin/mount", "/var/atlassian"]]
after_stop   = [["/bin/umount", "/var/atlassian"], ["/sbin/drbdadm", "secondary", "bitbucket"]]

# ---- any mode ----
[metrics]                      # optional: Prometheus
listen = "127.0.0.1:9776"      # GET /metrics, text exposition format
textfile = "/var/lib/prometheus/node-exporter/bbwd.prom"   # optional: node_exporter textfile collector

# ---- mirror-farm node ----
[load_balancer]
haproxy_agent = "0.0.0.0:7777"  # HAProxy agent-check port: "up", "drain", "down", "maint"
"#;

/// The SPEC example with the secret files in `dir`, the database on loopback (no DNS in a
/// test) and the given watchdog device.
fn spec_example(dir: &TempDir, device: &str) -> String {
    SPEC_EXAMPLE
        .replace("@DB@", "127.0.0.1:5432")
        .replace("@DEVICE@", device)
        .replace("@OWN@", &dir.secret("own-bmc.pass", 0o600))
        .replace("@PEER@", &dir.secret("peer-bmc.pass", 0o600))
        .replace("@KEY@", &dir.secret("cluster.key", 0o600))
}

/// Removes the `[load_balancer]` section (the last one) from the SPEC example.
fn without_load_balancer(text: &str) -> String {
    let cut = text.find("# ---- mirror-farm node ----").unwrap();
    text[..cut].to_string()
}

const EXAMPLE: &str = include_str!("../../../../examples/bbwd.toml");

/// A valid pair config, with `extra` lines added to `[cluster]`, and `sections` appended
/// (then a `[vip]` at the end, which pair mode needs, unless `sections` has one).
fn pair(dir: &TempDir, cluster_extra: &str, sections: &str) -> String {
    let vip = if sections.contains("[vip]") {
        ""
    } else {
        "\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n"
    };
    format!(
        "[node]\nname = \"bb1\"\n[cluster]\npeer = \"bb2\"\nkey_file = \"{}\"\n{cluster_extra}\
         [fencing]\nhost = \"10.0.1.2\"\nusername = \"fence\"\npassword_file = \"{}\"\n{sections}{vip}",
        dir.secret("cluster.key", 0o600),
        dir.secret("peer.pass", 0o600)
    )
}

const LINKS: &str = "listen = [\"10.0.0.1:5405\"]\npeer_addresses = [\"10.0.0.2:5405\"]\n";
