//! `viptool`: drives `bbwd_platform::vip` from the command line, inside a network namespace
//! (`ip netns exec NS viptool ...`), for the root tests in `tests/tests/vip_netns.rs` and for
//! `bench vip` (`tests/src/bench/vip.rs`). Also a receiver (`listen`) that timestamps announcement frames in the
//! kernel (`SO_TIMESTAMPNS`, CLOCK_REALTIME: shared by all namespaces) for the bench.
//!
//! Must not: decide anything bbwd decides, or touch any namespace but the one it runs in.
//! Every command is bounded in time; output is one line per result, for scripts.
//!
//! ```text
//! viptool add      IF ADDR/PREFIX              -> added | already-held
//! viptool remove   IF ADDR/PREFIX              -> removed | already-gone
//! viptool held     IF ADDR/PREFIX              -> held | not-held
//! viptool announce IF ADDR/PREFIX COUNT GAP_MS -> sent COUNT
//! viptool probe    IF ADDR/PREFIX WINDOW_MS    -> free | conflict MAC
//! viptool watch    IF ADDR/PREFIX TIMEOUT_MS   -> ready, then removed | timeout (exit 1)
//! viptool takeover IF ADDR/PREFIX RUNS GAP_MS  -> per run: T0_NS T1_NS (add + first announcement)
//! viptool listen   IF ADDR TIMEOUT_MS MAX      -> ready, then RX_NS per announcement seen
//! ```
//! Exit status: 0 done, 1 a negative outcome (`timeout`), 2 usage, 3 an operation failed.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bbwd_platform::poll::{PollSet, Want};
use bbwd_platform::vip::{Added, ProbeOutcome, Removed, Vip};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&argv) {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("viptool: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Op(msg)) => {
            eprintln!("viptool: {msg}");
            ExitCode::from(3)
        }
    }
}

enum Failure {
    Usage(String),
    Op(String),
}

impl From<bbwd_platform::vip::VipError> for Failure {
    fn from(e: bbwd_platform::vip::VipError) -> Self {
        Failure::Op(e.to_string())
    }
}

fn usage(what: &str) -> Failure {
    Failure::Usage(format!(
        "{what} (see the doc comment of tests/src/bin/viptool.rs)"
    ))
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8), Failure> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| usage("address must be ADDR/PREFIX"))?;
    let addr = a.parse().map_err(|_| usage("bad address"))?;
    let prefix = p.parse().map_err(|_| usage("bad prefix length"))?;
    Ok((addr, prefix))
}

fn number(s: Option<&&str>, what: &str) -> Result<u64, Failure> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| usage(&format!("missing or bad {what}")))
}

fn realtime_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn run(argv: &[&str]) -> Result<ExitCode, Failure> {
    let (&cmd, rest) = argv.split_first().ok_or_else(|| usage("missing command"))?;
    let interface = *rest.first().ok_or_else(|| usage("missing interface"))?;
    if cmd == "listen" {
        let addr: IpAddr = rest
            .get(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| usage("missing or bad address"))?;
        let timeout = Duration::from_millis(number(rest.get(2), "timeout")?);
        let max = number(rest.get(3), "count")?;
        return listen(interface, addr, timeout, max);
    }
    let (addr, prefix) = parse_cidr(rest.get(1).ok_or_else(|| usage("missing address"))?)?;
    let mut vip = Vip::open(interface, addr, prefix)?;
    match cmd {
        "add" => {
            println!(
                "{}",
                match vip.add()? {
                    Added::Added => "added",
                    Added::AlreadyHeld => "already-held",
                }
            );
        }
        "remove" => {
            println!(
                "{}",
                match vip.remove()? {
                    Removed::Removed => "removed",
                    Removed::AlreadyGone => "already-gone",
                }
            );
        }
        "held" => println!("{}", if vip.held()? { "held" } else { "not-held" }),
        "announce" => {
            let count = number(rest.get(2), "count")?;
            let gap = Duration::from_millis(number(rest.get(3), "gap")?);
            for i in 0..count {
                if i > 0 {
                    std::thread::sleep(gap);
                }
                vip.send_announcement()?;
            }
            println!("sent {count}");
        }
        "probe" => {
            let window = Duration::from_millis(number(rest.get(2), "window")?);
            let outcome = probe(&mut vip, window)?;
            match outcome {
                ProbeOutcome::Free => println!("free"),
                ProbeOutcome::Conflict { mac } => println!("conflict {mac}"),
            }
        }
        "watch" => {
            let timeout = Duration::from_millis(number(rest.get(2), "timeout")?);
            return watch(&vip, timeout);
        }
        "takeover" => {
            let runs = number(rest.get(2), "runs")?;
            let gap = Duration::from_millis(number(rest.get(3), "gap")?);
            for _ in 0..runs {
                vip.remove()?;
                std::thread::sleep(gap);
                // The measured path: what the daemon does with its sockets already open.
                let t0 = realtime_ns();
                vip.add()?;
                vip.send_announcement()?;
                let t1 = realtime_ns();
                println!("{t0} {t1}");
            }
            vip.remove()?;
        }
        other => return Err(usage(&format!("unknown command {other}"))),
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon's way: poll the probe's fd until its deadline, advance on readiness and at the end.
fn probe(vip: &mut Vip, window: Duration) -> Result<ProbeOutcome, Failure> {
    vip.start_probe(Instant::now(), window)?;
    let mut set = PollSet::new();
    loop {
        let now = Instant::now();
        if let Some(result) = vip.advance_probe(now) {
            return Ok(result?);
        }
        let deadline = vip
            .probe_deadline()
            .ok_or_else(|| Failure::Op("probe vanished".into()))?;
        set.clear();
        let fd = vip
            .probe_fd()
            .ok_or_else(|| Failure::Op("probe vanished".into()))?;
        set.add(fd, Want::Read);
        set.wait(Some(deadline.saturating_duration_since(now)))
            .map_err(|e| Failure::Op(format!("poll: {e}")))?;
    }
}

fn watch(vip: &Vip, timeout: Duration) -> Result<ExitCode, Failure> {
    let mut watch = vip.watch()?;
    println!("ready");
    let deadline = Instant::now() + timeout;
    let mut set = PollSet::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            println!("timeout");
            return Ok(ExitCode::from(1));
        }
        set.clear();
        set.add(watch.fd(), Want::Read);
        set.wait(Some(deadline - now))
            .map_err(|e| Failure::Op(format!("poll: {e}")))?;
        let report = watch.read()?;
        if report.added {
            println!("added");
        }
        if report.overrun {
            println!("overrun");
        }
        if report.removed {
            println!("removed");
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Prints the kernel receive timestamp (CLOCK_REALTIME, ns) of each gratuitous ARP (sender IP =
/// target IP = `addr`) or unsolicited NA (target = `addr`) arriving on `interface`.
fn listen(interface: &str, addr: IpAddr, timeout: Duration, max: u64) -> Result<ExitCode, Failure> {
    let op = |what: &str| {
        Failure::Op(format!(
            "listen {what}: {}",
            std::io::Error::last_os_error()
        ))
    };
    let ethertype: u16 = if addr.is_ipv4() { 0x0806 } else { 0x86DD };
    let name = std::ffi::CString::new(interface).map_err(|_| usage("bad interface"))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(op("if_nametoindex"));
    }
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ethertype.to_be()),
        )
    };
    if raw < 0 {
        return Err(op("socket"));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is initialised and its size is passed.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    } < 0
    {
        return Err(op("bind"));
    }
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int of the size passed.
    if unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } < 0
    {
        return Err(op("SO_TIMESTAMPNS"));
    }
    println!("ready");
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    let mut frame = [0u8; 256];
    let mut control = [0u64; 16];
    let mut set = PollSet::new();
    while seen < max {
        let now = Instant::now();
        if now >= deadline {
            println!("timeout");
            return Ok(ExitCode::from(1));
        }
        set.clear();
        // SAFETY: `fd` outlives the borrow (it lives until the end of this function).
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        let token = set.add(borrowed, Want::Read);
        set.wait(Some(deadline - now))
            .map_err(|e| Failure::Op(format!("poll: {e}")))?;
        if !set.ready(token).any() {
            continue;
        }
        let mut iov = libc::iovec {
            iov_base: frame.as_mut_ptr().cast(),
            iov_len: frame.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` describes buffers valid for writes of their stated lengths.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            continue;
        }
        let f = &frame[..(n as usize).min(frame.len())];
        if !is_announcement(f, addr) {
            continue;
        }
        let mut stamp = None;
        // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                    let ts: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    stamp = Some(ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        println!("{}", stamp.unwrap_or_else(realtime_ns));
        seen += 1;
    }
    Ok(ExitCode::SUCCESS)
}

fn is_announcement(f: &[u8], addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            f.len() >= 42
                && f[12..14] == [0x08, 0x06]
                && f[20..22] == [0, 1]
                && f[28..32] == a.octets()
                && f[38..42] == a.octets()
        }
        IpAddr::V6(a) => {
            f.len() >= 78
                && f[12..14] == [0x86, 0xdd]
                && f[20] == 58
                && f[54] == 136
                && f[62..78] == a.octets()
        }
    }
}
