//! Pair-mode scenarios' shared pieces: a node's bbwd.toml in the pair lab, its power command,
//! `bbwd status` of a node, waiting for a role, diagnostics for failure messages, and the
//! failover sequence the pair demo shows and `bench failover` measures ([`boot_pair`],
//! [`fail_over`]).
//!
//! Owns nothing but files in the lab's directory; the lab (`pairlab`) owns namespaces, BMCs and
//! processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::pairlab::{Link, Node, PairLab, Probe, ProbeAttempt, VIP};
use crate::{bbsim_bin, bbwd_bin, wait_until};
use serde_json::Value;

/// The simulators' port (on every address of a node, the VIP included).
pub const SIM_PORT: u16 = 8080;
/// Heartbeat port on both links.
pub const HB_PORT: u16 = 5405;
/// Generous: the machine is shared, ipmi_sim acts at its 1 s tick.
pub const WAIT: Duration = Duration::from_secs(40);

pub fn config_path(lab: &PairLab, node: Node) -> PathBuf {
    lab.dir().join(format!("{}.toml", node.name()))
}

/// Writes node `node`'s bbwd.toml (and the shared cluster key) and sets its power command.
pub fn set_up_node(lab: &PairLab, node: Node) {
    set_up_node_with(lab, node, "")
}

/// Like `set_up_node`, with `extra` TOML appended at the end of the file (whole sections, e.g.
/// `[hooks]`, or a `[watchdog]` section).
pub fn set_up_node_with(lab: &PairLab, node: Node, extra: &str) {
    let dir = lab.dir().join(node.name());
    std::fs::create_dir_all(&dir).unwrap();
    let key = lab.dir().join("cluster.key");
    if !key.exists() {
        std::fs::write(&key, "pair-lab-key-0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    let peer = node.peer();
    let (user, _) = lab.bmc_credentials();
    let addr = |n: Node, l: Link| lab.node_addr(n, l);
    let text = format!(
        r#"[node]
name = "{name}"
state_dir = "{dir}/state"
control_socket = "{dir}/control.sock"

[bitbucket]
status_url = "http://127.0.0.1:{SIM_PORT}/status"
command = ["{sim}", "--dir", "{dir}/sim", "--port", "{SIM_PORT}", "--bind", "0.0.0.0", "--node", "{name}"]
monitor_interval = "200ms"
monitor_timeout = "500ms"
startup_timeout = "10s"
stop_timeout = "2s"
kill_timeout = "2s"

[cluster]
peer = "{peer}"
listen = ["{me_pub}:{HB_PORT}", "{me_direct}:{HB_PORT}"]
peer_addresses = ["{peer_pub}:{HB_PORT}", "{peer_direct}:{HB_PORT}"]
key_file = "{key}"
heartbeat_interval = "200ms"
peer_timeout = "1s"
# Not the 30 s default: scenarios boot nodes often. At least peer_timeout (timing rule R3).
boot_wait = "3s"
preferred_active = {preferred}

[vip]
address = "{VIP}/24"
interface = "eth0"
garp_count = 3
garp_interval = "200ms"

[fencing]
host = "{bmc_host}"
port = {bmc_port}
username = "{user}"
password_file = "{pass}"
cipher_suite = 3
action = "off"
timeout = "10s"
{extra}
"#,
        name = node.name(),
        dir = dir.display(),
        sim = bbsim_bin().display(),
        peer = peer.name(),
        me_pub = addr(node, Link::Public),
        me_direct = addr(node, Link::Direct),
        peer_pub = addr(peer, Link::Public),
        peer_direct = addr(peer, Link::Direct),
        key = key.display(),
        preferred = node == Node::N1,
        bmc_host = lab.bmc_addr(peer).ip(),
        bmc_port = lab.bmc_addr(peer).port(),
        pass = lab.bmc_password_file(peer).display(),
    );
    let path = config_path(lab, node);
    std::fs::write(&path, text).unwrap();
    lab.set_node_command(
        node,
        &format!(
            // A power-on is a new kernel boot for the node: what bbwd records in state_dir
            // for one boot only (the storage record and the pid file, tagged with the kernel's
            // boot id) is void after it. The lab's nodes share the host's kernel (one boot id),
            // so the node's boot removes them, as a real reboot's new boot id voids them (only
            // at a boot: the lab's node script sets LAB_BOOT; a restart of bbwd alone keeps them).
            // `booted` then names the boot (the power process's pid): a restart of bbwd by the
            // soak's operator waits for it, or it would start from the last boot's records.
            "[ -z \"$LAB_BOOT\" ] || {{ rm -f {dir}/state/storage {dir}/state/bitbucket.pid; \
             echo \"$LAB_BOOT\" > {dir}/booted; }}; \
             unset LAB_BOOT; RUST_LOG=info exec {} run -c {} >> {dir}/bbwd.log 2>&1",
            bbwd_bin().display(),
            path.display(),
            dir = dir.display()
        ),
    );
}

/// `bbwd status --json` of a node (through its control socket, from the test's namespace).
pub fn status(lab: &PairLab, node: Node) -> Value {
    let out = std::process::Command::new(bbwd_bin())
        .args(["status", "--json", "-c"])
        .arg(config_path(lab, node))
        .output()
        .expect("bbwd status");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

pub fn role_of(lab: &PairLab, node: Node) -> String {
    let st = status(lab, node);
    if st["daemon"] != "up" {
        return "down".into();
    }
    format!(
        "{}/{}",
        st["role"].as_str().unwrap_or("?"),
        st["state"].as_str().unwrap_or("?")
    )
}

pub fn diagnostics(lab: &PairLab) -> String {
    let mut s = lab.diagnostics();
    for n in Node::BOTH {
        let log =
            std::fs::read_to_string(lab.dir().join(n.name()).join("bbwd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        s.push_str(&format!(
            "\n--- {} bbwd.log (newest first)\n{}",
            n.name(),
            tail.join("\n")
        ));
        s.push_str(&format!("\n--- {} status\n{:#}", n.name(), status(lab, n)));
    }
    s
}

pub fn wait_role(lab: &PairLab, node: Node, want: &str) {
    let mut last = String::new();
    let ok = (0..(WAIT.as_millis() / 100)).any(|_| {
        last = role_of(lab, node);
        if last == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(
        ok,
        "{} never reached {want} (last {last})\n{}",
        node.name(),
        diagnostics(lab)
    );
}

pub fn answered_by(lab: &PairLab, addr: Ipv4Addr, node: Node) -> bool {
    lab.client_get(addr, SIM_PORT).ok_from(node)
}

// ---------------------------------------------------------------------------------------------
// A failover: boot the pair, power the active off (the demo and `bench failover`)

/// From n1's power loss to the VIP answering from n2, at most.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The power-loss stamp is taken just before the node script cuts the links: a request started
/// within this much after it may still be answered by n1.
pub const DEAD_SLACK: Duration = Duration::from_millis(50);
/// Probe bounds (20 ms apart): long enough for a settle plus a failover.
pub const PROBE_MAX_ATTEMPTS: usize = 5000;
pub const PROBE_MAX_FOR: Duration = Duration::from_secs(90);

/// Writes both nodes' configs (`heartbeat_interval = 200ms`, `peer_timeout` as given).
pub fn configure_pair(lab: &PairLab, peer_timeout_ms: u64) {
    for node in Node::BOTH {
        set_up_node(lab, node);
        if peer_timeout_ms != 1000 {
            let path = config_path(lab, node);
            let text = std::fs::read_to_string(&path).expect("read node config");
            let mut edited = text.replace(
                "peer_timeout = \"1s\"",
                &format!("peer_timeout = \"{peer_timeout_ms}ms\""),
            );
            if peer_timeout_ms > 3000 {
                // boot_wait must cover a peer_timeout (timing rule R3).
                edited = edited.replace(
                    "boot_wait = \"3s\"",
                    &format!("boot_wait = \"{peer_timeout_ms}ms\""),
                );
            }
            assert_ne!(text, edited, "peer_timeout not found in {}", path.display());
            std::fs::write(&path, edited).expect("write node config");
        }
    }
}

/// n1 on alone (it fences the silent n2, which is off, and serves), then n2 (it stands by);
/// returns once n2 hears n1 on both links and holds a BMC session to n1's BMC.
pub fn boot_pair(lab: &PairLab, say: impl Fn(&str)) {
    let t0 = Instant::now();
    say("powering n1 on through its BMC (ipmitool chassis power on)");
    lab.power_on(Node::N1);
    say("  n1 boots alone: its peer is silent for peer_timeout, so it must fence n2 before it may");
    say("  start Bitbucket (n2 is off: the fence is confirmed at once), then it takes over");
    wait_role(lab, Node::N1, "active/running");
    wait_until(WAIT, "the VIP to answer from n1", || {
        answered_by(lab, VIP, Node::N1)
    });
    say(&format!(
        "  n1 is active/running, the VIP answers from n1 ({:.1} s after power on)",
        t0.elapsed().as_secs_f64()
    ));
    say("powering n2 on through its BMC: it hears n1 serving and stands by");
    lab.power_on(Node::N2);
    wait_role(lab, Node::N2, "standby/stopped");
    wait_until(
        WAIT,
        "n2 to hear n1 on both links and reach n1's BMC",
        || {
            let st = status(lab, Node::N2);
            st["peer"]["alive"] == true
                && st["peer"]["links_up"] == 2
                && st["fencing"]["session_up"] == true
        },
    );
    assert_eq!(
        lab.vip_holder(VIP),
        vec![Node::N1],
        "before the fault the VIP is on n1 alone\n{}",
        diagnostics(lab)
    );
}

/// What one failover looked like.
pub struct Failover {
    /// From `ipmitool chassis power off` returning to the node losing power (ipmi_sim's tick).
    pub bmc: Duration,
    /// n1's power loss, wall clock, ms since the epoch.
    pub lost_wall_ms: u64,
    pub lost: Instant,
    /// Every probe attempt, in start order.
    pub attempts: Vec<ProbeAttempt>,
    /// n2's `bbwd status --json` once it is active/running.
    pub status: Value,
}

impl Failover {
    /// The end of the first request n2 answered after the power loss.
    pub fn first_answer_from_n2(&self) -> &ProbeAttempt {
        Probe::first_ok_from(&self.attempts, Node::N2, self.lost).expect("seen by fail_over")
    }

    pub fn failover(&self) -> Duration {
        self.first_answer_from_n2().end.duration_since(self.lost)
    }

    /// A step of n2's `fencing.last_takeover`, in ms after the power loss.
    pub fn step_ms(&self, step: &str) -> Option<i64> {
        timeline(&self.status)
            .into_iter()
            .find(|(s, _)| s == step)
            .map(|(_, at)| at as i64 - self.lost_wall_ms as i64)
    }

    /// Requests n1 answered that started clearly after its power loss (must be 0).
    pub fn answers_from_dead(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.start > self.lost + DEAD_SLACK && a.ok_from(Node::N1))
            .count()
    }
}

/// Powers n1 off through its BMC while the client probes the VIP; returns once the VIP
/// answered from n2 and n2 is active/running.
pub fn fail_over(lab: &PairLab) -> Failover {
    let probe = lab.probe(VIP, SIM_PORT, PROBE_MAX_ATTEMPTS, PROBE_MAX_FOR);
    wait_until(WAIT, "the probe to see n1", || {
        probe.attempts().iter().any(|a| a.ok_from(Node::N1))
    });
    let losses_before = off_stamps(lab).len();
    let asked = Instant::now();
    lab.power(Node::N1, false);
    wait_until(WAIT, "n1 to lose power (ipmi_sim's next tick)", || {
        off_stamps(lab).len() > losses_before
    });
    let lost_unix_s = off_stamps(lab)[losses_before];
    let lost = lab.power_loss_times(Node::N1)[losses_before];
    let deadline = lost + FAILOVER_TIMEOUT;
    while Probe::first_ok_from(&probe.attempts(), Node::N2, lost).is_none() {
        if Instant::now() > deadline {
            panic!(
                "the VIP never answered from n2 within {FAILOVER_TIMEOUT:?} of n1's \
                 power loss (n2 is {})\n{}",
                role_of(lab, Node::N2),
                diagnostics(lab)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let attempts = probe.finish();
    wait_role(lab, Node::N2, "active/running");
    lab.wait_power(Node::N1, false, WAIT);
    Failover {
        bmc: lost.saturating_duration_since(asked),
        lost_wall_ms: (lost_unix_s * 1000.0) as u64,
        lost,
        attempts,
        status: status(lab, Node::N2),
    }
}

/// n1's power-loss stamps (unix seconds) from its node script, oldest first.
pub fn off_stamps(lab: &PairLab) -> Vec<f64> {
    lab.bmc(Node::N1)
        .node_events()
        .into_iter()
        .filter(|(_, kind)| kind == "OFF")
        .map(|(unix_s, _)| unix_s)
        .collect()
}

/// `fencing.last_takeover` as (step, wall ms). Needs `at_ms` (millisecond wall clock) on each
/// step; a step without it is left out.
pub fn timeline(st: &Value) -> Vec<(String, u64)> {
    st["fencing"]["last_takeover"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| Some((s["step"].as_str()?.to_string(), s["at_ms"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}
