//! `bbwd fence status|off|on|cycle` through the real binary against a real Redfish service
//! (sushy-tools' emulator, fake driver, over TLS with a test CA and an htpasswd file).
//!
//! * off returns only once the service reports `Off`: the emulator applies a reset 1-11 s after
//!   its 204, and an independent client (curl) reads `Off` right after bbwd prints `off`, and
//!   never read `Off` before bbwd's reset was sent; already off is success; on and cycle are
//!   confirmed the same way;
//! * a wrong password fails with exit 1 and "bad credentials";
//! * a certificate not signed by `ca_file` is refused (nothing sent); a pinned fingerprint
//!   works when right and refuses when wrong; `insecure = true` works and is a warning in
//!   check-config;
//! * an unreachable service (refused port; a port that accepts but never answers) fails with
//!   exit 1, the silent one by `[fencing] timeout`;
//! * two systems and no `system` key: a clear error naming `fencing.system`; with the key, only
//!   that system is fenced.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bbwd_tests::sushy::{self, fence_config as config, Options, PowerWatch, Sushy};
use bbwd_tests::{bbwd_bin, run_bounded, toml_str, TestDir};

fn ca(path: &Path) -> String {
    format!("ca_file = {}\n", toml_str(&path.display().to_string()))
}

fn bbwd(config: &Path, args: &[&str]) -> (Output, Duration) {
    let mut cmd = Command::new(bbwd_bin());
    cmd.args(args).arg("-c").arg(config);
    let t0 = Instant::now();
    let out = run_bounded(cmd, Duration::from_secs(90));
    (out, t0.elapsed())
}

fn fence(config: &Path, action: &str) -> (Output, Duration) {
    bbwd(config, &["fence", action])
}

fn ok(out: &Output, want: &str, emu: &Sushy) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        emu.diagnostics()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
}

fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("expected failure: {}", err.trim());
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {:?}, stderr {err}",
        out.stdout
    );
    err
}

/// The core property: `off` prints `off` only once the service itself reports Off, although
/// the service acknowledges the reset at once and changes state seconds later.
#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn off_returns_only_once_the_service_reports_off_and_on_and_cycle_are_confirmed() {
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_fence");
    let emu = Sushy::start(dir.path(), &Options::default());
    let system = emu.systems[0].clone();
    // One system listed: `system` may be left out (bbwd checks there is exactly one).
    let cfg = config(&dir, emu.port, sushy::PASSWORD, &ca(&emu.pki.ca), "30s");

    let (out, _) = fence(&cfg, "status");
    ok(&out, "on", &emu);
    assert_eq!(emu.power_state(&system), "On");

    let watcher = PowerWatch::start(&emu, &system);
    let started = Instant::now();
    let (out, took) = fence(&cfg, "off");
    let returned = Instant::now();
    // Read at once, before anything else: the service must already say Off.
    let after = emu.power_state(&system);
    let seen = watcher.finish();
    ok(&out, "off", &emu);
    assert_eq!(after, "Off", "bbwd said off while the service says {after}");
    // Never reported Off by bbwd before the service: every answer the independent client got
    // after bbwd returned is Off, and the last On it read came before bbwd returned.
    let last_on = seen
        .iter()
        .rev()
        .find(|(_, _, s)| s == "On")
        .map(|(t, _, _)| *t);
    if let Some(t) = last_on {
        assert!(t <= returned, "the service said On after bbwd printed off");
    }
    assert!(
        seen.iter()
            .filter(|(t, _, _)| *t > returned)
            .all(|(_, _, s)| s == "Off"),
        "{seen:?}"
    );
    eprintln!(
        "redfish off: bbwd {} ms; service first read Off {} ms after start (watcher, 50 ms + curl); {} reads On during the command",
        took.as_millis(),
        seen.iter()
            .find(|(_, _, s)| s == "Off")
            .map(|(t, _, _)| t.saturating_duration_since(started).as_millis() as i64)
            .unwrap_or(-1),
        seen.iter().filter(|(t, _, s)| *t >= started && s == "On").count()
    );

    // Already off: success at once, still off.
    let (out, _) = fence(&cfg, "off");
    ok(&out, "off", &emu);

    // On: confirmed the same way.
    let (out, _) = fence(&cfg, "on");
    ok(&out, "on", &emu);
    assert_eq!(emu.power_state(&system), "On");

    // Cycle: off confirmed, then on confirmed.
    let watcher = PowerWatch::start(&emu, &system);
    let (out, _) = fence(&cfg, "cycle");
    let after = emu.power_state(&system);
    let seen = watcher.finish();
    ok(&out, "on", &emu);
    assert_eq!(after, "On");
    assert!(
        seen.iter().any(|(_, _, s)| s == "Off"),
        "a cycle that never showed Off: {seen:?}"
    );
}

#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn a_wrong_password_is_bad_credentials() {
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_badpw");
    let emu = Sushy::start(dir.path(), &Options::default());
    let cfg = config(&dir, emu.port, "not-the-password", &ca(&emu.pki.ca), "10s");
    let (out, _) = fence(&cfg, "off");
    let err = failed(&out);
    assert!(err.contains("bad credentials"), "{err}");
    assert_eq!(
        emu.power_state(&emu.systems[0]),
        "On",
        "fenced with a wrong password"
    );
}

#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn certificates_are_checked_by_ca_file_or_pinned_fingerprint() {
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_tls");
    let emu = Sushy::start(dir.path(), &Options::default());

    // A CA that did not sign the service's certificate: refused in the handshake.
    let cfg = config(
        &dir,
        emu.port,
        sushy::PASSWORD,
        &ca(&emu.pki.other_ca),
        "10s",
    );
    let (out, _) = fence(&cfg, "off");
    let err = failed(&out);
    assert!(
        err.contains("TLS handshake refused") && err.contains("not signed by a CA in ca_file"),
        "{err}"
    );
    assert_eq!(emu.power_state(&emu.systems[0]), "On");

    // The right fingerprint: works without any CA.
    let pin = format!("tls_fingerprint = {}\n", toml_str(&emu.pki.fingerprint));
    let cfg = config(&dir, emu.port, sushy::PASSWORD, &pin, "10s");
    let (out, _) = fence(&cfg, "status");
    ok(&out, "on", &emu);

    // A wrong one: refused, naming the fingerprint the service showed.
    let wrong = format!("tls_fingerprint = \"sha256:{}\"\n", "00".repeat(32));
    let cfg = config(&dir, emu.port, sushy::PASSWORD, &wrong, "10s");
    let (out, _) = fence(&cfg, "status");
    let err = failed(&out);
    let shown = emu.pki.fingerprint.to_uppercase();
    assert!(
        err.contains("fingerprint") && err.to_uppercase().contains(&shown),
        "{err}"
    );

    // insecure = true: works, and check-config warns about it.
    let cfg = config(&dir, emu.port, sushy::PASSWORD, "insecure = true\n", "10s");
    let (out, _) = fence(&cfg, "status");
    ok(&out, "on", &emu);
    let (out, _) = bbwd(&cfg, &["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("fencing.insecure") && err.contains("NOT verified"),
        "exit {:?}: {err}",
        out.status.code()
    );
}

#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn an_unreachable_service_fails_by_the_timeout() {
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_unreach");
    let pki = sushy::Pki::new(dir.path(), "127.0.0.1");
    // Accepts TCP connections (the kernel's backlog) but never answers the TLS handshake.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = config(&dir, port, sushy::PASSWORD, &ca(&pki.ca), "3s");
    let (out, took) = fence(&cfg, "off");
    let err = failed(&out);
    assert!(
        err.contains("unreachable") || err.contains("timeout"),
        "{err}"
    );
    // The 3 s timeout, plus process start and a generous margin for a loaded machine.
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");

    // A closed port: refused at once.
    drop(silent);
    let cfg = config(&dir, port, sushy::PASSWORD, &ca(&pki.ca), "3s");
    let (out, _) = fence(&cfg, "status");
    let err = failed(&out);
    assert!(
        err.contains("unreachable") && err.contains("connection refused"),
        "{err}"
    );
}

#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn two_systems_need_the_system_key_and_only_that_one_is_fenced() {
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_two");
    let emu = Sushy::start(
        dir.path(),
        &Options {
            systems: 2,
            ..Options::default()
        },
    );
    let cfg = config(&dir, emu.port, sushy::PASSWORD, &ca(&emu.pki.ca), "30s");
    let (out, _) = fence(&cfg, "off");
    let err = failed(&out);
    assert!(
        err.contains("lists 2 systems") && err.contains("fencing.system"),
        "{err}"
    );
    for s in &emu.systems {
        assert_eq!(emu.power_state(s), "On");
    }

    let (target, other) = (&emu.systems[1], &emu.systems[0]);
    let extra = format!("{}system = {}\n", ca(&emu.pki.ca), toml_str(target));
    let cfg = config(&dir, emu.port, sushy::PASSWORD, &extra, "30s");
    let (out, _) = fence(&cfg, "off");
    ok(&out, "off", &emu);
    assert_eq!(emu.power_state(target), "Off");
    assert_eq!(emu.power_state(other), "On", "the other system was touched");

    // A system that does not exist: a clear error, nothing touched.
    let extra = format!(
        "{}system = \"/redfish/v1/Systems/no-such-system\"\n",
        ca(&emu.pki.ca)
    );
    let cfg = config(&dir, emu.port, sushy::PASSWORD, &extra, "10s");
    let (out, _) = fence(&cfg, "status");
    let err = failed(&out);
    assert!(err.contains("no such system"), "{err}");
}

/// The session path, which the emulator lacks (it has no SessionService): against
/// `tests/redfish/responder.py`. bbwd logs in with POST to the service's Sessions, uses only the
/// X-Auth-Token after that (never basic authentication), logs in again when the token stops
/// working (401) in the middle of a fence, and deletes its session on exit.
#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn sessions_are_used_renewed_on_401_and_deleted_on_exit() {
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_session");
    // Tokens die after 3 authenticated requests: an off (system, status, reset, polls) needs
    // several sessions.
    let rf = sushy::Responder::start(dir.path(), "normal", 3);
    let cfg = config(&dir, rf.port, sushy::PASSWORD, &ca(&rf.pki.ca), "10s");
    let (out, _) = fence(&cfg, "off");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        rf.diagnostics()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "off");
    let reqs = rf.requests();
    let count = |auth: &str| reqs.iter().filter(|(_, _, a)| a == auth).count();
    assert!(count("login") >= 2, "no new log-in after a 401: {reqs:?}");
    assert!(count("refused") >= 1, "the token never expired: {reqs:?}");
    assert_eq!(count("login-refused"), 0, "{reqs:?}");
    // The reset went through on a token, and the last request deleted the session.
    assert!(
        reqs.iter().any(|(m, p, a)| m == "POST"
            && p.ends_with("/Actions/ComputerSystem.Reset")
            && a == "token"),
        "{reqs:?}"
    );
    assert_eq!(
        reqs.last().map(|r| r.2.as_str()),
        Some("logout"),
        "{reqs:?}"
    );

    // A wrong password at the session log-in: bad credentials, nothing else tried.
    let dir2 = TestDir::new("redfish_session_badpw");
    let rf = sushy::Responder::start(dir2.path(), "normal", 0);
    let cfg = config(&dir2, rf.port, "wrong", &ca(&rf.pki.ca), "10s");
    let (out, _) = fence(&cfg, "off");
    let err = failed(&out);
    assert!(err.contains("bad credentials"), "{err}");
    let reqs = rf.requests();
    assert!(
        reqs.iter()
            .all(|(_, _, a)| a == "none" || a == "login-refused"),
        "{reqs:?}"
    );
}

/// A service that misbehaves: each is a failure with its reason, and nothing is reported off.
#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn redirects_missing_or_odd_power_states_and_http_errors_fail_clearly() {
    if !sushy::available() {
        return;
    }
    for (mode, needle) in [
        ("redirect", "redirect to https://198.51.100.7"),
        ("nopowerstate", "no PowerState"),
        ("oddpowerstate", "unexpected PowerState \"Sleeping\""),
        ("error500", "HTTP 500"),
    ] {
        let dir = TestDir::new(&format!("redfish_{mode}"));
        let rf = sushy::Responder::start(dir.path(), mode, 0);
        let cfg = config(&dir, rf.port, sushy::PASSWORD, &ca(&rf.pki.ca), "5s");
        let (out, _) = fence(&cfg, "off");
        let err = failed(&out);
        assert!(err.contains(needle), "{mode}: {err}\n{}", rf.diagnostics());
        if mode == "error500" {
            // The service's own message is passed on.
            assert!(err.contains("The BMC is busy"), "{err}");
        }
        if mode == "redirect" {
            // Never followed: nothing was sent anywhere else (the responder saw the system
            // request, and bbwd has no route to 198.51.100.7 here anyway).
            assert!(err.contains("follows no redirects"), "{err}");
        }
    }
}

/// `[[fencing.device]]`: devices tried in order until one confirms off. The first is a Redfish
/// service that cannot be reached (a closed port), then one that refuses the password; the
/// third, the emulator with the right credentials, fences. `status` reads through the device
/// that answers.
#[test]
#[ignore = "needs the sushy-tools venv (python3-venv, PyPI) and openssl"]
fn several_devices_are_tried_in_order_until_one_confirms_off() {
    use std::os::unix::fs::PermissionsExt;
    if !sushy::available() {
        return;
    }
    let dir = TestDir::new("redfish_devices");
    let emu = Sushy::start(dir.path(), &Options::default());
    // Writes the base config (one device), then replaces its [fencing] with the list.
    let base = config(&dir, emu.port, sushy::PASSWORD, &ca(&emu.pki.ca), "30s");
    let text = std::fs::read_to_string(&base).unwrap();
    let head = &text[..text.find("[fencing]").unwrap()];
    let wrong = dir.join("wrong.pass");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let right = dir.join("redfish.pass");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let device = |port: u16, pw: &Path| {
        format!(
            "[[fencing.device]]\nmethod = \"redfish\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             username = {}\npassword_file = {}\n{}",
            toml_str(sushy::USER),
            toml_str(&pw.display().to_string()),
            ca(&emu.pki.ca)
        )
    };
    let cfg = dir.join("devices.toml");
    std::fs::write(
        &cfg,
        format!(
            "{head}[fencing]\ntimeout = \"30s\"\n{}{}{}",
            device(closed, &right),
            device(emu.port, &wrong),
            device(emu.port, &right)
        ),
    )
    .unwrap();
    let (out, _) = bbwd(&cfg, &["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, _) = fence(&cfg, "status");
    ok(&out, "on", &emu);
    let (out, _) = fence(&cfg, "off");
    ok(&out, "off", &emu);
    assert_eq!(emu.power_state(&emu.systems[0]), "Off");

    // Every device failing: the last device's reason.
    let cfg2 = dir.join("devices-bad.toml");
    std::fs::write(
        &cfg2,
        format!(
            "{head}[fencing]\ntimeout = \"10s\"\n{}{}",
            device(closed, &right),
            device(emu.port, &wrong)
        ),
    )
    .unwrap();
    let (out, _) = fence(&cfg2, "on");
    let err = failed(&out);
    assert!(err.contains("bad credentials"), "{err}");
    assert_eq!(emu.power_state(&emu.systems[0]), "Off");
}
