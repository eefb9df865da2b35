//! The pair's daemon fencing its peer over Redfish: the pair lab (network namespaces, an
//! ipmi_sim BMC per node whose power is that node), with node 2's `[fencing]` pointed at a
//! sushy-tools emulator (TLS, CA-checked, htpasswd) on the lab's management network, whose one
//! system stands for node 1. Node 2 lists two devices (`[[fencing.device]]`): first a Redfish
//! service that is not there, then the emulator; the fence goes on to the second.
//!
//! The emulator's power does not reach node 1's processes, so the scenario is a power loss:
//! node 1 loses power through its own BMC (as a power cut would); node 2 notices, fences node 1
//! through Redfish (ForceOff; the emulator changes its `PowerState` only 1-11 s later) and takes
//! over only after the service reports Off. Also: node 2's continuous peer-BMC check keeps the
//! Redfish connection up (`fencing.session_up`, `fencing.bmc`), and at most one node ever holds
//! the VIP or runs Bitbucket.
//!
//! Needs root, iproute2, ipmi_sim, ipmitool, and the sushy-tools venv; under `CI` their absence
//! fails the test.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bbwd_tests::pairlab::{self, Node, PairLab, VIP};
use bbwd_tests::pairnode::{config_path, diagnostics, set_up_node, status, wait_role, WAIT};
use bbwd_tests::sushy::{self, Options, PowerWatch, Sushy};
use bbwd_tests::{toml_str, wait_until};

/// The emulator's address on the lab's management network (the switch's bridge, beside the
/// BMCs at .201 and .202).
const REDFISH_IP: &str = "10.77.0.210";

/// VmRSS, RssAnon and RssFile of the node's `bbwd`, KiB (zeros if not found).
fn rss_kib(lab: &PairLab, node: Node) -> String {
    let status = lab
        .pids_in(&lab.ns(node))
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == b"bbwd")
        })
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!(
        "{} (anon {}, file {})",
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:")
    )
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
#[ignore = "needs root, the pair lab (iproute2, ipmi_sim, ipmitool) and the sushy-tools venv"]
fn the_standby_fences_its_dead_peer_over_redfish_and_takes_over_only_after_the_service_reports_off()
{
    if !pairlab::available() || !sushy::available() {
        return;
    }
    let lab = PairLab::up("redfish");
    let sw = lab.switch_ns();
    let out = lab.exec_ns(&sw, &format!("ip addr add {REDFISH_IP}/24 dev br0"));
    assert!(out.status.success(), "{out:?}");
    let emu_dir = lab.dir().join("redfish");
    std::fs::create_dir_all(&emu_dir).unwrap();
    let emu = Sushy::start(
        &emu_dir,
        &Options {
            systems: 1,
            ip: REDFISH_IP.into(),
            netns: Some(sw.clone()),
        },
    );
    let system = emu.systems[0].clone();

    for n in Node::BOTH {
        set_up_node(&lab, n);
    }
    // Node 2 fences node 1 over Redfish. The timeout covers the emulator's 1-11 s delay.
    let pw = lab.dir().join("redfish.pass");
    std::fs::write(&pw, format!("{}\n", sushy::PASSWORD)).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let path = config_path(&lab, Node::N2);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("[fencing]")
        .expect("[fencing] in the node config");
    let end = start + text[start..].find("timeout = ").unwrap();
    let end = end + text[end..].find('\n').unwrap() + 1;
    // Two devices, tried in order: first a Redfish service that is not there (a closed port
    // beside the emulator), then the emulator.
    let closed = emu.port.wrapping_add(1).max(1024);
    let device = |port: u16| {
        format!(
            "[[fencing.device]]\nmethod = \"redfish\"\nhost = \"{REDFISH_IP}\"\nport = {port}\n\
             username = {}\npassword_file = {}\nca_file = {}\n",
            toml_str(sushy::USER),
            toml_str(&pw.display().to_string()),
            toml_str(&emu.pki.ca.display().to_string()),
        )
    };
    let fencing = format!(
        "[fencing]\naction = \"off\"\ntimeout = \"20s\"\n{}{}",
        device(closed),
        device(emu.port)
    );
    std::fs::write(
        &path,
        format!("{}{fencing}{}", &text[..start], &text[end..]),
    )
    .unwrap();

    let sampler = lab.sample_invariants(VIP);
    lab.power_on(Node::N1);
    lab.power_on(Node::N2);
    wait_role(&lab, Node::N1, "active/running");
    wait_role(&lab, Node::N2, "standby/stopped");
    // The continuous peer-BMC check runs over Redfish on both devices: the emulator connected,
    // the missing one down; no warning (CA-checked).
    wait_until(WAIT, "n2's second fence device to be up", || {
        status(&lab, Node::N2)["fencing"]["devices"][1]["session_up"] == true
    });
    let st = status(&lab, Node::N2);
    let devices = &st["fencing"]["devices"];
    assert_eq!(
        devices[1]["bmc"],
        format!("Redfish https://{REDFISH_IP}:{}", emu.port),
        "{st:#}"
    );
    assert_eq!(devices[0]["session_up"], false, "{st:#}");
    assert!(st["fencing"]["tls_warning"].is_null(), "{st:#}");
    assert_eq!(emu.power_state(&system), "On");
    // Footprint (BENCHMARKS.md; run with BBWD_BIN=target/release/bbwd): n1 active with an IPMI
    // fencer, n2 standby with the Redfish one (its TLS connection open).
    eprintln!(
        "pair footprint: VmRSS n1 (active, IPMI fencer) {} KiB, n2 (standby, Redfish fencer) {} KiB",
        rss_kib(&lab, Node::N1),
        rss_kib(&lab, Node::N2)
    );

    // Node 1 loses power (its own BMC). Node 2 must fence it over Redfish before serving.
    let watch = PowerWatch::start(&emu, &system);
    lab.power_off(Node::N1);
    wait_role(&lab, Node::N2, "active/running");
    let seen = watch.finish();
    let after = emu.power_state(&system);
    let st = status(&lab, Node::N2);
    assert_eq!(after, "Off", "n2 serves while the service says {after}");
    let kinds: Vec<&str> = st["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k);
    assert!(
        pos("fenced").is_some() && pos("fenced") < pos("active"),
        "fence confirmed before serving: {kinds:?}"
    );
    // The fence was confirmed only once the service said Off: the independent client never
    // read On after the moment node 2 recorded "fence confirmed".
    let timeline = st["fencing"]["last_takeover"].as_array().unwrap().clone();
    let confirmed_ms = timeline
        .iter()
        .find(|s| s["step"] == "fence confirmed")
        .and_then(|s| s["at_ms"].as_u64())
        .unwrap_or_else(|| panic!("no fence confirmed step: {st:#}"));
    let (now_i, now_ms) = (Instant::now(), wall_ms());
    let to_ms = |t: Instant| now_ms - now_i.saturating_duration_since(t).as_millis() as u64;
    if let Some((t, _, _)) = seen.iter().rev().find(|(_, _, s)| s == "On") {
        assert!(
            to_ms(*t) <= confirmed_ms,
            "the service said On {} ms after n2 confirmed the fence\n{seen:?}\n{}",
            to_ms(*t) - confirmed_ms,
            diagnostics(&lab)
        );
    }
    eprintln!(
        "pair over redfish: takeover timeline {}; emulator reads On during it: {}",
        serde_json::to_string(&timeline).unwrap(),
        seen.iter().filter(|(_, _, s)| s == "On").count()
    );
    sampler.assert_at_most_one();
}
