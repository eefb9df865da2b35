//! A real Pacemaker cluster on this machine: Debian's `corosync` and `pacemakerd` on two nodes,
//! each node in its own network, mount and UTS namespaces, with bbwd's OCF agent
//! (`ocf:bbwd:bitbucket`) in the node's resource-agent path and the Bitbucket simulator as the
//! resource (`tests/tests/pacemaker.rs`).
//!
//! # Theory of operation
//! ```text
//!  test process (the host's namespaces)
//!   ├─ ip netns add <prefix>n1, <prefix>n2; a veth pair between them, 10.213.0.1 / .2 (no
//!   │  address or route in the host's namespace); lo up in each
//!   ├─ holder nK: ip netns exec NS unshare --mount --uts --propagation private sh setup.sh
//!   │     setup.sh: hostname nK; private tmpfs on /dev/shm and /run; binds the node's own
//!   │     directories onto /var/lib/pacemaker, /var/lib/corosync, /var/log/pacemaker, its
//!   │     resource.d onto /usr/lib/ocf/resource.d, its bbwd.toml onto the shared config path;
//!   │     then `exec sleep infinity`: the namespaces live as long as the holder does
//!   ├─ corosync -f -c nK/corosync.conf  via nsenter -t HOLDER -n -m -u   (knet over the veth)
//!   ├─ pacemakerd                       via nsenter ...  (it starts its six daemons)
//!   └─ crm_mon, cibadmin, crm_attribute, crm_failcount: via nsenter too
//! ```
//!
//! Why each private piece: libqb, the IPC of corosync, Pacemaker's daemons and its CLI tools,
//! uses abstract unix sockets (private per network namespace) and files in /dev/shm (private
//! per mount namespace here), so two nodes on one host never reach each other's daemons except
//! over corosync's network. The CIB, the scheduler's inputs and the logs live under
//! /var/lib/pacemaker and /var/log/pacemaker, corosync's ring id under /var/lib/corosync: one
//! directory per node. The hostname is the corosync node name (what `crm_node -n` says).
//!
//! The agent is installed as the package installs it, a symlink named `bitbucket` to bbwd in
//! the provider directory `bbwd` of the OCF root: `/usr/lib/ocf/resource.d/bbwd/bitbucket`
//! (pointing at the build's bbwd where the package's points at /usr/sbin/bbwd), but
//! inside the node's mount namespace only (the node's own `resource.d` is bound over the host's,
//! so other providers are hidden there; Pacemaker needs none). The resource's `config` is one
//! path for every node, as an admin writes it; each node binds its own `bbwd.toml` (its own
//! `state_dir`, its own simulator directory) onto it.
//!
//! Must not: modify the host (every mount is in a node's mount namespace; the host's
//! /usr/lib/ocf, /var/lib/pacemaker and /etc/corosync are untouched), or end processes it did
//! not start. Cleanup ([`Cluster::shutdown`], also run by `Drop` when an assertion fails)
//! ends, by PID, exactly the processes whose mount namespace is one of the nodes' (everything
//! in there was started by this harness or by the Pacemaker it started, the simulators
//! included), then deletes the network namespaces.
//!
//! # Invariants
//! * A `Cluster` borrows its `Scenario`, so the cluster is down before the directory goes.
//! * Every wait is bounded and panics with [`Cluster::diagnostics`] (crm_mon, the tails of each
//!   node's pacemaker.log, the simulators' events).

use std::fmt::Write as _;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{
    bbsim_bin, bbwd_bin, events_log, http_get, kill_pid, pid_alive, run_bounded, toml_str,
    Scenario, SimEvent, POLL,
};

/// The setup script's mounts are a handful of syscalls; 10 s covers a loaded machine.
const HOLDER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// corosync answers on its IPC within a second of starting; 30 s for a loaded machine.
const COROSYNC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pacemaker waits `dc-deadtime` (20 s by default, and it cannot be set before the cluster is
/// up) before the first DC election, then the daemons sync the CIB: ~25 s here, 120 s at most.
const CLUSTER_FORM_TIMEOUT: Duration = Duration::from_secs(120);
/// One CLI call (crm_mon, cibadmin, ...): they answer in well under a second when the cluster
/// is up, and retry internally for a few seconds when a daemon is busy.
const CLI_LIMIT: Duration = Duration::from_secs(30);
/// An orderly `pacemakerd` shutdown stops every resource through its agent (the test's stop op
/// timeout is 15 s) and leaves the membership; 90 s, then SIGKILL.
const PACEMAKER_SHUTDOWN_GRACE: Duration = Duration::from_secs(90);
/// corosync leaves the ring and exits within a second of SIGTERM.
const COROSYNC_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// After SIGKILL, how long to wait for the processes to be gone.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The resource-agent path inside a node, as `scripts/build-deb.sh` installs it.
pub const OCF_RESOURCE_D: &str = "/usr/lib/ocf/resource.d";

/// Whether a real cluster can run here: root, iproute2, util-linux's unshare/nsenter, corosync,
/// Pacemaker and its CLI tools, the `hacluster` user: true, or the test fails saying what is
/// missing (the test is `#[ignore = "needs ..."]`; `scripts/test.sh` runs it with
/// `--include-ignored`).
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = [
        "ip",
        "unshare",
        "nsenter",
        "corosync",
        "corosync-quorumtool",
        "pacemakerd",
        "crm_mon",
        "cibadmin",
        "crm_attribute",
        "crm_failcount",
    ]
    .into_iter()
    .filter(|t| !on_path(t))
    .collect();
    let hacluster = fs::read_to_string("/etc/passwd")
        .is_ok_and(|p| p.lines().any(|l| l.starts_with("hacluster:")));
    let resource_d = Path::new(OCF_RESOURCE_D).is_dir();
    if root && missing.is_empty() && hacluster && resource_d {
        return true;
    }
    let what = format!(
        "a Pacemaker cluster needs root (have: {root}), {missing:?} on PATH, the hacluster user \
         (have: {hacluster}) and {OCF_RESOURCE_D} (have: {resource_d}); scripts/setup.sh \
         installs pacemaker, pacemaker-cli-utils, corosync and resource-agents"
    );
    panic!("{what}");
}

fn on_path(tool: &str) -> bool {
    tool_path(tool).is_some()
}

/// PATH with /usr/sbin and /sbin added (for the cluster's tools and the scripts among them).
fn sbin_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    std::env::join_paths(dirs).unwrap_or(path)
}

/// Where `tool` is: on PATH, or in /usr/sbin or /sbin (where Debian puts corosync and
/// pacemakerd, not always on a non-login root shell's PATH).
fn tool_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// One node: its namespaces (kept by the holder process) and its daemons.
pub struct Node {
    /// The corosync and Pacemaker node name, also its hostname.
    pub name: String,
    /// `SCENARIO_DIR/NAME`: config, state, simulator and Pacemaker's directories.
    pub dir: PathBuf,
    /// The network namespace (`ip netns` name).
    pub netns: String,
    holder: Child,
    /// `mnt:[inode]` of the holder: the processes of this node.
    mnt_ns: String,
    corosync: Option<Child>,
    pacemakerd: Option<Child>,
}

impl Node {
    /// The holder's PID, the target of every `nsenter`.
    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    /// `nsenter -t HOLDER -n -m -u PROGRAM ARGS`: a command inside this node (`program` by
    /// its full path, see [`tool_path`]).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = tool_path(program).unwrap_or_else(|| PathBuf::from(program));
        let mut cmd = Command::new(tool_path("nsenter").unwrap_or_else(|| "nsenter".into()));
        // crm_failcount and crm_standby are scripts that call crm_attribute by name.
        cmd.env("PATH", sbin_path());
        cmd.arg("-t")
            .arg(self.holder_pid().to_string())
            .args(["-n", "-m", "-u", "--"])
            .arg(program)
            .args(args);
        cmd
    }

    /// Runs a CLI tool inside this node to completion (bounded).
    pub fn cli(&self, program: &str, args: &[&str]) -> Output {
        run_bounded(self.command(program, args), CLI_LIMIT)
    }

    /// Like [`Node::cli`], panicking with the output when the tool fails.
    pub fn cli_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.cli(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} on {} failed ({:?})\nstdout: {}\nstderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `GET path` on the simulator of this node (127.0.0.1:`port` in the node's network
    /// namespace), from a thread that enters that namespace: (status, body).
    pub fn sim_get(&self, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        let ns = format!("/proc/{}/ns/net", self.holder_pid());
        let path = path.to_string();
        std::thread::spawn(move || {
            let file = fs::File::open(&ns)?;
            // SAFETY: setns(2) on a namespace fd we hold open; it changes the network
            // namespace of this thread only, which ends after this one request.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let (code, body) = http_get(port, &path)?;
            Ok((code, String::from_utf8_lossy(&body).into_owned()))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the request thread panicked")))
    }

    /// [`Node::sim_get`], panicking on I/O errors.
    pub fn sim_admin(&self, port: u16, path: &str) -> (u16, String) {
        self.sim_get(port, path)
            .unwrap_or_else(|e| panic!("GET {path} on {}'s simulator: {e}", self.name))
    }

    /// This node's simulator directory (its `events.log`).
    pub fn sim_dir(&self) -> PathBuf {
        self.dir.join("sim")
    }

    pub fn sim_events(&self) -> Vec<SimEvent> {
        events_log(&self.sim_dir())
    }

    /// PIDs of the START lines of this node's simulator, in order.
    pub fn sim_starts(&self) -> Vec<u32> {
        self.sim_events()
            .iter()
            .filter(|e| e.kind == "START")
            .map(|e| e.pid)
            .collect()
    }

    /// This node's pacemaker.log.
    pub fn pacemaker_log(&self) -> PathBuf {
        self.dir.join("log-pacemaker/pacemaker.log")
    }

    /// PIDs of the processes in this node's mount namespace (the holder included).
    fn processes(&self) -> Vec<u32> {
        processes_in(&self.mnt_ns)
    }
}

/// PIDs of live processes whose mount namespace is `mnt_ns` (`mnt:[inode]`).
fn processes_in(mnt_ns: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let same = fs::read_link(entry.path().join("ns/mnt"))
            .is_ok_and(|l| l.as_os_str() == std::ffi::OsStr::new(mnt_ns));
        if same && pid_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits up to `timeout` for `child` to exit (reaping it); whether it did.
fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The cluster. See the module documentation.
pub struct Cluster<'a> {
    sc: &'a Scenario,
    pub nodes: Vec<Node>,
    /// Network namespaces created (deleted on shutdown, also those of nodes not started).
    netns: Vec<String>,
    down: bool,
}

/// One `<operation_history>` of crm_mon's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// The executor's call id: later calls have higher ids.
    pub call: u64,
    pub task: String,
    pub rc: i32,
    pub rc_text: String,
    /// 0 for one-off operations.
    pub interval_ms: u64,
    pub exec_time_ms: u64,
}

/// Where crm_mon says a resource is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceView {
    /// `Started`, `Stopped`, `Starting`, `Stopping`, ...
    pub role: String,
    pub failed: bool,
    pub managed: bool,
    pub nodes: Vec<String>,
}

impl<'a> Cluster<'a> {
    /// Starts corosync and Pacemaker on the two nodes `names` and waits until every
    /// node is online and a DC is elected. `bitbucket` is the `[bitbucket]` table's extra keys
    /// (TOML lines) of every node's `bbwd.toml`; `sim_args` are appended to the simulator's
    /// command line.
    pub fn start(sc: &'a Scenario, names: &[&str], bitbucket: &str, sim_args: &[&str]) -> Self {
        assert_eq!(names.len(), 2, "a pair of nodes: {names:?}");
        let prefix = format!("bbpm{}", std::process::id());
        let mut cluster = Cluster {
            sc,
            nodes: Vec::new(),
            netns: Vec::new(),
            down: false,
        };
        // Placeholder at the shared config path: each node binds its own file onto it.
        fs::write(
            sc.config_path(),
            "# each node of tests/src/pacemaker.rs binds its own bbwd.toml here\n",
        )
        .expect("write the config placeholder");

        // Network: a veth pair between the two namespaces.
        let addrs = ["10.213.0.1".to_string(), "10.213.0.2".to_string()];
        for name in names {
            let ns = format!("{prefix}{name}");
            ip(&["netns", "add", &ns]);
            cluster.netns.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (a, b) = (&cluster.netns[0], &cluster.netns[1]);
        ip(&[
            "link", "add", "cl0", "netns", a, "type", "veth", "peer", "name", "cl0", "netns", b,
        ]);
        for (ns, addr) in [(a, &addrs[0]), (b, &addrs[1])] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "cl0"]);
            ip(&["-n", ns, "link", "set", "cl0", "up"]);
        }

        let corosync_conf = corosync_conf(names, &addrs);
        for (i, name) in names.iter().enumerate() {
            let node = cluster.start_holder(name, &cluster.netns[i].clone(), bitbucket, sim_args);
            fs::write(node.dir.join("corosync.conf"), &corosync_conf).expect("corosync.conf");
            cluster.nodes.push(node);
        }
        for i in 0..cluster.nodes.len() {
            let node = &mut cluster.nodes[i];
            let conf = node.dir.join("corosync.conf").display().to_string();
            let mut cmd = node.command("corosync", &["-f", "-c", &conf]);
            let child = spawn_logged(&mut cmd, &node.dir.join("corosync.out"), libc::SIGTERM);
            node.corosync = Some(child);
        }
        for node in &cluster.nodes {
            // corosync-quorumtool: 0 quorate, 2 not (yet) quorate, 1 no corosync to ask.
            let deadline = Instant::now() + COROSYNC_READY_TIMEOUT;
            loop {
                let out = node.cli("corosync-quorumtool", &["-s"]);
                if matches!(out.status.code(), Some(0) | Some(2)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "corosync on {} did not answer within {COROSYNC_READY_TIMEOUT:?}\n{}",
                    node.name,
                    tail(&node.dir.join("corosync.out"), 30)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for i in 0..cluster.nodes.len() {
            let node = &mut cluster.nodes[i];
            let mut cmd = node.command("pacemakerd", &[]);
            let child = spawn_logged(&mut cmd, &node.dir.join("pacemakerd.out"), libc::SIGTERM);
            node.pacemakerd = Some(child);
        }
        cluster.wait_for(CLUSTER_FORM_TIMEOUT, "every node online and a DC", |c| {
            let Some(xml) = c.try_mon_xml() else {
                return false;
            };
            let dc = start_tags(&xml, "current_dc")
                .first()
                .is_some_and(|t| attr(t, "present") == Some("true"));
            let nodes = start_tags(&xml, "node");
            dc && names.iter().all(|n| {
                nodes.iter().any(|t| {
                    attr(t, "name") == Some(n)
                        && attr(t, "online") == Some("true")
                        && attr(t, "pending") == Some("false")
                })
            })
        });
        cluster
    }

    /// Creates the node's directories and files and starts its holder (namespaces, mounts).
    fn start_holder(&self, name: &str, netns: &str, bitbucket: &str, sim_args: &[&str]) -> Node {
        let dir = self.sc.dir.join(name);
        for sub in [
            "state",
            "sim",
            "lib-pacemaker/cib",
            "lib-pacemaker/pengine",
            "lib-pacemaker/blackbox",
            "lib-pacemaker/cores",
            "lib-corosync",
            "log-pacemaker",
            "resource.d/bbwd",
        ] {
            fs::create_dir_all(dir.join(sub)).expect("create the node's directories");
        }
        // The agent as the package installs it: a symlink named after the agent.
        std::os::unix::fs::symlink(bbwd_bin(), dir.join("resource.d/bbwd/bitbucket"))
            .expect("symlink the agent");
        fs::write(
            dir.join("bbwd.toml"),
            node_config(name, &dir, self.sc.port, bitbucket, sim_args),
        )
        .expect("write the node's bbwd.toml");

        let d = dir.display().to_string();
        let config = self.sc.config_path().display().to_string();
        // Ownership and modes as Debian's pacemaker package sets them.
        let script = format!(
            "set -eu\n\
             echo {name} > /proc/sys/kernel/hostname\n\
             chown -R hacluster:haclient {d}/lib-pacemaker/cib {d}/lib-pacemaker/pengine \
             {d}/lib-pacemaker/blackbox {d}/lib-pacemaker/cores {d}/log-pacemaker\n\
             chmod 750 {d}/lib-pacemaker/cib {d}/lib-pacemaker/pengine {d}/lib-pacemaker/blackbox \
             {d}/lib-pacemaker/cores\n\
             chmod 770 {d}/log-pacemaker\n\
             mount -t tmpfs -o mode=1777 bbwd-pm-shm /dev/shm\n\
             mount -t tmpfs -o mode=755 bbwd-pm-run /run\n\
             mount --bind {d}/lib-pacemaker /var/lib/pacemaker\n\
             mount --bind {d}/lib-corosync /var/lib/corosync\n\
             mount --bind {d}/log-pacemaker /var/log/pacemaker\n\
             mount --bind {d}/resource.d {OCF_RESOURCE_D}\n\
             mount --bind {d}/bbwd.toml {config}\n\
             touch {d}/ready\n\
             exec sleep infinity\n"
        );
        let script_path = dir.join("setup.sh");
        fs::write(&script_path, script).expect("write setup.sh");
        let mut cmd = Command::new(tool_path("ip").unwrap_or_else(|| "ip".into()));
        cmd.args(["netns", "exec", netns])
            .arg(tool_path("unshare").unwrap_or_else(|| "unshare".into()))
            .args(["--mount", "--uts"])
            .args(["--propagation", "private", "/bin/sh"])
            .arg(&script_path);
        let mut holder = spawn_logged(&mut cmd, &dir.join("holder.out"), libc::SIGKILL);
        let deadline = Instant::now() + HOLDER_READY_TIMEOUT;
        while !dir.join("ready").exists() {
            if Instant::now() >= deadline || matches!(holder.try_wait(), Ok(Some(_))) {
                kill_pid(holder.id(), libc::SIGKILL);
                let _ = holder.wait();
                panic!(
                    "node {name}'s namespaces were not set up:\n{}",
                    tail(&dir.join("holder.out"), 20)
                );
            }
            std::thread::sleep(POLL);
        }
        let mnt_ns = fs::read_link(format!("/proc/{}/ns/mnt", holder.id()))
            .expect("the holder's mount namespace")
            .display()
            .to_string();
        Node {
            name: name.to_string(),
            dir,
            netns: netns.to_string(),
            holder,
            mnt_ns,
            corosync: None,
            pacemakerd: None,
        }
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Where the CLI tools run: the first node (a node in standby still answers for the
    /// whole cluster; no test stops a single node's Pacemaker).
    fn cli_node(&self) -> &Node {
        &self.nodes[0]
    }

    /// `crm_mon -1 -r --output-as=xml` (inactive resources included), if it answered.
    pub fn try_mon_xml(&self) -> Option<String> {
        let out = self
            .cli_node()
            .cli("crm_mon", &["-1", "-r", "--output-as=xml"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn mon_xml(&self) -> String {
        self.try_mon_xml()
            .unwrap_or_else(|| panic!("crm_mon failed\n{}", self.diagnostics()))
    }

    /// `crm_mon -1 -r` as an admin reads it.
    pub fn mon_text(&self) -> String {
        let out = self.cli_node().cli("crm_mon", &["-1", "-r"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets a cluster property (`crm_attribute --type crm_config`).
    pub fn set_property(&self, name: &str, value: &str) {
        self.cli_node().cli_ok(
            "crm_attribute",
            &["--type", "crm_config", "--name", name, "--update", value],
        );
    }

    /// `cibadmin --create --scope SCOPE --xml-text XML`.
    pub fn cib_create(&self, scope: &str, xml: &str) {
        self.cli_node().cli_ok(
            "cibadmin",
            &["--create", "--scope", scope, "--xml-text", xml],
        );
    }

    /// Puts `node` in standby (`on`) or back (`off`): the permanent node attribute `standby`.
    pub fn standby(&self, node: &str, on: bool) {
        let value = if on { "on" } else { "off" };
        self.cli_node().cli_ok(
            "crm_attribute",
            &[
                "--type", "nodes", "--node", node, "--name", "standby", "--update", value,
            ],
        );
    }

    /// `crm_failcount --query`: the resource's fail count on `node` (INFINITY = u64::MAX).
    pub fn fail_count(&self, resource: &str, node: &str) -> u64 {
        let out = self.cli_node().cli_ok(
            "crm_failcount",
            &["--query", "--resource", resource, "--node", node],
        );
        let value = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("value="))
            .unwrap_or_else(|| panic!("no value= in crm_failcount's {out:?}"));
        match value {
            "INFINITY" => u64::MAX,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("fail count {v:?} in {out:?}")),
        }
    }

    /// Where crm_mon's XML says `resource` is.
    pub fn resource(&self, xml: &str, resource: &str) -> ResourceView {
        let body = element(xml, "resource", "id", resource)
            .unwrap_or_else(|| panic!("no resource {resource} in crm_mon:\n{xml}"));
        let head = start_tags(body, "resource")[0];
        ResourceView {
            role: attr(head, "role").unwrap_or("").to_string(),
            failed: attr(head, "failed") == Some("true"),
            managed: attr(head, "managed") == Some("true"),
            nodes: start_tags(body, "node")
                .iter()
                .filter_map(|t| attr(t, "name"))
                .map(str::to_string)
                .collect(),
        }
    }

    /// The latest operation `task` (with `interval_ms`, 0 for one-off ones) of `resource` on
    /// `node` in crm_mon's history (a failed monitor's record stays beside the next one).
    pub fn last_op(
        &self,
        xml: &str,
        resource: &str,
        node: &str,
        task: &str,
        interval_ms: u64,
    ) -> Option<OpRecord> {
        self.op_history(xml, resource, node)
            .into_iter()
            .filter(|op| op.task == task && op.interval_ms == interval_ms)
            .max_by_key(|op| op.call)
    }

    /// The operation history crm_mon keeps for `resource` on `node` (the last of each kind,
    /// and failed ones).
    pub fn op_history(&self, xml: &str, resource: &str, node: &str) -> Vec<OpRecord> {
        let Some(history) = element(xml, "node_history", "", "") else {
            return Vec::new();
        };
        let Some(on_node) = element(history, "node", "name", node) else {
            return Vec::new();
        };
        let Some(rsc) = element(on_node, "resource_history", "id", resource) else {
            return Vec::new();
        };
        let ms = |v: Option<&str>| {
            v.and_then(|v| v.trim_end_matches("ms").parse().ok())
                .unwrap_or(0)
        };
        start_tags(rsc, "operation_history")
            .iter()
            .map(|t| OpRecord {
                call: attr(t, "call").and_then(|v| v.parse().ok()).unwrap_or(0),
                task: attr(t, "task").unwrap_or("").to_string(),
                rc: attr(t, "rc").and_then(|v| v.parse().ok()).unwrap_or(-1),
                rc_text: attr(t, "rc_text").unwrap_or("").to_string(),
                interval_ms: ms(attr(t, "interval")),
                exec_time_ms: ms(attr(t, "exec-time")),
            })
            .collect()
    }

    /// crm_mon's `<failure>` records: (node, task, exit code, status).
    pub fn failures(&self, xml: &str) -> Vec<(String, String, i32, String)> {
        start_tags(xml, "failure")
            .iter()
            .map(|t| {
                (
                    attr(t, "node").unwrap_or("").to_string(),
                    attr(t, "task").unwrap_or("").to_string(),
                    attr(t, "exitcode")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(-1),
                    attr(t, "status").unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Polls `cond` every 500 ms until it holds; panics with the diagnostics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until `resource` is Started, not failed, on exactly one node (on `node` if given);
    /// that node's name.
    pub fn wait_started(&self, resource: &str, node: Option<&str>, timeout: Duration) -> String {
        let mut on = String::new();
        let what = format!("{resource} Started on {}", node.unwrap_or("a node"));
        self.wait_for(timeout, &what, |c| {
            let Some(xml) = c.try_mon_xml() else {
                return false;
            };
            let view = c.resource(&xml, resource);
            if view.role == "Started"
                && !view.failed
                && view.nodes.len() == 1
                && node.is_none_or(|n| view.nodes[0] == n)
            {
                on = view.nodes[0].clone();
                return true;
            }
            false
        });
        on
    }

    /// crm_mon, the tails of each node's pacemaker.log and the simulators' events.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        if let Some(node) = self.nodes.first() {
            let mon = node.cli("crm_mon", &["-1", "-r", "--include=failcounts"]);
            let _ = writeln!(
                out,
                "--- crm_mon ---\n{}{}",
                String::from_utf8_lossy(&mon.stdout),
                String::from_utf8_lossy(&mon.stderr)
            );
        }
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "--- {} pacemaker.log (last 40 lines naming the agent or an error) ---",
                node.name
            );
            let log = fs::read_to_string(node.pacemaker_log()).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("bitbucket") || l.contains("error") || l.contains("crit"))
                .collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(
                out,
                "--- {} sim events.log ---\n{}",
                node.name,
                tail(&node.sim_dir().join("events.log"), 20)
            );
            let _ = writeln!(
                out,
                "--- {} ocf-bitbucket.out ---\n{}",
                node.name,
                tail(&node.dir.join("state/ocf-bitbucket.out"), 10)
            );
        }
        out
    }

    /// Stops the cluster the way an admin would (SIGTERM to pacemakerd: it stops every
    /// resource through its agent, then corosync), then ends by PID whatever is left in the
    /// nodes' mount namespaces and deletes the network namespaces. Returns what did not go
    /// orderly (empty: everything did). Idempotent.
    pub fn shutdown(&mut self) -> Vec<String> {
        if self.down {
            return Vec::new();
        }
        self.down = true;
        let mut problems = Vec::new();
        // All nodes at once: one node leaving alone would have the resource moved to the other.
        for node in &self.nodes {
            if let Some(p) = &node.pacemakerd {
                kill_pid(p.id(), libc::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            if let Some(p) = &mut node.pacemakerd {
                if !wait_child(p, PACEMAKER_SHUTDOWN_GRACE) {
                    problems.push(format!(
                        "{}: pacemakerd did not stop within {PACEMAKER_SHUTDOWN_GRACE:?}",
                        node.name
                    ));
                }
            }
        }
        for node in &self.nodes {
            if let Some(c) = &node.corosync {
                kill_pid(c.id(), libc::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            if let Some(c) = &mut node.corosync {
                if !wait_child(c, COROSYNC_SHUTDOWN_GRACE) {
                    problems.push(format!(
                        "{}: corosync did not stop within {COROSYNC_SHUTDOWN_GRACE:?}",
                        node.name
                    ));
                }
            }
        }
        for node in &mut self.nodes {
            let holder = node.holder_pid();
            let left: Vec<u32> = node
                .processes()
                .into_iter()
                .filter(|p| *p != holder)
                .collect();
            if !left.is_empty() {
                problems.push(format!(
                    "{}: processes left after an orderly stop: {left:?}",
                    node.name
                ));
            }
            let deadline = Instant::now() + KILL_GRACE;
            loop {
                let pids = node.processes();
                if pids.is_empty() || Instant::now() >= deadline {
                    break;
                }
                for pid in pids {
                    kill_pid(pid, libc::SIGKILL);
                }
                std::thread::sleep(POLL);
            }
            for child in [node.pacemakerd.as_mut(), node.corosync.as_mut()]
                .into_iter()
                .flatten()
            {
                let _ = wait_child(child, KILL_GRACE);
            }
            let _ = wait_child(&mut node.holder, KILL_GRACE);
        }
        for ns in &self.netns {
            let out = run_bounded(
                {
                    let mut c = Command::new(tool_path("ip").unwrap_or_else(|| "ip".into()));
                    c.args(["netns", "del", ns]);
                    c
                },
                CLI_LIMIT,
            );
            if !out.status.success() {
                problems.push(format!(
                    "ip netns del {ns}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        problems
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        for problem in self.shutdown() {
            eprintln!("pacemaker cluster cleanup: {problem}");
        }
    }
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let mut cmd = Command::new(tool_path("ip").unwrap_or_else(|| "ip".into()));
    cmd.args(args);
    let out = run_bounded(cmd, CLI_LIMIT);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spawns `cmd` with stdin null and stdout+stderr appended to `log`.
///
/// The child gets `death_signal` when the thread that spawned it (the test's) ends, so a test
/// process killed from outside (a CI timeout) does not leave a cluster running: SIGTERM to
/// pacemakerd and corosync, SIGKILL to the holder. Tried with `kill -9` of the test: the
/// daemons were gone; what remained was the resource's simulator (pacemakerd lost corosync
/// before it could stop it), the empty network namespaces and the test directory.
fn spawn_logged(cmd: &mut Command, log: &Path, death_signal: i32) -> Child {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = file.try_clone().expect("clone the log fd");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err));
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe and touches no memory of the parent. The setting survives the
    // exec of nsenter, ip and unshare (none is set-user-ID).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// The last `lines` lines of a file (or why it could not be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// corosync.conf for `names` at `addrs`: knet, no crypto (the link is the test's own veth),
/// votequorum with `two_node` (quorum with one of the two nodes; the `wait_for_all` it implies
/// makes the first start wait for both).
fn corosync_conf(names: &[&str], addrs: &[String]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "totem {{\n  version: 2\n  cluster_name: bbwdtest");
    let _ = writeln!(
        t,
        "  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n}}"
    );
    let _ = writeln!(
        t,
        "logging {{\n  to_stderr: yes\n  to_logfile: no\n  to_syslog: no\n  timestamp: on\n}}"
    );
    let _ = writeln!(
        t,
        "quorum {{\n  provider: corosync_votequorum\n  two_node: 1\n}}\nnodelist {{"
    );
    for (i, (name, addr)) in names.iter().zip(addrs).enumerate() {
        let _ = writeln!(
            t,
            "  node {{\n    name: {name}\n    nodeid: {}\n    ring0_addr: {addr}\n  }}",
            i + 1
        );
    }
    let _ = writeln!(t, "}}");
    t
}

/// A node's bbwd.toml: its own state directory and simulator directory, the simulator on
/// 127.0.0.1:`port` of the node's network namespace.
fn node_config(name: &str, dir: &Path, port: u16, bitbucket: &str, sim_args: &[&str]) -> String {
    let d = dir.display().to_string();
    let mut command = vec![
        bbsim_bin().display().to_string(),
        "--dir".to_string(),
        format!("{d}/sim"),
        "--port".to_string(),
        port.to_string(),
    ];
    command.extend(sim_args.iter().map(|a| a.to_string()));
    let command: Vec<String> = command.iter().map(|a| toml_str(a)).collect();
    format!(
        "[node]\nname = {}\nstate_dir = {}\ncontrol_socket = {}\n\n[bitbucket]\n\
         status_url = {}\ncommand = [{}]\n{bitbucket}\n",
        toml_str(name),
        toml_str(&format!("{d}/state")),
        toml_str(&format!("{d}/control.sock")),
        toml_str(&format!("http://127.0.0.1:{port}/status")),
        command.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------
// Just enough XML for crm_mon's output (no DTD, attributes in double quotes, no `>` inside
// attribute values, which crm_mon escapes).

/// The start tags `<tag ...>` in `xml` (their text from `<tag` to `>`).
pub fn start_tags<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let open = format!("<{tag}");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<node` must not match `<node_history`.
        if after.starts_with([' ', '>', '/', '\n', '\t']) {
            if let Some(end) = after.find('>') {
                out.push(&rest[at..at + open.len() + end + 1]);
            }
        }
        rest = after;
    }
    out
}

/// The value of attribute `name` in a start tag.
pub fn attr<'x>(tag: &'x str, name: &str) -> Option<&'x str> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

/// The first element `<tag ...>...</tag>` (or `<tag .../>`) whose attribute `key` is `value`
/// (any element of that tag when `key` is empty). Elements of the same tag must not nest.
pub fn element<'x>(xml: &'x str, tag: &str, key: &str, value: &str) -> Option<&'x str> {
    let head = start_tags(xml, tag)
        .into_iter()
        .find(|t| key.is_empty() || attr(t, key) == Some(value))?;
    let start = head.as_ptr() as usize - xml.as_ptr() as usize;
    if head.ends_with("/>") {
        return Some(head);
    }
    let close = format!("</{tag}>");
    let end = xml[start..].find(&close)? + close.len();
    Some(&xml[start..start + end])
}
