//! qemu guests for the tests that need a real kernel: a real hardware watchdog (the emulated
//! Intel 6300ESB, `/dev/watchdog` in the guest) and real systemd as PID 1.
//!
//! Owns: building and caching the guest images, sharing host-built binaries with a guest, and
//! running one guest with its console and QMP events recorded with host timestamps.
//!
//! * **Images** ([`kernel`], [`systemd_rootfs`]): Debian's kernel (`apt-get download` of the
//!   package `linux-image-amd64` depends on, unpacked with `dpkg -x`, never installed), its
//!   vmlinux unpacked from the bzImage (qemu boots an uncompressed ELF kernel by PVH, seconds
//!   faster under TCG), a busybox initramfs (`busybox-static`, downloaded the same way) with the
//!   watchdog, virtio, 9p and ext4 modules and `tests/vm/init.sh` as PID 1, and a Debian rootfs
//!   with systemd as PID 1 (`mmdebstrap` minbase + systemd-sysv + `tests/vm/rootfs/`) as an ext4
//!   image. All are cached under `$BBWD_VM_CACHE` (default [`DEFAULT_CACHE`]) in directories
//!   named after the kernel version (or Debian release) and a hash of the inputs, so a second
//!   run builds nothing; a changed input gets a new name. Builds hold an exclusive `flock` on
//!   the cache, so parallel tests build once.
//! * **Share** ([`Share`]): a per-test folder the guest mounts over virtio-9p at `/mnt/host`:
//!   `run.sh` (the guest's test script), `params`, `sysroot/` (copied over the guest's `/`:
//!   host-built binaries plus, for the busybox guest, the shared libraries `ldd` names), `out/`
//!   (what the guest writes back; it survives a reset of the guest).
//! * **Guest** ([`Vm`]): `qemu-system-x86_64 -accel tcg` (KVM does not work on these machines),
//!   serial console on a pipe, QMP on a unix socket. qemu waits for the QMP connection before it
//!   starts the guest, so no event is missed; `-no-reboot` turns any guest reset (the watchdog's
//!   too) into the end of qemu. No network unless [`VmOptions::user_net`] asks for qemu's
//!   user-mode network (a guest `eth0` that reaches the host's loopback as 10.0.2.2).
//!
//! Must not: touch anything outside the cache directory and the test's own [`TestDir`]; end
//! processes it did not start. The only process it signals is the qemu it spawned, by PID.
//!
//! # Invariants
//! * A [`Vm`] is killed (SIGKILL by PID) and reaped when dropped, also when a test panics; its
//!   reader threads end with qemu's pipes and are joined.
//! * A cache entry is complete or absent: it is built in a `tmp-*` directory and renamed into
//!   place; leftovers of an interrupted build are removed under the lock.
//! * Every wait is bounded by a timeout given by the caller.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{run_bounded, TestDir, Value};

/// Where images are cached unless `$BBWD_VM_CACHE` says otherwise.
pub const DEFAULT_CACHE: &str = "/var/cache/bbwd-vm";
/// Bump to rebuild every cached image (a change in how they are built, not in their inputs).
const BUILD_REVISION: &str = "bbwd-vm-1";
/// The qemu binary; TCG only.
const QEMU: &str = "qemu-system-x86_64";
/// qemu's minimal firmware: boots a Linux kernel in a fraction of SeaBIOS's time.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";
/// Modules the initramfs carries (with their dependencies from modules.dep): the watchdog
/// drivers, the 9p share, the systemd guest's root disk, and the NIC of a guest with
/// user-mode networking ([`VmOptions::user_net`]).
const MODULES: &[&str] = &[
    "i6300esb",
    "softdog",
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "virtio_net",
];
/// Packages of the systemd rootfs (on top of mmdebstrap's minbase).
const ROOTFS_PACKAGES: &str = "systemd-sysv";
/// Size of the rootfs image (sparse; minbase + systemd use about 250 MiB).
const ROOTFS_SIZE: &str = "1G";
/// Units masked on the systemd guest's command line: nothing bbwd's tests need, and they cost
/// seconds of boot under TCG.
const SYSTEMD_MASKS: &[&str] = &[
    "getty-static.service",
    "systemd-random-seed.service",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "modprobe@configfs.service",
    "modprobe@dm_mod.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "modprobe@drm.service",
    "systemd-sysusers.service",
    "systemd-update-utmp.service",
];
/// Tools the VM tests run on the host (Debian packages in scripts/setup.sh).
const HOST_TOOLS: &[&str] = &[
    QEMU,
    "mmdebstrap",
    "mke2fs",
    "depmod",
    "xz",
    "dpkg",
    "apt-get",
    "apt-cache",
    "ldd",
];
/// Limit for one `apt-get download`.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Limit for building the rootfs with mmdebstrap (downloads included).
const ROOTFS_TIMEOUT: Duration = Duration::from_secs(1200);
/// Limit for the short local build steps (dpkg -x, depmod, xz, cpio, mke2fs).
const STEP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long qemu has to create its QMP socket.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll period of the waits on console lines, events and exit.
const VM_POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Prerequisites

/// Whether the VM tests can run here (root, the host tools, qemu's firmware): true, or the test
/// fails saying what is missing. Tests that call this are `#[ignore = "needs ..."]`: `scripts/test.sh` runs them with `--include-ignored`; run, they fail when a piece is missing (never pass unrun).
pub fn vm_prerequisites(test: &str) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (qemu's 9p share, mmdebstrap --mode=root, the cache)".to_string());
    }
    for tool in HOST_TOOLS {
        if find_in_path(tool).is_none() {
            missing.push(format!("`{tool}` in PATH"));
        }
    }
    if !Path::new(QBOOT).is_file() {
        missing.push(QBOOT.to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{test}: missing {} (run scripts/setup.sh as root)",
        missing.join(", ")
    );
    panic!("{message}");
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// The image cache

/// The cache directory (`$BBWD_VM_CACHE` or [`DEFAULT_CACHE`]).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("BBWD_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// `tests/vm/` in the source tree.
pub fn vm_source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vm")
}

/// An exclusive `flock` on `<cache>/.lock`, released on drop.
struct CacheLock {
    file: fs::File,
}

impl CacheLock {
    fn acquire(cache: &Path) -> CacheLock {
        fs::create_dir_all(cache)
            .unwrap_or_else(|e| panic!("create cache dir {}: {e}", cache.display()));
        let path = cache.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: flock(2) on a descriptor this struct owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "flock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        // Whoever held the lock before has finished: a tmp-* left now is from a killed build.
        if let Ok(entries) = fs::read_dir(cache) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("tmp-") {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        CacheLock { file }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // SAFETY: as in acquire; closing the file would release the lock as well.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// FNV-1a, 64 bits: a stable hash of the build inputs for cache names (std's hasher may
/// change between Rust releases).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    /// Adds `bytes` and a separator, so ("ab", "c") and ("a", "bc") differ.
    fn add(mut self, bytes: &[u8]) -> Fnv {
        for b in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }
    fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// A temporary build directory in the cache, removed on drop unless renamed away.
struct BuildDir(PathBuf);

impl BuildDir {
    fn new(cache: &Path, what: &str) -> BuildDir {
        let path = cache.join(format!("tmp-{what}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        BuildDir(path)
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` (bounded by `timeout`) and panics naming `what` with its output unless it
/// succeeds. Returns stdout.
fn run_ok(what: &str, cmd: Command, timeout: Duration) -> Vec<u8> {
    let out = run_bounded(cmd, timeout);
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

/// The guest kernel and the busybox initramfs (which also boots the systemd rootfs).
#[derive(Debug, Clone)]
pub struct Kernel {
    /// e.g. `6.1.0-41-amd64`.
    pub version: String,
    /// The uncompressed ELF kernel.
    pub vmlinux: PathBuf,
    /// The initramfs (newc cpio, uncompressed).
    pub initrd: PathBuf,
}

/// The kernel package `linux-image-amd64` depends on, e.g. `linux-image-6.1.0-41-amd64`.
fn kernel_package() -> String {
    let query = || {
        let mut cmd = Command::new("apt-cache");
        cmd.args(["depends", "linux-image-amd64"]);
        let out = run_bounded(cmd, STEP_TIMEOUT);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
            .map(str::to_string)
    };
    if let Some(pkg) = query() {
        return pkg;
    }
    // A machine whose package lists were never fetched.
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run_ok("apt-get update", update, DOWNLOAD_TIMEOUT);
    query().expect("apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package")
}

/// `<cache>/dl/<package>_*.deb`, downloaded with `apt-get download` unless present.
fn debian_package(cache: &Path, package: &str) -> PathBuf {
    let dl = cache.join("dl");
    fs::create_dir_all(&dl).unwrap_or_else(|e| panic!("create {}: {e}", dl.display()));
    let find = || {
        let prefix = format!("{package}_");
        let mut found: Vec<PathBuf> = fs::read_dir(&dl)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&prefix) && n.ends_with(".deb")
                })
            })
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(deb) = find() {
        return deb;
    }
    let mut cmd = Command::new("apt-get");
    cmd.args(["download", "-q", package]).current_dir(&dl);
    run_ok(
        &format!("apt-get download {package}"),
        cmd,
        DOWNLOAD_TIMEOUT,
    );
    find().unwrap_or_else(|| {
        panic!(
            "apt-get download {package} left no .deb in {}",
            dl.display()
        )
    })
}

/// The kernel and initramfs, built once per kernel version and inputs.
pub fn kernel() -> Kernel {
    let cache = cache_dir();
    let _lock = CacheLock::acquire(&cache);
    let package = kernel_package();
    let version = package
        .strip_prefix("linux-image-")
        .unwrap_or(&package)
        .to_string();
    let init = vm_source_dir().join("init.sh");
    let init_text = fs::read(&init).unwrap_or_else(|e| panic!("read {}: {e}", init.display()));
    let busybox = debian_package(&cache, "busybox-static");
    let mut hash = Fnv::new()
        .add(BUILD_REVISION.as_bytes())
        .add(&init_text)
        .add(busybox.file_name().unwrap_or_default().as_encoded_bytes());
    for m in MODULES {
        hash = hash.add(m.as_bytes());
    }
    let dir = cache.join(format!("kernel-{version}-{}", hash.hex()));
    let k = Kernel {
        version: version.clone(),
        vmlinux: dir.join("vmlinux"),
        initrd: dir.join("initrd.cpio"),
    };
    if k.vmlinux.is_file() && k.initrd.is_file() {
        return k;
    }
    let kernel_deb = debian_package(&cache, &package);
    let build = BuildDir::new(&cache, "kernel");
    let x = build.0.join("x");
    for deb in [&kernel_deb, &busybox] {
        let mut cmd = Command::new("dpkg");
        cmd.arg("-x").arg(deb).arg(&x);
        run_ok(&format!("dpkg -x {}", deb.display()), cmd, STEP_TIMEOUT);
    }
    // The package ships no modules.dep (the postinst runs depmod).
    let mut cmd = Command::new("depmod");
    cmd.arg("-b").arg(&x).arg(&version);
    run_ok("depmod (kernel package)", cmd, STEP_TIMEOUT);

    let out = build.0.join("out");
    fs::create_dir_all(&out).expect("create out");
    extract_vmlinux(
        &x.join(format!("boot/vmlinuz-{version}")),
        &out.join("vmlinux"),
    );
    build_initrd(
        &x,
        &version,
        &init_text,
        &build.0.join("initrd"),
        &out.join("initrd.cpio"),
    );
    fs::rename(&out, &dir)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", out.display(), dir.display()));
    // Older kernels and initramfs builds are not used any more.
    remove_siblings(&cache, "kernel-", &dir);
    remove_siblings(&cache.join("dl"), "linux-image-", &kernel_deb);
    remove_siblings(&cache.join("dl"), "busybox-static_", &busybox);
    k
}

/// Removes the entries of `dir` named `prefix*` except `keep` (superseded cache entries).
fn remove_siblings(dir: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path != keep && entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }
}

/// Unpacks the xz-compressed ELF kernel inside Debian's bzImage.
fn extract_vmlinux(bzimage: &Path, vmlinux: &Path) {
    const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
    let image = fs::read(bzimage).unwrap_or_else(|e| panic!("read {}: {e}", bzimage.display()));
    let at = image
        .windows(XZ_MAGIC.len())
        .position(|w| w == XZ_MAGIC)
        .unwrap_or_else(|| panic!("{}: no xz stream (not an xz bzImage)", bzimage.display()));
    let payload = bzimage.with_extension("xz");
    fs::write(&payload, &image[at..]).expect("write xz payload");
    // --single-stream: the bzImage has trailing data after the compressed kernel.
    let mut cmd = Command::new("xz");
    cmd.args(["-dc", "--single-stream"]).arg(&payload);
    let elf = run_ok("xz -dc (vmlinux)", cmd, STEP_TIMEOUT);
    assert!(
        elf.starts_with(b"\x7fELF"),
        "{}: the xz payload is not an ELF kernel",
        bzimage.display()
    );
    fs::write(vmlinux, elf).unwrap_or_else(|e| panic!("write {}: {e}", vmlinux.display()));
}

/// The busybox initramfs: busybox, `init.sh` as /init, [`MODULES`] and their dependencies.
fn build_initrd(x: &Path, version: &str, init: &[u8], root: &Path, cpio: &Path) {
    for d in ["bin", "sbin", "proc", "sys", "dev", "tmp", "mnt", "etc"] {
        fs::create_dir_all(root.join(d)).expect("create initrd dir");
    }
    let busybox = x.join("bin/busybox");
    fs::copy(&busybox, root.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", busybox.display()));
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).expect("symlink sh");
    fs::write(root.join("init"), init).expect("write init");
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).expect("chmod");

    let km = x.join("lib/modules").join(version);
    let deps = fs::read_to_string(km.join("modules.dep")).expect("read modules.dep");
    let target = root.join("lib/modules").join(version);
    for module in MODULES {
        let line = deps
            .lines()
            .find(|l| {
                l.split(':').next().is_some_and(|f| {
                    let name = f.rsplit('/').next().unwrap_or(f);
                    name == format!("{module}.ko") || name.starts_with(&format!("{module}.ko."))
                })
            })
            .unwrap_or_else(|| panic!("module {module} not in modules.dep of {version}"));
        for file in line.split([':', ' ']).filter(|f| !f.is_empty()) {
            let dst = target.join(file);
            fs::create_dir_all(dst.parent().expect("module dir")).expect("create module dir");
            fs::copy(km.join(file), &dst).unwrap_or_else(|e| panic!("copy module {file}: {e}"));
        }
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        fs::copy(km.join(f), target.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    let mut cmd = Command::new("depmod");
    cmd.arg("-b").arg(root).arg(version);
    run_ok("depmod (initramfs)", cmd, STEP_TIMEOUT);

    // busybox cpio (the host's busybox-static, it runs anywhere) reads the file list on stdin.
    let mut list = Vec::new();
    list_tree(root, Path::new("."), &mut list);
    let list_file = root.with_extension("list");
    fs::write(&list_file, list.join("\n") + "\n").expect("write cpio list");
    let mut cmd = Command::new(&busybox);
    cmd.args(["cpio", "-o", "-H", "newc", "-R", "0:0"])
        .current_dir(root)
        .stdin(fs::File::open(&list_file).expect("open cpio list"));
    // run_bounded sets stdin to null: run this one directly.
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("busybox cpio: {e}"));
    assert!(
        out.status.success(),
        "busybox cpio: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(cpio, out.stdout).unwrap_or_else(|e| panic!("write {}: {e}", cpio.display()));
}

/// Every path under `base/rel`, relative, directories before their contents, sorted.
fn list_tree(base: &Path, rel: &Path, out: &mut Vec<String>) {
    out.push(rel.display().to_string());
    let full = base.join(rel);
    let meta = fs::symlink_metadata(&full).expect("stat initrd path");
    if !meta.is_dir() {
        return;
    }
    let mut names: Vec<_> = fs::read_dir(&full)
        .expect("read initrd dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        list_tree(base, &rel.join(name), out);
    }
}

/// The Debian release of this host (`VERSION_CODENAME`): the rootfs matches it, so a binary
/// built here runs there.
fn host_codename() -> String {
    let text = fs::read_to_string("/etc/os-release").expect("read /etc/os-release");
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .expect("/etc/os-release has no VERSION_CODENAME")
}

/// Files under `dir` (relative path, contents), sorted: the overlay's part of the cache key.
fn tree_files(dir: &Path, rel: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = fs::read_dir(dir.join(rel))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(rel).display()))
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        if entry.path().is_dir() {
            tree_files(dir, &rel, out);
        } else {
            let bytes = fs::read(entry.path()).expect("read overlay file");
            out.push((rel.display().to_string(), bytes));
        }
    }
}

/// The systemd rootfs image (ext4, raw), built once per Debian release and inputs. Boot it
/// with `snapshot=on` ([`VmOptions::rootfs`] does): the cached image is never written.
pub fn systemd_rootfs() -> PathBuf {
    let cache = cache_dir();
    let _lock = CacheLock::acquire(&cache);
    let codename = host_codename();
    let overlay = vm_source_dir().join("rootfs");
    let mut files = Vec::new();
    tree_files(&overlay, Path::new(""), &mut files);
    let mut hash = Fnv::new()
        .add(BUILD_REVISION.as_bytes())
        .add(codename.as_bytes())
        .add(ROOTFS_PACKAGES.as_bytes());
    for (name, bytes) in &files {
        hash = hash.add(name.as_bytes()).add(bytes);
    }
    let image = cache.join(format!("rootfs-{codename}-{}.img", hash.hex()));
    if image.is_file() {
        return image;
    }
    let build = BuildDir::new(&cache, "rootfs");
    let tree = build.0.join("rootfs.d");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["-q", "--mode=root", "--variant=minbase"])
        .arg(format!("--include={ROOTFS_PACKAGES}"))
        .args([
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
        ])
        .arg(format!(
            "--customize-hook=cp -a '{}'/. \"$1\"/ && mkdir -p \"$1\"/mnt/host",
            overlay.display()
        ))
        .arg("--customize-hook=systemctl --root=\"$1\" enable bbwd-vmtest.service")
        .arg("--customize-hook=rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/*")
        .arg(&codename)
        .arg(&tree);
    run_ok("mmdebstrap (systemd rootfs)", cmd, ROOTFS_TIMEOUT);
    let tmp_image = build.0.join("rootfs.img");
    let mut cmd = Command::new("mke2fs");
    cmd.args(["-q", "-t", "ext4", "-L", "root", "-d"])
        .arg(&tree)
        .arg(&tmp_image)
        .arg(ROOTFS_SIZE);
    run_ok("mke2fs -d (systemd rootfs)", cmd, STEP_TIMEOUT);
    fs::rename(&tmp_image, &image)
        .unwrap_or_else(|e| panic!("rename rootfs to {}: {e}", image.display()));
    remove_siblings(&cache, "rootfs-", &image);
    image
}

// ---------------------------------------------------------------------------------------------
// The share

/// The folder a guest mounts at `/mnt/host` (inside a [`TestDir`], removed with it).
pub struct Share {
    dir: TestDir,
}

impl Share {
    pub fn new(name: &str) -> Share {
        let dir = TestDir::new(name);
        for d in ["share/sysroot", "share/out"] {
            fs::create_dir_all(dir.join(d)).expect("create share dirs");
        }
        Share { dir }
    }

    /// The shared folder itself.
    pub fn path(&self) -> PathBuf {
        self.dir.join("share")
    }

    /// The test directory around it (QMP socket, console log).
    pub fn test_dir(&self) -> &TestDir {
        &self.dir
    }

    /// A file the guest wrote to `/mnt/host/out/<rel>`.
    pub fn out(&self, rel: &str) -> PathBuf {
        self.path().join("out").join(rel)
    }

    /// `/mnt/host/out/<rel>` as text (empty if missing).
    pub fn out_text(&self, rel: &str) -> String {
        fs::read_to_string(self.out(rel)).unwrap_or_default()
    }

    /// Writes `/mnt/host/<rel>`.
    pub fn write(&self, rel: &str, contents: &[u8]) {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create share subdir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Copies `src` to `/mnt/host/<rel>`.
    pub fn copy(&self, src: &Path, rel: &str) {
        let bytes = fs::read(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
        self.write(rel, &bytes);
    }

    /// Puts a file at `guest_path` in the guest's root (through `sysroot/`), with `mode`.
    pub fn install(&self, src: &Path, guest_path: &str, mode: u32) {
        let rel = format!("sysroot/{}", guest_path.trim_start_matches('/'));
        self.copy(src, &rel);
        fs::set_permissions(self.path().join(&rel), fs::Permissions::from_mode(mode))
            .expect("chmod sysroot file");
    }

    /// Installs a host binary at `guest_path` together with the shared libraries `ldd` names
    /// (at the same paths: the busybox guest has no libc of its own).
    pub fn install_binary_with_libs(&self, src: &Path, guest_path: &str) {
        self.install(src, guest_path, 0o755);
        let mut cmd = Command::new("ldd");
        cmd.arg(src);
        let out = run_ok(&format!("ldd {}", src.display()), cmd, STEP_TIMEOUT);
        for line in String::from_utf8_lossy(&out).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
            let lib = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
                self.install(Path::new(lib), lib, 0o755);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The guest

/// One console line as the host received it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

/// One QMP event as the host received it.
#[derive(Debug, Clone)]
pub struct QmpEvent {
    pub at: Instant,
    /// `WATCHDOG`, `SHUTDOWN`, `RESET`, ...
    pub name: String,
    pub data: Value,
}

/// How to start a guest.
#[derive(Debug, Clone)]
pub struct VmOptions {
    pub memory_mib: u32,
    pub cpus: u32,
    /// Add `-device i6300esb` with `-action watchdog=reset`.
    pub i6300esb: bool,
    /// Boot this ext4 image as `/dev/vda` (read-only: `snapshot=on`) with systemd as PID 1.
    pub rootfs: Option<PathBuf>,
    /// Extra kernel command line.
    pub append: String,
    /// User-mode networking (qemu's slirp, `-nic user` with a virtio NIC): the guest's `eth0`
    /// gets this `address/prefix` (set by the initramfs before systemd starts, so nothing in
    /// the guest configures it), and reaches the host's 127.0.0.1 as 10.0.2.2 (slirp's host
    /// address; UDP and TCP). `None`: no NIC at all. Slirp also routes to the outside, but the
    /// guest gets no default route: only 10.0.2.0/24 is reachable. systemd guests only.
    pub user_net: Option<String>,
}

impl VmOptions {
    /// The busybox guest: 1 CPU, 512 MiB (the initramfs holds the host's debug binaries).
    pub fn busybox() -> VmOptions {
        VmOptions {
            memory_mib: 512,
            cpus: 1,
            i6300esb: false,
            rootfs: None,
            append: String::new(),
            user_net: None,
        }
    }

    /// The systemd guest on `rootfs`: 2 CPUs, 768 MiB, the boot-time masks.
    pub fn systemd(rootfs: PathBuf) -> VmOptions {
        let masks: Vec<String> = SYSTEMD_MASKS
            .iter()
            .map(|u| format!("systemd.mask={u}"))
            .collect();
        VmOptions {
            memory_mib: 768,
            cpus: 2,
            i6300esb: false,
            rootfs: Some(rootfs),
            append: format!(
                "systemd.show_status=1 systemd.getty_auto=0 {}",
                masks.join(" ")
            ),
            user_net: None,
        }
    }
}

/// A running qemu guest. Killed (by PID) and reaped on drop.
pub struct Vm {
    child: Option<Child>,
    console: Arc<Mutex<Vec<Line>>>,
    events: Arc<Mutex<Vec<QmpEvent>>>,
    threads: Vec<JoinHandle<()>>,
    console_log: PathBuf,
    /// When the guest was let run (QMP connected).
    pub started: Instant,
}

impl Vm {
    /// Starts qemu on `kernel` with `share` at `/mnt/host` and waits until its QMP socket is
    /// connected (qemu holds the guest until then).
    pub fn start(kernel: &Kernel, share: &Share, opts: &VmOptions) -> Vm {
        let dir = share.test_dir();
        let qmp_path = dir.join("qmp.sock");
        let console_log = dir.join("console.log");
        let mode = if opts.rootfs.is_some() {
            "systemd"
        } else {
            "busybox"
        };
        let wd = if opts.i6300esb { "i6300esb" } else { "none" };
        assert!(
            opts.user_net.is_none() || opts.rootfs.is_some(),
            "user_net is for systemd guests only (the busybox init does not configure it)"
        );
        let net = opts
            .user_net
            .as_ref()
            .map(|a| format!(" bbwd.net={a}"))
            .unwrap_or_default();
        let mut cmd = Command::new(QEMU);
        cmd.args(["-accel", "tcg", "-nodefaults", "-no-user-config"])
            .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
            .args(["-m", &opts.memory_mib.to_string()])
            .args(["-smp", &opts.cpus.to_string()])
            .args(["-bios", QBOOT])
            .arg("-kernel")
            .arg(&kernel.vmlinux)
            .arg("-initrd")
            .arg(&kernel.initrd)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 quiet panic=-1 bbwd.mode={mode} bbwd.wd={wd}{net} {}",
                opts.append
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=hostshare,security_model=none,id=hs",
                share.path().display()
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=on", qmp_path.display()));
        if opts.i6300esb {
            cmd.args(["-device", "i6300esb", "-action", "watchdog=reset"]);
        }
        if opts.user_net.is_some() {
            cmd.args(["-nic", "user,model=virtio-net-pci"]);
        }
        if let Some(rootfs) = &opts.rootfs {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,snapshot=on",
                rootfs.display()
            ));
        }
        let stderr = fs::File::create(dir.join("qemu.stderr")).expect("create qemu.stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {QEMU}: {e}"));
        let stdout = child.stdout.take().expect("qemu stdout");
        let mut vm = Vm {
            child: Some(child),
            console: Arc::new(Mutex::new(Vec::new())),
            events: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
            console_log: console_log.clone(),
            started: Instant::now(),
        };
        let console = vm.console.clone();
        vm.threads.push(std::thread::spawn(move || {
            read_console(stdout, &console, &console_log)
        }));
        let stream = vm.connect_qmp(&qmp_path, &dir.join("qemu.stderr"));
        let events = vm.events.clone();
        vm.threads
            .push(std::thread::spawn(move || read_qmp(stream, &events)));
        vm.started = Instant::now();
        vm
    }

    fn connect_qmp(&mut self, path: &Path, stderr: &Path) -> UnixStream {
        let deadline = Instant::now() + QMP_CONNECT_TIMEOUT;
        loop {
            if let Ok(mut stream) = UnixStream::connect(path) {
                // The greeting, then capabilities negotiation; events follow.
                let mut reader = BufReader::new(stream.try_clone().expect("dup QMP socket"));
                let mut greeting = String::new();
                let _ = reader.read_line(&mut greeting);
                stream
                    .write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
                    .expect("QMP qmp_capabilities");
                return stream;
            }
            let exited = self.try_exit().is_some();
            if exited || Instant::now() >= deadline {
                panic!(
                    "qemu QMP socket {} not available (qemu {}):\n{}",
                    path.display(),
                    if exited { "exited" } else { "still running" },
                    fs::read_to_string(stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(VM_POLL);
        }
    }

    /// qemu's PID (while not reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Console lines so far.
    pub fn lines(&self) -> Vec<Line> {
        self.console.lock().expect("console lock").clone()
    }

    /// QMP events so far.
    pub fn events(&self) -> Vec<QmpEvent> {
        self.events.lock().expect("events lock").clone()
    }

    /// QMP events named `name` so far.
    pub fn events_named(&self, name: &str) -> Vec<QmpEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.name == name)
            .collect()
    }

    /// The first console line containing `needle`, waiting up to `timeout` (less if qemu
    /// exits first).
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> Option<Line> {
        self.wait(timeout, |vm| {
            vm.lines().into_iter().find(|l| l.text.contains(needle))
        })
    }

    /// The first QMP event named `name`, waiting up to `timeout` (less if qemu exits first).
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Option<QmpEvent> {
        self.wait(timeout, |vm| vm.events_named(name).into_iter().next())
    }

    /// qemu's exit status, waiting up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(VM_POLL);
        }
    }

    fn wait<T>(&mut self, timeout: Duration, mut found: impl FnMut(&Vm) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = found(self) {
                return Some(t);
            }
            if self.try_exit().is_some() {
                // The readers may still hold the last lines: one more look after they end.
                self.join_readers();
                return found(self);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(VM_POLL);
        }
    }

    /// Whether qemu has exited (reaps it); remembers the status.
    fn try_exit(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Whether qemu is still running.
    pub fn running(&mut self) -> bool {
        self.try_exit();
        self.child.is_some()
    }

    fn join_readers(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The console (last `lines` lines) and QMP events, for panic messages.
    pub fn diagnostics(&self, lines: usize) -> String {
        let mut out = String::new();
        let text = fs::read_to_string(&self.console_log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        let _ = writeln!(out, "--- guest console (last {lines} lines) ---");
        for l in &all[from..] {
            let _ = writeln!(out, "{l}");
        }
        let _ = writeln!(out, "--- QMP events ---");
        for e in self.events() {
            let _ = writeln!(
                out,
                "[{:8.3}] {} {}",
                e.at.saturating_duration_since(self.started).as_secs_f64(),
                e.name,
                e.data
            );
        }
        out
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill is kill(pid, SIGKILL) on this child only.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_readers();
    }
}

/// Console reader: timestamps each line, keeps it, and appends it to `log`.
fn read_console(stdout: impl Read, lines: &Mutex<Vec<Line>>, log: &Path) {
    let mut file = fs::File::create(log).ok();
    let started = Instant::now();
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at = Instant::now();
        let text = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if let Some(f) = file.as_mut() {
            let _ = writeln!(
                f,
                "[{:8.3}] {text}",
                at.saturating_duration_since(started).as_secs_f64()
            );
        }
        lines.lock().expect("console lock").push(Line { at, text });
    }
}

/// QMP reader: keeps every `{"event": ...}` with the time it arrived.
fn read_qmp(stream: UnixStream, events: &Mutex<Vec<QmpEvent>>) {
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let at = Instant::now();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(name) = v["event"].as_str() {
            events.lock().expect("events lock").push(QmpEvent {
                at,
                name: name.to_string(),
                data: v["data"].clone(),
            });
        }
    }
}

/// `key=value` lines (the guest scripts' result files) as pairs, in order.
pub fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
