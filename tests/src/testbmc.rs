//! A small test BMC: an RMCP+ responder (IPMI 2.0 "lanplus", cipher suites 3 and 17) on a UDP
//! port of 127.0.0.1, whose chassis power is a flag the test controls. No packaged BMC here
//! speaks suite 17 (ipmi_sim 2.0.33 and pyghmi's server do suite 3 only), so this one is
//! written for the tests; it is validated against an independent client, `ipmitool -I lanplus
//! -C 17` and `-C 3` (`tests/tests/testbmc.rs`), before bbwd's client is tested against it.
//!
//! Owns: one thread and one socket per [`TestBmc`], sessions in a map, a record ([`Seen`]) of
//! what clients sent that a test may assert on. Speaks: pre-session Get Channel
//! Authentication Capabilities (App 0x38) and Get Channel Cipher Suites (App 0x54); Open
//! Session, RAKP 1-4; in session: Set Session Privilege Level (0x3B), Close Session (0x3C),
//! Get Device ID (0x01), Get Chassis Status (Chassis 0x01), Chassis Control (Chassis 0x02).
//! Everything else: completion code 0xC1. Also the ASF Presence Ping (as ipmi-rs sends).
//!
//! Hostile [`Mode`]s prove the client's refusals: a BMC offering only IPMI 1.5, an Open
//! Session answer with other algorithms than asked, wrong RAKP 2 / RAKP 4 codes, forged
//! replies with a bad integrity trailer.
//!
//! Written from the IPMI 2.0 specification (§13), independently of bbwd's client
//! (`platform/src/ipmi/session.rs`): nothing is shared, so a misreading on one side shows.
//!
//! Must not: outlive its test (the thread stops on drop), listen beyond 127.0.0.1.

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};

/// The user and password the test BMC knows.
pub const USER: &str = "admin";
pub const PASSWORD: &str = "s3cret-Pw17";

/// How the responder behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A correct BMC.
    Honest,
    /// Offers only IPMI 1.5: no IPMI 2.0 in Get Channel Authentication Capabilities, Get
    /// Channel Cipher Suites unknown, RMCP+ packets ignored (and recorded).
    Ipmi15Only,
    /// Answers Open Session with integrity and confidentiality "none", whatever was asked.
    DowngradeAlgorithms,
    /// RAKP 2 carries a wrong key exchange authentication code.
    BadRakp2,
    /// RAKP 4 carries a wrong integrity check value.
    BadRakp4,
    /// Every Get Chassis Status reply is preceded by a forged one (power off, a bad integrity
    /// trailer, the right sequence numbers otherwise).
    ForgedReplies,
    /// Every Get Chassis Status reply after the first is preceded by a replayed-looking one:
    /// the opposite power state, correctly authenticated, answering the request in flight, but
    /// with an old session sequence number (1).
    StaleSequence,
}

/// What clients sent, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Datagrams received.
    pub datagrams: u64,
    /// Some datagram contained the password's bytes.
    pub password_bytes: bool,
    /// IPMI 1.5 packets with an authentication type other than none (they carry the password
    /// or a hash of it).
    pub v15_authenticated: u64,
    /// RMCP+ Open Session requests and RAKP messages (1 and 3).
    pub open_sessions: u64,
    pub rakps: u64,
    /// Sessions established (RAKP 4 sent with success) and closed by Close Session.
    pub sessions: u64,
    pub closed: u64,
    /// Cipher suites of established sessions, in order.
    pub suites: Vec<u8>,
    /// Session packets dropped for a bad integrity trailer.
    pub bad_trailers: u64,
    /// Forged replies sent ([`Mode::ForgedReplies`]).
    pub forged: u64,
    /// Chassis Control actions received (0 off, 1 on, 2 cycle, 3 reset).
    pub chassis_controls: Vec<u8>,
}

/// Start-up options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Suites listed (Get Channel Cipher Suites) and accepted (Open Session): 3, 17.
    pub suites: Vec<u8>,
    pub mode: Mode,
    /// Get Channel Cipher Suites answers (else completion code 0xC1, as BMCs without it).
    pub lists_suites: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            suites: vec![3, 17],
            mode: Mode::Honest,
            lists_suites: true,
        }
    }
}

struct State {
    power_on: AtomicBool,
    seen: Mutex<Seen>,
}

/// A running test BMC.
pub struct TestBmc {
    pub port: u16,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestBmc {
    /// Binds 127.0.0.1:`port` (0: any free port) and starts answering. Power starts on.
    pub fn start_on(port: u16, opts: Options) -> std::io::Result<TestBmc> {
        let sock = UdpSocket::bind(("127.0.0.1", port))?;
        // The thread checks its stop flag this often.
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let port = sock.local_addr()?.port();
        let state = Arc::new(State {
            power_on: AtomicBool::new(true),
            seen: Mutex::new(Seen::default()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = Server {
            sock,
            opts,
            state: state.clone(),
            pending: HashMap::new(),
            sessions: HashMap::new(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("testbmc".into())
            .spawn(move || server.run(&stop2))?;
        Ok(TestBmc {
            port,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// On any free port.
    pub fn start(opts: Options) -> TestBmc {
        TestBmc::start_on(0, opts).expect("test BMC binds 127.0.0.1")
    }

    pub fn power_on(&self) -> bool {
        self.state.power_on.load(Ordering::SeqCst)
    }

    pub fn set_power(&self, on: bool) {
        self.state.power_on.store(on, Ordering::SeqCst);
    }

    pub fn seen(&self) -> Seen {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for TestBmc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The protocol (BMC side)
// ---------------------------------------------------------------------------------------------

const RMCP: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
const GUID: [u8; 16] = *b"bbwd-testbmc-gui";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Alg {
    Sha1,
    Sha256,
}

impl Alg {
    fn suite(self) -> u8 {
        match self {
            Alg::Sha1 => 3,
            Alg::Sha256 => 17,
        }
    }
    /// Authentication, integrity, confidentiality algorithm numbers of the suite.
    fn numbers(self) -> (u8, u8, u8) {
        match self {
            Alg::Sha1 => (1, 1, 1),
            Alg::Sha256 => (3, 4, 1),
        }
    }
    fn mac(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        match self {
            Alg::Sha1 => {
                let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("any key");
                data.iter().for_each(|d| m.update(d));
                m.finalize().into_bytes().to_vec()
            }
            Alg::Sha256 => {
                let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key");
                data.iter().for_each(|d| m.update(d));
                m.finalize().into_bytes().to_vec()
            }
        }
    }
    /// AuthCode and RAKP 4 ICV length: HMAC-SHA1-96, HMAC-SHA256-128.
    fn trailer_len(self) -> usize {
        match self {
            Alg::Sha1 => 12,
            Alg::Sha256 => 16,
        }
    }
}

struct Pending {
    alg: Alg,
    console_sid: [u8; 4],
    rm: [u8; 16],
    rc: [u8; 16],
    role: u8,
    user: Vec<u8>,
}

struct Sess {
    alg: Alg,
    console_sid: [u8; 4],
    k1: Vec<u8>,
    k2: [u8; 16],
    out_seq: u32,
    privilege: u8,
}

struct Server {
    sock: UdpSocket,
    opts: Options,
    state: Arc<State>,
    /// By the BMC's session id: handshakes in progress, established sessions.
    pending: HashMap<u32, Pending>,
    sessions: HashMap<u32, Sess>,
}

fn rand<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b
}

fn sum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

fn kuid() -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..PASSWORD.len()].copy_from_slice(PASSWORD.as_bytes());
    k
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A request's parts: (rqAddr, netfn, rqSeq byte, cmd, data).
fn parse_request(m: &[u8]) -> Option<(u8, u8, u8, u8, Vec<u8>)> {
    if m.len() < 7 || sum(&m[..3]) != 0 || sum(&m[3..]) != 0 {
        return None;
    }
    Some((m[3], m[1] >> 2, m[4], m[5], m[6..m.len() - 1].to_vec()))
}

fn response(rq_addr: u8, netfn: u8, rq_seq: u8, cmd: u8, cc: u8, data: &[u8]) -> Vec<u8> {
    let mut r = vec![rq_addr, (netfn | 1) << 2];
    r.push(sum(&r));
    r.extend_from_slice(&[0x20, rq_seq, cmd, cc]);
    r.extend_from_slice(data);
    r.push(sum(&r[3..]));
    r
}

impl Server {
    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let d = buf[..n].to_vec();
            self.note(|s| {
                s.datagrams += 1;
                s.password_bytes |= contains(&d, PASSWORD.as_bytes());
            });
            if d.len() >= 12 && d[..2] == [0x06, 0x00] && d[3] == 0x06 && d[8] == 0x80 {
                self.asf_pong(&d, from);
                continue;
            }
            if d.len() < 5 || d[..4] != RMCP {
                continue;
            }
            match d[4] {
                0x06 => self.rmcp_plus(&d, from),
                0x00 => self.presession(&d, from),
                _ => self.note(|s| s.v15_authenticated += 1),
            }
        }
    }

    /// ASF Presence Pong (DMTF DSP0136 §3.2.4.3): "IPMI supported". ipmi-rs pings first.
    fn asf_pong(&self, ping: &[u8], from: SocketAddr) {
        let mut p = vec![
            0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x40, ping[9], 0x00, 0x10,
        ];
        p.extend_from_slice(&[
            0x00, 0x00, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0, 0,
        ]);
        self.send(from, &p);
    }

    fn note(&self, f: impl FnOnce(&mut Seen)) {
        if let Ok(mut s) = self.state.seen.lock() {
            f(&mut s);
        }
    }

    fn send(&self, to: SocketAddr, p: &[u8]) {
        let _ = self.sock.send_to(p, to);
    }

    fn cipher_suite_records(&self) -> Vec<u8> {
        let mut r = Vec::new();
        for s in &self.opts.suites {
            let alg = if *s == 17 { Alg::Sha256 } else { Alg::Sha1 };
            let (a, i, c) = alg.numbers();
            r.extend_from_slice(&[0xc0, *s, a, 0x40 | i, 0x80 | c]);
        }
        r
    }

    /// The commands both outside and inside a session; None: unknown here.
    fn channel_command(&self, netfn: u8, cmd: u8, data: &[u8]) -> Option<(u8, Vec<u8>)> {
        let v15 = self.opts.mode == Mode::Ipmi15Only;
        match (netfn, cmd) {
            (0x06, 0x38) => Some(if v15 {
                // Auth types none, MD5, straight password; no IPMI 2.0 extended data.
                (0, vec![0x01, 0x15, 0x08, 0x01, 0, 0, 0, 0])
            } else {
                // Bit 7: IPMI 2.0 extended data; non-null user names; IPMI 2.0 only.
                let _ = data;
                (0, vec![0x01, 0x80, 0x08, 0x02, 0, 0, 0, 0])
            }),
            (0x06, 0x54) if v15 || !self.opts.lists_suites => Some((0xc1, vec![])),
            (0x06, 0x54) => {
                let index = (data.get(2).copied().unwrap_or(0) & 0x3f) as usize;
                let recs = self.cipher_suite_records();
                let chunk: Vec<u8> = recs.iter().skip(index * 16).take(16).copied().collect();
                let mut out = vec![0x01];
                out.extend(chunk);
                Some((0, out))
            }
            _ => None,
        }
    }

    fn presession(&mut self, d: &[u8], from: SocketAddr) {
        if d.len() < 14 {
            return;
        }
        let len = d[13] as usize;
        let Some((rq_addr, netfn, rq_seq, cmd, data)) = d.get(14..14 + len).and_then(parse_request)
        else {
            return;
        };
        let (cc, out) = self
            .channel_command(netfn, cmd, &data)
            .unwrap_or((0xc1, vec![]));
        let msg = response(rq_addr, netfn, rq_seq, cmd, cc, &out);
        let mut p = RMCP.to_vec();
        p.extend_from_slice(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0, msg.len() as u8]);
        p.extend_from_slice(&msg);
        self.send(from, &p);
    }

    fn handshake_reply(&self, to: SocketAddr, ptype: u8, payload: &[u8]) {
        let mut p = RMCP.to_vec();
        p.extend_from_slice(&[0x06, ptype, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        p.extend_from_slice(payload);
        self.send(to, &p);
    }

    fn rmcp_plus(&mut self, d: &[u8], from: SocketAddr) {
        if d.len() < 16 {
            return;
        }
        let ptype = d[5] & 0x3f;
        if matches!(ptype, 0x10 | 0x12 | 0x14) {
            self.note(|s| match ptype {
                0x10 => s.open_sessions += 1,
                _ => s.rakps += 1,
            });
        }
        if self.opts.mode == Mode::Ipmi15Only {
            return;
        }
        let len = u16::from_le_bytes([d[14], d[15]]) as usize;
        let Some(p) = d.get(16..16 + len) else {
            return;
        };
        match ptype {
            0x10 => self.open_session(p, from),
            0x12 => self.rakp1(p, from),
            0x14 => self.rakp3(p, from),
            0x00 if d[5] == 0x00 && d[6..10] == [0; 4] => self.presession_v2(p, from),
            0x00 => self.session_packet(d, from),
            _ => {}
        }
    }

    /// An unauthenticated IPMI message outside a session in RMCP+ framing (ipmitool sends Get
    /// Channel Cipher Suites this way): the channel commands only.
    fn presession_v2(&mut self, m: &[u8], from: SocketAddr) {
        let Some((rq_addr, netfn, rq_seq, cmd, data)) = parse_request(m) else {
            return;
        };
        let (cc, out) = self
            .channel_command(netfn, cmd, &data)
            .unwrap_or((0xd4, vec![]));
        let msg = response(rq_addr, netfn, rq_seq, cmd, cc, &out);
        self.handshake_reply(from, 0x00, &msg);
    }

    fn open_session(&mut self, p: &[u8], from: SocketAddr) {
        if p.len() < 32 {
            return;
        }
        let tag = p[0];
        let console_sid = [p[4], p[5], p[6], p[7]];
        let asked = (p[12] & 0x3f, p[20] & 0x3f, p[28] & 0x3f);
        let alg = [Alg::Sha1, Alg::Sha256]
            .into_iter()
            .find(|a| a.numbers() == asked && self.opts.suites.contains(&a.suite()));
        let Some(alg) = alg else {
            // 0x11: no cipher suite matches the proposed algorithms.
            let mut r = vec![tag, 0x11, 0, 0];
            r.extend_from_slice(&console_sid);
            self.handshake_reply(from, 0x11, &r);
            return;
        };
        let bmc_sid = u32::from_le_bytes(rand::<4>()).max(1);
        let (a, mut i, mut c) = alg.numbers();
        if self.opts.mode == Mode::DowngradeAlgorithms {
            (i, c) = (0, 0);
        }
        let mut r = vec![tag, 0, 4, 0];
        r.extend_from_slice(&console_sid);
        r.extend_from_slice(&bmc_sid.to_le_bytes());
        for (kind, n) in [a, i, c].into_iter().enumerate() {
            r.extend_from_slice(&[kind as u8, 0, 0, 8, n, 0, 0, 0]);
        }
        self.pending.insert(
            bmc_sid,
            Pending {
                alg,
                console_sid,
                rm: [0; 16],
                rc: rand(),
                role: 0,
                user: Vec::new(),
            },
        );
        self.handshake_reply(from, 0x11, &r);
    }

    fn rakp1(&mut self, p: &[u8], from: SocketAddr) {
        if p.len() < 28 {
            return;
        }
        let tag = p[0];
        let bmc_sid = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let ulen = p[27] as usize;
        let Some(user) = p.get(28..28 + ulen) else {
            return;
        };
        let mode = self.opts.mode;
        let Some(pend) = self.pending.get_mut(&bmc_sid) else {
            return;
        };
        pend.rm.copy_from_slice(&p[8..24]);
        pend.role = p[24];
        pend.user = user.to_vec();
        let mut r = vec![tag, 0, 0, 0];
        r.extend_from_slice(&pend.console_sid);
        if user != USER.as_bytes() {
            r[1] = 0x0d; // unauthorized name
            self.handshake_reply(from, 0x13, &r);
            return;
        }
        let mut code = pend.alg.mac(
            &kuid(),
            &[
                &pend.console_sid,
                &bmc_sid.to_le_bytes(),
                &pend.rm,
                &pend.rc,
                &GUID,
                &[pend.role, ulen as u8],
                user,
            ],
        );
        if mode == Mode::BadRakp2 {
            code[0] ^= 0x55;
        }
        r.extend_from_slice(&pend.rc);
        r.extend_from_slice(&GUID);
        r.extend_from_slice(&code);
        self.handshake_reply(from, 0x13, &r);
    }

    fn rakp3(&mut self, p: &[u8], from: SocketAddr) {
        if p.len() < 8 {
            return;
        }
        let tag = p[0];
        let bmc_sid = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let Some(pend) = self.pending.remove(&bmc_sid) else {
            return;
        };
        let mut r = vec![tag, 0, 0, 0];
        r.extend_from_slice(&pend.console_sid);
        if p[1] != 0 {
            // The client reports an error in RAKP 2: no session.
            return;
        }
        let ul = [pend.role, pend.user.len() as u8];
        let expect = pend
            .alg
            .mac(&kuid(), &[&pend.rc, &pend.console_sid, &ul, &pend.user]);
        if p.get(8..) != Some(&expect[..]) {
            r[1] = 0x0f; // invalid integrity check value
            self.handshake_reply(from, 0x15, &r);
            return;
        }
        let sik = pend
            .alg
            .mac(&kuid(), &[&pend.rm, &pend.rc, &ul, &pend.user]);
        let k1 = pend.alg.mac(&sik, &[&[1u8; 20]]);
        let mut k2 = [0u8; 16];
        k2.copy_from_slice(&pend.alg.mac(&sik, &[&[2u8; 20]])[..16]);
        let mut icv = pend
            .alg
            .mac(&sik, &[&pend.rm, &bmc_sid.to_le_bytes(), &GUID]);
        icv.truncate(pend.alg.trailer_len());
        if self.opts.mode == Mode::BadRakp4 {
            icv[3] ^= 0x55;
        }
        r.extend_from_slice(&icv);
        self.sessions.insert(
            bmc_sid,
            Sess {
                alg: pend.alg,
                console_sid: pend.console_sid,
                k1,
                k2,
                out_seq: 0,
                privilege: 2,
            },
        );
        let suite = pend.alg.suite();
        self.note(|s| {
            s.sessions += 1;
            s.suites.push(suite);
        });
        self.handshake_reply(from, 0x15, &r);
    }

    fn session_packet(&mut self, d: &[u8], from: SocketAddr) {
        let bmc_sid = u32::from_le_bytes([d[6], d[7], d[8], d[9]]);
        let Some(sess) = self.sessions.get(&bmc_sid) else {
            return;
        };
        let tl = sess.alg.trailer_len();
        if d[5] != 0xc0 || d.len() < 16 + 2 + tl {
            return;
        }
        let (body, code) = d.split_at(d.len() - tl);
        if sess.alg.mac(&sess.k1, &[&body[4..]])[..tl] != *code {
            self.note(|s| s.bad_trailers += 1);
            return;
        }
        let len = u16::from_le_bytes([d[14], d[15]]) as usize;
        let Some(payload) = d.get(16..16 + len) else {
            return;
        };
        if payload.len() < 32 || payload.len() % 16 != 0 {
            return;
        }
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&payload[..16]);
        let mut buf = payload[16..].to_vec();
        let Ok(plain) = cbc::Decryptor::<aes::Aes128>::new(&sess.k2.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
        else {
            return;
        };
        let pad = plain[plain.len() - 1] as usize;
        if pad + 1 > plain.len() {
            return;
        }
        let Some((rq_addr, netfn, rq_seq, cmd, data)) =
            parse_request(&plain[..plain.len() - 1 - pad])
        else {
            return;
        };
        let (cc, out) = self.command(bmc_sid, netfn, cmd, &data);
        let msg = response(rq_addr, netfn, rq_seq, cmd, cc, &out);
        if self.opts.mode == Mode::ForgedReplies && (netfn, cmd) == (0x00, 0x01) {
            // The same reply saying "off", sealed with the next sequence number but a wrong
            // trailer; then the genuine one with the sequence number after it.
            let forged = response(rq_addr, netfn, rq_seq, cmd, 0, &[0x00, 0, 0, 0]);
            if let Some(mut p) = self.seal(bmc_sid, &forged) {
                let last = p.len() - 1;
                p[last] ^= 0x01;
                self.send(from, &p);
                self.note(|s| s.forged += 1);
            }
        }
        if self.opts.mode == Mode::StaleSequence && (netfn, cmd) == (0x00, 0x01) {
            let on = self.state.power_on.load(Ordering::SeqCst);
            let stale = response(rq_addr, netfn, rq_seq, cmd, 0, &[u8::from(!on), 0, 0, 0]);
            if self.sessions.get(&bmc_sid).is_some_and(|s| s.out_seq >= 2) {
                if let Some(p) = self.seal_at(bmc_sid, &stale, Some(1)) {
                    self.send(from, &p);
                    self.note(|s| s.forged += 1);
                }
            }
        }
        let reply = self.seal(bmc_sid, &msg);
        // Recorded before the reply leaves, so a client that saw it sees the record too.
        if (netfn, cmd) == (0x06, 0x3c) && cc == 0 {
            self.sessions.remove(&bmc_sid);
            self.note(|s| s.closed += 1);
        }
        if let Some(p) = reply {
            self.send(from, &p);
        }
    }

    fn command(&mut self, bmc_sid: u32, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        if let Some(r) = self.channel_command(netfn, cmd, data) {
            return r;
        }
        match (netfn, cmd) {
            // Get Device ID.
            (0x06, 0x01) => (0, vec![0x20, 0x01, 0x01, 0x00, 0x02, 0x00, 0, 0, 0, 0, 0]),
            // Set Session Privilege Level: up to administrator; 0 = report the present one.
            (0x06, 0x3b) => {
                let Some(sess) = self.sessions.get_mut(&bmc_sid) else {
                    return (0xff, vec![]);
                };
                match data.first().copied().unwrap_or(0) & 0x0f {
                    0 => (0, vec![sess.privilege]),
                    l @ 1..=4 => {
                        sess.privilege = l;
                        (0, vec![l])
                    }
                    _ => (0x80, vec![]),
                }
            }
            // Close Session: this one (or any id given).
            (0x06, 0x3c) => {
                let id = data
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                match id {
                    Some(id) if self.sessions.contains_key(&id) => (0, vec![]),
                    // 0x87: invalid session id.
                    _ => (0x87, vec![]),
                }
            }
            // Get Chassis Status: power state, last event, misc.
            (0x00, 0x01) => {
                let on = self.state.power_on.load(Ordering::SeqCst);
                (0, vec![u8::from(on), 0, 0, 0])
            }
            // Chassis Control: operator privilege or more.
            (0x00, 0x02) => {
                let privilege = self.sessions.get(&bmc_sid).map_or(0, |s| s.privilege);
                if privilege < 3 {
                    return (0xd4, vec![]);
                }
                let action = data.first().copied().unwrap_or(0xff);
                match action {
                    0 => self.state.power_on.store(false, Ordering::SeqCst),
                    1..=3 => self.state.power_on.store(true, Ordering::SeqCst),
                    _ => return (0xcc, vec![]),
                }
                self.note(|s| s.chassis_controls.push(action));
                (0, vec![])
            }
            _ => (0xc1, vec![]),
        }
    }

    /// An encrypted, authenticated reply carrying `msg`, with the session's next sequence number.
    fn seal(&mut self, bmc_sid: u32, msg: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(bmc_sid, msg, None)
    }

    /// The same with sequence number `seq` if given (the session's own count is left alone).
    fn seal_at(&mut self, bmc_sid: u32, msg: &[u8], seq: Option<u32>) -> Option<Vec<u8>> {
        let sess = self.sessions.get_mut(&bmc_sid)?;
        let seq = seq.unwrap_or_else(|| {
            sess.out_seq += 1;
            sess.out_seq
        });
        let mut plain = msg.to_vec();
        let pad = (16 - (plain.len() + 1) % 16) % 16;
        plain.extend((1..=pad).map(|i| i as u8));
        plain.push(pad as u8);
        let iv: [u8; 16] = rand();
        let n = plain.len();
        let cipher = cbc::Encryptor::<aes::Aes128>::new(&sess.k2.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, n)
            .ok()?
            .to_vec();
        let mut p = RMCP.to_vec();
        p.extend_from_slice(&[0x06, 0xc0]);
        p.extend_from_slice(&sess.console_sid);
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&((16 + cipher.len()) as u16).to_le_bytes());
        p.extend_from_slice(&iv);
        p.extend_from_slice(&cipher);
        let ipad = (4 - (p.len() - 4 + 2) % 4) % 4;
        p.extend(std::iter::repeat_n(0xff, ipad));
        p.extend_from_slice(&[ipad as u8, 0x07]);
        let code = sess.alg.mac(&sess.k1, &[&p[4..]]);
        p.extend_from_slice(&code[..sess.alg.trailer_len()]);
        Some(p)
    }
}
