//! Fence latency (BENCHMARKS.md, "Fencing: `bbwd fence off` against fence_ipmilan and
//! ipmitool" and "Fencing over RMCP+ cipher suite 17"), RUNS times each (default 7):
//!
//! On one ipmi_sim (`ipmisim`, RMCP+, cipher suite 3) whose "power" is a node process, powered
//! on and left alone for 0.3 s before each run:
//! * `bbwd fence off` until the BMC confirms off (the command's wall time), also with
//!   `cipher_suite = "auto"` (it lists the BMC's suites, then takes 3);
//! * `fence_ipmilan --lanplus --cipher=3 --action=off` (Debian's fence-agents, its defaults);
//! * `ipmitool chassis power off`, then `chassis power status` every 50 ms until off;
//! * the floor: ipmi_sim's own power-off, from the off command to the node process gone
//!   (SIGTERM at its next 1 s tick).
//!
//! For the bbwd and fence_ipmilan rows also how long after the node was really gone the command
//! returned: the node's PID is watched every 2 ms; the figure is the command's exit minus the
//! moment it was last seen alive. Each command must exit 0 with the node gone.
//!
//! Then cipher suite 17, which ipmi_sim lacks, against the test BMC (`testbmc`, suites 3 and
//! 17, in this process; its power goes off at once, so the figure is all bbwd's): `bbwd fence
//! off` with `cipher_suite` 17, 3 and "auto", and `ipmitool -C 17` off + status for scale.
//!
//! Measures the shipped bbwd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{arg, fixed, require_tools, say, sleep, Ctx, Summary, Table};
use crate::ipmisim::{self, IpmiSim, SimOptions};
use crate::testbmc::{self, Mode, Options, TestBmc};
use crate::{run_bounded, toml_str, TestDir};

/// Bound on one fence command (bbwd's own `[fencing] timeout` is 10 s).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the node's PID is checked while a command runs.
const WATCH_EVERY: Duration = Duration::from_millis(2);

pub fn run(ctx: &Ctx, args: &[String]) -> String {
    let runs: usize = arg(args, 0, "RUNS", 7);
    assert!(runs > 0, "RUNS must be at least 1");
    require_tools(&["ipmi_sim", "ipmitool", "fence_ipmilan"]);
    let bbwd = ctx.shipped_bbwd();
    let dir = TestDir::new("bench-fence");
    let sim = IpmiSim::start(
        dir.path(),
        "bench",
        SimOptions {
            wdfix: false,
            stubborn: false,
        },
    );
    let pw = sim.password_file("pw", ipmisim::PASSWORD);
    let cfg = bbwd_config(&dir, "sim", sim.port, ipmisim::USER, &pw, None);
    let cfg_auto = bbwd_config(
        &dir,
        "sim-auto",
        sim.port,
        ipmisim::USER,
        &pw,
        Some("\"auto\""),
    );
    let port = sim.port.to_string();
    let ipmitool = |args: &[&str]| -> Output {
        let mut cmd = Command::new("ipmitool");
        cmd.args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port])
            .args(["-U", ipmisim::USER, "-P", ipmisim::PASSWORD, "-C", "3"])
            .args(args);
        run_bounded(cmd, COMMAND_TIMEOUT)
    };
    let power_on = || {
        let out = ipmitool(&["chassis", "power", "on"]);
        assert!(out.status.success(), "ipmitool chassis power on: {out:?}");
        sim.wait_power(true, Duration::from_secs(10));
        sleep(Duration::from_millis(300));
    };
    // Wall time and node gone -> command end, of one command.
    let watch = |what: &str, cmd: &mut Command| -> (f64, f64) {
        power_on();
        let t0 = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut gone = None;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the command") {
                break status;
            }
            if gone.is_none() && sim.node_pid().is_none() {
                gone = Some(Instant::now());
            }
            assert!(
                t0.elapsed() < COMMAND_TIMEOUT,
                "{what} did not finish within {COMMAND_TIMEOUT:?}"
            );
            sleep(WATCH_EVERY);
        };
        let end = Instant::now();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(status.success(), "{what} failed ({status}): {err}");
        assert!(
            sim.node_pid().is_none(),
            "{what} returned with the node still on\n{}",
            sim.diagnostics()
        );
        let gone = gone.unwrap_or(end);
        (
            end.duration_since(t0).as_secs_f64(),
            end.duration_since(gone).as_secs_f64(),
        )
    };
    let bbwd_off = |config: &Path| {
        let mut cmd = Command::new(&bbwd);
        cmd.args(["fence", "off", "-c"]).arg(config);
        cmd
    };

    let mut rows: Vec<(String, Vec<f64>, Option<Vec<f64>>)> = Vec::new();
    let mut both = |name: &str, make: &dyn Fn() -> Command| {
        say("fence", &format!("{name}, {runs} runs"));
        let res: Vec<(f64, f64)> = (0..runs).map(|_| watch(name, &mut make())).collect();
        rows.push((
            name.to_string(),
            res.iter().map(|r| r.0).collect(),
            Some(res.iter().map(|r| r.1).collect()),
        ));
    };
    both("`bbwd fence off` (confirmed)", &|| bbwd_off(&cfg));
    both(
        "`bbwd fence off`, `cipher_suite = \"auto\"` (lists the suites, takes 3)",
        &|| bbwd_off(&cfg_auto),
    );
    both("`fence_ipmilan --lanplus --cipher=3 --action=off`", &|| {
        let mut cmd = Command::new("fence_ipmilan");
        cmd.args(["--lanplus", "--cipher=3", "--action=off", "--ip=127.0.0.1"])
            .arg(format!("--ipport={port}"))
            .arg(format!("--username={}", ipmisim::USER))
            .arg(format!("--password={}", ipmisim::PASSWORD));
        cmd
    });
    say(
        "fence",
        &format!("ipmitool off + status polling, {runs} runs"),
    );
    let polled: Vec<f64> = (0..runs)
        .map(|_| {
            power_on();
            let t0 = Instant::now();
            assert!(ipmitool(&["chassis", "power", "off"]).status.success());
            while !String::from_utf8_lossy(&ipmitool(&["chassis", "power", "status"]).stdout)
                .contains("is off")
            {
                sleep(Duration::from_millis(50));
            }
            t0.elapsed().as_secs_f64()
        })
        .collect();
    rows.push((
        "`ipmitool chassis power off` + status every 50 ms".to_string(),
        polled,
        None,
    ));
    say("fence", &format!("ipmi_sim's own power-off, {runs} runs"));
    let floor: Vec<f64> = (0..runs)
        .map(|_| {
            power_on();
            assert!(ipmitool(&["chassis", "power", "off"]).status.success());
            let t0 = Instant::now();
            while sim.node_pid().is_some() {
                sleep(WATCH_EVERY);
            }
            t0.elapsed().as_secs_f64()
        })
        .collect();
    rows.push((
        "ipmi_sim's own power-off (floor: off command to node gone)".to_string(),
        floor,
        None,
    ));

    let mut sim_table = Table::new(&[
        "what",
        "median ms",
        "range ms",
        "confirmed after node gone, median (range) ms",
    ]);
    for (name, wall, after) in &rows {
        let after = after.as_ref().map_or("-".to_string(), |a| {
            let s = summary(a);
            format!("{} ({})", ms(s.median()), ms_range(&s))
        });
        let s = summary(wall);
        sim_table.row([name.clone(), ms(s.median()), ms_range(&s), after]);
    }
    drop(sim);

    // The test BMC: power is a flag, off at once; on again before each run.
    let tb = TestBmc::start(Options {
        suites: vec![3, 17],
        mode: Mode::Honest,
        lists_suites: true,
    });
    let tb_pw = dir.join("tbpw");
    std::fs::write(&tb_pw, format!("{}\n", testbmc::PASSWORD)).expect("write the password file");
    set_mode_600(&tb_pw);
    let tb_port = tb.port.to_string();
    let tb_ipmitool = |args: &[&str]| -> Output {
        let mut cmd = Command::new("ipmitool");
        cmd.args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &tb_port])
            .args(["-U", testbmc::USER, "-P", testbmc::PASSWORD, "-C", "17"])
            .args(args);
        run_bounded(cmd, COMMAND_TIMEOUT)
    };
    let mut tb_table = Table::new(&["what", "median ms", "range ms"]);
    for (value, name) in [("17", "17"), ("3", "3"), ("\"auto\"", "auto")] {
        let cfg = bbwd_config(
            &dir,
            &format!("tb-{name}"),
            tb.port,
            testbmc::USER,
            &tb_pw,
            Some(value),
        );
        say(
            "fence",
            &format!("test BMC, cipher_suite = {value}, {runs} runs"),
        );
        let t: Vec<f64> = (0..runs)
            .map(|_| {
                tb.set_power(true);
                let t0 = Instant::now();
                let out = run_bounded(bbwd_off(&cfg), COMMAND_TIMEOUT);
                let took = t0.elapsed().as_secs_f64();
                assert!(
                    out.status.success() && out.stdout == b"off\n",
                    "bbwd fence off (suite {value}): {out:?}"
                );
                assert!(!tb.power_on(), "the test BMC is still on");
                took
            })
            .collect();
        let s = summary(&t);
        tb_table.row([
            format!("`bbwd fence off`, `cipher_suite = {value}`"),
            ms(s.median()),
            ms_range(&s),
        ]);
    }
    say("fence", &format!("test BMC, ipmitool -C 17, {runs} runs"));
    let t: Vec<f64> = (0..runs)
        .map(|_| {
            tb.set_power(true);
            let t0 = Instant::now();
            let out = tb_ipmitool(&["chassis", "power", "off"]);
            assert!(out.status.success(), "ipmitool -C 17 off: {out:?}");
            while !String::from_utf8_lossy(&tb_ipmitool(&["chassis", "power", "status"]).stdout)
                .contains("is off")
            {
                sleep(Duration::from_millis(50));
            }
            t0.elapsed().as_secs_f64()
        })
        .collect();
    let s = summary(&t);
    tb_table.row([
        "`ipmitool -C 17 chassis power off` + `chassis power status`".to_string(),
        ms(s.median()),
        ms_range(&s),
    ]);

    format!(
        "{runs} runs each, same ipmi_sim on 127.0.0.1, cipher suite 3\n\n{}\n\
         {runs} runs each, the test BMC (tests/src/testbmc.rs) on 127.0.0.1, off at once\n\n{}",
        sim_table.render(),
        tb_table.render()
    )
}

/// A pair-mode config whose `[fencing]` is the BMC at 127.0.0.1:`port` (the peer and the VIP
/// are never used by `bbwd fence`).
fn bbwd_config(
    dir: &TestDir,
    name: &str,
    port: u16,
    user: &str,
    password_file: &Path,
    cipher_suite: Option<&str>,
) -> PathBuf {
    let key = dir.join("cluster.key");
    if !key.exists() {
        std::fs::write(&key, [7u8; 32]).expect("write the cluster key");
        set_mode_600(&key);
    }
    let d = dir.path().display().to_string();
    let mut text = format!(
        "[node]\nname = \"bench\"\nstate_dir = {}\ncontrol_socket = {}\n\n\
         [cluster]\npeer = \"peer\"\nlisten = [\"127.0.0.1:1\"]\n\
         peer_addresses = [\"127.0.0.1:2\"]\nkey_file = {}\n\n\
         [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"lo\"\n\n\
         [fencing]\nhost = \"127.0.0.1\"\nport = {port}\nusername = {}\npassword_file = {}\n\
         timeout = \"10s\"\n",
        toml_str(&format!("{d}/state-{name}")),
        toml_str(&format!("{d}/control-{name}.sock")),
        toml_str(&key.display().to_string()),
        toml_str(user),
        toml_str(&password_file.display().to_string()),
    );
    if let Some(suite) = cipher_suite {
        text.push_str(&format!("cipher_suite = {suite}\n"));
    }
    let path = dir.join(&format!("bbwd-{name}.toml"));
    std::fs::write(&path, text).expect("write the bbwd config");
    path
}

fn set_mode_600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

fn summary(seconds: &[f64]) -> Summary {
    Summary::of(seconds.iter().copied()).expect("at least one run")
}

fn ms(seconds: f64) -> String {
    fixed(seconds * 1000.0, 0)
}

fn ms_range(s: &Summary) -> String {
    format!("{}-{}", ms(s.min()), ms(s.max()))
}
