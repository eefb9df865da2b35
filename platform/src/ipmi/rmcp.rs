//! What goes on the wire to a BMC outside a session's encryption: the RMCP and RMCP+ packet
//! headers, the IPMI message inside them (addresses, checksums, request/reply matching), the
//! UDP socket and the wait for an accepted datagram, and the two pre-session queries (Get
//! Channel Authentication Capabilities, Get Channel Cipher Suites).
//!
//! Owns: the packet layouts and constants of IPMI 2.0 §13 that the handshake and the session
//! share; the socket (bound to the BMC's address family, connected to the BMC); the kernel's
//! random bytes. Must not: compute or send anything derived from the password (`rakp.rs`
//! does), or keep state between calls.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::Failure;

pub(super) const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
const AUTH_NONE: u8 = 0x00;
pub(super) const AUTH_RMCP_PLUS: u8 = 0x06;
pub(super) const PAYLOAD_IPMI: u8 = 0x00;
pub(super) const PAYLOAD_OPEN_REQ: u8 = 0x10;
pub(super) const PAYLOAD_OPEN_RSP: u8 = 0x11;
pub(super) const PAYLOAD_RAKP1: u8 = 0x12;
pub(super) const PAYLOAD_RAKP2: u8 = 0x13;
pub(super) const PAYLOAD_RAKP3: u8 = 0x14;
pub(super) const PAYLOAD_RAKP4: u8 = 0x15;
pub(super) const ENCRYPTED: u8 = 0x80;
pub(super) const AUTHENTICATED: u8 = 0x40;
/// The BMC's and our addresses on the IPMB (§13.8): BMC 0x20, remote console software 0x81.
const BMC_ADDR: u8 = 0x20;
const CONSOLE_ADDR: u8 = 0x81;
/// Administrator (§6.8), with bit 4: look the user up by name only (as ipmitool does).
pub(super) const ROLE_ADMIN_NAME_ONLY: u8 = 0x14;
pub(super) const PRIV_ADMIN: u8 = 0x04;
/// Largest datagram read (replies here are < 100 bytes; room for any BMC's).
const MAX_DATAGRAM: usize = 1024;

/// Two's complement checksum (§13.8).
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// An IPMI request message (§13.8): rsAddr, netFn/LUN, check, rqAddr, rqSeq/LUN, cmd, data, check.
pub(super) fn ipmi_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![BMC_ADDR, netfn << 2];
    m.push(checksum(&m));
    m.extend_from_slice(&[CONSOLE_ADDR, rq_seq << 2, cmd]);
    m.extend_from_slice(data);
    m.push(checksum(&m[3..]));
    m
}

/// A reply's completion code and data, if it answers (netfn, cmd, rq_seq).
pub(super) fn ipmi_reply(m: &[u8], netfn: u8, cmd: u8, rq_seq: u8) -> Option<(u8, Vec<u8>)> {
    if m.len() < 8 || checksum(&m[..3]) != 0 || checksum(&m[3..]) != 0 {
        return None;
    }
    let ok = m[0] == CONSOLE_ADDR
        && m[1] >> 2 == netfn | 1
        && m[3] == BMC_ADDR
        && m[4] >> 2 == rq_seq
        && m[5] == cmd;
    ok.then(|| (m[6], m[7..m.len() - 1].to_vec()))
}

/// Fills `buf` from the kernel's random source (getrandom(2)).
pub(super) fn random(buf: &mut [u8]) -> Result<(), Failure> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most `buf.len() - done` bytes into the live slice's tail.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Failure::Protocol(format!("getrandom: {e}")));
        }
        done += n as usize;
    }
    Ok(())
}

pub(super) fn io_is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// An I/O error while no session is up yet: why the BMC cannot be reached.
pub fn unreachable_io(e: &io::Error, waited: Duration) -> Failure {
    if io_is_timeout(e) {
        return Failure::Unreachable(format!(
            "no answer within {} ms (wrong address or port, BMC down, or filtered)",
            waited.as_millis()
        ));
    }
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => {
            Failure::Unreachable("connection refused (nothing listens on that UDP port)".into())
        }
        _ => Failure::Unreachable(e.to_string()),
    }
}

/// The socket, connected to the BMC (so that ICMP "port unreachable" comes back as an error
/// and nothing from other addresses is read).
pub(super) fn socket(addr: SocketAddr, reply_timeout: Duration) -> Result<UdpSocket, Failure> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| Failure::Protocol("bind".into()))?
    } else {
        "[::]:0"
            .parse()
            .map_err(|_| Failure::Protocol("bind".into()))?
    };
    let s = UdpSocket::bind(local).map_err(|e| Failure::Unreachable(format!("bind: {e}")))?;
    s.connect(addr)
        .map_err(|e| Failure::Unreachable(format!("{addr}: {e}")))?;
    s.set_read_timeout(Some(reply_timeout))
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    Ok(s)
}

/// Waits for a datagram that `take` accepts, until `reply_timeout` has passed; others are
/// dropped. Err(io) on a socket error or the timeout.
pub(super) fn receive<T>(
    sock: &UdpSocket,
    reply_timeout: Duration,
    mut take: impl FnMut(&[u8]) -> Result<T, String>,
) -> Result<T, io::Error> {
    let until = Instant::now() + reply_timeout;
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        match take(&buf[..n]) {
            Ok(t) => return Ok(t),
            Err(why) => log::debug!("RMCP+: dropped a datagram: {why}"),
        }
    }
}

/// An unauthenticated packet of payload type `ptype` (the handshake: session id and sequence 0).
pub(super) fn handshake_packet(ptype: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = RMCP_HEADER.to_vec();
    p.extend_from_slice(&[AUTH_RMCP_PLUS, ptype, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    p.extend_from_slice(payload);
    p
}

/// The payload of an unauthenticated RMCP+ packet of type `ptype`.
pub(super) fn handshake_payload(d: &[u8], ptype: u8) -> Result<&[u8], String> {
    if d.len() < 16 || d[..4] != RMCP_HEADER || d[4] != AUTH_RMCP_PLUS {
        return Err("not an RMCP+ packet".into());
    }
    if d[5] & 0x3f != ptype {
        return Err(format!("payload type 0x{:02x}, not 0x{ptype:02x}", d[5]));
    }
    let len = u16::from_le_bytes([d[14], d[15]]) as usize;
    d.get(16..16 + len)
        .ok_or_else(|| "payload shorter than its length".to_string())
}

/// A request outside a session: completion code and data. `v2`: RMCP+ framing (payload type
/// IPMI, session 0, unauthenticated), else IPMI 1.5 framing with authentication type NONE.
/// Neither carries a secret.
fn presession(
    sock: &UdpSocket,
    reply_timeout: Duration,
    v2: bool,
    netfn: u8,
    cmd: u8,
    data: &[u8],
) -> Result<(u8, Vec<u8>), io::Error> {
    let msg = ipmi_request(netfn, cmd, 0, data);
    let p = if v2 {
        handshake_packet(PAYLOAD_IPMI, &msg)
    } else {
        let mut p = RMCP_HEADER.to_vec();
        p.extend_from_slice(&[AUTH_NONE, 0, 0, 0, 0, 0, 0, 0, 0, msg.len() as u8]);
        p.extend_from_slice(&msg);
        p
    };
    sock.send(&p)?;
    receive(sock, reply_timeout, |d| {
        let m = if v2 {
            handshake_payload(d, PAYLOAD_IPMI)?
        } else {
            if d.len() < 14 || d[..4] != RMCP_HEADER || d[4] != AUTH_NONE {
                return Err("not a pre-session reply".into());
            }
            let len = d[13] as usize;
            d.get(14..14 + len).ok_or("short pre-session reply")?
        };
        ipmi_reply(m, netfn, cmd, 0).ok_or_else(|| "does not answer the request".into())
    })
}

/// Asks the BMC whether it speaks IPMI 2.0 (Get Channel Authentication Capabilities, App 0x38,
/// with the "IPMI 2.0 extended data" bit). A BMC that does not is refused here, before anything
/// that depends on the password is computed or sent.
pub(super) fn require_ipmi20(sock: &UdpSocket, reply_timeout: Duration) -> Result<(), Failure> {
    let (cc, d) = presession(sock, reply_timeout, false, 0x06, 0x38, &[0x8e, PRIV_ADMIN])
        .map_err(|e| unreachable_io(&e, reply_timeout))?;
    const NO_20: &str = "the BMC does not offer RMCP+ (IPMI 2.0); bbwd never uses IPMI 1.5";
    if cc != 0 {
        // A 1.5-only BMC refuses the "extended data" bit (0xcc).
        return Err(Failure::Unsupported(format!(
            "{NO_20} (get channel authentication capabilities: completion code 0x{cc:02x})"
        )));
    }
    // Byte 2 bit 7: extended capabilities present; byte 4 bit 1: IPMI 2.0 connections.
    match d.as_slice() {
        [_, auth, _, ext, ..] if auth & 0x80 != 0 && ext & 0x02 != 0 => Ok(()),
        [_, _, _, _, ..] => Err(Failure::Unsupported(NO_20.into())),
        _ => Err(Failure::Protocol(
            "get channel authentication capabilities: short reply".into(),
        )),
    }
}

/// The cipher suite ids the BMC lists for IPMI payloads on this channel (Get Channel Cipher
/// Suites, App 0x54, outside a session; §22.15). Asked in IPMI 1.5 framing (authentication type
/// none, as Get Channel Authentication Capabilities: ipmi_sim answers only this) and, if that
/// gets no answer or an error, in RMCP+ framing (as ipmitool asks). Standard records are
/// `0xC0 id algs...`, OEM records `0xC1 id IANA(3) algs...`.
pub(super) fn channel_cipher_suites(
    sock: &UdpSocket,
    reply_timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    read_cipher_suites(sock, reply_timeout, false)
        .or_else(|_| read_cipher_suites(sock, reply_timeout, true))
}

fn read_cipher_suites(
    sock: &UdpSocket,
    reply_timeout: Duration,
    v2: bool,
) -> Result<Vec<u8>, Failure> {
    let mut records = Vec::new();
    // At most 64 chunks of 16 bytes (the index is 6 bits).
    for index in 0..0x40u8 {
        let (cc, d) = presession(
            sock,
            reply_timeout,
            v2,
            0x06,
            0x54,
            &[0x0e, 0x00, 0x80 | index],
        )
        .map_err(|e| unreachable_io(&e, reply_timeout))?;
        if cc != 0 {
            return Err(Failure::Completion(cc));
        }
        let chunk = d.get(1..).unwrap_or_default();
        records.extend_from_slice(chunk);
        if chunk.len() < 16 {
            break;
        }
    }
    let mut ids = Vec::new();
    let mut i = 0;
    while i < records.len() {
        match records[i] {
            0xc0 if i + 1 < records.len() => {
                ids.push(records[i + 1]);
                i += 2;
            }
            0xc1 if i + 4 < records.len() => {
                ids.push(records[i + 1]);
                i += 5;
            }
            // Algorithm bytes of the record before.
            _ => i += 1,
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipmi_messages_carry_their_checksums() {
        let m = ipmi_request(0x06, 0x38, 0, &[0x8e, 0x04]);
        assert_eq!(
            m,
            vec![0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5]
        );
        let reply = [0x81, 0x04, 0x7b, 0x20, 0x04, 0x01, 0x00, 0x41, 0x9a];
        assert_eq!(ipmi_reply(&reply, 0x00, 0x01, 1), Some((0, vec![0x41])));
        assert_eq!(ipmi_reply(&reply, 0x00, 0x01, 2), None);
    }
}
