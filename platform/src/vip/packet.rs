//! Packet sockets: a raw `AF_PACKET` socket bound to the VIP's interface, to send the
//! announcement frames and receive probe answers.
//!
//! Owns: the sockets and one frame in or out. Must not: build or interpret frames (frames.rs).

use super::*;

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket bound to `ifindex` for `ethertype` (0 = send
/// only: the socket receives nothing).
pub(super) fn packet_socket(ifindex: u32, ethertype: u16) -> Result<OwnedFd, Errno> {
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

pub(super) fn link_addr(ifindex: u32, ethertype: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ethertype.to_be();
    addr.sll_ifindex = ifindex as i32;
    addr
}

/// Sends one whole Ethernet frame out of `ifindex` without blocking.
pub(super) fn send_frame(fd: BorrowedFd<'_>, ifindex: u32, frame: &[u8]) -> Result<(), Errno> {
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
pub(super) fn recv_frame(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    buf: &mut [u8],
) -> Result<Option<usize>, Errno> {
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
