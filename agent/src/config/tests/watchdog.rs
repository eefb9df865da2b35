//! `[watchdog]` and `[watchdog.ipmi]`.

use super::*;

#[test]
fn watchdog_device_and_action() {
    one_problem(
        "[watchdog]\ndevice = \"watchdog0\"\n",
        "watchdog.device",
        Some(2),
        "expected \"none\", \"ipmi\" or an absolute device path",
    );
    one_problem(
        "[watchdog]\naction = \"explode\"\n",
        "watchdog.action",
        Some(2),
        "expected \"reset\", \"power_cycle\" or \"power_off\"",
    );
    let c = ok("[watchdog]\ndevice = \"/dev/watchdog1\"\n");
    assert_eq!(
        c.watchdog.device,
        WatchdogDevice::Device(PathBuf::from("/dev/watchdog1"))
    );
    let c = ok("[watchdog]\ndevice = \"ipmi\"\naction = \"power_cycle\"\nrealtime = true\n");
    assert_eq!(
        (c.watchdog.device, c.watchdog.action, c.watchdog.realtime),
        (WatchdogDevice::Ipmi, WatchdogAction::PowerCycle, true)
    );
    assert_eq!(c.watchdog.ipmi, None, "no [watchdog.ipmi]: the local BMC");
}

#[test]
fn watchdog_ipmi_only_with_device_ipmi() {
    let dir = TempDir::new("wd-ipmi");
    let text = format!(
        "[watchdog]\ndevice = \"none\"\n\n[watchdog.ipmi]\nhost = \"10.0.1.1\"\nusername = \"wd\"\npassword_file = \"{}\"\n",
        dir.secret("own.pass", 0o600)
    );
    one_problem(
        &text,
        "watchdog.ipmi",
        Some(4),
        "only used with device = \"ipmi\"",
    );
    // Without a [watchdog] header at all: device is the default, none.
    let text = format!(
        "[watchdog.ipmi]\nhost = \"10.0.1.1\"\nusername = \"wd\"\npassword_file = \"{}\"\n",
        dir.secret("own.pass", 0o600)
    );
    one_problem(
        &text,
        "watchdog.ipmi",
        Some(1),
        "only used with device = \"ipmi\"",
    );
}
