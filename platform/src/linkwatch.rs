//! The state of the VIP's network interface, watched over rtnetlink: the seeds' "network
//! connection from the request router is lost" is this interface going down or losing its
//! carrier on the active node, which must then fail over.
//!
//! # What this file owns
//! [`LinkWatch`]: one `NETLINK_ROUTE` socket subscribed to the link group (`RTNLGRP_LINK`),
//! non-blocking after [`LinkWatch::open`]. At open it asks the kernel for the interface by name
//! (`RTM_GETLINK`, answered within the `send`; a 500 ms receive timeout guards the wait), which
//! gives the interface index and the initial [`LinkState`]. From then on every `RTM_NEWLINK` /
//! `RTM_DELLINK` notification for that index updates the state, and [`LinkWatch::read`] reports
//! it when it changed. Each state is read from one message: administratively up = `IFF_UP`;
//! carrier = `IFLA_CARRIER` when present, else `IFF_LOWER_UP`.
//!
//! # What it must not do
//! Decide. Whether a lost carrier means a failover, and after how long, is the caller's
//! (a link that flaps for a second may deserve patience). Nothing here blocks after `open`:
//! the caller polls [`LinkWatch::fd`] and calls [`LinkWatch::read`].
//!
//! # Theory of operation
//! ```text
//!   open: subscribe RTNLGRP_LINK ─► RTM_GETLINK(name) ─► reply: index + state ─► non-blocking
//!   read: drain ─┬─ NEWLINK(index)            ─► state from flags / IFLA_CARRIER
//!                ├─ NEWLINK(other index, name) ─► the interface was re-created: follow it
//!                ├─ DELLINK(index)            ─► down, no carrier
//!                ├─ ENOBUFS (queue overrun)   ─► re-send RTM_GETLINK; its answer arrives in
//!                │                               the same or a later drain
//!                └─ error reply ENODEV        ─► down, no carrier (the interface is gone)
//!         returns Some(state) when it differs from the last state reported (or from open's)
//! ```
//!
//! # Invariants
//! * Subscribed before the initial query, so no change between the two can be missed.
//! * Only messages from the kernel (port 0) are believed; replies are matched on our port and
//!   sequence number.
//! * No allocation after `open`: the request is built once, the receive buffer sized once, and
//!   messages are parsed in place.
//! * No `unsafe` here: the socket is netlink-sys's, the parsing is safe slicing.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use crate::netlink::for_each_message;
use netlink_packet_core::{
    ErrorBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLMSG_ERROR,
    NLMSG_OVERRUN, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// Guard on the initial reply: rtnetlink answers within the `send`; 500 ms bounds the stall
/// at start-up if something is badly wrong.
const OPEN_REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// User-space receive buffer: one link message is ~1-2 KiB (with stats), one per datagram.
const BUF_BYTES: usize = 16 * 1024;
/// Kernel-side queue, so that a burst of link changes (a bond or many VLANs) does not overrun
/// it (an overrun is handled by re-querying, but is better avoided).
const RCVBUF_BYTES: usize = 256 * 1024;

const RTNLGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
const IFLA_CARRIER: u16 = 33;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;
/// The sequence number of our GETLINK requests (one kind of request, so one number).
const QUERY_SEQ: u32 = 1;

/// The interface as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    /// Administratively up (`IFF_UP`: `ip link set dev X up`).
    pub up: bool,
    /// The link has a carrier (cable in, switch port up, veth peer up).
    pub carrier: bool,
}

impl LinkState {
    const GONE: LinkState = LinkState {
        up: false,
        carrier: false,
    };

    /// Up and with a carrier: traffic can flow.
    pub fn usable(self) -> bool {
        self.up && self.carrier
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.up, self.carrier) {
            (true, true) => f.write_str("up"),
            (true, false) => f.write_str("up, no carrier"),
            (false, _) => f.write_str("down"),
        }
    }
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkWatchOp {
    Open,
    Read,
}

/// Why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCause {
    Os(Errno),
    NoSuchInterface,
    /// The kernel did not answer the initial query within the guard time.
    NoReply,
    Protocol(&'static str),
}

/// A link watch error, naming the operation and the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkWatchError {
    pub op: LinkWatchOp,
    pub interface: String,
    pub cause: LinkCause,
}

impl fmt::Display for LinkWatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            LinkWatchOp::Open => "cannot watch",
            LinkWatchOp::Read => "lost the watch of",
        };
        write!(f, "{op} interface {}: ", self.interface)?;
        match self.cause {
            LinkCause::Os(e) => f.write_str(e.desc()),
            LinkCause::NoSuchInterface => f.write_str("no such interface"),
            LinkCause::NoReply => f.write_str("the kernel did not answer"),
            LinkCause::Protocol(what) => write!(f, "netlink: {what}"),
        }
    }
}

impl std::error::Error for LinkWatchError {}

/// Watches one interface: see the module doc.
pub struct LinkWatch {
    interface: String,
    ifindex: u32,
    socket: Socket,
    port: u32,
    request: Vec<u8>,
    buf: Box<[u8]>,
    /// The latest state seen.
    current: LinkState,
    /// The state last handed to the caller (by `state` after open, or by `read`).
    reported: LinkState,
}

impl fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkWatch")
            .field("interface", &self.interface)
            .field("ifindex", &self.ifindex)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl LinkWatch {
    /// Subscribes, then learns the interface's index and state. Fails when the interface does
    /// not exist (a configuration error the caller reports at start-up).
    pub fn open(interface: &str) -> Result<LinkWatch, LinkWatchError> {
        let fail = |cause| LinkWatchError {
            op: LinkWatchOp::Open,
            interface: interface.to_string(),
            cause,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| fail(io_cause(&e)))?;
        // A bigger queue first; failing to get it is not fatal (overruns are handled).
        let _ = setsockopt(&socket, sockopt::RcvBuf, &RCVBUF_BYTES);
        let local = socket.bind_auto().map_err(|e| fail(io_cause(&e)))?;
        socket
            .add_membership(RTNLGRP_LINK)
            .map_err(|e| fail(io_cause(&e)))?;
        let timeout = TimeVal::new(
            OPEN_REPLY_TIMEOUT.as_secs() as _,
            OPEN_REPLY_TIMEOUT.subsec_micros() as _,
        );
        setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| fail(LinkCause::Os(e)))?;
        let mut watch = LinkWatch {
            interface: interface.to_string(),
            ifindex: 0,
            socket,
            port: local.port_number(),
            request: getlink_request(interface),
            buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
            current: LinkState::GONE,
            reported: LinkState::GONE,
        };
        watch.send_query().map_err(fail)?;
        // Blocking (with the guard timeout) until the kernel's acknowledgement of the query;
        // notifications read meanwhile are applied in order like any other.
        loop {
            match watch.receive_one() {
                Ok(Some(Reply::Ack)) if watch.ifindex != 0 => break,
                Ok(Some(Reply::Ack)) => {
                    return Err(fail(LinkCause::Protocol("no link in the reply")))
                }
                Ok(Some(Reply::Error(Errno::ENODEV))) => {
                    return Err(fail(LinkCause::NoSuchInterface))
                }
                Ok(Some(Reply::Error(e))) => return Err(fail(LinkCause::Os(e))),
                Ok(Some(Reply::Overrun)) => return Err(fail(LinkCause::Protocol("overrun"))),
                Ok(None) => {}
                Err(LinkCause::Os(Errno::EAGAIN)) => return Err(fail(LinkCause::NoReply)),
                Err(LinkCause::Os(Errno::EINTR)) => {}
                Err(cause) => return Err(fail(cause)),
            }
        }
        watch
            .socket
            .set_non_blocking(true)
            .map_err(|e| fail(io_cause(&e)))?;
        watch.reported = watch.current;
        Ok(watch)
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface index being watched (it changes if the interface is re-created).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The latest state seen (after `open`: the initial state).
    pub fn state(&self) -> LinkState {
        self.current
    }

    /// The socket, to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Drains the pending notifications; `Some(state)` when the state differs from the one last
    /// reported (intermediate states within one drain are folded into the last).
    pub fn read(&mut self) -> Result<Option<LinkState>, LinkWatchError> {
        loop {
            match self.receive_one() {
                Ok(Some(Reply::Error(Errno::ENODEV))) => self.current = LinkState::GONE,
                Ok(Some(Reply::Overrun)) => self.requery()?,
                Ok(_) => {}
                Err(LinkCause::Os(Errno::EAGAIN)) => break,
                Err(LinkCause::Os(Errno::EINTR)) => {}
                Err(LinkCause::Os(Errno::ENOBUFS)) => self.requery()?,
                Err(cause) => {
                    return Err(LinkWatchError {
                        op: LinkWatchOp::Read,
                        interface: self.interface.clone(),
                        cause,
                    })
                }
            }
        }
        if self.current == self.reported {
            return Ok(None);
        }
        self.reported = self.current;
        Ok(Some(self.current))
    }

    /// Notifications were lost: ask for the state again; the answer queues up behind.
    fn requery(&mut self) -> Result<(), LinkWatchError> {
        self.send_query().map_err(|cause| LinkWatchError {
            op: LinkWatchOp::Read,
            interface: self.interface.clone(),
            cause,
        })
    }

    fn send_query(&mut self) -> Result<(), LinkCause> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.socket.send_to(&self.request, &kernel, 0) {
                Ok(_) => return Ok(()),
                Err(e) => match io_cause(&e) {
                    LinkCause::Os(Errno::EINTR) => continue,
                    cause => return Err(cause),
                },
            }
        }
    }

    /// Reads one datagram and applies the link messages in it. The reply to our query
    /// (acknowledgement or error), or an overrun, is returned; `Err` is the receive error.
    fn receive_one(&mut self) -> Result<Option<Reply>, LinkCause> {
        let (len, from) = self
            .socket
            .recv_from(&mut &mut self.buf[..], libc::MSG_TRUNC)
            .map_err(|e| io_cause(&e))?;
        if from.port_number() != 0 {
            return Ok(None); // not from the kernel
        }
        if len > self.buf.len() {
            // A cut message cannot be trusted: treat it as lost notifications.
            return Ok(Some(Reply::Overrun));
        }
        let mut reply = None;
        let (buf, port, name) = (&self.buf[..len], self.port, self.interface.as_bytes());
        let (mut ifindex, mut current) = (self.ifindex, self.current);
        let complete = for_each_message(buf, |msg| match msg.message_type() {
            RTM_NEWLINK | RTM_DELLINK => {
                let Some(link) = parse_link(msg.payload(), name) else {
                    return;
                };
                let ours =
                    link.index == ifindex || (link.named && msg.message_type() == RTM_NEWLINK);
                if !ours {
                    return;
                }
                if link.index != ifindex {
                    if ifindex != 0 {
                        log::info!(
                            "interface {} re-created (index {} -> {})",
                            String::from_utf8_lossy(name),
                            ifindex,
                            link.index
                        );
                    }
                    ifindex = link.index;
                }
                current = if msg.message_type() == RTM_DELLINK {
                    LinkState::GONE
                } else {
                    link.state
                };
            }
            NLMSG_ERROR if msg.port_number() == port && msg.sequence_number() == QUERY_SEQ => {
                reply = Some(match ErrorBuffer::new_checked(msg.payload()) {
                    Ok(e) => match e.code() {
                        None => Reply::Ack,
                        Some(code) => Reply::Error(Errno::from_raw(-code.get())),
                    },
                    Err(_) => Reply::Error(Errno::EPROTO),
                });
            }
            NLMSG_OVERRUN => reply = Some(Reply::Overrun),
            _ => {}
        });
        self.ifindex = ifindex;
        self.current = current;
        if !complete {
            return Err(LinkCause::Protocol("malformed message"));
        }
        Ok(reply)
    }
}

enum Reply {
    Ack,
    Error(Errno),
    Overrun,
}

/// What one link message says, parsed in place.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    index: u32,
    /// Its `IFLA_IFNAME` is the name we were given.
    named: bool,
    state: LinkState,
}

/// Parses a link message; `named` says whether its name is `name`.
fn parse_link(payload: &[u8], name: &[u8]) -> Option<Link> {
    // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
    if payload.len() < 16 {
        return None;
    }
    let index = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let flags = u32::from_ne_bytes([payload[8], payload[9], payload[10], payload[11]]);
    let mut named = false;
    let mut carrier = None;
    for nla in NlasIterator::new(&payload[16..]) {
        let Ok(nla) = nla else { break };
        match nla.kind() {
            IFLA_IFNAME => {
                let v = nla.value();
                let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                named = &v[..end] == name;
            }
            IFLA_CARRIER => carrier = nla.value().first().map(|&c| c != 0),
            _ => {}
        }
    }
    Some(Link {
        index,
        named,
        state: LinkState {
            up: flags & IFF_UP != 0,
            carrier: carrier.unwrap_or(flags & IFF_LOWER_UP != 0),
        },
    })
}

/// RTM_GETLINK for `name`, built once at open.
fn getlink_request(name: &str) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = QUERY_SEQ;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(msg)),
    );
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn io_cause(e: &std::io::Error) -> LinkCause {
    LinkCause::Os(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::{available, NetNs};
    use netlink_packet_core::NetlinkBuffer;
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::time::Instant;

    /// Generous: the machine is shared; the kernel may delay carrier notifications up to ~1 s.
    const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

    fn link_payload(index: u32, flags: u32, name: &str, carrier: Option<u8>) -> Vec<u8> {
        let mut p = vec![0u8; 16];
        p[4..8].copy_from_slice(&index.to_ne_bytes());
        p[8..12].copy_from_slice(&flags.to_ne_bytes());
        let mut nla = |kind: u16, value: &[u8]| {
            let len = 4 + value.len();
            p.extend_from_slice(&(len as u16).to_ne_bytes());
            p.extend_from_slice(&kind.to_ne_bytes());
            p.extend_from_slice(value);
            p.resize(p.len().next_multiple_of(4), 0);
        };
        let mut z = name.as_bytes().to_vec();
        z.push(0);
        nla(IFLA_IFNAME, &z);
        if let Some(c) = carrier {
            nla(IFLA_CARRIER, &[c]);
        }
        p
    }

    #[test]
    fn link_messages_parse_in_place() {
        let p = link_payload(7, IFF_UP | IFF_LOWER_UP, "eth0", None);
        assert_eq!(
            parse_link(&p, b"eth0"),
            Some(Link {
                index: 7,
                named: true,
                state: LinkState {
                    up: true,
                    carrier: true
                }
            })
        );
        assert!(!parse_link(&p, b"eth").unwrap().named);
        assert!(!parse_link(&p, b"eth00").unwrap().named);
        // IFLA_CARRIER, when present, wins over the flags.
        let p = link_payload(7, IFF_UP | IFF_LOWER_UP, "eth0", Some(0));
        assert_eq!(
            parse_link(&p, b"eth0").unwrap().state,
            LinkState {
                up: true,
                carrier: false
            }
        );
        let p = link_payload(7, 0, "eth0", None);
        assert_eq!(
            parse_link(&p, b"eth0").unwrap().state,
            LinkState {
                up: false,
                carrier: false
            }
        );
        // Short or cut messages: no panic.
        let full = link_payload(7, IFF_UP, "eth0", Some(1));
        for cut in 0..full.len() {
            let parsed = parse_link(&full[..cut], b"eth0");
            assert_eq!(parsed.is_some(), cut >= 16);
        }
        assert_eq!(
            LinkState {
                up: true,
                carrier: false
            }
            .to_string(),
            "up, no carrier"
        );
        assert!(!LinkState {
            up: true,
            carrier: false
        }
        .usable());
    }

    #[test]
    fn getlink_request_is_a_well_formed_request() {
        let r = getlink_request("eth0");
        let msg = NetlinkBuffer::new_checked(&r[..]).unwrap();
        assert_eq!(msg.message_type(), 18); // RTM_GETLINK
        assert_eq!(msg.sequence_number(), QUERY_SEQ);
        assert_eq!(msg.flags(), NLM_F_REQUEST | NLM_F_ACK);
        assert!(parse_link(msg.payload(), b"eth0").unwrap().named);
    }

    /// Polls and reads until the watch reports `want`; every state reported on the way.
    fn wait_for(w: &mut LinkWatch, want: LinkState, what: &str) -> Vec<LinkState> {
        let end = Instant::now() + SEEN_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: never reported {want:?}; saw {seen:?}"
            );
            let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            nix::poll::poll(&mut fds, PollTimeout::from(ms)).unwrap();
            if let Some(state) = w.read().unwrap() {
                seen.push(state);
                assert_eq!(w.state(), state);
                if state == want {
                    return seen;
                }
            }
        }
    }

    const UP: LinkState = LinkState {
        up: true,
        carrier: true,
    };
    const NO_CARRIER: LinkState = LinkState {
        up: true,
        carrier: false,
    };
    const DOWN: LinkState = LinkState {
        up: false,
        carrier: false,
    };

    fn veth_lab() -> NetNs {
        let ns = NetNs::new("bblnk");
        ns.ip(&[
            "link", "add", "vip0", "type", "veth", "peer", "name", "peer0",
        ]);
        ns.ip(&["link", "set", "vip0", "up"]);
        ns.ip(&["link", "set", "peer0", "up"]);
        ns
    }

    #[test]
    fn down_carrier_loss_and_recovery_are_reported() {
        if !available("the link watch test") {
            return;
        }
        let ns = veth_lab();
        let mut w = ns
            .inside(|| LinkWatch::open("vip0"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(w.ifindex(), 0);
        // Just brought up: the carrier may still be coming (its notification is delayed).
        if w.state() != UP {
            assert!(w.state().up);
            wait_for(&mut w, UP, "initial carrier");
        }
        assert_eq!(w.read().unwrap(), None, "nothing changed");

        ns.ip(&["link", "set", "dev", "vip0", "down"]);
        wait_for(&mut w, DOWN, "ip link set vip0 down");
        ns.ip(&["link", "set", "dev", "vip0", "up"]);
        wait_for(&mut w, UP, "vip0 up again");

        // The far end goes down: ours stays administratively up, without carrier.
        ns.ip(&["link", "set", "dev", "peer0", "down"]);
        let seen = wait_for(&mut w, NO_CARRIER, "peer down");
        assert!(seen.iter().all(|s| s.up), "vip0 itself stayed up: {seen:?}");
        ns.ip(&["link", "set", "dev", "peer0", "up"]);
        wait_for(&mut w, UP, "peer up again");
        assert_eq!(
            w.ifindex(),
            ns.inside(|| LinkWatch::open("vip0")).unwrap().ifindex()
        );
    }

    #[test]
    fn a_deleted_interface_is_down_and_a_recreated_one_is_followed() {
        if !available("the link watch test") {
            return;
        }
        let ns = veth_lab();
        let mut w = ns.inside(|| LinkWatch::open("vip0")).unwrap();
        let first = w.ifindex();
        ns.ip(&["link", "del", "vip0"]);
        wait_for(&mut w, DOWN, "vip0 deleted");
        ns.ip(&[
            "link", "add", "vip0", "type", "veth", "peer", "name", "peer1",
        ]);
        ns.ip(&["link", "set", "peer1", "up"]);
        ns.ip(&["link", "set", "vip0", "up"]);
        wait_for(&mut w, UP, "vip0 re-created");
        assert_ne!(w.ifindex(), first);
    }

    #[test]
    fn a_missing_interface_is_an_error_naming_it() {
        if !available("the link watch test") {
            return;
        }
        let ns = NetNs::new("bblnk");
        let err = ns.inside(|| LinkWatch::open("nosuch0")).unwrap_err();
        assert_eq!(err.cause, LinkCause::NoSuchInterface);
        assert_eq!(err.op, LinkWatchOp::Open);
        assert!(err.to_string().contains("nosuch0"), "{err}");
    }
}
