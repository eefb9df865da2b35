//! The rules between sections: which sections go together, and a pair that names itself.

use super::*;

#[test]
fn cluster_and_load_balancer_together_refused() {
    let dir = TempDir::new("both");
    let text = pair(
        &dir,
        LINKS,
        "[load_balancer]\nhaproxy_agent = \"0.0.0.0:7777\"\n",
    );
    one_problem(
        &text,
        "load_balancer",
        Some(12),
        "[cluster] (line 3) and [load_balancer] cannot both be set",
    );
}

#[test]
fn pair_sections_need_cluster_and_cluster_needs_fencing() {
    one_problem(
        "[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
        "vip",
        Some(1),
        "only used in pair mode",
    );
    let dir = TempDir::new("needs-fencing");
    let text = format!(
        "[node]\nname = \"bb1\"\n[cluster]\npeer = \"bb2\"\n{LINKS}key_file = \"{}\"\n\
             [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
        dir.secret("k", 0o600)
    );
    one_problem(&text, "fencing", Some(3), "pair mode needs [fencing]");
    // And [vip]: `bbwd run` cannot serve a pair without an address to move, so check-config
    // refuses it too (it once said valid, and run exited 1).
    let text = pair(&dir, LINKS, "[watchdog]\n").replace(
        "\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
        "",
    );
    one_problem(&text, "vip", Some(3), "pair mode needs [vip]");
}

#[test]
fn peer_is_not_this_node_and_fencing_is_not_this_bmc() {
    let dir = TempDir::new("self");
    let text = pair(&dir, LINKS, "").replace("peer = \"bb2\"", "peer = \"bb1\"");
    one_problem(&text, "cluster.peer", Some(4), "this node's own name");
    let text = format!(
        "{}[watchdog]\ndevice = \"ipmi\"\n[watchdog.ipmi]\nhost = \"10.0.1.2\"\nusername = \"wd\"\npassword_file = \"{}\"\n",
        pair(&dir, LINKS, ""),
        dir.secret("own.pass", 0o600)
    );
    one_problem(&text, "fencing.host", Some(9), "this node's own BMC");
}
