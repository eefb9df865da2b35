//! Reachability of the `[cluster] witness` address by ICMP echo ("ping"): a node that can reach
//! neither its peer nor the witness is the isolated one.
//!
//! # What this file owns
//! [`Witness`]: one raw ICMP socket (`IPPROTO_ICMP` for an IPv4 witness, `IPPROTO_ICMPV6` for
//! IPv6; bbwd runs as root), opened once at [`Witness::new`], non-blocking, with a kernel filter
//! that lets only echo replies through. One probe at a time: [`Witness::start`] sends one echo
//! request carrying our identifier, a fresh sequence number and a per-instance random token;
//! [`Witness::advance`] reads replies until ours arrives (true) or the deadline passes (false).
//!
//! # What it must not do
//! Decide. Whether the node is isolated is the caller's conclusion from this answer and the
//! heartbeat; when and how often to probe is the caller's timing. Nothing here blocks: the
//! socket is non-blocking and the caller polls [`Witness::fd`] until [`Witness::deadline`].
//!
//! # How the caller uses it
//! ```text
//!   Witness::new(addr)            (once, at start-up: fails without CAP_NET_RAW)
//!   start(now, timeout) ──► poll fd() until deadline() ──► advance(now)
//!        │                                                   ├─ Some(true)  our reply arrived
//!        │ send refused (no route, ...) ──► deadline = now   ├─ Some(false) timeout / send refused
//!        │                                                   └─ None        keep waiting
//! ```
//!
//! # Invariants
//! * Only a reply to the probe in flight counts: echo reply type, from the witness address, with
//!   our identifier, the current sequence number and our token in the payload. A raw socket sees
//!   every echo reply reaching the host (other pings, our own earlier, timed-out probes): all
//!   those are read and dropped.
//! * At most one probe in flight; a new `start` abandons the previous one (its late reply no
//!   longer matches the sequence number).
//! * No allocation after `new`: the request and the receive buffer are fixed arrays.
//! * Every `unsafe` block carries a `SAFETY:` comment.
//!
//! A link-local IPv6 witness (`fe80::/10`) would need a scope id the config does not carry:
//! use a global or unique-local address.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    recvfrom, sendto, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn, SockaddrIn6, SockaddrLike, SockaddrStorage,
};

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
/// ICMP header (type, code, checksum, identifier, sequence) + our 8-byte token + 8 bytes of
/// padding (a 24-byte echo: small, and like what ping sends minus the timestamp).
const ECHO_BYTES: usize = 24;
const TOKEN_OFFSET: usize = 8;
/// Largest reply prefix we look at: an IPv4 header (at most 60 bytes) + our echo. Longer
/// datagrams are cut (they cannot be our reply anyway).
const RECV_BUF_BYTES: usize = 128;
/// `setsockopt(SOL_RAW, ICMP_FILTER)`: a bit mask of ICMP types the kernel drops (linux/icmp.h).
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
/// `setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER)`: 256 bits, a set bit blocks that type
/// (linux/icmpv6.h).
const ICMP6_FILTER: libc::c_int = 1;

/// Distinguishes several `Witness` instances in one process (tests; a daemon has one).
static INSTANCE: AtomicU16 = AtomicU16::new(0);

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessOp {
    /// Opening the raw socket (needs CAP_NET_RAW) or setting its filter.
    Open,
}

/// A witness error, naming the operation and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessError {
    pub op: WitnessOp,
    pub address: IpAddr,
    pub errno: Errno,
}

impl fmt::Display for WitnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            WitnessOp::Open => write!(
                f,
                "cannot open a raw ICMP socket to probe witness {}: {} (bbwd needs CAP_NET_RAW)",
                self.address,
                self.errno.desc()
            ),
        }
    }
}

impl std::error::Error for WitnessError {}

struct Probe {
    deadline: Instant,
    /// Already decided (the send was refused): reported by the next `advance`.
    answer: Option<bool>,
}

/// Probes one witness address: see the module doc.
pub struct Witness {
    address: IpAddr,
    socket: OwnedFd,
    ident: u16,
    seq: u16,
    token: [u8; 8],
    request: [u8; ECHO_BYTES],
    buf: [u8; RECV_BUF_BYTES],
    probe: Option<Probe>,
    last_error: Option<Errno>,
    ignored: u64,
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witness")
            .field("address", &self.address)
            .field("ident", &self.ident)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens the raw socket for `address`. Fails without CAP_NET_RAW.
    pub fn new(address: IpAddr) -> Result<Witness, WitnessError> {
        let fail = |errno| WitnessError {
            op: WitnessOp::Open,
            address,
            errno,
        };
        let (family, protocol) = match address {
            IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp),
            IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6),
        };
        let socket = socket(
            family,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            protocol,
        )
        .map_err(fail)?;
        set_reply_filter(&socket, address.is_ipv4()).map_err(fail)?;
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let ident = (std::process::id() as u16) ^ instance.rotate_left(8);
        // A random 64-bit value (std's per-process random hash keys): a reply must echo it, so
        // a stranger's echo reply that happens to reuse our identifier cannot pass for ours.
        let token = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            .to_ne_bytes();
        let mut request = [0u8; ECHO_BYTES];
        request[0] = if address.is_ipv4() {
            ICMP_ECHO_REQUEST
        } else {
            ICMPV6_ECHO_REQUEST
        };
        request[4..6].copy_from_slice(&ident.to_be_bytes());
        request[TOKEN_OFFSET..TOKEN_OFFSET + 8].copy_from_slice(&token);
        Ok(Witness {
            address,
            socket,
            ident,
            seq: 0,
            token,
            request,
            buf: [0u8; RECV_BUF_BYTES],
            probe: None,
            last_error: None,
            ignored: 0,
        })
    }

    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Sends one echo request; the answer comes from [`advance`](Self::advance) by
    /// `now + timeout`. Abandons a probe still in flight. A refused send (no route, network
    /// down) makes the probe fail at once (`deadline()` is `now`); its errno is kept in
    /// [`last_error`](Self::last_error).
    pub fn start(&mut self, now: Instant, timeout: Duration) {
        self.drain();
        self.seq = self.seq.wrapping_add(1);
        self.request[6..8].copy_from_slice(&self.seq.to_be_bytes());
        self.last_error = None;
        let sent = match self.address {
            IpAddr::V4(a) => {
                self.request[2..4].copy_from_slice(&[0, 0]);
                let sum = internet_checksum(&self.request);
                self.request[2..4].copy_from_slice(&sum.to_be_bytes());
                let to = SockaddrIn::from(SocketAddrV4::new(a, 0));
                send_all(self.socket.as_raw_fd(), &self.request, &to)
            }
            IpAddr::V6(a) => {
                // The kernel fills in the ICMPv6 checksum (mandatory for ICMPv6 raw sockets).
                let to = SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0));
                send_all(self.socket.as_raw_fd(), &self.request, &to)
            }
        };
        self.probe = Some(match sent {
            Ok(()) => Probe {
                deadline: now + timeout,
                answer: None,
            },
            Err(e) => {
                self.last_error = Some(e);
                Probe {
                    deadline: now,
                    answer: Some(false),
                }
            }
        });
    }

    /// The socket, to poll for readability, while a probe is in flight.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.probe {
            Some(Probe { answer: None, .. }) => Some(self.socket.as_fd()),
            _ => None,
        }
    }

    /// When the probe in flight times out (or, decided already, when it was decided).
    pub fn deadline(&self) -> Option<Instant> {
        self.probe.as_ref().map(|p| p.deadline)
    }

    /// Whether a probe is in flight.
    pub fn in_flight(&self) -> bool {
        self.probe.is_some()
    }

    /// The reason of the last refused send or failed receive, for the caller's event detail.
    pub fn last_error(&self) -> Option<Errno> {
        self.last_error
    }

    /// Echo replies read during probes that were not ours (other pings, late replies), since
    /// `new`.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Reads the pending replies. `Some(true)`: our reply arrived; `Some(false)`: the deadline
    /// has passed (or the send was refused) without it; `None`: keep waiting (or no probe).
    pub fn advance(&mut self, now: Instant) -> Option<bool> {
        let probe = self.probe.as_ref()?;
        if let Some(answer) = probe.answer {
            self.probe = None;
            return Some(answer);
        }
        let deadline = probe.deadline;
        loop {
            let received = recvfrom::<SockaddrStorage>(self.socket.as_raw_fd(), &mut self.buf);
            let (len, from) = match received {
                Ok(r) => r,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    // Not expected on an unconnected raw socket; keep waiting for the deadline.
                    self.last_error = Some(e);
                    break;
                }
            };
            let from = from.and_then(|f| source_ip(&f));
            let len = len.min(self.buf.len());
            if from == Some(self.address)
                && is_our_reply(
                    &self.buf[..len],
                    self.address.is_ipv4(),
                    self.ident,
                    self.seq,
                    &self.token,
                )
            {
                self.probe = None;
                return Some(true);
            }
            self.ignored += 1;
        }
        if now >= deadline {
            self.probe = None;
            return Some(false);
        }
        None
    }

    /// Discards whatever queued up while no probe was in flight.
    fn drain(&mut self) {
        loop {
            match recvfrom::<SockaddrStorage>(self.socket.as_raw_fd(), &mut self.buf) {
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }
}

fn send_all(fd: libc::c_int, request: &[u8], to: &dyn SockaddrLike) -> Result<(), Errno> {
    loop {
        match sendto(fd, request, to, MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n == request.len() => return Ok(()),
            Ok(_) => return Err(Errno::EMSGSIZE),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether `packet` (IPv4: with its IP header, as raw IPv4 sockets deliver; IPv6: the ICMPv6
/// message alone) is the echo reply to our request `seq`. No allocation.
fn is_our_reply(packet: &[u8], ipv4: bool, ident: u16, seq: u16, token: &[u8; 8]) -> bool {
    let (icmp, reply_type) = if ipv4 {
        let Some(&first) = packet.first() else {
            return false;
        };
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < 20 || packet.len() < header_len {
            return false;
        }
        (&packet[header_len..], ICMP_ECHO_REPLY)
    } else {
        (packet, ICMPV6_ECHO_REPLY)
    };
    icmp.len() >= TOKEN_OFFSET + 8
        && icmp[0] == reply_type
        && icmp[1] == 0
        && icmp[4..6] == ident.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && icmp[TOKEN_OFFSET..TOKEN_OFFSET + 8] == token[..]
}

fn source_ip(from: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = from.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    from.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// RFC 1071 checksum.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = match pair {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Lets only echo replies reach the socket (fewer wake-ups from unrelated ICMP traffic).
fn set_reply_filter(socket: &OwnedFd, ipv4: bool) -> Result<(), Errno> {
    let rc = if ipv4 {
        let blocked: u32 = !(1u32 << ICMP_ECHO_REPLY);
        // SAFETY: `blocked` is a live u32 and the length passed is its size, as ICMP_FILTER
        // expects (struct icmp_filter { __u32 data; }).
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                SOL_RAW,
                ICMP_FILTER,
                (&blocked as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        }
    } else {
        let mut blocked = [u32::MAX; 8];
        let t = usize::from(ICMPV6_ECHO_REPLY);
        blocked[t >> 5] &= !(1u32 << (t & 31));
        // SAFETY: `blocked` is a live [u32; 8] (struct icmp6_filter { __u32 data[8]; }) and the
        // length passed is its size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                blocked.as_ptr().cast(),
                std::mem::size_of_val(&blocked) as libc::socklen_t,
            )
        }
    };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::{available, NetNs};
    use nix::poll::{PollFd, PollFlags, PollTimeout};

    const TOKEN: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn echo(kind: u8, ident: u16, seq: u16, token: &[u8; 8]) -> [u8; ECHO_BYTES] {
        let mut e = [0u8; ECHO_BYTES];
        e[0] = kind;
        e[4..6].copy_from_slice(&ident.to_be_bytes());
        e[6..8].copy_from_slice(&seq.to_be_bytes());
        e[TOKEN_OFFSET..TOKEN_OFFSET + 8].copy_from_slice(token);
        e
    }

    fn with_ipv4_header(icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[9] = 1;
        p.extend_from_slice(icmp);
        p
    }

    #[test]
    fn only_the_reply_to_our_probe_matches() {
        let ours = echo(ICMP_ECHO_REPLY, 7, 9, &TOKEN);
        assert!(is_our_reply(&with_ipv4_header(&ours), true, 7, 9, &TOKEN));
        for other in [
            echo(ICMP_ECHO_REQUEST, 7, 9, &TOKEN), // our own request, looped back
            echo(ICMP_ECHO_REPLY, 8, 9, &TOKEN),   // someone else's ping
            echo(ICMP_ECHO_REPLY, 7, 8, &TOKEN),   // our earlier, timed-out probe
            echo(ICMP_ECHO_REPLY, 7, 9, &[0; 8]),  // a stranger reusing our identifier
        ] {
            assert!(!is_our_reply(&with_ipv4_header(&other), true, 7, 9, &TOKEN));
        }
        // Truncated, empty, not IPv4, a header length beyond the packet: no panic, no match.
        let full = with_ipv4_header(&ours);
        // (The 8 padding bytes after the token do not matter.)
        for cut in 0..20 + TOKEN_OFFSET + 8 {
            assert!(!is_our_reply(&full[..cut], true, 7, 9, &TOKEN));
        }
        let mut bad = full.clone();
        bad[0] = 0x4f;
        assert!(!is_our_reply(&bad, true, 7, 9, &TOKEN));
        bad[0] = 0x65;
        assert!(!is_our_reply(&bad, true, 7, 9, &TOKEN));
        // IPv6: no IP header in front, reply type 129.
        let v6 = echo(ICMPV6_ECHO_REPLY, 7, 9, &TOKEN);
        assert!(is_our_reply(&v6, false, 7, 9, &TOKEN));
        assert!(!is_our_reply(&v6, true, 7, 9, &TOKEN));
        assert!(!is_our_reply(&ours, false, 7, 9, &TOKEN));
    }

    #[test]
    fn checksum_verifies_to_zero_and_matches_a_known_packet() {
        let mut req = echo(ICMP_ECHO_REQUEST, 0x1234, 1, &TOKEN);
        let sum = internet_checksum(&req);
        req[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(internet_checksum(&req), 0);
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(internet_checksum(&[0xff]), 0x00ff);
    }

    /// The event loop in miniature: poll the socket until the deadline, then advance.
    fn probe(w: &mut Witness, timeout: Duration) -> bool {
        w.start(Instant::now(), timeout);
        assert!(w.in_flight());
        let give_up = Instant::now() + timeout + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < give_up,
                "no answer long after the deadline"
            );
            let wait = w
                .deadline()
                .expect("in flight")
                .saturating_duration_since(Instant::now());
            if let Some(fd) = w.fd() {
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap();
            }
            if let Some(answer) = w.advance(Instant::now()) {
                assert!(!w.in_flight() && w.fd().is_none() && w.deadline().is_none());
                return answer;
            }
        }
    }

    #[test]
    fn loopback_witness_is_reachable_ipv4_and_ipv6() {
        if !available("the witness loopback test") {
            return;
        }
        for addr in ["127.0.0.1", "::1"] {
            let addr: IpAddr = addr.parse().unwrap();
            let mut w = Witness::new(addr).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(w.advance(Instant::now()), None, "no probe yet");
            // Several probes in a row: each new sequence number is answered.
            for _ in 0..3 {
                assert!(probe(&mut w, Duration::from_secs(5)), "{addr} unreachable");
            }
            assert_eq!(w.last_error(), None);
        }
    }

    #[test]
    fn no_route_is_unreachable_at_once() {
        if !available("the witness no-route test") {
            return;
        }
        let ns = NetNs::new("bbwit");
        for addr in ["10.203.0.1", "fd00:203::1"] {
            let addr: IpAddr = addr.parse().unwrap();
            let mut w = ns.inside(|| Witness::new(addr)).unwrap();
            let now = Instant::now();
            w.start(now, Duration::from_secs(30));
            assert_eq!(w.deadline(), Some(now), "{addr}: decided at once");
            assert!(w.fd().is_none());
            assert_eq!(w.advance(now), Some(false), "{addr}");
            assert_eq!(w.last_error(), Some(Errno::ENETUNREACH), "{addr}");
        }
    }

    #[test]
    fn silent_witness_times_out_and_other_echo_replies_are_ignored() {
        if !available("the witness timeout test") {
            return;
        }
        // A veth pair inside the namespace: the route to the witness exists, nobody answers.
        let ns = NetNs::new("bbwit");
        ns.ip(&["link", "add", "w0", "type", "veth", "peer", "name", "w1"]);
        ns.ip(&["addr", "add", "10.204.0.1/24", "dev", "w0"]);
        ns.ip(&["addr", "add", "fd00:204::1/64", "dev", "w0", "nodad"]);
        ns.ip(&["link", "set", "w0", "up"]);
        ns.ip(&["link", "set", "w1", "up"]);
        let timeout = Duration::from_millis(800);
        for (silent, busy) in [("10.204.0.2", "127.0.0.1"), ("fd00:204::2", "::1")] {
            let (silent, busy): (IpAddr, IpAddr) = (silent.parse().unwrap(), busy.parse().unwrap());
            let (mut w, mut other) =
                ns.inside(|| (Witness::new(silent).unwrap(), Witness::new(busy).unwrap()));
            let started = Instant::now();
            w.start(started, timeout);
            assert_eq!(w.deadline(), Some(started + timeout));
            // Meanwhile someone else pings the loopback of the same namespace: every reply
            // reaches our raw socket too and must not count.
            let mut others_answered = 0;
            while Instant::now() < started + timeout / 2 {
                if probe(&mut other, Duration::from_secs(5)) {
                    others_answered += 1;
                }
                if Instant::now() < started + timeout {
                    assert_eq!(
                        w.advance(Instant::now()),
                        None,
                        "{silent}: not before the deadline"
                    );
                }
            }
            assert!(others_answered > 0, "the other pings were answered");
            assert!(
                w.ignored() > 0,
                "{silent}: the other replies reached our socket too"
            );
            assert!(!probe_rest(&mut w), "{silent} reported reachable");
            assert!(
                started.elapsed() >= timeout,
                "{silent}: not before the deadline"
            );
        }
    }

    /// Waits for the answer of the probe already in flight.
    fn probe_rest(w: &mut Witness) -> bool {
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < give_up,
                "no answer long after the deadline"
            );
            if let (Some(fd), Some(deadline)) = (w.fd(), w.deadline()) {
                let wait = deadline.saturating_duration_since(Instant::now());
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap();
            }
            if let Some(answer) = w.advance(Instant::now()) {
                return answer;
            }
        }
    }
}
