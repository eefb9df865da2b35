//! The RMCP+ handshake (IPMI 2.0 §13.17-13.24): Open Session with exactly the cipher suite's
//! algorithms, then RAKP 1-4, proving the password on both sides and deriving the session
//! keys (§13.31, §13.32). Also the two cipher suites' algorithms ([`Suite`]).
//!
//! Owns: the session ids, the random numbers Rm, the check of the BMC's algorithms, RAKP 2's
//! and RAKP 4's proofs, SIK, K1 and K2. Must not: send the password (it is only an HMAC key,
//! Kuid), adopt any algorithm the BMC names instead of the one asked for, or use the keys (the
//! session does, `session.rs`).

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::rmcp::{
    handshake_packet, handshake_payload, io_is_timeout, random, receive, unreachable_io,
    PAYLOAD_OPEN_REQ, PAYLOAD_OPEN_RSP, PAYLOAD_RAKP1, PAYLOAD_RAKP2, PAYLOAD_RAKP3, PAYLOAD_RAKP4,
    PRIV_ADMIN, ROLE_ADMIN_NAME_ONLY,
};
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
    pub(super) fn icv_len(self) -> usize {
        match self {
            Suite::S3 => 12,
            Suite::S17 => 16,
        }
    }

    /// HMAC over the concatenation of `parts` (SHA1 for 3, SHA256 for 17).
    pub(super) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
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

/// What a handshake leaves for the session: both ids and the keys.
pub(super) struct Keys {
    /// The BMC's session id (we send it), and ours (the BMC sends it).
    pub(super) bmc_sid: u32,
    pub(super) our_sid: u32,
    /// K1, the integrity key (the HMAC's full length).
    pub(super) k1: Vec<u8>,
    /// K2's first 16 bytes, the AES-CBC-128 key.
    pub(super) k2: [u8; 16],
}

/// Open Session and RAKP 1-4 with `suite` on `sock` (connected to the BMC): the session's ids
/// and keys.
pub(super) fn handshake(
    sock: &UdpSocket,
    suite: Suite,
    username: &[u8],
    password: &[u8],
    reply_timeout: Duration,
) -> Result<Keys, Failure> {
    let mut sid = [0u8; 4];
    random(&mut sid)?;
    // Session id 0 is reserved ("no session").
    let our_sid = u32::from_le_bytes(sid).max(1);
    let tag = sid[0];
    let ask = Ask {
        sock,
        reply_timeout,
        tag,
    };
    let bmc_sid = open_session(&ask, suite, our_sid)?;
    let mut kuid = [0u8; 20];
    kuid[..password.len().min(20)].copy_from_slice(&password[..password.len().min(20)]);
    let rakp = Rakp {
        ask,
        suite,
        username,
        kuid,
        sid_m: our_sid.to_le_bytes(),
        sid_c: bmc_sid.to_le_bytes(),
    };
    let nonces = rakp.one_two()?;
    let (k1, k2) = rakp.three_four(&nonces)?;
    Ok(Keys {
        bmc_sid,
        our_sid,
        k1,
        k2,
    })
}

/// One handshake request and its reply, matched by the message tag.
struct Ask<'a> {
    sock: &'a UdpSocket,
    reply_timeout: Duration,
    /// The message tag every handshake request carries and its reply must echo.
    tag: u8,
}

impl Ask<'_> {
    /// Sends `payload` as payload type `req` and waits for a reply of type `rsp` with our tag
    /// (`what` names it when another datagram is dropped); the reply's payload.
    fn ask(&self, req: u8, payload: &[u8], rsp: u8, what: &str) -> Result<Vec<u8>, Failure> {
        let t = self.reply_timeout;
        self.sock
            .send(&handshake_packet(req, payload))
            .map_err(|e| unreachable_io(&e, t))?;
        receive(self.sock, t, |d| {
            let p = handshake_payload(d, rsp)?;
            if p.len() < 2 || p[0] != self.tag {
                return Err(format!("{what}: not ours"));
            }
            Ok(p.to_vec())
        })
        .map_err(|e: io::Error| {
            if io_is_timeout(&e) {
                Failure::Timeout
            } else {
                unreachable_io(&e, t)
            }
        })
    }
}

/// Open Session (§13.17): asks for exactly `suite`'s algorithms; the BMC's session id.
fn open_session(ask: &Ask<'_>, suite: Suite, our_sid: u32) -> Result<u32, Failure> {
    let algs = suite.algorithms();
    let mut req = vec![ask.tag, PRIV_ADMIN, 0, 0];
    req.extend_from_slice(&our_sid.to_le_bytes());
    for (kind, alg) in algs.iter().enumerate() {
        req.extend_from_slice(&[kind as u8, 0, 0, 8, *alg, 0, 0, 0]);
    }
    let rsp = ask.ask(
        PAYLOAD_OPEN_REQ,
        &req,
        PAYLOAD_OPEN_RSP,
        "open session response",
    )?;
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
    Ok(bmc_sid)
}

/// What RAKP 1 and 2 exchanged, 16 bytes each (§13.20, §13.21).
struct Nonces {
    /// Our random number, and the BMC's.
    rm: [u8; 16],
    rc: [u8; 16],
    /// The BMC's GUID.
    guid: [u8; 16],
}

/// RAKP 1-4 on an opened session.
struct Rakp<'a> {
    ask: Ask<'a>,
    suite: Suite,
    username: &'a [u8],
    /// The password as the HMAC key, zero-padded to 20 bytes.
    kuid: [u8; 20],
    /// Our and the BMC's session ids, as sent (little-endian).
    sid_m: [u8; 4],
    sid_c: [u8; 4],
}

impl Rakp<'_> {
    /// The role asked for, and the user name's length, as RAKP 1 sends and the HMACs cover them.
    fn role_ulen(&self) -> ([u8; 1], [u8; 1]) {
        ([ROLE_ADMIN_NAME_ONLY], [self.username.len() as u8])
    }

    /// RAKP 1 (§13.20) and RAKP 2, whose HMAC must prove the BMC knows the password:
    /// Rm, Rc and the BMC's GUID.
    fn one_two(&self) -> Result<Nonces, Failure> {
        let (role, ulen) = self.role_ulen();
        let mut rm = [0u8; 16];
        random(&mut rm)?;
        let mut r1 = vec![self.ask.tag, 0, 0, 0];
        r1.extend_from_slice(&self.sid_c);
        r1.extend_from_slice(&rm);
        r1.extend_from_slice(&[role[0], 0, 0, ulen[0]]);
        r1.extend_from_slice(self.username);
        let r2 = self.ask.ask(PAYLOAD_RAKP1, &r1, PAYLOAD_RAKP2, "RAKP 2")?;
        if r2[1] != 0 {
            return Err(rakp_status(2, r2[1]));
        }
        let hash_len = self.suite.hmac(&[], &[]).len();
        if r2.len() < 40 + hash_len || r2[4..8] != self.sid_m {
            return Err(Failure::Protocol(
                "RAKP 2: short, or for another session".into(),
            ));
        }
        let rc = &r2[8..24];
        let guid = &r2[24..40];
        let expect = self.suite.hmac(
            &self.kuid,
            &[
                &self.sid_m,
                &self.sid_c,
                &rm,
                rc,
                guid,
                &role,
                &ulen,
                self.username,
            ],
        );
        if !constant_time_eq(&expect, &r2[40..40 + hash_len]) {
            return Err(Failure::BadCredentials);
        }
        let mut nonces = Nonces {
            rm,
            rc: [0; 16],
            guid: [0; 16],
        };
        nonces.rc.copy_from_slice(rc);
        nonces.guid.copy_from_slice(guid);
        Ok(nonces)
    }

    /// RAKP 3 (§13.22), the keys (§13.31, §13.32), and RAKP 4, whose integrity check value
    /// must prove the BMC derived the same session key: (K1, K2's AES key).
    fn three_four(&self, nonces: &Nonces) -> Result<(Vec<u8>, [u8; 16]), Failure> {
        let (role, ulen) = self.role_ulen();
        let Nonces { rm, rc, guid } = nonces;
        let (suite, kuid, user) = (self.suite, &self.kuid, self.username);
        let auth3 = suite.hmac(kuid, &[rc, &self.sid_m, &role, &ulen, user]);
        let mut r3 = vec![self.ask.tag, 0, 0, 0];
        r3.extend_from_slice(&self.sid_c);
        r3.extend_from_slice(&auth3);
        let sik = suite.hmac(kuid, &[rm, rc, &role, &ulen, user]);
        let k1 = suite.hmac(&sik, &[&[0x01; 20]]);
        let k2_full = suite.hmac(&sik, &[&[0x02; 20]]);
        let mut k2 = [0u8; 16];
        k2.copy_from_slice(&k2_full[..16]);
        let r4 = self.ask.ask(PAYLOAD_RAKP3, &r3, PAYLOAD_RAKP4, "RAKP 4")?;
        if r4[1] != 0 {
            return Err(rakp_status(4, r4[1]));
        }
        let icv_len = suite.icv_len();
        if r4.len() < 8 + icv_len || r4[4..8] != self.sid_m {
            return Err(Failure::Insecure(
                "RAKP 4: short, or for another session".into(),
            ));
        }
        let icv = suite.hmac(&sik, &[rm, &self.sid_c, guid]);
        if !constant_time_eq(&icv[..icv_len], &r4[8..8 + icv_len]) {
            return Err(Failure::Insecure(
                "RAKP 4: the integrity check value is wrong (the BMC did not derive the same \
                 session key): the session is refused"
                    .into(),
            ));
        }
        Ok((k1, k2))
    }
}

/// Compares without an early exit (MACs).
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
    fn hmac_lengths_match_the_suites() {
        assert_eq!(Suite::S3.hmac(b"k", &[b"a"]).len(), 20);
        assert_eq!(Suite::S17.hmac(b"k", &[b"a", b"b"]).len(), 32);
        assert_eq!(
            Suite::S17.hmac(b"k", &[b"a", b"b"]),
            Suite::S17.hmac(b"k", &[b"ab"])
        );
    }
}
