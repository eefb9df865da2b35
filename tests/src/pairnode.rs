//! Pair-mode scenarios' shared pieces: a node's bbwd.toml in the pair lab, its power command,
//! `bbwd status` of a node, waiting for a role, and diagnostics for failure messages.
//!
//! Owns nothing but files in the lab's directory; the lab (`pairlab`) owns namespaces, BMCs and
//! processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::pairlab::{Link, Node, PairLab, VIP};
use crate::{bbsim_bin, bbwd_bin};
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
