//! The virtual IP: adding and removing it over rtnetlink, announcing it (gratuitous ARP for
//! IPv4, unsolicited neighbour advertisements for IPv6), probing before adding whether anyone
//! else answers for it, and watching for it being removed behind our back.
//!
//! # What this module owns (vip/: mod.rs the Vip, watch.rs the address watch, netlink.rs the
//! requests, packet.rs the packet sockets, frames.rs the frames)
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

mod frames;
mod netlink;
mod packet;
#[cfg(test)]
mod tests;
mod watch;

use frames::*;
use netlink::*;
use packet::*;
pub use watch::{AddressWatch, WatchReport};

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
