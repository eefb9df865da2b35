//! One RMCP+ session (IPMI 2.0 "lanplus", §13) to a BMC over UDP, written here: cipher suites
//! 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) and 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128,
//! AES-CBC-128), with the RustCrypto crates (hmac, sha1, sha2, aes, cbc) that ipmi-rs already
//! brings, so no second copy of the crypto core.
//!
//! Owns: the socket, the handshake (Get Channel Authentication Capabilities, Open Session,
//! RAKP 1-4), the session keys (SIK, K1, K2), the integrity trailer, AES-CBC-128 payload
//! encryption, sequence numbers, request/reply matching, Close Session. Must not: retry, keep
//! time beyond one exchange, or decide anything; the worker does that.
//!
//! # Theory of operation
//! ```text
//!  pre-session (IPMI 1.5 framing, auth type NONE: carries no secret)
//!    Get Channel Auth Capabilities ──► "IPMI 2.0 supported"? no ──► refuse (Unsupported)
//!    [auto] Get Channel Cipher Suites ──► 17 listed? ──► 17, else 3
//!           (list unreadable: Open Session with 17; 3 only if the BMC refuses 17's algorithms)
//!  Open Session (ask auth/integrity/confidentiality of the suite)
//!    ◄── the BMC's choice: must equal what was asked, else refuse (Insecure)
//!  RAKP 1 (Rm, role, user)  ◄── RAKP 2 (Rc, GUID, HMAC_Kuid(...)) must verify, else BadCredentials
//!  RAKP 3 (HMAC_Kuid(Rc, ...))  ◄── RAKP 4 (ICV = HMAC_SIK(Rm, SIDc, GUID)) must verify, else Insecure
//!  SIK = HMAC_Kuid(Rm | Rc | role | ulen | user); K1 = HMAC_SIK(0x01 x 20); K2 = HMAC_SIK(0x02 x 20)
//!  session packets: AES-CBC-128 (key K2[..16], random IV) inside, HMAC_K1 trailer (12 or 16 bytes)
//! ```
//! The password is only ever an HMAC key (Kuid, padded to 20 bytes); it is never sent, and
//! nothing is sent with it before the BMC has said it speaks IPMI 2.0.
//!
//! # Invariants
//! * A session packet is taken only if its integrity trailer verifies, it is encrypted and
//!   authenticated, it names our session id, its sequence number is above the last one taken,
//!   and its IPMI header answers the request in flight (netfn, command, rqSeq). Anything else is
//!   dropped (logged at debug) and the wait goes on until the reply timeout.
//! * The algorithms in use are exactly those asked for in Open Session; the BMC's answer is
//!   checked, never adopted.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::Failure;

/// The two cipher suites spoken (IPMI 2.0 table 22-20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    S3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    S17,
}

impl Suite {
    pub fn id(self) -> u8 {
        match self {
            Suite::S3 => 3,
            Suite::S17 => 17,
        }
    }

    pub fn from_id(id: u8) -> Option<Suite> {
        match id {
            3 => Some(Suite::S3),
            17 => Some(Suite::S17),
            _ => None,
        }
    }

    /// (authentication, integrity, confidentiality) algorithm numbers (§13.28).
    fn algorithms(self) -> [u8; 3] {
        match self {
            Suite::S3 => [0x01, 0x01, 0x01],
            Suite::S17 => [0x03, 0x04, 0x01],
        }
    }

    /// Length of the RAKP 4 integrity check value and of the session trailer's AuthCode.
    fn icv_len(self) -> usize {
        match self {
            Suite::S3 => 12,
            Suite::S17 => 16,
        }
    }

    /// HMAC over the concatenation of `parts` (SHA1 for 3, SHA256 for 17).
    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length: this cannot fail.
            let mut m = <M as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Suite::S3 => run::<Hmac<Sha1>>(key, parts),
            Suite::S17 => run::<Hmac<Sha256>>(key, parts),
        }
    }
}

/// Algorithm names for errors.
fn algorithm_name(kind: usize, alg: u8) -> String {
    let name = match (kind, alg) {
        (_, 0) => "none",
        (0, 1) => "RAKP-HMAC-SHA1",
        (0, 2) => "RAKP-HMAC-MD5",
        (0, 3) => "RAKP-HMAC-SHA256",
        (1, 1) => "HMAC-SHA1-96",
        (1, 2) => "HMAC-MD5-128",
        (1, 3) => "MD5-128",
        (1, 4) => "HMAC-SHA256-128",
        (2, 1) => "AES-CBC-128",
        (2, 2) => "xRC4-128",
        (2, 3) => "xRC4-40",
        _ => return format!("algorithm 0x{alg:02x}"),
    };
    name.to_string()
}

const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
const AUTH_NONE: u8 = 0x00;
const AUTH_RMCP_PLUS: u8 = 0x06;
const PAYLOAD_IPMI: u8 = 0x00;
const PAYLOAD_OPEN_REQ: u8 = 0x10;
const PAYLOAD_OPEN_RSP: u8 = 0x11;
const PAYLOAD_RAKP1: u8 = 0x12;
const PAYLOAD_RAKP2: u8 = 0x13;
const PAYLOAD_RAKP3: u8 = 0x14;
const PAYLOAD_RAKP4: u8 = 0x15;
const ENCRYPTED: u8 = 0x80;
const AUTHENTICATED: u8 = 0x40;
/// The BMC's and our addresses on the IPMB (§13.8): BMC 0x20, remote console software 0x81.
const BMC_ADDR: u8 = 0x20;
const CONSOLE_ADDR: u8 = 0x81;
/// Administrator (§6.8), with bit 4: look the user up by name only (as ipmitool does).
const ROLE_ADMIN_NAME_ONLY: u8 = 0x14;
const PRIV_ADMIN: u8 = 0x04;
/// Largest datagram read (replies here are < 100 bytes; room for any BMC's).
const MAX_DATAGRAM: usize = 1024;

/// Two's complement checksum (§13.8).
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// An IPMI request message (§13.8): rsAddr, netFn/LUN, check, rqAddr, rqSeq/LUN, cmd, data, check.
fn ipmi_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![BMC_ADDR, netfn << 2];
    m.push(checksum(&m));
    m.extend_from_slice(&[CONSOLE_ADDR, rq_seq << 2, cmd]);
    m.extend_from_slice(data);
    m.push(checksum(&m[3..]));
    m
}

/// A reply's completion code and data, if it answers (netfn, cmd, rq_seq).
fn ipmi_reply(m: &[u8], netfn: u8, cmd: u8, rq_seq: u8) -> Option<(u8, Vec<u8>)> {
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
fn random(buf: &mut [u8]) -> Result<(), Failure> {
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

fn io_is_timeout(e: &io::Error) -> bool {
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
fn socket(addr: SocketAddr, reply_timeout: Duration) -> Result<UdpSocket, Failure> {
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
fn receive<T>(
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
fn handshake_packet(ptype: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = RMCP_HEADER.to_vec();
    p.extend_from_slice(&[AUTH_RMCP_PLUS, ptype, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    p.extend_from_slice(payload);
    p
}

/// The payload of an unauthenticated RMCP+ packet of type `ptype`.
fn handshake_payload(d: &[u8], ptype: u8) -> Result<&[u8], String> {
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
fn require_ipmi20(sock: &UdpSocket, reply_timeout: Duration) -> Result<(), Failure> {
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
fn channel_cipher_suites(sock: &UdpSocket, reply_timeout: Duration) -> Result<Vec<u8>, Failure> {
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

/// What `open` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Suite(Suite),
    /// 17 when the BMC lists it, else 3.
    Auto,
}

/// One open RMCP+ session.
pub struct Session {
    sock: UdpSocket,
    suite: Suite,
    reply_timeout: Duration,
    /// The BMC's session id (we send it), and ours (the BMC sends it).
    bmc_sid: u32,
    our_sid: u32,
    k1: Vec<u8>,
    k2: [u8; 16],
    /// Our last outbound sequence number, and the BMC's last one taken.
    out_seq: u32,
    in_seq: u32,
    rq_seq: u8,
}

impl Session {
    /// Opens a session: the pre-session check, suite choice, Open Session, RAKP 1-4.
    pub fn open(
        addr: SocketAddr,
        username: &[u8],
        password: &[u8],
        wanted: Wanted,
        reply_timeout: Duration,
    ) -> Result<Session, Failure> {
        let sock = socket(addr, reply_timeout)?;
        require_ipmi20(&sock, reply_timeout)?;
        let (suite, fallback) = match wanted {
            Wanted::Suite(s) => (s, false),
            Wanted::Auto => match channel_cipher_suites(&sock, reply_timeout) {
                Ok(ids) if ids.contains(&17) => (Suite::S17, false),
                Ok(ids) if ids.contains(&3) => (Suite::S3, false),
                Ok(ids) => {
                    return Err(Failure::Unsupported(format!(
                        "cipher suite \"auto\": the BMC lists neither 17 nor 3 (it lists {ids:?})"
                    )))
                }
                // The list cannot be read: ask for 17, and take 3 only if the BMC refuses 17's
                // algorithms in Open Session (a definite "no matching suite", not a timeout).
                Err(f) => {
                    log::info!("get channel cipher suites: {f}; trying suite 17, else 3");
                    (Suite::S17, true)
                }
            },
        };
        match Self::handshake(&sock, suite, username, password, reply_timeout) {
            Err(Failure::Unsupported(why)) if fallback => {
                log::info!("{why}; \"auto\" falls back to cipher suite 3");
                Self::handshake(&sock, Suite::S3, username, password, reply_timeout)
            }
            other => other,
        }
    }

    /// The cipher suite in use.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    fn handshake(
        sock: &UdpSocket,
        suite: Suite,
        username: &[u8],
        password: &[u8],
        reply_timeout: Duration,
    ) -> Result<Session, Failure> {
        let timeout = |e: io::Error| {
            if io_is_timeout(&e) {
                Failure::Timeout
            } else {
                unreachable_io(&e, reply_timeout)
            }
        };
        let mut sid = [0u8; 4];
        random(&mut sid)?;
        // Session id 0 is reserved ("no session").
        let our_sid = u32::from_le_bytes(sid).max(1);
        let tag = sid[0];
        let algs = suite.algorithms();

        // Open Session Request (§13.17).
        let mut req = vec![tag, PRIV_ADMIN, 0, 0];
        req.extend_from_slice(&our_sid.to_le_bytes());
        for (kind, alg) in algs.iter().enumerate() {
            req.extend_from_slice(&[kind as u8, 0, 0, 8, *alg, 0, 0, 0]);
        }
        sock.send(&handshake_packet(PAYLOAD_OPEN_REQ, &req))
            .map_err(|e| unreachable_io(&e, reply_timeout))?;
        let rsp = receive(sock, reply_timeout, |d| {
            let p = handshake_payload(d, PAYLOAD_OPEN_RSP)?;
            if p.len() < 2 || p[0] != tag {
                return Err("open session response: not ours".into());
            }
            Ok(p.to_vec())
        })
        .map_err(timeout)?;
        if rsp[1] != 0 {
            return Err(open_session_status(rsp[1], suite));
        }
        if rsp.len() < 36 || rsp[4..8] != our_sid.to_le_bytes() {
            return Err(Failure::Protocol(
                "open session response: short, or for another session".into(),
            ));
        }
        let bmc_sid = u32::from_le_bytes([rsp[8], rsp[9], rsp[10], rsp[11]]);
        // The BMC's choice must be exactly what was asked: never adopt a weaker one.
        for (kind, want) in algs.iter().enumerate() {
            let rec = &rsp[12 + 8 * kind..20 + 8 * kind];
            let got = rec[4] & 0x3f;
            if rec[0] != kind as u8 || got != *want {
                return Err(Failure::Insecure(format!(
                    "the BMC answered Open Session with {} where cipher suite {} asks for {}: \
                     the session is refused (a downgraded or forged answer)",
                    algorithm_name(kind, got),
                    suite.id(),
                    algorithm_name(kind, *want)
                )));
            }
        }
        if bmc_sid == 0 {
            return Err(Failure::Protocol(
                "open session response: session id 0".into(),
            ));
        }

        // RAKP 1 (§13.20).
        let mut rm = [0u8; 16];
        random(&mut rm)?;
        let ulen = [username.len() as u8];
        let role = [ROLE_ADMIN_NAME_ONLY];
        let mut r1 = vec![tag, 0, 0, 0];
        r1.extend_from_slice(&bmc_sid.to_le_bytes());
        r1.extend_from_slice(&rm);
        r1.extend_from_slice(&[role[0], 0, 0, ulen[0]]);
        r1.extend_from_slice(username);
        sock.send(&handshake_packet(PAYLOAD_RAKP1, &r1))
            .map_err(|e| unreachable_io(&e, reply_timeout))?;
        let r2 = receive(sock, reply_timeout, |d| {
            let p = handshake_payload(d, PAYLOAD_RAKP2)?;
            if p.len() < 2 || p[0] != tag {
                return Err("RAKP 2: not ours".into());
            }
            Ok(p.to_vec())
        })
        .map_err(timeout)?;
        if r2[1] != 0 {
            return Err(rakp_status(2, r2[1]));
        }
        let hash_len = suite.hmac(&[], &[]).len();
        if r2.len() < 40 + hash_len || r2[4..8] != our_sid.to_le_bytes() {
            return Err(Failure::Protocol(
                "RAKP 2: short, or for another session".into(),
            ));
        }
        let rc = &r2[8..24];
        let guid = &r2[24..40];
        let mut kuid = [0u8; 20];
        kuid[..password.len().min(20)].copy_from_slice(&password[..password.len().min(20)]);
        let sid_m = our_sid.to_le_bytes();
        let sid_c = bmc_sid.to_le_bytes();
        let expect = suite.hmac(
            &kuid,
            &[&sid_m, &sid_c, &rm, rc, guid, &role, &ulen, username],
        );
        if !constant_time_eq(&expect, &r2[40..40 + hash_len]) {
            return Err(Failure::BadCredentials);
        }

        // RAKP 3 (§13.22), and the keys (§13.31, §13.32).
        let auth3 = suite.hmac(&kuid, &[rc, &sid_m, &role, &ulen, username]);
        let mut r3 = vec![tag, 0, 0, 0];
        r3.extend_from_slice(&sid_c);
        r3.extend_from_slice(&auth3);
        let sik = suite.hmac(&kuid, &[&rm, rc, &role, &ulen, username]);
        let k1 = suite.hmac(&sik, &[&[0x01; 20]]);
        let k2_full = suite.hmac(&sik, &[&[0x02; 20]]);
        let mut k2 = [0u8; 16];
        k2.copy_from_slice(&k2_full[..16]);
        sock.send(&handshake_packet(PAYLOAD_RAKP3, &r3))
            .map_err(|e| unreachable_io(&e, reply_timeout))?;
        let r4 = receive(sock, reply_timeout, |d| {
            let p = handshake_payload(d, PAYLOAD_RAKP4)?;
            if p.len() < 2 || p[0] != tag {
                return Err("RAKP 4: not ours".into());
            }
            Ok(p.to_vec())
        })
        .map_err(timeout)?;
        if r4[1] != 0 {
            return Err(rakp_status(4, r4[1]));
        }
        let icv_len = suite.icv_len();
        if r4.len() < 8 + icv_len || r4[4..8] != sid_m {
            return Err(Failure::Insecure(
                "RAKP 4: short, or for another session".into(),
            ));
        }
        let icv = suite.hmac(&sik, &[&rm, &sid_c, guid]);
        if !constant_time_eq(&icv[..icv_len], &r4[8..8 + icv_len]) {
            return Err(Failure::Insecure(
                "RAKP 4: the integrity check value is wrong (the BMC did not derive the same \
                 session key): the session is refused"
                    .into(),
            ));
        }
        Ok(Session {
            sock: sock
                .try_clone()
                .map_err(|e| Failure::Unreachable(e.to_string()))?,
            suite,
            reply_timeout,
            bmc_sid,
            our_sid,
            k1,
            k2,
            out_seq: 0,
            in_seq: 0,
            rq_seq: 0,
        })
    }

    /// Sends one IPMI request in the session and waits for its reply: (completion code, data).
    pub fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<(u8, Vec<u8>), Failure> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq_seq = self.rq_seq;
        let packet = self.seal(&ipmi_request(netfn, cmd, rq_seq, data))?;
        self.sock.send(&packet).map_err(|e| {
            if io_is_timeout(&e) {
                Failure::Timeout
            } else {
                Failure::Unreachable(format!("send: {e}"))
            }
        })?;
        let mut last_in = self.in_seq;
        let reply = receive(&self.sock, self.reply_timeout, |d| {
            let (seq, msg) = self.open_packet(d)?;
            if seq <= last_in {
                return Err(format!(
                    "sequence number {seq} not above {last_in} (a replay)"
                ));
            }
            let r = ipmi_reply(&msg, netfn, cmd, rq_seq)
                .ok_or_else(|| "does not answer the request in flight".to_string())?;
            last_in = seq;
            Ok(r)
        });
        self.in_seq = last_in;
        reply.map_err(|e| {
            if io_is_timeout(&e) {
                Failure::Timeout
            } else {
                unreachable_io(&e, self.reply_timeout)
            }
        })
    }

    /// Best effort: Close Session (App 0x3C) with our session's BMC id, so the slot is freed.
    pub fn close(&mut self) -> Result<(), Failure> {
        let id = self.bmc_sid.to_le_bytes();
        match self.command(0x06, 0x3c, &id)? {
            (0, _) => Ok(()),
            (cc, _) => Err(Failure::Completion(cc)),
        }
    }

    /// An encrypted, authenticated IPMI packet carrying `msg` (§13.6, §13.28.4, §13.29).
    fn seal(&mut self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        let mut iv = [0u8; 16];
        random(&mut iv)?;
        // Confidentiality pad 1, 2, 3, ... then its length: a whole number of blocks.
        let pad = (16 - (msg.len() + 1) % 16) % 16;
        let mut plain = msg.to_vec();
        plain.extend((1..=pad as u8).collect::<Vec<u8>>());
        plain.push(pad as u8);
        let enc = cbc::Encryptor::<aes::Aes128>::new(&self.k2.into(), &iv.into());
        let n = plain.len();
        let cipher = enc
            .encrypt_padded_mut::<NoPadding>(&mut plain, n)
            .map_err(|_| Failure::Protocol("AES-CBC: length not a whole number of blocks".into()))?
            .to_vec();
        let mut p = RMCP_HEADER.to_vec();
        p.extend_from_slice(&[AUTH_RMCP_PLUS, PAYLOAD_IPMI | ENCRYPTED | AUTHENTICATED]);
        p.extend_from_slice(&self.bmc_sid.to_le_bytes());
        p.extend_from_slice(&self.out_seq.to_le_bytes());
        p.extend_from_slice(&((16 + cipher.len()) as u16).to_le_bytes());
        p.extend_from_slice(&iv);
        p.extend_from_slice(&cipher);
        // Integrity pad: authtype .. next header a multiple of 4 bytes.
        let ipad = (4 - (p.len() - 4 + 2) % 4) % 4;
        p.extend(std::iter::repeat_n(0xffu8, ipad));
        p.extend_from_slice(&[ipad as u8, 0x07]);
        let code = self.suite.hmac(&self.k1, &[&p[4..]]);
        p.extend_from_slice(&code[..self.suite.icv_len()]);
        Ok(p)
    }

    /// Checks and decrypts a session packet: (its sequence number, the IPMI message).
    fn open_packet(&self, d: &[u8]) -> Result<(u32, Vec<u8>), String> {
        let icv_len = self.suite.icv_len();
        if d.len() < 16 + 2 + icv_len || d[..4] != RMCP_HEADER || d[4] != AUTH_RMCP_PLUS {
            return Err("not an RMCP+ session packet".into());
        }
        if d[5] != PAYLOAD_IPMI | ENCRYPTED | AUTHENTICATED {
            return Err(format!(
                "payload type 0x{:02x}: not an encrypted, authenticated IPMI message",
                d[5]
            ));
        }
        let (body, code) = d.split_at(d.len() - icv_len);
        let expect = self.suite.hmac(&self.k1, &[&body[4..]]);
        if !constant_time_eq(&expect[..icv_len], code) {
            return Err("integrity check failed (forged or corrupted)".into());
        }
        if body[6..10] != self.our_sid.to_le_bytes() {
            return Err("for another session".into());
        }
        let seq = u32::from_le_bytes([body[10], body[11], body[12], body[13]]);
        let len = u16::from_le_bytes([body[14], body[15]]) as usize;
        let payload = body
            .get(16..16 + len)
            .ok_or("payload shorter than its length")?;
        if payload.len() < 32 || payload.len() % 16 != 0 {
            return Err("encrypted payload not a whole number of blocks".into());
        }
        let (iv, cipher) = payload.split_at(16);
        let mut iv16 = [0u8; 16];
        iv16.copy_from_slice(iv);
        let mut plain = cipher.to_vec();
        let dec = cbc::Decryptor::<aes::Aes128>::new(&self.k2.into(), &iv16.into());
        let plain = dec
            .decrypt_padded_mut::<NoPadding>(&mut plain)
            .map_err(|_| "AES-CBC: bad length")?;
        let pad = *plain.last().ok_or("empty payload")? as usize;
        if pad >= 16 || pad + 1 > plain.len() {
            return Err("bad confidentiality pad".into());
        }
        let msg_len = plain.len() - pad - 1;
        if plain[msg_len..plain.len() - 1]
            .iter()
            .enumerate()
            .any(|(i, b)| *b as usize != i + 1)
        {
            return Err("bad confidentiality pad bytes".into());
        }
        Ok((seq, plain[..msg_len].to_vec()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An Open Session Response status code (§13.24, table 13-15) as a failure.
fn open_session_status(code: u8, suite: Suite) -> Failure {
    match code {
        0x01 => Failure::Protocol(
            "the BMC refused the session: insufficient resources (out of session slots?)".into(),
        ),
        0x04 | 0x05 | 0x06 | 0x07 | 0x10 | 0x11 => Failure::Unsupported(format!(
            "the BMC refused cipher suite {} (Open Session status 0x{code:02x}: no matching \
             algorithms); set [fencing] cipher_suite to one the BMC offers",
            suite.id()
        )),
        0x09 | 0x0a => Failure::InsufficientPrivilege(
            "the BMC refused the privilege level asked for at log-in".into(),
        ),
        _ => Failure::Protocol(format!("Open Session status 0x{code:02x}")),
    }
}

/// A RAKP 2 or 4 status code (§13.24) as a failure.
fn rakp_status(n: u8, code: u8) -> Failure {
    match code {
        0x0d | 0x0c => Failure::BadCredentials,
        0x09 | 0x0a => Failure::InsufficientPrivilege(
            "the BMC refused the privilege level asked for at log-in".into(),
        ),
        0x0f if n == 4 => Failure::BadCredentials,
        0x01 => Failure::Protocol(format!(
            "RAKP {n}: insufficient resources (out of session slots?)"
        )),
        _ => Failure::Protocol(format!("RAKP {n}: status 0x{code:02x}")),
    }
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

    #[test]
    fn hmac_lengths_match_the_suites() {
        assert_eq!(Suite::S3.hmac(b"k", &[b"a"]).len(), 20);
        assert_eq!(Suite::S17.hmac(b"k", &[b"a", b"b"]).len(), 32);
        assert_eq!(
            Suite::S17.hmac(b"k", &[b"a", b"b"]),
            Suite::S17.hmac(b"k", &[b"ab"])
        );
    }
}
