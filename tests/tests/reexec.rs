//! `bbwd reexec` (the unit's `ExecReload`, used by the package on upgrade): the daemon runs the
//! binary now installed in place, with the same PID; Bitbucket keeps running, is re-adopted, and
//! its output is still read; nothing is restarted. Single node here; the pair's no-failover
//! case is `pair_upgrade.rs`.

use std::time::Duration;

use bbwd_tests::*;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn reexec_keeps_bitbucket_running_and_the_daemon_pid() {
    let sc = Scenario::new("reexec");
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(WAIT, "running");
    let bb = st["bitbucket"]["pid"].as_u64().expect("pid");
    let run0 = st["daemon_run"]["started_at_ms"]
        .as_u64()
        .expect("daemon_run");
    assert_eq!(st["daemon_run"]["reexecuted"], false, "{st:#}");

    let out = sc.bbwd(&["reexec"]);
    assert!(
        out.status.success(),
        "bbwd reexec: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        sc.diagnostics()
    );
    assert!(d.try_exit_status().is_none(), "the daemon process lives on");
    let st = d.wait_for(WAIT, "the re-executed run, running", |s| {
        s["state"] == "running"
            && s["daemon_run"]["reexecuted"] == true
            && s["daemon_run"]["started_at_ms"].as_u64() != Some(run0)
    });
    assert_eq!(
        st["daemon_run"]["pid"].as_u64(),
        Some(u64::from(d.pid())),
        "same PID: systemd's MAINPID stays valid"
    );
    assert_eq!(st["bitbucket"]["pid"].as_u64(), Some(bb), "{st:#}");
    assert_eq!(
        sc.sim_starts(),
        vec![bb as u32],
        "Bitbucket was not restarted"
    );
    assert_eq!(st["restarts"], 0);

    // Still supervised: a crash after the re-exec is corrected.
    sim_admin(sc.port, "/_sim/crash");
    d.wait_for(WAIT, "running under a new pid", |s| {
        s["state"] == "running" && s["bitbucket"]["pid"].as_u64().is_some_and(|p| p != bb)
    });
    let exit = d.stop();
    assert_eq!(exit.code(), Some(0), "{}", sc.diagnostics());
    sc.assert_never_two_sims();
}
