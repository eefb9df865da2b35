//! The virtual IP: adding and removing it over rtnetlink, announcing it (gratuitous ARP for
//! IPv4, unsolicited neighbour advertisements for IPv6), probing before adding whether anyone
//! else answers for it, and watching for it being removed behind our back.
//!
//! # What this file owns
//! * [`Vip`]: one interface, one address. A synchronous `NETLINK_ROUTE` request socket (fixed
//!   32 KiB receive buffer, sequence and port checks, a 500 ms receive timeout as a guard: the
//!   kernel answers rtnetlink requests inside the `send`, so the reply is already queued) and a
//!   raw `AF_PACKET` socket kept open for announcements. The interface index and MAC address are
//!   resolved once, at [`Vip::open`]; the netlink requests and the announcement frame are built
//!   once there too, so [`Vip::add`] + [`Vip::send_announcement`] allocate nothing and make
//!   three system calls.
//! * The probe ([`Vip::start_probe`] / [`Vip::advance_probe`]): RFC 5227 style for IPv4 (ARP
//!   request, sender IP 0.0.0.0, target the VIP); for IPv6 a duplicate-address-detection
//!   neighbour solicitation (source `::`, to the VIP's solicited-node group), which a holder
//!   answers with a neighbour advertisement to ff02::1. A receive socket is opened for the probe
//!   window only, so no ARP/IPv6 traffic queues up in bbwd outside probes.
//! * [`AddressWatch`]: a second netlink socket subscribed to the VIP family's address group
//!   (`RTMGRP_IPV4_IFADDR` or `RTMGRP_IPV6_IFADDR`), non-blocking, reporting that our address
//!   was deleted (`RTM_DELADDR` for our address on our interface index).
//!
//! # What it must not do
//! Decide. Whether to probe, when to send the next announcement (`garp_count` frames
//! `garp_interval` apart is the caller's timing), what a conflict means, whether to put a
//! removed address back: all the caller's. Nothing here blocks longer than one system call:
//! the probe and the watch expose a file descriptor to poll.
//!
//! # How the caller uses it
//! ```text
//!   Vip::open (once, at start-up: sockets, index, MAC, frames)      held()? -> a VIP left over
//!        │                                                           from a crash is ours
//!   start_probe ── poll probe_fd until probe_deadline ── advance_probe
//!        ├─ Conflict { mac } ──> do not add; alarm (someone else answers for the VIP)
//!        └─ Free ──> add() ──> send_announcement() now, then garp_count - 1 more,
//!                                garp_interval apart (the caller's timer)
//!   AddressWatch: poll fd ── read() ──> removed (and we did not remove it) ──> add() + announce
//!                                   └─> overrun ──> held()? to find out
//!   release: remove() (the watch then reports `removed`: ours, expected)
//! ```
//! The probe cannot see the VIP held by this very host (its own kernel never answers its own
//! frames): look with `held()` first.
//!
//! # Wire formats (decided after the lab notes, `../shared/lab/README.md` section net/)
//! * Gratuitous ARP, **request form** as keepalived sends it: Ethernet broadcast, ARP op 1,
//!   sender MAC = ours, sender IP = target IP = VIP, target MAC ff:ff:ff:ff:ff:ff. (The reply
//!   form can be ignored for `locktime` by Linux receivers.) A receiver with `arp_accept=0`
//!   updates an existing neighbour entry only; that is what matters for a move.
//! * Unsolicited NA, built whole and sent on the same packet socket (so no source-address
//!   selection, hop-limit socket options or a second socket are involved): Ethernet to
//!   33:33:00:00:00:01, IPv6 from the VIP to ff02::1 with hop limit 255, ICMPv6 type 136 with
//!   the override flag (not solicited, not router), target = VIP, a target link-layer address
//!   option with our MAC, checksum computed here. IPv6 VIPs are added with `IFA_F_NODAD`
//!   (DAD would hold the address tentative for ~1.5 s, and fail it if the old holder lingers).
//! * Labels are an IPv4 notion: an IPv4 VIP gets the label `<interface>:bbwd` when that fits
//!   in 15 bytes (IFNAMSIZ - 1), else no label; IPv6 addresses carry none.
//!
//! # Invariants
//! * Every reply read from the request socket is matched on sequence number and port id;
//!   anything else (a late reply to an earlier request that errored out) is skipped.
//! * `add` is idempotent (`EEXIST` = already held = success) and `remove` too (`EADDRNOTAVAIL`
//!   / `ENOENT` / `ESRCH` = already gone = success).
//! * At most one probe in flight; its receive socket is closed as soon as it has an outcome.
//! * No allocation on `add`, `remove`, `held`, `send_announcement`, the probe or the watch
//!   (errors aside): buffers and frames are sized at `open`.
//! * Every `unsafe` block carries a `SAFETY:` comment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use netlink_packet_core::{
    DoneBuffer, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NlasIterator, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// User-space receive buffer of the request socket. A dump chunk is at most 32 KiB (the kernel
/// sizes dump skbs up to 32 KiB after the reader's largest buffer), so a whole chunk always fits.
const NL_BUF_BYTES: usize = 32 * 1024;
/// Guard on a netlink reply: rtnetlink answers within the `send` itself, so a missing reply
/// after this long means something is badly wrong (never a slow kernel); 500 ms bounds the stall.
const NL_REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// Receive buffer of the watch socket: notifications come one per datagram, each < 256 bytes.
const WATCH_BUF_BYTES: usize = 8 * 1024;
/// Kernel-side queue of the watch socket, so that a network manager flushing many addresses at
/// once does not overrun it (an overrun is reported and handled, but is better avoided).
const WATCH_RCVBUF_BYTES: usize = 256 * 1024;
/// Dumps interrupted by a concurrent change (`NLM_F_DUMP_INTR`) are redone up to this often.
const DUMP_ATTEMPTS: u32 = 3;
/// Bytes of a probe reply we look at: an ARP frame is 42 (60 padded), an NA 86 + options.
const PROBE_BUF_BYTES: usize = 256;

const IFNAMSIZ: usize = 16;
const LABEL_SUFFIX: &str = ":bbwd";

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const IFLA_ADDRESS: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const ARPHRD_ETHER: u16 = 1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_HLEN: usize = 14;
const IPV6_HLEN: usize = 40;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// NA flags byte: override (RFC 4861 4.4: R = 0x80, S = 0x40, O = 0x20).
const NA_FLAG_OVERRIDE: u8 = 0x20;
/// The Target Link-Layer Address option type.
const ND_OPT_TARGET_LL_ADDR: u8 = 2;
const ARP_FRAME_BYTES: usize = 60;
const NA_FRAME_BYTES: usize = ETH_HLEN + IPV6_HLEN + 32;
const NS_FRAME_BYTES: usize = ETH_HLEN + IPV6_HLEN + 24;
const MAX_FRAME_BYTES: usize = NA_FRAME_BYTES;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What was being done when an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipOp {
    /// Opening the sockets and resolving the interface (index, MAC, type).
    Open,
    Add,
    Remove,
    /// Dumping the interface's addresses (`held`).
    Lookup,
    /// Sending a gratuitous ARP / unsolicited NA.
    Announce,
    /// Sending the probe or reading its answers.
    Probe,
    /// Opening or reading the address watch.
    Watch,
}

impl fmt::Display for VipOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VipOp::Open => "open",
            VipOp::Add => "add",
            VipOp::Remove => "remove",
            VipOp::Lookup => "look up",
            VipOp::Announce => "announce",
            VipOp::Probe => "probe",
            VipOp::Watch => "watch",
        })
    }
}

/// Why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A system call or the kernel's netlink answer failed with this errno.
    Os(Errno),
    /// No interface by that name (or a name longer than IFNAMSIZ - 1).
    NoSuchInterface,
    /// The interface is not Ethernet (ARP and NA frames are built for Ethernet).
    NotEthernet,
    /// The prefix length does not fit the address family.
    BadPrefix(u8),
    /// The kernel did not answer a netlink request within `NL_REPLY_TIMEOUT`.
    NoReply,
    /// The kernel's answer could not be understood (truncated, malformed, unexpected).
    Protocol(&'static str),
    /// `send_probe`/`advance_probe` without a probe in flight (a caller bug, reported).
    NoProbe,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Os(errno) => write!(f, "{errno}"),
            Cause::NoSuchInterface => f.write_str("no such interface"),
            Cause::NotEthernet => f.write_str("not an Ethernet interface"),
            Cause::BadPrefix(p) => write!(f, "prefix length {p} does not fit the address"),
            Cause::NoReply => write!(
                f,
                "no netlink reply within {} ms",
                NL_REPLY_TIMEOUT.as_millis()
            ),
            Cause::Protocol(what) => write!(f, "netlink protocol error: {what}"),
            Cause::NoProbe => f.write_str("no probe in flight"),
        }
    }
}

/// A failed operation on the VIP, naming the operation, the address and the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipError {
    pub op: VipOp,
    pub address: IpAddr,
    pub interface: String,
    pub cause: Cause,
}

impl fmt::Display for VipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vip: {} {} on {}: {}",
            self.op, self.address, self.interface, self.cause
        )
    }
}

impl std::error::Error for VipError {}

/// `add`'s success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Added,
    /// It was there already (`EEXIST`).
    AlreadyHeld,
}

/// `remove`'s success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Removed,
    /// It was not there (`EADDRNOTAVAIL`, `ENOENT`, `ESRCH`).
    AlreadyGone,
}

/// A probe's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Nobody answered for the address within the window.
    Free,
    /// A host answered for the address (or probed for it at the same time): do not add it.
    Conflict { mac: Mac },
}

/// The virtual IP on one interface. See the module doc.
pub struct Vip {
    interface: String,
    ifindex: u32,
    mac: Mac,
    address: IpAddr,
    prefix_len: u8,
    label: Option<String>,
    nl: RequestSocket,
    new_addr: Vec<u8>,
    del_addr: Vec<u8>,
    dump_addr: Vec<u8>,
    /// `AF_PACKET`/`SOCK_RAW` bound to the interface with protocol 0: sends, never receives.
    packet: OwnedFd,
    announcement: [u8; MAX_FRAME_BYTES],
    announcement_len: usize,
    probe_frame: [u8; MAX_FRAME_BYTES],
    probe_len: usize,
    probe: Option<ProbeRx>,
    probe_buf: [u8; PROBE_BUF_BYTES],
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on {}",
            self.address, self.prefix_len, self.interface
        )
    }
}

struct ProbeRx {
    fd: OwnedFd,
    deadline: Instant,
}

impl Vip {
    /// Opens the sockets, resolves `interface` (index, MAC; must be Ethernet) and builds the
    /// netlink requests and frames. Needs `CAP_NET_ADMIN` and `CAP_NET_RAW`.
    pub fn open(interface: &str, address: IpAddr, prefix_len: u8) -> Result<Vip, VipError> {
        let fail = |cause| VipError {
            op: VipOp::Open,
            address,
            interface: interface.to_string(),
            cause,
        };
        let max_prefix = if address.is_ipv4() { 32 } else { 128 };
        if prefix_len > max_prefix {
            return Err(fail(Cause::BadPrefix(prefix_len)));
        }
        if interface.is_empty() || interface.len() >= IFNAMSIZ || interface.contains('\0') {
            return Err(fail(Cause::NoSuchInterface));
        }
        let mut nl = RequestSocket::open().map_err(fail)?;
        let (ifindex, mac) = nl.resolve_link(interface).map_err(fail)?;
        let label = (address.is_ipv4() && interface.len() + LABEL_SUFFIX.len() < IFNAMSIZ)
            .then(|| format!("{interface}{LABEL_SUFFIX}"));
        let new_addr = address_request(
            RequestKind::New,
            ifindex,
            address,
            prefix_len,
            label.as_deref(),
        );
        let del_addr = address_request(RequestKind::Del, ifindex, address, prefix_len, None);
        let dump_addr = address_request(RequestKind::Dump, ifindex, address, prefix_len, None);
        let packet = packet_socket(ifindex, 0).map_err(|e| fail(Cause::Os(e)))?;
        let mut announcement = [0u8; MAX_FRAME_BYTES];
        let mut probe_frame = [0u8; MAX_FRAME_BYTES];
        let (announcement_len, probe_len) = match address {
            IpAddr::V4(vip) => (
                arp_frame(&mut announcement, mac, ArpKind::Gratuitous, vip),
                arp_frame(&mut probe_frame, mac, ArpKind::Probe, vip),
            ),
            IpAddr::V6(vip) => (
                unsolicited_na(&mut announcement, mac, vip),
                dad_solicitation(&mut probe_frame, mac, vip),
            ),
        };
        Ok(Vip {
            interface: interface.to_string(),
            ifindex,
            mac,
            address,
            prefix_len,
            label,
            nl,
            new_addr,
            del_addr,
            dump_addr,
            packet,
            announcement,
            announcement_len,
            probe_frame,
            probe_len,
            probe: None,
            probe_buf: [0; PROBE_BUF_BYTES],
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// The interface's MAC, read once at `open`.
    pub fn mac(&self) -> Mac {
        self.mac
    }
    pub fn address(&self) -> IpAddr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    /// The IPv4 label the address is added with, if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    fn error(&self, op: VipOp, cause: Cause) -> VipError {
        VipError {
            op,
            address: self.address,
            interface: self.interface.clone(),
            cause,
        }
    }

    /// Adds the address (IPv6 with `nodad`). Already there = success.
    pub fn add(&mut self) -> Result<Added, VipError> {
        match self.nl.transact(&mut self.new_addr, |_, _| {}) {
            Ok(()) => Ok(Added::Added),
            Err(Cause::Os(Errno::EEXIST)) => Ok(Added::AlreadyHeld),
            Err(cause) => Err(self.error(VipOp::Add, cause)),
        }
    }

    /// Removes the address (whatever its label). Not there = success.
    pub fn remove(&mut self) -> Result<Removed, VipError> {
        match self.nl.transact(&mut self.del_addr, |_, _| {}) {
            Ok(()) => Ok(Removed::Removed),
            Err(Cause::Os(Errno::EADDRNOTAVAIL | Errno::ENOENT | Errno::ESRCH)) => {
                Ok(Removed::AlreadyGone)
            }
            Err(cause) => Err(self.error(VipOp::Remove, cause)),
        }
    }

    /// Whether the interface holds the address now (any prefix length), from a dump.
    pub fn held(&mut self) -> Result<bool, VipError> {
        let (ifindex, address) = (self.ifindex, self.address);
        let mut last = Cause::Protocol("dump interrupted");
        for _ in 0..DUMP_ATTEMPTS {
            let mut found = false;
            let mut interrupted = false;
            let result = self.nl.transact(&mut self.dump_addr, |flags, msg| {
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                if msg.message_type() == RTM_NEWADDR {
                    found |= parse_address(msg.payload()) == Some((ifindex, address));
                }
            });
            match result {
                Ok(()) if !interrupted => return Ok(found),
                Ok(()) => {}
                Err(cause) => last = cause,
            }
        }
        Err(self.error(VipOp::Lookup, last))
    }

    /// Sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6). Non-blocking: a full
    /// transmit queue is an error (`EAGAIN`), the caller sends again at its next tick.
    pub fn send_announcement(&mut self) -> Result<(), VipError> {
        send_frame(
            self.packet.as_fd(),
            self.ifindex,
            &self.announcement[..self.announcement_len],
        )
        .map_err(|e| self.error(VipOp::Announce, Cause::Os(e)))
    }

    /// The announcement frame as sent on the wire (for tests and tools).
    pub fn announcement_frame(&self) -> &[u8] {
        &self.announcement[..self.announcement_len]
    }

    /// Begins a probe: opens the receive socket, then sends one probe. The caller polls
    /// [`probe_fd`](Self::probe_fd) until [`probe_deadline`](Self::probe_deadline) and calls
    /// [`advance_probe`](Self::advance_probe) on readiness and at the deadline. A probe in
    /// flight is abandoned first. The caller may repeat the probe frame within the window with
    /// [`send_probe`](Self::send_probe) (RFC 5227 sends several; one is enough on a LAN that
    /// does not lose frames, and the window is the caller's).
    pub fn start_probe(&mut self, now: Instant, window: Duration) -> Result<(), VipError> {
        self.probe = None;
        let ethertype = if self.address.is_ipv4() {
            ETH_P_ARP
        } else {
            ETH_P_IPV6
        };
        let fd = packet_socket(self.ifindex, ethertype)
            .map_err(|e| self.error(VipOp::Probe, Cause::Os(e)))?;
        self.probe = Some(ProbeRx {
            fd,
            deadline: now.checked_add(window).unwrap_or(now),
        });
        self.send_probe()
    }

    /// Sends the probe frame again (a probe must be in flight).
    pub fn send_probe(&mut self) -> Result<(), VipError> {
        if self.probe.is_none() {
            return Err(self.error(VipOp::Probe, Cause::NoProbe));
        }
        send_frame(
            self.packet.as_fd(),
            self.ifindex,
            &self.probe_frame[..self.probe_len],
        )
        .map_err(|e| self.error(VipOp::Probe, Cause::Os(e)))
    }

    /// Poll for readability while a probe is in flight.
    pub fn probe_fd(&self) -> Option<BorrowedFd<'_>> {
        self.probe.as_ref().map(|p| p.fd.as_fd())
    }

    pub fn probe_deadline(&self) -> Option<Instant> {
        self.probe.as_ref().map(|p| p.deadline)
    }

    /// Reads what arrived; `Some` once the probe has an outcome (a conflict as soon as one is
    /// seen, `Free` at or after the deadline with none seen), which ends the probe. `None`
    /// while still listening or with no probe in flight. Answers that arrived before the
    /// deadline count even when read after it.
    pub fn advance_probe(&mut self, now: Instant) -> Option<Result<ProbeOutcome, VipError>> {
        let probe = self.probe.as_ref()?;
        let result = loop {
            match recv_frame(probe.fd.as_fd(), self.ifindex, &mut self.probe_buf) {
                Ok(Some(len)) => {
                    let frame = &self.probe_buf[..len];
                    let conflict = match self.address {
                        IpAddr::V4(vip) => arp_conflict(frame, self.mac, vip),
                        IpAddr::V6(vip) => nd_conflict(frame, self.mac, vip),
                    };
                    if let Some(mac) = conflict {
                        break Some(Ok(ProbeOutcome::Conflict { mac }));
                    }
                }
                Ok(None) => {
                    break (now >= probe.deadline).then_some(Ok(ProbeOutcome::Free));
                }
                Err(e) => break Some(Err(e)),
            }
        };
        let result = result?;
        self.probe = None;
        Some(result.map_err(|e| self.error(VipOp::Probe, Cause::Os(e))))
    }

    /// Abandons a probe in flight.
    pub fn cancel_probe(&mut self) {
        self.probe = None;
    }

    /// Opens the watch for this address (a second netlink socket).
    pub fn watch(&self) -> Result<AddressWatch, VipError> {
        AddressWatch::open(self.interface.clone(), self.ifindex, self.address)
    }
}

/// What the address watch saw since the last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchReport {
    /// Our address was deleted from our interface (by anyone, bbwd's own `remove` included).
    pub removed: bool,
    /// Our address was added to our interface (by anyone, bbwd's own `add` included).
    pub added: bool,
    /// Notifications were lost (`ENOBUFS`): the caller must look (`Vip::held`) instead.
    pub overrun: bool,
}

impl WatchReport {
    pub fn any(self) -> bool {
        self.removed || self.added || self.overrun
    }
}

/// The address watch: see the module doc. Poll [`fd`](Self::fd) for readability, then
/// [`read`](Self::read).
pub struct AddressWatch {
    interface: String,
    ifindex: u32,
    address: IpAddr,
    socket: Socket,
    buf: Box<[u8]>,
}

impl AddressWatch {
    fn open(interface: String, ifindex: u32, address: IpAddr) -> Result<AddressWatch, VipError> {
        let fail = |cause| VipError {
            op: VipOp::Watch,
            address,
            interface: interface.clone(),
            cause,
        };
        let groups = if address.is_ipv4() {
            RTMGRP_IPV4_IFADDR
        } else {
            RTMGRP_IPV6_IFADDR
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| fail(io_cause(&e)))?;
        // A bigger queue first; failing to get it is not fatal (overruns are reported).
        let _ = setsockopt(&socket, sockopt::RcvBuf, &WATCH_RCVBUF_BYTES);
        socket
            .bind(&SocketAddr::new(0, groups))
            .map_err(|e| fail(io_cause(&e)))?;
        socket
            .set_non_blocking(true)
            .map_err(|e| fail(io_cause(&e)))?;
        Ok(AddressWatch {
            interface,
            ifindex,
            address,
            socket,
            buf: vec![0u8; WATCH_BUF_BYTES].into_boxed_slice(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Drains the pending notifications and reports what concerned our address.
    pub fn read(&mut self) -> Result<WatchReport, VipError> {
        let mut report = WatchReport::default();
        loop {
            let received = self
                .socket
                .recv_from(&mut &mut self.buf[..], libc::MSG_DONTWAIT | libc::MSG_TRUNC);
            let (len, from) = match received {
                Ok(r) => r,
                Err(e) => match io_cause(&e) {
                    Cause::Os(Errno::EAGAIN) => return Ok(report),
                    Cause::Os(Errno::EINTR) => continue,
                    Cause::Os(Errno::ENOBUFS) => {
                        report.overrun = true;
                        continue;
                    }
                    cause => {
                        return Err(VipError {
                            op: VipOp::Watch,
                            address: self.address,
                            interface: self.interface.clone(),
                            cause,
                        })
                    }
                },
            };
            if len > self.buf.len() {
                // Cannot be a plain address notification; we cannot tell what it said.
                report.overrun = true;
                continue;
            }
            if from.port_number() != 0 {
                continue; // not from the kernel
            }
            for_each_message(&self.buf[..len], |msg| {
                let ours = parse_address(msg.payload()) == Some((self.ifindex, self.address));
                match msg.message_type() {
                    RTM_DELADDR if ours => report.removed = true,
                    RTM_NEWADDR if ours => report.added = true,
                    NLMSG_OVERRUN => report.overrun = true,
                    _ => {}
                }
            });
        }
    }
}

// ---- netlink ---------------------------------------------------------------------------------

struct RequestSocket {
    socket: Socket,
    port: u32,
    seq: u32,
    buf: Box<[u8]>,
}

impl RequestSocket {
    fn open() -> Result<RequestSocket, Cause> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| io_cause(&e))?;
        let local = socket.bind_auto().map_err(|e| io_cause(&e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_cause(&e))?;
        let timeout = TimeVal::new(
            NL_REPLY_TIMEOUT.as_secs() as _,
            NL_REPLY_TIMEOUT.subsec_micros() as _,
        );
        setsockopt(&socket, sockopt::ReceiveTimeout, &timeout).map_err(Cause::Os)?;
        Ok(RequestSocket {
            socket,
            port: local.port_number(),
            seq: 0,
            buf: vec![0u8; NL_BUF_BYTES].into_boxed_slice(),
        })
    }

    /// Sends `request` with a fresh sequence number and hands each data message answering it
    /// (with its header flags) to `on_msg`, until the kernel's acknowledgement or end of dump.
    fn transact(
        &mut self,
        request: &mut [u8],
        mut on_msg: impl FnMut(u16, &NetlinkBuffer<&[u8]>),
    ) -> Result<(), Cause> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        NetlinkBuffer::new(&mut *request).set_sequence_number(seq);
        self.socket.send(request, 0).map_err(|e| io_cause(&e))?;
        loop {
            let len = match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(len) => len,
                Err(e) => match io_cause(&e) {
                    Cause::Os(Errno::EINTR) => continue,
                    Cause::Os(Errno::EAGAIN) => return Err(Cause::NoReply),
                    cause => return Err(cause),
                },
            };
            if len > self.buf.len() {
                return Err(Cause::Protocol("reply larger than the receive buffer"));
            }
            let mut done: Option<Result<(), Cause>> = None;
            let (port, buf) = (self.port, &self.buf[..len]);
            let complete = for_each_message(buf, |msg| {
                if done.is_some() || msg.sequence_number() != seq || msg.port_number() != port {
                    return; // a late answer to an earlier request
                }
                match msg.message_type() {
                    NLMSG_ERROR => {
                        done = Some(match ErrorBuffer::new_checked(msg.payload()) {
                            Ok(e) => match e.code() {
                                None => Ok(()),
                                Some(code) => Err(Cause::Os(Errno::from_raw(-code.get()))),
                            },
                            Err(_) => Err(Cause::Protocol("malformed error message")),
                        })
                    }
                    NLMSG_DONE => {
                        let code = DoneBuffer::new_checked(msg.payload())
                            .map(|d| d.code())
                            .unwrap_or(0);
                        done = Some(if code < 0 {
                            Err(Cause::Os(Errno::from_raw(-code)))
                        } else {
                            Ok(())
                        });
                    }
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => done = Some(Err(Cause::Protocol("overrun"))),
                    _ => on_msg(msg.flags(), msg),
                }
            });
            if let Some(result) = done {
                return result;
            }
            if !complete {
                return Err(Cause::Protocol("malformed message"));
            }
        }
    }

    /// Index and MAC of the interface named `name` (RTM_GETLINK by name).
    fn resolve_link(&mut self, name: &str) -> Result<(u32, Mac), Cause> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let mut request = serialize(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST | NLM_F_ACK);
        let mut found: Option<Result<(u32, Mac), Cause>> = None;
        let result = self.transact(&mut request, |_, msg| {
            if msg.message_type() == RTM_NEWLINK && found.is_none() {
                found = Some(parse_link(msg.payload()));
            }
        });
        match result {
            Err(Cause::Os(Errno::ENODEV)) => Err(Cause::NoSuchInterface),
            Err(cause) => Err(cause),
            Ok(()) => found.unwrap_or(Err(Cause::Protocol("no link in the reply"))),
        }
    }
}

/// Calls `f` for each well-formed message in `buf`; false if a malformed one ended the walk.
/// (Shared with `linkwatch`.)
pub(crate) fn for_each_message(buf: &[u8], mut f: impl FnMut(&NetlinkBuffer<&[u8]>)) -> bool {
    let mut offset = 0;
    while offset < buf.len() {
        let Ok(msg) = NetlinkBuffer::new_checked(&buf[offset..]) else {
            return false;
        };
        let len = msg.length() as usize;
        f(&msg);
        // Messages are 4-byte aligned; a zero length would loop forever.
        offset += len.max(16).next_multiple_of(4);
    }
    true
}

fn parse_link(payload: &[u8]) -> Result<(u32, Mac), Cause> {
    // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
    if payload.len() < 16 {
        return Err(Cause::Protocol("short link message"));
    }
    let link_type = u16::from_ne_bytes([payload[2], payload[3]]);
    let index = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    if link_type != ARPHRD_ETHER {
        return Err(Cause::NotEthernet);
    }
    for nla in NlasIterator::new(&payload[16..]) {
        let Ok(nla) = nla else { break };
        if nla.kind() == IFLA_ADDRESS && nla.value().len() == 6 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(nla.value());
            return Ok((index, Mac(mac)));
        }
    }
    Err(Cause::NotEthernet)
}

/// The interface index and address of an address message (`IFA_LOCAL` when present, as for
/// IPv4, else `IFA_ADDRESS`). No allocation.
fn parse_address(payload: &[u8]) -> Option<(u32, IpAddr)> {
    // struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32.
    if payload.len() < 8 {
        return None;
    }
    let index = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let mut address = None;
    for nla in NlasIterator::new(&payload[8..]) {
        let Ok(nla) = nla else { break };
        let kind = nla.kind();
        if kind != IFA_LOCAL && kind != IFA_ADDRESS {
            continue;
        }
        let parsed = match nla.value().len() {
            4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(nla.value());
                IpAddr::V4(Ipv4Addr::from(b))
            }
            16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(nla.value());
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => continue,
        };
        if kind == IFA_LOCAL {
            return Some((index, parsed));
        }
        address = Some(parsed);
    }
    address.map(|a| (index, a))
}

#[derive(Clone, Copy)]
enum RequestKind {
    New,
    Del,
    Dump,
}

/// Builds an address request once; only its sequence number changes per use.
fn address_request(
    kind: RequestKind,
    ifindex: u32,
    address: IpAddr,
    prefix_len: u8,
    label: Option<&str>,
) -> Vec<u8> {
    let mut msg = AddressMessage::default();
    msg.header.family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    if let RequestKind::Dump = kind {
        return serialize(
            RouteNetlinkMessage::GetAddress(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
        );
    }
    msg.header.index = ifindex;
    msg.header.prefix_len = prefix_len;
    if address.is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(address));
    }
    msg.attributes.push(AddressAttribute::Address(address));
    match kind {
        RequestKind::New => {
            if let Some(label) = label {
                msg.attributes
                    .push(AddressAttribute::Label(label.to_string()));
            }
            if address.is_ipv6() {
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            serialize(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
        }
        RequestKind::Del | RequestKind::Dump => serialize(
            RouteNetlinkMessage::DelAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ),
    }
}

fn serialize(message: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn io_cause(e: &std::io::Error) -> Cause {
    Cause::Os(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

// ---- packet sockets --------------------------------------------------------------------------

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket bound to `ifindex` for `ethertype` (0 = send
/// only: the socket receives nothing).
fn packet_socket(ifindex: u32, ethertype: u16) -> Result<OwnedFd, Errno> {
    let protocol = ethertype.to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(protocol),
        )
    };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let addr = link_addr(ifindex, ethertype);
    // SAFETY: `addr` is a fully initialised sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(fd)
}

fn link_addr(ifindex: u32, ethertype: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ethertype.to_be();
    addr.sll_ifindex = ifindex as i32;
    addr
}

/// Sends one whole Ethernet frame out of `ifindex` without blocking.
fn send_frame(fd: BorrowedFd<'_>, ifindex: u32, frame: &[u8]) -> Result<(), Errno> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let addr = link_addr(ifindex, ethertype);
    loop {
        // SAFETY: `frame` is valid for its length; `addr` is an initialised sockaddr_ll.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Receives one frame that arrived on `ifindex` (not one we sent); `None` when none is queued.
fn recv_frame(fd: BorrowedFd<'_>, ifindex: u32, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    loop {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is valid for writes of its length; `from`/`from_len` describe a
        // sockaddr_ll the kernel may fill.
        let rc = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if rc < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN => return Ok(None),
                e => return Err(e),
            }
        }
        // Until bind() completed the socket saw every interface; and it sees our own frames.
        if from.sll_ifindex as u32 != ifindex || from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        return Ok(Some((rc as usize).min(buf.len())));
    }
}

// ---- frames ----------------------------------------------------------------------------------

const BROADCAST: [u8; 6] = [0xff; 6];

#[derive(Clone, Copy)]
enum ArpKind {
    /// Request form: sender IP = target IP = VIP, target MAC broadcast.
    Gratuitous,
    /// RFC 5227 probe: sender IP 0.0.0.0, target MAC zero, target IP = VIP.
    Probe,
}

fn ethernet(buf: &mut [u8], dst: [u8; 6], src: Mac, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes an ARP request frame (padded to the Ethernet minimum of 60 bytes); returns its length.
fn arp_frame(buf: &mut [u8; MAX_FRAME_BYTES], mac: Mac, kind: ArpKind, vip: Ipv4Addr) -> usize {
    buf.fill(0);
    ethernet(buf, BROADCAST, mac, ETH_P_ARP);
    let (sender_ip, target_mac) = match kind {
        ArpKind::Gratuitous => (vip, BROADCAST),
        ArpKind::Probe => (Ipv4Addr::UNSPECIFIED, [0; 6]),
    };
    let arp = &mut buf[ETH_HLEN..];
    arp[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    arp[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&1u16.to_be_bytes()); // op: request
    arp[8..14].copy_from_slice(&mac.0);
    arp[14..18].copy_from_slice(&sender_ip.octets());
    arp[18..24].copy_from_slice(&target_mac);
    arp[24..28].copy_from_slice(&vip.octets());
    ARP_FRAME_BYTES
}

/// A conflict in an ARP frame: someone else claims `vip` (any op with sender IP = VIP), or
/// probes for it at the same time (request, sender IP 0, target IP = VIP).
fn arp_conflict(frame: &[u8], ours: Mac, vip: Ipv4Addr) -> Option<Mac> {
    if frame.len() < ETH_HLEN + 28 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let arp = &frame[ETH_HLEN..];
    if arp[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&arp[8..14]);
    let sender_ip = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    let target_ip = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
    let claims = sender_ip == vip && (op == 1 || op == 2);
    let probes = op == 1 && sender_ip.is_unspecified() && target_ip == vip;
    (Mac(sender) != ours && (claims || probes)).then_some(Mac(sender))
}

/// The solicited-node multicast group of `addr` (ff02::1:ffXX:XXXX).
fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + its last 32 bits).
fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Writes Ethernet + IPv6 headers for an ICMPv6 message of `icmp_len` bytes, hop limit 255.
fn ipv6_icmp_headers(buf: &mut [u8], mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, icmp_len: usize) {
    ethernet(buf, multicast_mac(dst), mac, ETH_P_IPV6);
    let ip = &mut buf[ETH_HLEN..ETH_HLEN + IPV6_HLEN];
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class, no flow label
    ip[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = 255; // neighbour discovery requires hop limit 255 (RFC 4861 7.1.2)
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
}

/// The ICMPv6 checksum (RFC 4443 2.3) over the IPv6 pseudo-header and `icmp` (whose checksum
/// field must be zero).
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_be_bytes([pair[0], 0])
            };
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn finish_icmp(buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, len: usize) {
    let start = ETH_HLEN + IPV6_HLEN;
    let sum = icmpv6_checksum(src, dst, &buf[start..start + len]);
    buf[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
}

/// Unsolicited neighbour advertisement for `vip` from `mac`, to all nodes; returns its length.
fn unsolicited_na(buf: &mut [u8; MAX_FRAME_BYTES], mac: Mac, vip: Ipv6Addr) -> usize {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    buf.fill(0);
    let icmp_len = NA_FRAME_BYTES - ETH_HLEN - IPV6_HLEN;
    ipv6_icmp_headers(buf, mac, vip, all_nodes, icmp_len);
    let icmp = &mut buf[ETH_HLEN + IPV6_HLEN..NA_FRAME_BYTES];
    icmp[0] = ND_NEIGHBOR_ADVERT;
    icmp[4] = NA_FLAG_OVERRIDE;
    icmp[8..24].copy_from_slice(&vip.octets());
    icmp[24] = ND_OPT_TARGET_LL_ADDR;
    icmp[25] = 1; // option length in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac.0);
    finish_icmp(buf, vip, all_nodes, icmp_len);
    NA_FRAME_BYTES
}

/// Duplicate-address-detection solicitation for `vip` (source `::`, no source link-layer
/// option, to the solicited-node group); returns its length.
fn dad_solicitation(buf: &mut [u8; MAX_FRAME_BYTES], mac: Mac, vip: Ipv6Addr) -> usize {
    let group = solicited_node(vip);
    buf.fill(0);
    let icmp_len = NS_FRAME_BYTES - ETH_HLEN - IPV6_HLEN;
    ipv6_icmp_headers(buf, mac, Ipv6Addr::UNSPECIFIED, group, icmp_len);
    let icmp = &mut buf[ETH_HLEN + IPV6_HLEN..NS_FRAME_BYTES];
    icmp[0] = ND_NEIGHBOR_SOLICIT;
    icmp[8..24].copy_from_slice(&vip.octets());
    finish_icmp(buf, Ipv6Addr::UNSPECIFIED, group, icmp_len);
    NS_FRAME_BYTES
}

/// A conflict in an IPv6 frame: an advertisement for `vip` from another MAC, or another host's
/// DAD solicitation for it. The MAC reported is the frame's Ethernet source.
fn nd_conflict(frame: &[u8], ours: Mac, vip: Ipv6Addr) -> Option<Mac> {
    let icmp_at = ETH_HLEN + IPV6_HLEN;
    if frame.len() < icmp_at + 24 || frame[12..14] != ETH_P_IPV6.to_be_bytes() {
        return None;
    }
    let ip = &frame[ETH_HLEN..icmp_at];
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_ICMPV6 || ip[7] != 255 {
        return None;
    }
    let icmp = &frame[icmp_at..];
    let mut target = [0u8; 16];
    target.copy_from_slice(&icmp[8..24]);
    if Ipv6Addr::from(target) != vip {
        return None;
    }
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&frame[6..12]);
    let src_unspecified = ip[8..24].iter().all(|&b| b == 0);
    let conflict =
        icmp[0] == ND_NEIGHBOR_ADVERT || (icmp[0] == ND_NEIGHBOR_SOLICIT && src_unspecified);
    (Mac(sender) != ours && conflict).then_some(Mac(sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x02, 0x77, 0, 0, 0, 1]);
    const OTHER: Mac = Mac([0x02, 0x77, 0, 0, 0, 2]);

    #[test]
    fn gratuitous_arp_is_the_request_form() {
        let mut buf = [0u8; MAX_FRAME_BYTES];
        let vip = Ipv4Addr::new(10, 77, 0, 50);
        let len = arp_frame(&mut buf, MAC, ArpKind::Gratuitous, vip);
        let f = &buf[..len];
        assert_eq!(len, 60);
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[6..12], &MAC.0);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "op request");
        assert_eq!(&f[22..28], &MAC.0);
        assert_eq!(&f[28..32], &vip.octets(), "sender IP = VIP");
        assert_eq!(&f[32..38], &BROADCAST, "target MAC broadcast");
        assert_eq!(&f[38..42], &vip.octets(), "target IP = VIP");
        // Our own announcement is not a conflict; the same from another MAC is.
        assert_eq!(arp_conflict(f, MAC, vip), None);
        assert_eq!(arp_conflict(f, OTHER, vip), Some(MAC));
    }

    #[test]
    fn arp_probe_has_zero_sender_and_is_recognised_from_others_only() {
        let mut buf = [0u8; MAX_FRAME_BYTES];
        let vip = Ipv4Addr::new(10, 77, 0, 50);
        let len = arp_frame(&mut buf, MAC, ArpKind::Probe, vip);
        let f = &buf[..len];
        assert_eq!(&f[28..32], &[0, 0, 0, 0]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &vip.octets());
        assert_eq!(arp_conflict(f, MAC, vip), None);
        assert_eq!(arp_conflict(f, OTHER, vip), Some(MAC), "simultaneous probe");
        assert_eq!(arp_conflict(f, OTHER, Ipv4Addr::new(10, 77, 0, 51)), None);
        assert_eq!(arp_conflict(&f[..30], OTHER, vip), None, "truncated");
    }

    #[test]
    fn unsolicited_na_checksums_to_zero_and_carries_override_and_target() {
        let mut buf = [0u8; MAX_FRAME_BYTES];
        let vip: Ipv6Addr = "fd00:77::50".parse().unwrap();
        let len = unsolicited_na(&mut buf, MAC, vip);
        let f = &buf[..len];
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(f[ETH_HLEN + 7], 255, "hop limit");
        let icmp = &f[ETH_HLEN + IPV6_HLEN..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4], 0x20, "override only");
        assert_eq!(&icmp[8..24], &vip.octets());
        assert_eq!(&icmp[26..32], &MAC.0);
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        // Summing a message that includes its checksum gives zero (complemented: 0).
        assert_eq!(icmpv6_checksum(vip, all_nodes, icmp), 0);
        assert_eq!(nd_conflict(f, OTHER, vip), Some(MAC));
        assert_eq!(nd_conflict(f, MAC, vip), None);
    }

    #[test]
    fn icmpv6_checksum_matches_a_known_packet() {
        // An NA fe80::1 -> ff02::1, target fe80::1, O flag, TLLAO 02:00:00:00:00:01; the
        // expected checksum was computed independently with Python (RFC 1071 sum).
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        let mut icmp = [0u8; 32];
        icmp[0] = 136;
        icmp[4] = 0x20;
        icmp[8..24].copy_from_slice(&src.octets());
        icmp[24] = 2;
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let sum = icmpv6_checksum(src, dst, &icmp);
        assert_eq!(sum, 0x579b);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(icmpv6_checksum(src, dst, &icmp), 0);
    }

    #[test]
    fn dad_solicitation_goes_to_the_solicited_node_group() {
        let mut buf = [0u8; MAX_FRAME_BYTES];
        let vip: Ipv6Addr = "fd00:77::1:2:3".parse().unwrap();
        let len = dad_solicitation(&mut buf, MAC, vip);
        let f = &buf[..len];
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0x02, 0x00, 0x03]);
        assert_eq!(&f[ETH_HLEN + 8..ETH_HLEN + 24], &[0; 16], "source ::");
        assert_eq!(
            Ipv6Addr::from(<[u8; 16]>::try_from(&f[ETH_HLEN + 24..ETH_HLEN + 40]).unwrap()),
            "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(f[ETH_HLEN + IPV6_HLEN], 135);
        let icmp = &f[ETH_HLEN + IPV6_HLEN..];
        assert_eq!(
            icmpv6_checksum(Ipv6Addr::UNSPECIFIED, solicited_node(vip), icmp),
            0
        );
        assert_eq!(nd_conflict(f, OTHER, vip), Some(MAC), "simultaneous DAD");
        assert_eq!(nd_conflict(f, MAC, vip), None);
    }

    #[test]
    fn address_messages_parse_without_allocation_and_prefer_ifa_local() {
        let v4 = Ipv4Addr::new(10, 0, 0, 50);
        let req = address_request(RequestKind::New, 7, IpAddr::V4(v4), 24, Some("eth0:bbwd"));
        let msg = NetlinkBuffer::new_checked(&req[..]).unwrap();
        assert_eq!(msg.message_type(), RTM_NEWADDR);
        assert_eq!(parse_address(msg.payload()), Some((7, IpAddr::V4(v4))));
        let v6: Ipv6Addr = "fd00::50".parse().unwrap();
        let req = address_request(RequestKind::Del, 9, IpAddr::V6(v6), 64, None);
        let msg = NetlinkBuffer::new_checked(&req[..]).unwrap();
        assert_eq!(msg.message_type(), RTM_DELADDR);
        assert_eq!(parse_address(msg.payload()), Some((9, IpAddr::V6(v6))));
        assert_eq!(parse_address(&[0u8; 4]), None);
        assert_eq!(parse_address(&[0u8; 8]), None);
    }

    #[test]
    fn error_names_operation_address_and_interface() {
        let e = VipError {
            op: VipOp::Add,
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 50)),
            interface: "eth0".into(),
            cause: Cause::Os(Errno::EPERM),
        };
        let text = e.to_string();
        assert!(text.contains("add") && text.contains("10.0.0.50") && text.contains("eth0"));
        assert!(text.contains("EPERM"), "{text}");
    }
}
