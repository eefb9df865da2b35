//! The BMC watchdog for real: `bbwd run` with `[watchdog] device = "ipmi"` over RMCP+ to
//! ipmi_sim (with `tests/ipmi/wdfix.c`, without which a Reset does not extend the countdown),
//! whose chassis power is a simulated node process.
//!
//! * a healthy bbwd keeps the node powered past several countdowns;
//! * a hung bbwd (SIGSTOP) gets the node powered off by the BMC within countdown + 1.5 s (the
//!   assertion allows a loaded machine more; the measured figure is printed);
//! * the next bbwd start reports that the last reset was the watchdog's (the BMC's SMS/OS
//!   "expired" flag), and clears it;
//! * a clean stop disarms it: the node stays on long after the countdown.

use std::time::{Duration, Instant};

use bbwd_tests::ipmisim::{self, IpmiSim, SimOptions};
use bbwd_tests::{count_events, toml_str, Daemon, Scenario};

/// The BMC countdown the tests use: short, with room for a loaded CI machine (pets every 1 s).
const COUNTDOWN: Duration = Duration::from_secs(3);

fn scenario(name: &str) -> (Scenario, IpmiSim) {
    let sc = Scenario::new(name);
    let sim = IpmiSim::start(
        sc.dir.path(),
        "self",
        SimOptions {
            wdfix: true,
            stubborn: false,
        },
    );
    let pw = sim.password_file("own-bmc.pass", ipmisim::PASSWORD);
    let text = format!(
        "{}\n[watchdog]\ndevice = \"ipmi\"\ntimeout = \"{}s\"\naction = \"power_off\"\n\n\
         [watchdog.ipmi]\nhost = \"127.0.0.1\"\nport = {}\nusername = {}\npassword_file = {}\n",
        sc.config_text(),
        COUNTDOWN.as_secs(),
        sim.port,
        toml_str(ipmisim::USER),
        toml_str(&pw.display().to_string()),
    );
    sc.write_config_text(&text);
    (sc, sim)
}

fn armed(d: &mut Daemon<'_>) {
    d.wait_for(Duration::from_secs(20), "the BMC watchdog armed", |s| {
        count_events(s, "watchdog_armed") == 1
    });
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn a_healthy_bbwd_keeps_the_node_on_and_a_hung_one_gets_it_powered_off() {
    if !ipmisim::tools_available() {
        return;
    }
    let (sc, sim) = scenario("ipmi_wd_hang");
    let mut d = Daemon::start(&sc);
    armed(&mut d);
    let status = d.wait_state(Duration::from_secs(20), "running");
    assert_eq!(
        count_events(&status, "watchdog_reset_last_boot"),
        0,
        "{status:#}"
    );

    // Healthy: four countdowns pass, the node stays on (no power-off, no restart).
    std::thread::sleep(COUNTDOWN * 4);
    assert!(
        sim.node_on(),
        "powered off while bbwd was healthy\n{}",
        sim.diagnostics()
    );
    assert_eq!(sim.node_starts(), 1);

    // Hung: no more keep-alives; the BMC powers the node off.
    d.signal(libc::SIGSTOP);
    let t0 = Instant::now();
    let limit = COUNTDOWN + Duration::from_millis(1500);
    let deadline = t0 + limit + Duration::from_secs(4);
    while sim.node_on() {
        assert!(
            Instant::now() < deadline,
            "node still on {:?} after SIGSTOP\n{}",
            t0.elapsed(),
            sim.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    eprintln!("SIGSTOP to node off: {took:?} (countdown {COUNTDOWN:?}, target < {limit:?})");
    d.signal(libc::SIGCONT);
    d.stop();

    // The node comes back (an operator powers it on); the next bbwd learns why it went down.
    let out = sim.ipmitool(&["chassis", "power", "on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.wait_power(true, Duration::from_secs(10));
    let mut d = Daemon::start(&sc);
    armed(&mut d);
    let status = d.wait_for(Duration::from_secs(10), "the last-reset event", |s| {
        count_events(s, "watchdog_reset_last_boot") >= 1
    });
    assert!(status.to_string().contains("watchdog"), "{status:#}");
    d.stop();
}

#[test]
#[ignore = "needs ipmi_sim, ipmitool, gcc and libopenipmi-dev (scripts/setup.sh)"]
fn a_clean_stop_disarms_the_bmc_watchdog() {
    if !ipmisim::tools_available() {
        return;
    }
    let (sc, sim) = scenario("ipmi_wd_disarm");
    let mut d = Daemon::start(&sc);
    armed(&mut d);
    d.wait_state(Duration::from_secs(20), "running");
    let exit = d.stop();
    assert!(exit.success(), "bbwd exit {exit}\n{}", sc.diagnostics());
    // Well past the countdown: still on, never restarted.
    std::thread::sleep(COUNTDOWN * 2 + Duration::from_secs(2));
    assert!(
        sim.node_on(),
        "the watchdog fired after a clean stop\n{}",
        sim.diagnostics()
    );
    assert_eq!(sim.node_starts(), 1);
    let log = std::fs::read_to_string(sc.bbwd_log()).unwrap_or_default();
    assert!(!log.contains("still running"), "{log}");
}
