//! `bbwd ocf ACTION`, the Pacemaker resource agent mode, against the Bitbucket simulator:
//! Debian's `ocf-tester` (package resource-agents) must pass, and each action must answer with
//! its OCF exit code in the situations Pacemaker meets (stopped, starting, healthy, Bitbucket's
//! own MAINTENANCE, error, crash, a process that ignores SIGTERM, a stop shorter than
//! `stop_timeout`, leftovers of a dead instance, bbwd's daemon already in charge).
//!
//! The agent is reached the way Pacemaker reaches it: through a symlink named `bitbucket` in a
//! temporary OCF root inside the test's own directory (ocf-tester takes `OCF_ROOT` from the
//! environment), so nothing is installed under /usr/lib/ocf.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bbwd_tests::*;

/// Upper bound for one agent action in these tests (Pacemaker's timeouts below are shorter).
const ACTION_LIMIT: Duration = Duration::from_secs(60);

/// Environment the agent must not inherit from the test runner.
const SCRUB: &[&str] = &[
    "BBWD_CONFIG",
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "OCF_RESKEY_config",
    "OCF_RESKEY_CRM_meta_timeout",
    "OCF_RESKEY_CRM_meta_interval",
    "OCF_ROOT",
];

/// Whether `tool` runs: true, or the test fails saying what is missing. Tests that call this are `#[ignore = "needs ..."]`: `scripts/test.sh` runs them with `--include-ignored`; run, they fail when a piece is missing (never pass unrun).
fn have_tool(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let msg =
            format!("{tool} not found (Debian package {package}; scripts/setup.sh installs it)");
        panic!("{msg}");
    }
    found
}

/// A temporary OCF root in the scenario's directory: `ocf/resource.d/bbwd/bitbucket`, a
/// symlink to a copy of bbwd (the copy lets ocf-tester's `su nobody` check reach it wherever the
/// checkout lives). Returns the agent's path.
fn ocf_root(sc: &Scenario) -> PathBuf {
    let bin = sc.dir.join("bbwd");
    // Copied by a child process: a write fd to the copy held in this (multi-threaded) test
    // process could leak into a concurrent fork and make exec fail with ETXTBSY.
    let mut cp = Command::new("cp");
    cp.arg(bbwd_bin()).arg(&bin);
    assert!(run_bounded(cp, CLI_TIMEOUT).status.success(), "copy bbwd");
    let provider = sc.dir.join("ocf/resource.d/bbwd");
    std::fs::create_dir_all(&provider).expect("create OCF root");
    let agent = provider.join("bitbucket");
    std::os::unix::fs::symlink(&bin, &agent).expect("symlink the agent");
    agent
}

/// Runs the agent `agent ACTION` with `OCF_RESKEY_config` and extra environment.
fn agent_run(agent: &Path, config: Option<&Path>, action: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(agent);
    cmd.args(action);
    for var in SCRUB {
        cmd.env_remove(var);
    }
    if let Some(config) = config {
        cmd.env("OCF_RESKEY_config", config);
    }
    cmd.env("OCF_RESOURCE_INSTANCE", "bb-test");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, ACTION_LIMIT)
}

/// `bitbucket ACTION` through the symlink: the exit code, with the output on failure.
fn ocf(sc: &Scenario, agent: &Path, action: &str, env: &[(&str, &str)]) -> (i32, Output) {
    let out = agent_run(agent, Some(&sc.config_path()), &[action], env);
    let code = out.status.code().unwrap_or(-1);
    (code, out)
}

fn expect(sc: &Scenario, agent: &Path, action: &str, env: &[(&str, &str)], want: i32) -> Output {
    let (code, out) = ocf(sc, agent, action, env);
    assert_eq!(
        code,
        want,
        "{action} {env:?}: exit {code}, expected {want}\nstderr: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sc.diagnostics()
    );
    out
}

fn pidfile(sc: &Scenario) -> PathBuf {
    sc.state_dir().join("ocf-bitbucket.pid")
}

fn recorded_pid(sc: &Scenario) -> u32 {
    let text = std::fs::read_to_string(pidfile(sc)).expect("ocf pid file");
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pid in the pid file")
}

fn sim_status(sc: &Scenario) -> (u16, String) {
    sim_admin(sc.port, "/status")
}

#[test]
#[ignore = "needs ocf-tester and xmllint (scripts/setup.sh)"]
fn ocf_tester_passes_against_the_simulator() {
    if !have_tool("ocf-tester", "resource-agents") || !have_tool("xmllint", "libxml2-utils") {
        return;
    }
    let sc = Scenario::new("ocf_tester")
        .sim_args(&["--starting-for", "1s"])
        .duration("stop_timeout", "3s");
    sc.write_config();
    let agent = ocf_root(&sc);
    let mut cmd = Command::new("ocf-tester");
    for var in SCRUB {
        cmd.env_remove(var);
    }
    cmd.env("OCF_ROOT", sc.dir.join("ocf"))
        .arg("-v")
        .arg("-n")
        .arg("bb-test")
        .arg("-o")
        .arg(format!("config={}", sc.config_path().display()))
        .arg(&agent);
    let out = run_bounded(cmd, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("passed all tests"),
        "ocf-tester failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        out.status,
        sc.diagnostics()
    );
    // ocf-tester started Bitbucket twice (plus one start of an already running one) and left
    // it stopped; never two at once.
    assert_eq!(sc.sim_starts().len(), 2, "{stdout}");
    assert!(sc.sims_alive().is_empty());
    assert!(!pidfile(&sc).exists(), "stop removes the pid file");
    sc.assert_never_two_sims();
}

#[test]
#[ignore = "needs ocf-tester and xmllint (scripts/setup.sh)"]
fn meta_data_is_valid_against_the_ocf_dtd_and_needs_no_config() {
    let sc = Scenario::new("ocf_meta");
    let agent = ocf_root(&sc);
    // No config anywhere: meta-data still answers.
    let out = agent_run(&agent, None, &["meta-data"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let xml = String::from_utf8(out.stdout).expect("UTF-8 meta-data");
    assert!(xml.contains("<resource-agent name=\"bitbucket\""));
    assert!(xml.contains("<parameter name=\"config\""));
    assert!(xml.contains("<action name=\"monitor\" timeout=\"30s\" interval=\"15s\""));
    // `bbwd ocf meta-data` says the same.
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["ocf", "meta-data"]);
    let same = run_bounded(cmd, CLI_TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&same.stdout), xml);
    if !have_tool("xmllint", "libxml2-utils") {
        return;
    }
    let dtd_dir = Path::new("/usr/share/resource-agents");
    if !dtd_dir.join("ra-api-1.dtd").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ra-api-1.dtd missing (package resource-agents): CI must run this test"
        );
        return;
    }
    // xmllint looks for the DTD next to the document.
    let file = sc.dir.join("meta.xml");
    std::fs::write(&file, &xml).unwrap();
    std::fs::copy(dtd_dir.join("ra-api-1.dtd"), sc.dir.join("ra-api-1.dtd")).unwrap();
    let mut cmd = Command::new("xmllint");
    cmd.args(["--noout", "--valid"]).arg(&file);
    let lint = run_bounded(cmd, CLI_TIMEOUT);
    assert!(
        lint.status.success(),
        "xmllint --valid: {}\n{xml}",
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn usage_errors_unimplemented_actions_and_config_problems_have_their_codes() {
    let sc = Scenario::new("ocf_codes");
    let agent = ocf_root(&sc);
    sc.write_config();
    // No action: 2 (args); an action this agent does not have: 3 (unimplemented).
    assert_eq!(agent_run(&agent, None, &[], &[]).status.code(), Some(2));
    for action in ["notify", "promote", "demote", "reload", "migrate_to"] {
        expect(&sc, &agent, action, &[], 3);
    }
    let mut cmd = Command::new(bbwd_bin());
    cmd.arg("ocf");
    assert_eq!(run_bounded(cmd, CLI_TIMEOUT).status.code(), Some(2));
    // `-c` works with `bbwd ocf` as with every command.
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(["ocf", "validate-all", "-c"])
        .arg(sc.config_path());
    for var in SCRUB {
        cmd.env_remove(var);
    }
    assert_eq!(run_bounded(cmd, CLI_TIMEOUT).status.code(), Some(0));
    expect(&sc, &agent, "validate-all", &[], 0);

    // Missing config: validate-all and start 6; a probe says "not running" (Pacemaker probes
    // every node, also those where Bitbucket is not set up); a recurring monitor 6.
    let missing = sc.dir.join("no-such.toml");
    let run = |action: &str, env: &[(&str, &str)]| {
        agent_run(&agent, Some(&missing), &[action], env)
            .status
            .code()
    };
    assert_eq!(run("validate-all", &[]), Some(6));
    assert_eq!(run("start", &[]), Some(6));
    assert_eq!(
        run("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")]),
        Some(7)
    );
    assert_eq!(
        run("monitor", &[("OCF_RESKEY_CRM_meta_interval", "15000")]),
        Some(6)
    );

    // An unknown key: 6 (not configured).
    let text = sc
        .config_text()
        .replace("[bitbucket]", "[bitbucket]\nbogus_key = 1");
    sc.write_config_text(&text);
    expect(&sc, &agent, "validate-all", &[], 6);
    // The program is missing on this node: 5 (not installed), for validate-all and start.
    let text = sc.config_text().replace(
        &bbsim_bin().display().to_string(),
        "/nonexistent/start-bitbucket.sh",
    );
    sc.write_config_text(&text);
    expect(&sc, &agent, "validate-all", &[], 5);
    expect(&sc, &agent, "start", &[], 5);
    // The user to run it as does not exist here: 5.
    let text = sc
        .config_text()
        .replace("[bitbucket]", "[bitbucket]\nuser = \"bbwd-no-such-user\"");
    sc.write_config_text(&text);
    expect(&sc, &agent, "validate-all", &[], 5);
    assert!(sc.sim_starts().is_empty(), "nothing was started");
}

#[test]
fn start_waits_through_starting_and_monitor_follows_the_seeds() {
    let sc = Scenario::new("ocf_lifecycle")
        .sim_args(&["--starting-for", "1500ms"])
        .duration("startup_timeout", "60s");
    sc.write_config();
    let agent = ocf_root(&sc);
    let pacemaker = [
        ("OCF_RESKEY_CRM_meta_timeout", "30000"),
        ("OCF_RESKEY_CRM_meta_interval", "15000"),
    ];
    expect(&sc, &agent, "monitor", &pacemaker, 7);
    expect(&sc, &agent, "stop", &pacemaker, 0);

    expect(&sc, &agent, "start", &pacemaker, 0);
    // start returned only once /status said RUNNING.
    let (code, body) = sim_status(&sc);
    assert_eq!((code, body.contains("RUNNING")), (200, true), "{body}");
    let pid = recorded_pid(&sc);
    assert_eq!(sc.sim_starts(), [pid]);
    expect(&sc, &agent, "monitor", &pacemaker, 0);

    // Starting a started resource succeeds and starts nothing.
    expect(&sc, &agent, "start", &pacemaker, 0);
    assert_eq!(sc.sim_starts(), [pid]);

    // Bitbucket's own MAINTENANCE (a backup) and FIRST_RUN are healthy.
    sim_admin(sc.port, "/_sim/status?code=200&state=MAINTENANCE");
    expect(&sc, &agent, "monitor", &pacemaker, 0);
    sim_admin(sc.port, "/_sim/status?code=200&state=FIRST_RUN");
    expect(&sc, &agent, "monitor", &pacemaker, 0);
    // ERROR, 404 and garbage are failures.
    sim_admin(sc.port, "/_sim/status?code=500&state=ERROR");
    expect(&sc, &agent, "monitor", &pacemaker, 1);
    sim_admin(sc.port, "/_sim/status?code=404&state=");
    expect(&sc, &agent, "monitor", &pacemaker, 1);
    sim_admin(sc.port, "/_sim/garbage");
    expect(&sc, &agent, "monitor", &pacemaker, 1);
    // STARTING is fine within startup_timeout of the process's start ...
    sim_admin(sc.port, "/_sim/status?code=503&state=STARTING");
    expect(&sc, &agent, "monitor", &pacemaker, 0);
    // ... and a failure after it (the config is read by each action).
    let text = sc
        .config_text()
        .replace("startup_timeout = \"60s\"", "startup_timeout = \"1s\"");
    assert!(text.contains("startup_timeout = \"1s\""));
    sc.write_config_text(&text);
    wait_until(
        Duration::from_secs(10),
        "the process to be older than 1 s",
        || ocf(&sc, &agent, "monitor", &pacemaker).0 == 1,
    );
    sc.write_config();
    sim_admin(sc.port, "/_sim/reset");
    expect(&sc, &agent, "monitor", &pacemaker, 0);

    // A crash: not running (7), which Pacemaker recovers by stop + start.
    sim_admin(sc.port, "/_sim/crash");
    wait_until(Duration::from_secs(10), "the crash to be seen", || {
        ocf(&sc, &agent, "monitor", &pacemaker).0 == 7
    });
    expect(&sc, &agent, "stop", &pacemaker, 0);
    assert!(!pidfile(&sc).exists());
    expect(&sc, &agent, "start", &pacemaker, 0);
    assert_eq!(sc.sim_starts().len(), 2);
    expect(&sc, &agent, "stop", &pacemaker, 0);
    expect(&sc, &agent, "monitor", &pacemaker, 7);
    assert!(sc.sims_alive().is_empty());
    // The stops were graceful: each simulator got SIGTERM and exited 0.
    let exits: Vec<SimEvent> = sc
        .sim_events()
        .into_iter()
        .filter(|e| e.kind == "EXIT")
        .collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
    assert_eq!(exits[1].code, Some(0), "{exits:?}");
    sc.assert_never_two_sims();
}

#[test]
fn stop_escalates_to_sigkill_before_pacemakers_timeout() {
    // stop_timeout is ten minutes; Pacemaker gives the stop 8 s.
    let sc = Scenario::new("ocf_stop_kill")
        .duration("stop_timeout", "10m")
        .duration("kill_timeout", "2s");
    sc.write_config();
    let agent = ocf_root(&sc);
    expect(
        &sc,
        &agent,
        "start",
        &[("OCF_RESKEY_CRM_meta_timeout", "30000")],
        0,
    );
    let pid = recorded_pid(&sc);
    // Bitbucket ignores SIGTERM from now on.
    sim_admin(sc.port, "/_sim/hang");
    let began = Instant::now();
    expect(
        &sc,
        &agent,
        "stop",
        &[("OCF_RESKEY_CRM_meta_timeout", "8000")],
        0,
    );
    let took = began.elapsed();
    // Not the ten minutes of stop_timeout: Pacemaker's 8 s (generous slack for a busy machine).
    assert!(took < Duration::from_secs(60), "stop took {took:?}");
    assert!(!pid_alive(pid), "the simulator is gone");
    assert!(sc.sims_alive().is_empty());
    let events = sc.sim_events();
    assert!(
        events.iter().any(|e| e.kind == "HANG" && e.pid == pid),
        "the simulator hung: {events:?}"
    );
    assert!(
        !events.iter().any(|e| e.kind == "EXIT" && e.pid == pid),
        "it did not exit by itself, it was killed: {events:?}"
    );
    assert!(!pidfile(&sc).exists());
    // Stopping a stopped resource succeeds.
    expect(
        &sc,
        &agent,
        "stop",
        &[("OCF_RESKEY_CRM_meta_timeout", "8000")],
        0,
    );
}

#[test]
fn a_leader_that_dies_during_start_fails_it_and_stop_clears_what_it_left() {
    // The command's leader (a shell) starts the simulator in its own group and exits at once:
    // start fails (1), monitor sees the orphaned member (1, not "not running"), stop kills it.
    let sc = Scenario::new("ocf_leftover");
    let sim: Vec<String> = sc.sim_command();
    let script = format!("{} --starting-for 30s & exit 0", sim.join(" "));
    let text = sc.config_text().replace(
        &format!(
            "command = [{}]",
            sim.iter()
                .map(|a| toml_str(a))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        &format!("command = [\"/bin/sh\", \"-c\", {}]", toml_str(&script)),
    );
    assert!(text.contains("/bin/sh"), "{text}");
    sc.write_config_text(&text);
    let agent = ocf_root(&sc);
    let env = [("OCF_RESKEY_CRM_meta_timeout", "20000")];
    expect(&sc, &agent, "start", &env, 1);
    wait_until(Duration::from_secs(10), "the orphaned simulator", || {
        sc.sims_alive().len() == 1
    });
    expect(&sc, &agent, "monitor", &env, 1);
    expect(&sc, &agent, "stop", &env, 0);
    assert!(sc.sims_alive().is_empty(), "stop killed the leftover");
    expect(&sc, &agent, "monitor", &env, 7);
}

#[test]
fn start_refuses_while_bbwds_daemon_supervises_bitbucket() {
    let sc = Scenario::new("ocf_daemon");
    sc.write_config();
    let agent = ocf_root(&sc);
    // The daemon's pid file naming a live process (here: a sleep this test started).
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleeper.id())).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (pgid, start) = (fields[2], fields[19]);
    std::fs::create_dir_all(sc.state_dir()).unwrap();
    std::fs::write(
        sc.state_dir().join("bitbucket.pid"),
        format!("{} {pgid} {start}\n", sleeper.id()),
    )
    .unwrap();
    let (code, out) = ocf(&sc, &agent, "start", &[]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(code, 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sc.sim_starts().is_empty(), "no second Bitbucket");
}
