//! One RMCP+ session (IPMI 2.0 "lanplus", §13) to a BMC over UDP, written here: cipher suites
//! 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) and 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128,
//! AES-CBC-128), with the RustCrypto crates (hmac, sha1, sha2, aes, cbc) that ipmi-rs already
//! brings, so no second copy of the crypto core.
//!
//! Files: this one the open session (its packets: integrity trailer, AES-CBC-128 payload
//! encryption, sequence numbers; Close Session); `rakp.rs` the handshake that opens it (Open
//! Session, RAKP 1-4, the keys SIK, K1, K2); `rmcp.rs` the wire format, the socket and the
//! pre-session queries (Get Channel Authentication Capabilities, Get Channel Cipher Suites).
//!
//! Owns: one session: the choice of suite, the handshake's order, the socket and keys it leaves,
//! sealing and opening session packets, request/reply matching, Close Session. Must not:
//! retry, keep time beyond one exchange, or decide anything; the worker does that.
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

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};

pub use super::rakp::Suite;
pub use super::rmcp::unreachable_io;

use super::rakp::{constant_time_eq, handshake};
use super::rmcp::{
    channel_cipher_suites, io_is_timeout, ipmi_reply, ipmi_request, random, receive,
    require_ipmi20, socket, AUTHENTICATED, AUTH_RMCP_PLUS, ENCRYPTED, PAYLOAD_IPMI, RMCP_HEADER,
};
use super::Failure;

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

    /// The handshake with `suite` on `sock`, and the session it opens.
    fn handshake(
        sock: &UdpSocket,
        suite: Suite,
        username: &[u8],
        password: &[u8],
        reply_timeout: Duration,
    ) -> Result<Session, Failure> {
        let keys = handshake(sock, suite, username, password, reply_timeout)?;
        Ok(Session {
            sock: sock
                .try_clone()
                .map_err(|e| Failure::Unreachable(e.to_string()))?,
            suite,
            reply_timeout,
            bmc_sid: keys.bmc_sid,
            our_sid: keys.our_sid,
            k1: keys.k1,
            k2: keys.k2,
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
