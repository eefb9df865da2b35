//! `[vip]`.

use super::*;

#[test]
fn vip_address_must_be_ip_slash_prefix() {
    let dir = TempDir::new("vip");
    for (address, needle) in [
        ("10.0.0.50", "expected IP/PREFIX"),
        ("10.0.0.50/33", "between 1 and 32"),
        ("10.0.0.50/0", "between 1 and 32"),
        ("fd00::50/129", "between 1 and 128"),
        ("bb-vip/24", "not an IP address"),
        ("0.0.0.0/24", "cannot be a service address"),
    ] {
        let text = pair(
            &dir,
            LINKS,
            &format!("[vip]\naddress = \"{address}\"\ninterface = \"eth0\"\n"),
        );
        one_problem(&text, "vip.address", Some(13), needle);
    }
    let text = pair(
        &dir,
        LINKS,
        "[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"a-much-too-long-if\"\n",
    );
    one_problem(&text, "vip.interface", Some(14), "not an interface name");
    let text = pair(&dir, LINKS, "[vip]\naddress = \"10.0.0.50/24\"\n");
    one_problem(
        &text,
        "vip.interface",
        Some(12),
        "missing: [vip] needs `interface`",
    );
    let text = pair(
        &dir,
        LINKS,
        "[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\ngarp_count = 0\n",
    );
    one_problem(&text, "vip.garp_count", Some(15), "between 1 and 100");
}

#[test]
fn zero_garp_interval_is_allowed() {
    let dir = TempDir::new("garp");
    let text = format!(
        "[cluster]\npeer = \"bb2\"\nlisten = [\"10.0.0.1:5405\"]\npeer_addresses = [\"10.0.0.2:5405\"]\n\
         key_file = \"{}\"\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\ngarp_interval = \"0ms\"\n\
         [fencing]\nhost = \"10.0.1.2\"\nusername = \"fence\"\npassword_file = \"{}\"\n[node]\nname = \"bb1\"\n",
        dir.secret("k", 0o600),
        dir.secret("p", 0o600)
    );
    assert_eq!(ok(&text).vip.unwrap().garp_interval, Duration::ZERO);
}
