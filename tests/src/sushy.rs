//! A real Redfish service per test: OpenStack's `sushy-tools` emulator (PyPI) with its fake
//! systems driver (no libvirt), over TLS with certificates made here by `openssl`, behind an
//! htpasswd (bcrypt) file. The Redfish tests (`tests/tests/redfish_fence.rs`) fence through it.
//!
//! Owns: the emulator's venv (installed once, idempotently, in [`venv_dir`]), a CA and a
//! server certificate signed by it (plus an unrelated CA, for "not signed by ca_file"), the
//! emulator process, and an independent client (`curl`) that reads a system's `PowerState`
//! the way an operator would, to check what bbwd says. Must not: end processes it did not start
//! (the emulator is ended by PID on drop), or write outside the test's directory and the venv.
//!
//! The fake driver applies a reset 1 to 11 s after the request (it answers 204 at once): a
//! client that trusted the 204 would report "off" while the service still says On.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use crate::{free_port, kill_pid, run_bounded, toml_str, wait_until, TestDir};

/// The emulator's user and password (in the htpasswd file).
pub const USER: &str = "fence";
pub const PASSWORD: &str = "s3cret-redfish";

/// The version the tests were written against (its fake driver and auth middleware).
const SUSHY_TOOLS: &str = "sushy-tools==2.2.0";

/// Where the venv lives: `$BBWD_SUSHY_VENV`, else `/var/cache/bbwd-venv/sushy` (root, as CI),
/// else under the workspace's `target/`.
pub fn venv_dir() -> PathBuf {
    if let Some(v) = std::env::var_os("BBWD_SUSHY_VENV") {
        return PathBuf::from(v);
    }
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/bbwd-venv/sushy");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/sushy-venv")
        .to_path_buf()
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Whether the emulator can run here; installs it into the venv when missing. True, or the test
/// fails saying what is missing (the tests that call this are `#[ignore = "needs ..."]`;
/// `scripts/test.sh` runs them with `--include-ignored`).
pub fn available() -> bool {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = venv_dir();
    let ready = |v: &Path| {
        std::fs::read_to_string(v.join(MARKER)).is_ok_and(|m| m == SUSHY_TOOLS)
            && ready_without_marker(v)
    };
    let tools = ["openssl", "curl", "python3"];
    let missing: Vec<&str> = tools.into_iter().filter(|t| !on_path(t)).collect();
    if missing.is_empty() && !ready(&venv) {
        // A venv without the marker is half-installed (an interrupted run): start over.
        let _ = std::fs::remove_dir_all(&venv);
        let steps: [Vec<String>; 2] = [
            vec![
                "python3".into(),
                "-m".into(),
                "venv".into(),
                venv.display().to_string(),
            ],
            vec![
                venv.join("bin/pip").display().to_string(),
                "install".into(),
                "-q".into(),
                SUSHY_TOOLS.into(),
                "bcrypt".into(),
            ],
        ];
        for step in &steps {
            let mut cmd = Command::new(&step[0]);
            cmd.args(&step[1..]);
            let out = run_bounded(cmd, Duration::from_secs(600));
            if !out.status.success() {
                eprintln!(
                    "sushy venv: {step:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
        }
        if ready_without_marker(&venv) {
            let _ = std::fs::write(venv.join(MARKER), SUSHY_TOOLS);
        }
    }
    if missing.is_empty() && ready(&venv) {
        return true;
    }
    let what = format!(
        "Redfish tests need {missing:?} and the sushy-tools venv at {} (python3-venv; pip from PyPI)",
        venv.display()
    );
    panic!("{what}");
}

/// Written into the venv once everything is installed (holds the pinned version).
const MARKER: &str = ".bbwd-ready";

fn ready_without_marker(v: &Path) -> bool {
    v.join("bin/sushy-emulator").is_file()
        && Command::new(v.join("bin/python"))
            .args(["-c", "import bcrypt, sushy_tools"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn run_ok(cmd: Command, what: &str) -> String {
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test PKI in `dir`: `ca.pem` signs `server.pem` (for the emulator's IP address);
/// `other-ca.pem` signs nothing the emulator shows.
pub struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `sha256:AB:CD:...` of `server.pem`.
    pub fingerprint: String,
}

impl Pki {
    pub fn new(dir: &Path, ip: &str) -> Pki {
        let p = |n: &str| dir.join(n);
        for ca in ["ca", "other-ca"] {
            let mut cmd = Command::new("openssl");
            cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
                .args(["-subj", &format!("/CN=bbwd test {ca}")])
                .arg("-keyout")
                .arg(p(&format!("{ca}.key")))
                .arg("-out")
                .arg(p(&format!("{ca}.pem")));
            run_ok(cmd, "openssl req (CA)");
        }
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", &format!("/CN={ip}"), "-keyout"])
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"));
        run_ok(cmd, "openssl req (server)");
        std::fs::write(
            p("server.ext"),
            format!(
                "subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("openssl");
        cmd.args(["x509", "-req", "-days", "2", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(p("server.ext"))
            .arg("-out")
            .arg(p("server.pem"));
        run_ok(cmd, "openssl x509 -req");
        let mut cmd = Command::new("openssl");
        cmd.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(p("server.pem"));
        let out = run_ok(cmd, "openssl x509 -fingerprint");
        let hex = out
            .trim()
            .rsplit('=')
            .next()
            .expect("openssl fingerprint output")
            .to_string();
        Pki {
            ca: p("ca.pem"),
            other_ca: p("other-ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
            fingerprint: format!("sha256:{hex}"),
        }
    }
}

/// What an emulator serves, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many fake systems, each powered `On` at start.
    pub systems: usize,
    /// The address it listens on (and its certificate names).
    pub ip: String,
    /// A network namespace to run it in (the pair lab's switch); `None`: this one.
    pub netns: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            systems: 1,
            ip: "127.0.0.1".into(),
            netns: None,
        }
    }
}

/// `program` as a command, inside `netns` when given (`ip netns exec` execs it: the PID is the
/// program's own).
fn command_in(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// One running emulator on 127.0.0.1.
pub struct Sushy {
    child: Child,
    pub ip: String,
    netns: Option<String>,
    pub port: u16,
    pub pki: Pki,
    /// The systems' paths, e.g. `/redfish/v1/Systems/<uuid>`.
    pub systems: Vec<String>,
    log: PathBuf,
}

impl Sushy {
    /// Starts an emulator in `dir` and waits until it answers over TLS.
    pub fn start(dir: &Path, opts: &Options) -> Sushy {
        let venv = venv_dir();
        let pki = Pki::new(dir, &opts.ip);
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.args([
            "-c",
            "import bcrypt, sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), \
             bcrypt.gensalt(rounds=4)).decode())",
            USER,
            PASSWORD,
        ]);
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, run_ok(cmd, "bcrypt htpasswd line")).unwrap();
        let systems: Vec<String> = (0..opts.systems)
            .map(|i| {
                format!(
                    "{{'uuid': '{:08x}-0000-4000-8000-{:012x}', 'name': 'node{i}', 'power_state': 'On', 'external_notifier': False, 'nics': []}}",
                    std::process::id(),
                    i + 1
                )
            })
            .collect();
        let conf = dir.join("emulator.conf");
        std::fs::write(
            &conf,
            format!(
                "SUSHY_EMULATOR_AUTH_FILE = {:?}\nSUSHY_EMULATOR_STATE_DIR = {:?}\n\
                 SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
                htpasswd.display().to_string(),
                dir.join("emulator-state").display().to_string(),
                systems.join(", ")
            ),
        )
        .unwrap();
        // Free in this namespace; a fresh namespace has every port free.
        let port = crate::free_port();
        let log = dir.join("sushy.log");
        let child = command_in(opts.netns.as_deref(), venv.join("bin/sushy-emulator"))
            .args(["--fake", "-i", &opts.ip, "-p", &port.to_string()])
            .arg("--ssl-certificate")
            .arg(&pki.cert)
            .arg("--ssl-key")
            .arg(&pki.key)
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("sushy.err")).unwrap())
            .spawn()
            .expect("start sushy-emulator");
        let mut s = Sushy {
            child,
            ip: opts.ip.clone(),
            netns: opts.netns.clone(),
            port,
            pki,
            systems: Vec::new(),
            log,
        };
        wait_until(Duration::from_secs(30), "sushy-emulator answers", || {
            s.get("/redfish/v1/Systems").is_some()
        });
        let list = s.get("/redfish/v1/Systems").unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&list).expect("Systems JSON");
        s.systems = v["Members"]
            .as_array()
            .expect("Members")
            .iter()
            .map(|m| m["@odata.id"].as_str().unwrap().to_string())
            .collect();
        s.systems.sort();
        assert_eq!(s.systems.len(), opts.systems, "{list}");
        s
    }

    /// GET `path` with the CA and the credentials, by curl; the body on HTTP 200.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut cmd = self.curl();
        cmd.args(["-sS", "--fail", "--max-time", "5", "--cacert"])
            .arg(&self.pki.ca)
            .args(["-u", &format!("{USER}:{PASSWORD}")])
            .arg(format!("https://{}:{}{path}", self.ip, self.port));
        let out = run_bounded(cmd, Duration::from_secs(10));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The system's `PowerState` as the service reports it now (an independent client).
    pub fn power_state(&self, system: &str) -> String {
        let body = self
            .get(system)
            .unwrap_or_else(|| panic!("GET {system} failed\n{}", self.diagnostics()));
        let v: serde_json::Value = serde_json::from_str(&body).expect("system JSON");
        v["PowerState"].as_str().unwrap_or("?").to_string()
    }

    /// Asks for a reset by curl (the test's own hand on the power).
    pub fn reset(&self, system: &str, reset_type: &str) {
        let mut cmd = self.curl();
        cmd.args(["-sS", "--fail", "--max-time", "5", "--cacert"])
            .arg(&self.pki.ca)
            .args(["-u", &format!("{USER}:{PASSWORD}")])
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(format!("{{\"ResetType\":\"{reset_type}\"}}"))
            .arg(format!(
                "https://{}:{}{system}/Actions/ComputerSystem.Reset",
                self.ip, self.port
            ));
        run_ok(cmd, "curl reset");
    }

    /// The emulator's log tail, for failure messages.
    pub fn diagnostics(&self) -> String {
        let tail = |p: &Path| {
            let t = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "--- sushy log ---\n{}\n--- sushy stderr ---\n{}",
            tail(&self.log),
            tail(&self.log.with_file_name("sushy.err"))
        )
    }

    /// curl, in the emulator's namespace.
    pub fn curl(&self) -> Command {
        command_in(self.netns.as_deref(), "curl")
    }

    /// `https://ip:port` of the service.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", self.ip, self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A pair-mode `bbwd.toml` in `dir` whose `[fencing]` is the Redfish service on
/// 127.0.0.1:`port` as [`USER`] with `password` (written to a 0600 file), `timeout`, then
/// `extra` lines (the TLS check, `system`). The peer and the VIP are never used by `bbwd fence`.
pub fn fence_config(
    dir: &TestDir,
    port: u16,
    password: &str,
    extra: &str,
    timeout: &str,
) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("cluster.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pw = dir.join("redfish.pass");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = dir.path().display().to_string();
    let text = format!(
        "[node]\nname = \"n1\"\nstate_dir = {}\ncontrol_socket = {}\n\n\
         [bitbucket]\ncommand = [\"/bin/true\"]\n\n\
         [cluster]\npeer = \"n2\"\nlisten = [\"127.0.0.1:{}\"]\npeer_addresses = [\"127.0.0.1:{}\"]\nkey_file = {}\n\n\
         [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"lo\"\n\n\
         [fencing]\nmethod = \"redfish\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = {}\npassword_file = {}\n\
         timeout = {}\n{extra}",
        toml_str(&format!("{d}/state")),
        toml_str(&format!("{d}/control.sock")),
        free_port(),
        free_port(),
        toml_str(&key.display().to_string()),
        toml_str(USER),
        toml_str(&pw.display().to_string()),
        toml_str(timeout),
    );
    let path = dir.join("bbwd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Reads a system's `PowerState` by curl in a loop, recording each answer and when.
pub struct PowerWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, Instant, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PowerWatch {
    pub fn start(emu: &Sushy, system: &str) -> PowerWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ca = emu.pki.ca.clone();
        let url = emu.url(system);
        let curl = emu.curl();
        let program = curl.get_program().to_owned();
        let pre: Vec<_> = curl.get_args().map(|a| a.to_owned()).collect();
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let mut cmd = Command::new(&program);
                cmd.args(&pre)
                    .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
                    .arg(&ca)
                    .args(["-u", &format!("{}:{}", USER, PASSWORD)])
                    .arg(&url);
                // Taken before the request: the service's answer is from this moment or later,
                // so "said On at `at`" never claims a later time than it was true.
                let at = Instant::now();
                let out = run_bounded(cmd, Duration::from_secs(10));
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    let state = v["PowerState"].as_str().unwrap_or("?").to_string();
                    seen2.lock().unwrap().push((at, Instant::now(), state));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        PowerWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops; every answer with the moments just before its request and just after its reply
    /// (the service answered in between).
    pub fn finish(mut self) -> Vec<(Instant, Instant, String)> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// `tests/redfish/responder.py`: a small Redfish service with a SessionService (which the
/// emulator lacks), and hostile modes: `redirect`, `nopowerstate`, `oddpowerstate`, `error500`.
/// The same user and password as the emulator; python3's standard library only.
pub struct Responder {
    child: Child,
    pub port: u16,
    pub pki: Pki,
    log: PathBuf,
}

impl Responder {
    /// Starts one on 127.0.0.1 in `dir`; `expire_after`: tokens stop working after that many
    /// authenticated requests (0: never).
    pub fn start(dir: &Path, mode: &str, expire_after: u32) -> Responder {
        let pki = Pki::new(dir, "127.0.0.1");
        let port = crate::free_port();
        let log = dir.join("responder.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("redfish/responder.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--mode", mode])
            .args(["--expire-after", &expire_after.to_string()])
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("responder.err")).unwrap())
            .spawn()
            .expect("start responder.py");
        wait_until(Duration::from_secs(20), "responder.py listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Responder {
            child,
            port,
            pki,
            log,
        }
    }

    /// Every request so far: (method, path, credentials: none | token | login | logout |
    /// refused | login-refused).
    pub fn requests(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let f = |k: &str| v[k].as_str().unwrap_or("").to_string();
                (f("method"), f("path"), f("auth"))
            })
            .collect()
    }

    /// The responder's stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- responder requests ---\n{:?}\n--- stderr ---\n{}",
            self.requests(),
            std::fs::read_to_string(self.log.with_file_name("responder.err")).unwrap_or_default()
        )
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        kill_pid(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        kill_pid(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}
