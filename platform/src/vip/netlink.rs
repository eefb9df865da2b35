//! The VIP's rtnetlink requests: the request socket (sequence and port checks, a receive
//! timeout as a guard), the address add/delete/dump messages, and parsing the link and address
//! replies. The generic walker over a netlink buffer is `crate::netlink`.
//!
//! Owns: building and sending one request, reading its reply. Must not: decide anything.

use super::*;

use crate::netlink::for_each_message;

pub(super) struct RequestSocket {
    pub(super) socket: Socket,
    pub(super) port: u32,
    pub(super) seq: u32,
    pub(super) buf: Box<[u8]>,
}

impl RequestSocket {
    pub(super) fn open() -> Result<RequestSocket, Cause> {
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
    pub(super) fn transact(
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
    pub(super) fn resolve_link(&mut self, name: &str) -> Result<(u32, Mac), Cause> {
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

pub(super) fn parse_link(payload: &[u8]) -> Result<(u32, Mac), Cause> {
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
pub(super) fn parse_address(payload: &[u8]) -> Option<(u32, IpAddr)> {
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
pub(super) enum RequestKind {
    New,
    Del,
    Dump,
}

/// Builds an address request once; only its sequence number changes per use.
pub(super) fn address_request(
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

pub(super) fn serialize(message: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

pub(super) fn io_cause(e: &std::io::Error) -> Cause {
    Cause::Os(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}
