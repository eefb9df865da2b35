//! A real BMC for the IPMI tests: OpenIPMI's `ipmi_sim` on 127.0.0.1, one per test, whose
//! "chassis power" is a simulated node process (power on = the process exists).
//!
//! Owns: the simulator's config files (written into the test's directory), its start and stop,
//! the simulated node, the LD_PRELOAD shim `tests/ipmi/wdfix.c` (built here with gcc; why it
//! exists is in its header), and small observers (node power, node starts and stops, the BMC's
//! active sessions through `ipmitool`). Must not: end processes it did not start: it signals
//! the `ipmi_sim` it spawned and the node processes that ipmi_sim started from this test's
//! directory (their command line names it), by PID; ipmi_sim does not end its node itself.
//!
//! # How ipmi_sim is set up (and why)
//! * `serial 15 ... codec VM`: without the VM channel, chassis control and the watchdog's
//!   actions fail with 0xcc. Nothing connects to it.
//! * a `.emu` file with one MC at 0x20 and sensor 0 (the watchdog sensor): without it the
//!   watchdog can be set and reset but its expiry does nothing.
//! * `startcmd` is the node script; power off = SIGTERM at ipmi_sim's next 1 s tick; the BMC
//!   says "on" until the process is reaped, so a confirmed off means the node is gone.
//! * always `-c`, `-f`, `-s` (Debian's build looks in `/usr/etc/ipmi`); under `-n` a bad config
//!   makes it exit silently, so a failed start shows `ipmi_sim.log` and the config.
//!
//! # Invariants
//! * Every wait is bounded; a failure panics with the simulator's log.
//! * On drop: ipmi_sim (SIGTERM, then SIGKILL), then every node it started, by PID.

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{kill_pid, pid_alive, run_bounded};

/// The BMC user every simulator has (administrator).
pub const USER: &str = "admin";
pub const PASSWORD: &str = "secret";

/// Whether the IPMI test tools are here: true, or the test fails saying what is missing.
/// Tests that call this are `#[ignore = "needs ..."]`: `scripts/test.sh` runs them with `--include-ignored`; run, they fail when a piece is missing (never pass unrun).
pub fn tools_available() -> bool {
    let missing: Vec<&str> = ["ipmi_sim", "ipmitool", "gcc"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    let header = Path::new("/usr/include/OpenIPMI/os_handler.h").is_file();
    if missing.is_empty() && header {
        return true;
    }
    let what = format!(
        "IPMI tests need {missing:?}{} (scripts/setup.sh installs them)",
        if header { "" } else { " and libopenipmi-dev" }
    );
    panic!("{what}");
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind udp 127.0.0.1:0")
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind tcp 127.0.0.1:0")
        .port()
}

/// One running ipmi_sim and its node.
pub struct IpmiSim {
    /// `DIR/bmc-NAME/`: configs, state, logs, the node's pid and events.
    pub dir: PathBuf,
    /// RMCP+ port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Preload `tests/ipmi/wdfix.c` (needed for any test that pets the BMC watchdog).
    pub wdfix: bool,
    /// The node ignores SIGTERM: a power-off takes until ipmi_sim's SIGKILL (`kill_wait`
    /// ticks later).
    pub stubborn: bool,
}

impl IpmiSim {
    /// Starts a simulator under `parent` (the test's directory) and waits until it answers and
    /// its node is powered on.
    pub fn start(parent: &Path, name: &str, opts: SimOptions) -> IpmiSim {
        IpmiSim::start_powered(parent, name, opts, true)
    }

    /// Like [`IpmiSim::start`], but the node is off (`startnow false`): a peer that is down,
    /// whose BMC answers. Waits until the simulator answers on its UDP port.
    pub fn start_off(parent: &Path, name: &str, opts: SimOptions) -> IpmiSim {
        IpmiSim::start_powered(parent, name, opts, false)
    }

    fn start_powered(parent: &Path, name: &str, opts: SimOptions, power_on: bool) -> IpmiSim {
        let dir = parent.join(format!("bmc-{name}"));
        fs::create_dir_all(dir.join("state")).expect("create bmc dir");
        let port = free_udp_port();
        let vm_port = free_tcp_port();
        let node = dir.join("node.sh");
        let script = if opts.stubborn {
            NODE_SCRIPT.replace("exit 0' TERM INT", "' TERM INT")
        } else {
            NODE_SCRIPT.to_string()
        };
        fs::write(&node, script).expect("write node.sh");
        let conf = lan_conf(
            name,
            port,
            vm_port,
            &format!("/bin/sh {} {}", node.display(), dir.display()),
        );
        let conf = if power_on {
            conf
        } else {
            conf.replace("startnow true", "startnow false")
        };
        fs::write(dir.join("lan.conf"), conf).expect("write lan.conf");
        fs::write(dir.join("node.emu"), NODE_EMU).expect("write node.emu");

        let mut cmd = Command::new("ipmi_sim");
        cmd.arg("-n")
            .arg("-c")
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("node.emu"))
            .arg("-s")
            .arg(dir.join("state"));
        if opts.wdfix {
            cmd.env("LD_PRELOAD", build_wdfix(&dir));
        }
        let log = fs::File::create(dir.join("ipmi_sim.log")).expect("ipmi_sim.log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("dup log")))
            .stderr(Stdio::from(log));
        let child = cmd.spawn().expect("spawn ipmi_sim");
        let mut sim = IpmiSim {
            dir,
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_bound(port) {
            if let Some(Ok(Some(st))) = sim.child.as_mut().map(|c| c.try_wait()) {
                panic!("ipmi_sim exited at start ({st})\n{}", sim.diagnostics());
            }
            if Instant::now() > deadline {
                panic!("ipmi_sim did not open udp/{port}\n{}", sim.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if power_on {
            sim.wait_power(true, Duration::from_secs(10));
        }
        sim
    }

    /// The PID of ipmi_sim.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Writes a 0600 password file with `password` under the simulator's directory.
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, format!("{password}\n")).expect("write password file");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod 600");
        p
    }

    /// The live node's PID, if the node is powered on.
    pub fn node_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.dir.join("node.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        pid_alive(pid).then_some(pid)
    }

    /// Power as the node process says (not as the BMC says).
    pub fn node_on(&self) -> bool {
        self.node_pid().is_some()
    }

    /// `(unix seconds, "START"|"TERM")` lines the node wrote.
    pub fn node_events(&self) -> Vec<(f64, String)> {
        fs::read_to_string(self.dir.join("node.events"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.parse().ok()?, it.next()?.to_string()))
            })
            .collect()
    }

    /// How often the node was started (powered on).
    pub fn node_starts(&self) -> usize {
        self.node_events()
            .iter()
            .filter(|(_, k)| k == "START")
            .count()
    }

    /// Waits (bounded) until the node process is on/off.
    pub fn wait_power(&self, on: bool, timeout: Duration) {
        let what = format!("the simulated node to be {}", if on { "on" } else { "off" });
        let deadline = Instant::now() + timeout;
        while self.node_on() != on {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ipmitool -I lanplus -C 3` against this BMC as the administrator.
    pub fn ipmitool(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ipmitool");
        cmd.args(["-I", "lanplus", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", USER, "-P", PASSWORD, "-C", "3", "-N", "1", "-R", "2"])
            .args(args);
        run_bounded(cmd, Duration::from_secs(30))
    }

    /// Sessions the BMC holds open, as `ipmitool session info active` reports (ipmitool's own
    /// session included). `None` when ipmitool cannot log in.
    pub fn active_sessions(&self) -> Option<u32> {
        let out = self.ipmitool(&["session", "info", "active"]);
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("active sessions"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Freezes the BMC (SIGSTOP): it stops answering, mid-session.
    pub fn freeze(&self) {
        kill_pid(self.pid(), libc::SIGSTOP);
    }

    /// Thaws it (SIGCONT): it answers again, including late replies to what it got meanwhile.
    pub fn thaw(&self) {
        kill_pid(self.pid(), libc::SIGCONT);
    }

    /// The simulator's log and config, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- ipmi_sim.log ({}):\n{}\n--- node.events:\n{}",
            self.dir.display(),
            fs::read_to_string(self.dir.join("ipmi_sim.log")).unwrap_or_default(),
            fs::read_to_string(self.dir.join("node.events")).unwrap_or_default(),
        )
    }

    /// Node processes started from this simulator's directory that are still alive.
    fn nodes_alive(&self) -> Vec<u32> {
        let marker = format!("{}", self.dir.display());
        let mut pids = Vec::new();
        for (_, kind, pid) in self.node_events_with_pid() {
            if kind != "START" || !pid_alive(pid) {
                continue;
            }
            // The PID may have been reused: only a shell running our node script counts.
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                pids.push(pid);
            }
        }
        pids
    }

    fn node_events_with_pid(&self) -> Vec<(f64, String, u32)> {
        fs::read_to_string(self.dir.join("node.events"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((
                    it.next()?.parse().ok()?,
                    it.next()?.to_string(),
                    it.next()?.parse().ok()?,
                ))
            })
            .collect()
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            kill_pid(pid, libc::SIGCONT);
            kill_pid(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // ipmi_sim does not end its node when it exits.
        for pid in self.nodes_alive() {
            kill_pid(pid, libc::SIGKILL);
        }
        // Bounded, and never a panic in drop.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.nodes_alive().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Where and how to run a simulator that is not on 127.0.0.1 (a BMC in a namespace lab,
/// [`IpmiSim::start_in`]).
#[derive(Debug, Clone)]
pub struct BmcPlacement {
    /// Network namespace (`ip netns` name) ipmi_sim runs in; its `lo` must be up (VM channel).
    pub netns: String,
    /// RMCP+ address (must be configured in `netns`) and UDP port.
    pub addr: std::net::Ipv4Addr,
    pub port: u16,
    /// TCP port of the VM channel on 127.0.0.1 in `netns` (unique per namespace).
    pub vm_port: u16,
    /// The node: ipmi_sim runs it as `sh -c "exec CMD"`. To be ended by this simulator's drop it
    /// must name the simulator's directory (`DIR/bmc-NAME`) on its command line and follow the
    /// node protocol of the built-in node script: a line `<unix seconds> START <pid>` appended
    /// to `node.events`, then its PID in `node.pid`.
    pub startcmd: String,
    /// Power on when the simulator starts (`startnow`); otherwise the node starts off.
    pub power_on_at_start: bool,
}

impl IpmiSim {
    /// Like [`IpmiSim::start`], but ipmi_sim runs inside `place.netns` (by `ip netns exec`,
    /// which execs in place: the child's PID is ipmi_sim's), answers on `place.addr:port`, and
    /// its node is `place.startcmd`. Waits until the UDP socket is open (and the node is on if
    /// it starts on). [`IpmiSim::ipmitool`] does not reach it (it talks to 127.0.0.1): run
    /// ipmitool inside a namespace that routes to `place.addr`.
    pub fn start_in(parent: &Path, name: &str, place: &BmcPlacement) -> IpmiSim {
        let dir = parent.join(format!("bmc-{name}"));
        fs::create_dir_all(dir.join("state")).expect("create bmc dir");
        let conf = lan_conf(name, place.port, place.vm_port, &place.startcmd)
            .replace(
                &format!("addr 127.0.0.1 {}", place.port),
                &format!("addr {} {}", place.addr, place.port),
            )
            .replace(
                "startnow true",
                if place.power_on_at_start {
                    "startnow true"
                } else {
                    "startnow false"
                },
            );
        fs::write(dir.join("lan.conf"), conf).expect("write lan.conf");
        fs::write(dir.join("node.emu"), NODE_EMU).expect("write node.emu");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &place.netns, "ipmi_sim", "-n", "-c"])
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("node.emu"))
            .arg("-s")
            .arg(dir.join("state"));
        let log = fs::File::create(dir.join("ipmi_sim.log")).expect("ipmi_sim.log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("dup log")))
            .stderr(Stdio::from(log));
        let child = cmd.spawn().expect("spawn ip netns exec ipmi_sim");
        let mut sim = IpmiSim {
            dir,
            port: place.port,
            child: Some(child),
        };
        let udp_table = format!("/proc/{}/net/udp", sim.pid());
        let want = format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(place.addr.octets()),
            place.port
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let bound = fs::read_to_string(&udp_table)
                .map(|t| {
                    t.lines()
                        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
                })
                .unwrap_or(false);
            if bound {
                break;
            }
            if let Some(Ok(Some(st))) = sim.child.as_mut().map(|c| c.try_wait()) {
                panic!("ipmi_sim exited at start ({st})\n{}", sim.diagnostics());
            }
            if Instant::now() > deadline {
                panic!(
                    "ipmi_sim did not open udp {}:{} in {}\n{}",
                    place.addr,
                    place.port,
                    place.netns,
                    sim.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if place.power_on_at_start {
            sim.wait_power(true, Duration::from_secs(10));
        }
        sim
    }
}

/// Builds `tests/ipmi/wdfix.c` into `dir/wdfix.so`.
fn build_wdfix(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("ipmi/wdfix.c");
    let out = dir.join("wdfix.so");
    let mut cmd = Command::new("gcc");
    cmd.args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl");
    let o = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        o.status.success(),
        "gcc {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Whether something has udp 127.0.0.1:port bound, in the calling thread's network namespace
/// (`/proc/thread-self`: a test may run its simulator in a namespace of its own thread).
fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/thread-self/net/udp")
        .map(|t| {
            t.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// The simulated node: its existence is "power on". Logs START and TERM with its PID.
const NODE_SCRIPT: &str = r#"#!/bin/sh
# A simulated server for ipmi_sim's startcmd: powered on while this process exists.
dir=$1
# START before the pid file: whoever sees the new pid also finds its START line.
echo "$(date +%s.%N) START $$" >> "$dir/node.events"
echo $$ > "$dir/node.pid"
trap 'echo "$(date +%s.%N) TERM $$" >> "$dir/node.events"; exit 0' TERM INT
while :; do sleep 0.2 & wait $!; done
"#;

/// One MC (0x20) with a SEL and sensor 0, the watchdog sensor.
const NODE_EMU: &str = "\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 1000 0x0a
sensor_add 0x20 0 0 35 0x6f event-only
sensor_set_event_support 0x20 0 0 enable scanning per-state 000000000001111 000000000000000 000000000001111 000000000000000
mc_enable 0x20
";

fn lan_conf(name: &str, port: u16, vm_port: u16, startcmd: &str) -> String {
    format!(
        r#"# ipmi_sim for the bbwd tests: one simulated server "{name}".
name "{name}"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid 0123456789abcdef0123456789abcdef
  endlan
  # The VM channel: required for chassis control and the watchdog's actions (else 0xcc).
  serial 15 127.0.0.1 {vm_port} codec VM
  # Power on = this process exists; power off = SIGTERM at the next 1 s tick.
  startcmd "{startcmd}"
  startnow true
  poweroff_wait 2
  kill_wait 2
  #    num enabled name      passwd        max-priv max-sess auths
  user 2   true    "{USER}"  "{PASSWORD}"  admin    10       md5
"#
    )
}
