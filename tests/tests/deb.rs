//! The Debian package: `scripts/build-deb.sh` builds it (reusing the release build when it is
//! up to date), `dpkg -i` installs it on this machine, the installed `bbwd check-config`
//! finds nothing wrong with the installed example but the Bitbucket installation this machine
//! lacks, the files, conffile, OCF symlink and man page are
//! where a Debian admin expects them, the unit is installed but neither enabled nor started,
//! lintian finds nothing, and `dpkg --purge` leaves no file, unit link or state behind.
//!
//! Needs root (dpkg). Refuses to run (fails, rather than overwrite anything) when a bbwd is
//! already installed on the machine, by package or by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bbwd_tests::*;

/// The package build includes a release build of bbwd when it is not up to date.
const BUILD_LIMIT: Duration = Duration::from_secs(900);
const DPKG_LIMIT: Duration = Duration::from_secs(120);

/// Paths the package installs (symlink included).
const PACKAGE_FILES: &[&str] = &[
    "/usr/sbin/bbwd",
    "/lib/systemd/system/bbwd.service",
    "/etc/bbwd/bbwd.toml",
    "/usr/lib/ocf/resource.d/bbwd/bitbucket",
    "/usr/share/man/man8/bbwd.8.gz",
    "/usr/share/doc/bbwd/copyright",
    "/usr/share/doc/bbwd/changelog.gz",
    "/usr/share/doc/bbwd/README.md.gz",
    "/usr/share/lintian/overrides/bbwd",
];
/// What must not exist before the test, and must be gone after the purge.
const LEFTOVERS: &[&str] = &[
    "/etc/bbwd",
    "/usr/lib/ocf/resource.d/bbwd",
    "/usr/share/doc/bbwd",
    "/var/lib/bbwd",
    "/etc/systemd/system/multi-user.target.wants/bbwd.service",
    "/etc/systemd/system/bbwd.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/bbwd.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/bbwd.service",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run(program: &str, args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_bounded(cmd, limit)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exists(path: &str) -> bool {
    Path::new(path).symlink_metadata().is_ok()
}

fn package_installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", "bbwd"], DPKG_LIMIT)
        .stdout
        .starts_with(b"install ok installed")
}

/// Purges the package when dropped, so a failed assertion leaves the machine clean.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        // Also after `dpkg --remove` (state config-files); a no-op when already purged.
        let _ = run("dpkg", &["--purge", "bbwd"], DPKG_LIMIT);
    }
}

#[test]
#[ignore = "needs root: dpkg -i and --purge of the built package"]
fn package_installs_checks_its_config_and_purges_cleanly() {
    bbwd_testkit::require_root("dpkg -i and --purge of the built package");
    assert!(
        exists("/usr/bin/dpkg-deb"),
        "the package test needs dpkg-deb (scripts/setup.sh installs dpkg-dev)"
    );
    // Never disturb a bbwd installed on this machine, by package or by hand.
    let found: Vec<&str> = PACKAGE_FILES
        .iter()
        .chain(LEFTOVERS)
        .copied()
        .filter(|p| exists(p))
        .collect();
    assert!(
        !package_installed() && found.is_empty(),
        "a bbwd is already installed here ({found:?}); refusing to install over it"
    );

    let out_dir = TestDir::new("deb");
    let build = {
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("scripts/build-deb.sh"))
            .arg("--out")
            .arg(out_dir.path())
            .current_dir(repo());
        run_bounded(cmd, BUILD_LIMIT)
    };
    let deb = ok(&build, "scripts/build-deb.sh")
        .lines()
        .last()
        .map(str::to_string)
        .expect("build-deb.sh prints the package path");
    let version = env!("CARGO_PKG_VERSION");
    assert!(deb.ends_with(&format!("bbwd_{version}_amd64.deb")), "{deb}");

    // The control file a Debian admin reads.
    let control = ok(&run("dpkg-deb", &["-f", &deb], DPKG_LIMIT), "dpkg-deb -f");
    for field in [
        "Package: bbwd",
        &format!("Version: {version}"),
        "Architecture: amd64",
        // The shipped build is static (musl: scripts/lib/release.sh): no C library to depend on.
        "Depends: init-system-helpers (>= 1.54~)",
        "Section: admin",
    ] {
        assert!(control.contains(field), "{field} in:\n{control}");
    }

    // Lintian finds nothing (errors, warnings, even pedantic and informational tags).
    if exists("/usr/bin/lintian") {
        let lint = run(
            "lintian",
            &[
                "--pedantic",
                "--display-info",
                "--display-experimental",
                &deb,
            ],
            Duration::from_secs(300),
        );
        let text = String::from_utf8_lossy(&lint.stdout);
        let tags: Vec<&str> = text
            .lines()
            .filter(|l| l.len() > 2 && l.as_bytes()[1] == b':' && !l.starts_with("N:"))
            .collect();
        assert!(tags.is_empty(), "lintian: {tags:#?}");
    } else {
        panic!("lintian missing (scripts/setup.sh installs it)");
    }

    let guard = Installed;
    ok(&run("dpkg", &["-i", &deb], DPKG_LIMIT), "dpkg -i");
    assert!(package_installed());
    for path in PACKAGE_FILES {
        assert!(exists(path), "{path} installed");
    }
    let conffiles = ok(
        &run("dpkg-query", &["-W", "-f=${Conffiles}", "bbwd"], DPKG_LIMIT),
        "dpkg-query Conffiles",
    );
    assert!(conffiles.contains("/etc/bbwd/bbwd.toml"), "{conffiles}");
    let link = std::fs::read_link("/usr/lib/ocf/resource.d/bbwd/bitbucket").unwrap();
    assert_eq!(
        std::fs::canonicalize(Path::new("/usr/lib/ocf/resource.d/bbwd").join(link)).unwrap(),
        PathBuf::from("/usr/sbin/bbwd")
    );

    // The installed example is valid but for what only this node can provide: check-config
    // (which agrees with `run`) names exactly the Bitbucket installation that is not here, the
    // program and its user, and the hardware watchdog this machine lacks (no watchdog driver
    // in the sandbox's kernel), and nothing else; exit 2, as `run` would refuse it.
    let check = run(
        "/usr/sbin/bbwd",
        &["check-config", "-c", "/etc/bbwd/bbwd.toml"],
        CLI_TIMEOUT,
    );
    let problems = String::from_utf8_lossy(&check.stderr);
    assert_eq!(
        check.status.code(),
        Some(2),
        "check-config on the example without Bitbucket installed: {problems}"
    );
    let lines: Vec<&str> = problems.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty()
            && lines.iter().all(|l| {
                (l.contains("bitbucket.command") && l.contains("start-bitbucket.sh"))
                    || (l.contains("bitbucket.user") && l.contains("atlbitbucket"))
                    || (l.contains("watchdog.device") && l.contains("/dev/watchdog"))
                    || l.contains("warning")
            }),
        "only the missing Bitbucket installation may be reported: {problems}"
    );
    let version_out = ok(
        &run("/usr/sbin/bbwd", &["version"], CLI_TIMEOUT),
        "bbwd version",
    );
    assert!(version_out.contains(version), "{version_out}");
    // The OCF agent answers through its symlink, as Pacemaker calls it.
    let meta = ok(
        &run(
            "/usr/lib/ocf/resource.d/bbwd/bitbucket",
            &["meta-data"],
            CLI_TIMEOUT,
        ),
        "bitbucket meta-data",
    );
    assert!(meta.contains("<resource-agent name=\"bitbucket\""));
    // The man page is a valid gzipped roff page that man can render.
    if exists("/usr/bin/man") {
        let man = run(
            "man",
            &["--warnings", "-l", "/usr/share/man/man8/bbwd.8.gz"],
            CLI_TIMEOUT,
        );
        let rendered = ok(&man, "man bbwd.8.gz");
        assert!(rendered.contains("OCF RESOURCE AGENT"), "{rendered}");
        assert!(
            man.stderr.is_empty(),
            "man warnings: {}",
            String::from_utf8_lossy(&man.stderr)
        );
    } else {
        panic!("man missing (Debian package man-db)");
    }

    // Installed, not enabled, not started; a reinstall (the upgrade path of the maintainer
    // scripts) does not enable it either.
    let wants = "/etc/systemd/system/multi-user.target.wants/bbwd.service";
    assert!(!exists(wants), "the unit is not enabled on install");
    ok(&run("dpkg", &["-i", &deb], DPKG_LIMIT), "dpkg -i (again)");
    assert!(!exists(wants), "the unit is not enabled on upgrade");
    // An administrator enables it (systemctl works on the unit files without a running
    // systemd) and edits the config: an upgrade keeps both.
    ok(
        &run("systemctl", &["enable", "bbwd.service"], DPKG_LIMIT),
        "systemctl enable bbwd",
    );
    assert!(exists(wants));
    let mut edited = std::fs::read_to_string("/etc/bbwd/bbwd.toml").unwrap();
    edited.push_str("# edited by the administrator\n");
    std::fs::write("/etc/bbwd/bbwd.toml", &edited).unwrap();
    ok(&run("dpkg", &["-i", &deb], DPKG_LIMIT), "dpkg -i (upgrade)");
    assert!(
        exists(wants),
        "the administrator's enable survives an upgrade"
    );
    assert_eq!(
        std::fs::read_to_string("/etc/bbwd/bbwd.toml").unwrap(),
        edited,
        "the conffile keeps the administrator's edit"
    );
    // State bbwd writes at run time goes with the purge as well.
    std::fs::create_dir_all("/var/lib/bbwd").unwrap();
    std::fs::write("/var/lib/bbwd/events.log", b"{}\n").unwrap();

    // Remove keeps the configuration (a conffile), purge removes everything.
    ok(
        &run("dpkg", &["--remove", "bbwd"], DPKG_LIMIT),
        "dpkg --remove",
    );
    assert!(!exists("/usr/sbin/bbwd") && !exists("/lib/systemd/system/bbwd.service"));
    assert!(!exists("/usr/lib/ocf/resource.d/bbwd/bitbucket"));
    assert!(exists("/etc/bbwd/bbwd.toml"), "remove keeps the conffile");
    ok(
        &run("dpkg", &["--purge", "bbwd"], DPKG_LIMIT),
        "dpkg --purge",
    );
    drop(guard);
    assert!(!package_installed());
    let left: Vec<&str> = PACKAGE_FILES
        .iter()
        .chain(LEFTOVERS)
        .copied()
        .filter(|p| exists(p))
        .collect();
    assert!(left.is_empty(), "left behind after purge: {left:?}");
}
