//! The heartbeat links' sockets: one non-blocking UDP socket per `[cluster] listen` address,
//! bound to it, sending to the peer address of the same link; and the random boot id that
//! names one run of bbwd in its heartbeats.
//!
//! Must not: interpret packets (the agent's `heartbeat` module decodes and authenticates them),
//! block, or treat a failed send as fatal. A link whose interface is down, unrouted or
//! firewalled (`ENETUNREACH`, `EHOSTUNREACH`, `EPERM`, ...) is reported per link as a
//! [`SendError`], and the other links go on.
//!
//! # Theory of operation
//! ```text
//!   link i:  socket bound to listen[i]  ──send(i)──>  peer_addresses[i]
//!                                       <──recv────   anyone (authenticity is the agent's check)
//! ```
//! The event loop polls every link's fd for readability ([`Links::fds`]) and then calls
//! [`Links::recv`] until it returns `Ok(None)` (every socket said `EAGAIN`). `recv` visits the
//! links round-robin, so a flood on one link cannot starve the others; the caller bounds how many
//! datagrams it takes per wake-up.
//!
//! # Invariants
//! * No allocation per packet: send takes the caller's bytes, recv fills the caller's buffer;
//!   the only allocation is the link table at `bind`.
//! * Sockets are `SOCK_NONBLOCK | SOCK_CLOEXEC`; IPv6 sockets are `IPV6_V6ONLY` (a link is one
//!   address, never a dual-stack wildcard).
//! * A link's address and port are held by one socket only: no `SO_REUSEADDR` (see
//!   `open_link`), so a second bbwd on the same node fails to bind (`EADDRINUSE`) instead of
//!   sharing the heartbeats.
//! * Nothing here panics on what the network sends.

use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

/// Where the random boot id comes from (the kernel's CSPRNG; never blocks once seeded, which it
/// is long before bbwd starts).
const URANDOM: &str = "/dev/urandom";

/// Setting up the links failed; names the link and its address.
#[derive(Debug)]
pub enum Error {
    /// `listen[link]` and `peer_addresses[link]` are not of the same address family.
    FamilyMismatch {
        link: usize,
        listen: SocketAddr,
        peer: SocketAddr,
    },
    /// `listen` and `peer_addresses` differ in length.
    LinkCount { listen: usize, peers: usize },
    /// socket(2), setsockopt(2) or bind(2) on `listen[link]`.
    Socket {
        link: usize,
        listen: SocketAddr,
        op: &'static str,
        errno: Errno,
    },
    /// Reading the boot id's random bytes.
    Random { source: io::Error },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::FamilyMismatch { link, listen, peer } => write!(
                f,
                "heartbeat link {link}: listen {listen} and peer address {peer} are not the same address family"
            ),
            Error::LinkCount { listen, peers } => write!(
                f,
                "heartbeat links: {listen} listen addresses but {peers} peer addresses"
            ),
            Error::Socket {
                link,
                listen,
                op,
                errno,
            } => {
                write!(f, "heartbeat link {link}: cannot {op} {listen}: {errno}")?;
                if *errno == Errno::EADDRNOTAVAIL {
                    f.write_str(" (the address is not configured on this node)")?;
                } else if *errno == Errno::EADDRINUSE {
                    f.write_str(" (another process holds this port)")?;
                }
                Ok(())
            }
            Error::Random { source } => write!(f, "cannot read {URANDOM} for the boot id: {source}"),
        }
    }
}

impl std::error::Error for Error {}

/// A send that did not leave on one link. Not fatal: the link is down for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendError {
    pub link: usize,
    pub peer: SocketAddr,
    pub errno: Errno,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "heartbeat link {}: cannot send to {}: {}",
            self.link, self.peer, self.errno
        )?;
        match self.errno {
            Errno::EPERM | Errno::EACCES => f.write_str(" (a firewall rule refuses it?)"),
            Errno::ENETUNREACH | Errno::ENETDOWN => f.write_str(" (interface down or no route)"),
            _ => Ok(()),
        }
    }
}

/// A receive that failed on one link (rare for UDP: a pending socket error). Not fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError {
    pub link: usize,
    pub errno: Errno,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "heartbeat link {}: receive failed: {}",
            self.link, self.errno
        )
    }
}

/// One datagram, in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The link (index into `listen`) it arrived on.
    pub link: usize,
    /// Bytes in the buffer. A datagram larger than the buffer is cut to its length, so a buffer
    /// larger than a packet shows oversized datagrams as such.
    pub len: usize,
    /// Who sent it (not authenticated).
    pub from: SocketAddr,
}

struct Link {
    socket: UdpSocket,
    local: SocketAddr,
    peer: SocketAddr,
}

/// The heartbeat links: link i is `listen[i]` <-> `peers[i]`.
pub struct Links {
    links: Vec<Link>,
    /// Where the next `recv` starts looking (round-robin).
    cursor: usize,
}

fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

fn open_link(link: usize, listen: SocketAddr) -> Result<UdpSocket, Error> {
    let fail = |op: &'static str| {
        move |errno: Errno| Error::Socket {
            link,
            listen,
            op,
            errno,
        }
    };
    let family = match listen {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail("open a UDP socket for"))?;
    // No SO_REUSEADDR: UDP has no TIME_WAIT, so a restarted bbwd rebinds at once without it, and
    // with it Linux lets a second live socket bind the same address and port, so a second bbwd
    // started by mistake would silently share (and split) the heartbeats instead of failing.
    if family == AddressFamily::Inet6 {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(fail("set IPV6_V6ONLY on"))?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(listen)).map_err(fail("bind"))?;
    Ok(UdpSocket::from(fd))
}

impl Links {
    /// Opens and binds one socket per link. All or nothing: on error, the sockets already
    /// opened are closed.
    pub fn bind(listen: &[SocketAddr], peers: &[SocketAddr]) -> Result<Links, Error> {
        if listen.len() != peers.len() {
            return Err(Error::LinkCount {
                listen: listen.len(),
                peers: peers.len(),
            });
        }
        let mut links = Vec::with_capacity(listen.len());
        for (i, (&l, &p)) in listen.iter().zip(peers).enumerate() {
            if l.is_ipv4() != p.is_ipv4() {
                return Err(Error::FamilyMismatch {
                    link: i,
                    listen: l,
                    peer: p,
                });
            }
            let socket = open_link(i, l)?;
            // The bound address (the real port when `listen` says port 0, as tests do).
            let local = socket.local_addr().map_err(|e| Error::Socket {
                link: i,
                listen: l,
                op: "read the bound address of",
                errno: errno_of(&e),
            })?;
            links.push(Link {
                socket,
                local,
                peer: p,
            });
        }
        Ok(Links { links, cursor: 0 })
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The address link `link` is bound to.
    pub fn local_addr(&self, link: usize) -> Option<SocketAddr> {
        self.links.get(link).map(|l| l.local)
    }

    /// The peer address link `link` sends to.
    pub fn peer_addr(&self, link: usize) -> Option<SocketAddr> {
        self.links.get(link).map(|l| l.peer)
    }

    /// Sends `bytes` to the peer on `link`. A datagram either leaves whole or not at all; a full
    /// socket buffer (`EAGAIN`) is a failed send like any other (the next interval sends anew).
    pub fn send(&self, link: usize, bytes: &[u8]) -> Result<(), SendError> {
        let Some(l) = self.links.get(link) else {
            return Err(SendError {
                link,
                peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                errno: Errno::EINVAL,
            });
        };
        match l.socket.send_to(bytes, l.peer) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(SendError {
                link,
                peer: l.peer,
                errno: Errno::EMSGSIZE,
            }),
            Err(e) => Err(SendError {
                link,
                peer: l.peer,
                errno: errno_of(&e),
            }),
        }
    }

    /// Receives one datagram from `link`; `Ok(None)` when none is waiting (`EAGAIN`).
    pub fn recv_on(&self, link: usize, buf: &mut [u8]) -> Result<Option<Received>, RecvError> {
        let Some(l) = self.links.get(link) else {
            return Err(RecvError {
                link,
                errno: Errno::EINVAL,
            });
        };
        loop {
            match l.socket.recv_from(buf) {
                Ok((len, from)) => return Ok(Some(Received { link, len, from })),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RecvError {
                        link,
                        errno: errno_of(&e),
                    })
                }
            }
        }
    }

    /// Receives the next datagram from any link, visiting links round-robin; `Ok(None)` when
    /// every link is drained. An error names its link; the next call goes on with the others.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, RecvError> {
        let n = self.links.len();
        for _ in 0..n {
            let link = self.cursor;
            self.cursor = (self.cursor + 1) % n;
            if let Some(got) = self.recv_on(link, buf)? {
                return Ok(Some(got));
            }
        }
        Ok(None)
    }

    /// Link `link`'s socket, to poll for readability.
    pub fn fd(&self, link: usize) -> Option<BorrowedFd<'_>> {
        self.links.get(link).map(|l| l.socket.as_fd())
    }

    /// Every link's socket, in link order.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> + '_ {
        self.links.iter().map(|l| l.socket.as_fd())
    }
}

/// 16 random bytes from the kernel: the boot id of this run of bbwd (drawn once at start).
pub fn random_boot_id() -> Result<[u8; 16], Error> {
    let mut id = [0u8; 16];
    File::open(Path::new(URANDOM))
        .and_then(|mut f| f.read_exact(&mut id))
        .map_err(|source| Error::Random { source })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(ip), port))
    }

    /// Receives until `want` datagrams arrived or 5 s passed (a generous bound, not a timing
    /// assertion); polls the link fds so the test does not spin.
    fn drain(links: &mut Links, want: usize) -> Vec<(Received, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.len() < want && Instant::now() < deadline {
            let mut fds: Vec<_> = links
                .fds()
                .map(|fd| nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN))
                .collect();
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            drop(fds);
            while let Some(r) = links.recv(&mut buf).unwrap() {
                got.push((r, buf[..r.len].to_vec()));
            }
        }
        got
    }

    /// Two nodes on loopback with two links each: 127.0.0.1 (two ports) and 127.0.0.2.
    fn pair() -> (Links, Links) {
        let a = Links::bind(
            &[addr([127, 0, 0, 1], 0), addr([127, 0, 0, 2], 0)],
            &[addr([127, 0, 0, 1], 9), addr([127, 0, 0, 2], 9)],
        )
        .unwrap();
        let b_listen = [addr([127, 0, 0, 1], 0), addr([127, 0, 0, 2], 0)];
        let a_addrs = [a.local_addr(0).unwrap(), a.local_addr(1).unwrap()];
        let b = Links::bind(&b_listen, &a_addrs).unwrap();
        let b_addrs = [b.local_addr(0).unwrap(), b.local_addr(1).unwrap()];
        // Rebind a towards b's real ports (ports 0 were only known after binding); a's ports are
        // free again at once after the close.
        drop(a);
        let a = Links::bind(&a_addrs, &b_addrs).unwrap();
        (a, b)
    }

    #[test]
    fn packets_flow_both_ways_on_every_link_with_link_index_and_source() {
        let (mut a, mut b) = pair();
        assert_eq!(a.len(), 2);
        for link in 0..2 {
            a.send(link, &[link as u8; 144]).unwrap();
            b.send(link, &[0x10 + link as u8; 144]).unwrap();
        }
        let mut at_b = drain(&mut b, 2);
        at_b.sort_by_key(|(r, _)| r.link);
        assert_eq!(at_b.len(), 2);
        for (i, (r, bytes)) in at_b.iter().enumerate() {
            assert_eq!(r.link, i);
            assert_eq!(r.len, 144);
            assert_eq!(r.from, a.local_addr(i).unwrap());
            assert_eq!(bytes, &vec![i as u8; 144]);
        }
        let at_a = drain(&mut a, 2);
        assert_eq!(at_a.len(), 2);
        assert!(at_a
            .iter()
            .all(|(r, bytes)| bytes[0] == 0x10 + r.link as u8));
        // Drained: nothing more.
        let mut buf = [0u8; 512];
        assert_eq!(a.recv(&mut buf).unwrap(), None);
        assert_eq!(b.recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn two_links_on_the_same_address_with_different_ports() {
        let x = Links::bind(
            &[addr([127, 0, 0, 1], 0), addr([127, 0, 0, 1], 0)],
            &[addr([127, 0, 0, 1], 9), addr([127, 0, 0, 1], 9)],
        )
        .unwrap();
        let xa = [x.local_addr(0).unwrap(), x.local_addr(1).unwrap()];
        assert_ne!(xa[0].port(), xa[1].port());
        let mut y = Links::bind(&[addr([127, 0, 0, 1], 0), addr([127, 0, 0, 1], 0)], &xa).unwrap();
        let ya = [y.local_addr(0).unwrap(), y.local_addr(1).unwrap()];
        drop(x);
        let x = Links::bind(&xa, &ya).unwrap();
        x.send(1, b"hello").unwrap();
        let got = drain(&mut y, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.link, 1);
        assert_eq!(got[0].1, b"hello");
    }

    #[test]
    fn oversized_datagrams_show_their_size_up_to_the_buffer() {
        let (a, mut b) = pair();
        a.send(0, &[7u8; 1000]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 512];
        let got = loop {
            if let Some(r) = b.recv(&mut buf).unwrap() {
                break r;
            }
            assert!(Instant::now() < deadline, "datagram never arrived");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(
            got.len, 512,
            "cut to the buffer, still larger than a packet"
        );
    }

    #[test]
    fn recv_is_round_robin_across_links() {
        let (a, mut b) = pair();
        for _ in 0..3 {
            a.send(0, b"zero").unwrap();
        }
        a.send(1, b"one").unwrap();
        // Wait until both links have something queued (loopback delivers at once, but give it
        // up to 5 s on a loaded machine).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut fds: Vec<_> = b
                .fds()
                .map(|fd| nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN))
                .collect();
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            let ready = fds.iter().filter(|f| f.any() == Some(true)).count();
            if ready == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "datagrams never arrived");
        }
        let mut order = Vec::new();
        let mut buf = [0u8; 512];
        while let Some(r) = b.recv(&mut buf).unwrap() {
            order.push(r.link);
        }
        assert_eq!(order.len(), 4, "{order:?}");
        // Link 1's datagram is not served last behind link 0's backlog.
        assert_eq!(
            order[..2].iter().filter(|&&l| l == 1).count(),
            1,
            "{order:?}"
        );
    }

    #[test]
    fn send_errors_are_per_link_values() {
        let a = Links::bind(&[addr([127, 0, 0, 1], 0)], &[addr([127, 0, 0, 1], 9)]).unwrap();
        // Broadcast without SO_BROADCAST: refused by the kernel (EACCES), no packet leaves.
        let b = Links::bind(&[addr([127, 0, 0, 1], 0)], &[addr([255, 255, 255, 255], 9)]).unwrap();
        let err = b.send(0, b"x").unwrap_err();
        assert_eq!(err.link, 0);
        assert_eq!(err.errno, Errno::EACCES);
        assert!(err.to_string().contains("heartbeat link 0"), "{err}");
        let err = a.send(3, b"x").unwrap_err();
        assert_eq!((err.link, err.errno), (3, Errno::EINVAL));
    }

    #[test]
    fn bind_errors_name_the_link_and_address() {
        let err = Links::bind(&[addr([127, 0, 0, 1], 0)], &[]).err().unwrap();
        assert!(
            matches!(
                err,
                Error::LinkCount {
                    listen: 1,
                    peers: 0
                }
            ),
            "{err}"
        );
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let err = Links::bind(&[addr([127, 0, 0, 1], 0)], &[v6])
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::FamilyMismatch { link: 0, .. }),
            "{err}"
        );
        // 192.0.2.1 (TEST-NET-1) is not configured here: EADDRNOTAVAIL, no packet sent.
        let err = Links::bind(
            &[addr([127, 0, 0, 1], 0), addr([192, 0, 2, 1], 5405)],
            &[addr([127, 0, 0, 1], 9), addr([192, 0, 2, 2], 5405)],
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                Error::Socket {
                    link: 1,
                    errno: Errno::EADDRNOTAVAIL,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("192.0.2.1:5405"), "{text}");
    }

    #[test]
    fn a_held_port_is_refused_and_free_again_at_once_after_close() {
        // A second bbwd on the same node must fail (EADDRINUSE), not share the heartbeats; a
        // restarted bbwd rebinds at once (UDP has no TIME_WAIT).
        let a = Links::bind(&[addr([127, 0, 0, 1], 0)], &[addr([127, 0, 0, 1], 9)]).unwrap();
        let taken = a.local_addr(0).unwrap();
        let err = Links::bind(&[taken], &[addr([127, 0, 0, 1], 9)])
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                Error::Socket {
                    errno: Errno::EADDRINUSE,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("another process holds this port"),
            "{err}"
        );
        drop(a);
        Links::bind(&[taken], &[addr([127, 0, 0, 1], 9)]).unwrap();
    }

    #[test]
    fn boot_ids_are_random() {
        let a = random_boot_id().unwrap();
        let b = random_boot_id().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }
}
