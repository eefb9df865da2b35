//! Watching the VIP: a netlink socket subscribed to the address group of the VIP's family,
//! reporting that our address was deleted behind our back.
//!
//! Owns: the subscription, its non-blocking reads and its overrun. Must not: put the address
//! back (the caller decides).

use super::*;
use crate::netlink::for_each_message;

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
    pub(super) fn open(
        interface: String,
        ifindex: u32,
        address: IpAddr,
    ) -> Result<AddressWatch, VipError> {
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
