//! Codec and tracker tests: round trip, every rejection class, mutation fuzzing, link and peer
//! liveness with a driven clock.

use std::time::{Duration, Instant};

use hmac::Mac;

use super::codec::*;
use super::*;

// These tests speak version 1 (the layout every earlier test was written for; version 2 has
// its own tests at the end): the names shadow the module's version-2 ones.
const PACKET_BYTES: usize = PACKET_BYTES_V1;
const OFF_TAG: usize = OFF_TAG_V1;
const OFF_RESERVED: usize = OFF_RESERVED_V1;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const TIMEOUT: Duration = Duration::from_millis(1000);
const BOOT_A: BootId = [0xa1; 16];
const BOOT_B: BootId = [0xb2; 16];
/// The receiving tracker's own run (bb1).
const BOOT_ME: BootId = [0x11; 16];

fn key() -> Key {
    Key::new(KEY).unwrap()
}

fn name(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}

fn hb(from: &str, boot_id: BootId, sequence: u64, link: u8) -> Heartbeat {
    Heartbeat {
        name: name(from),
        boot_id,
        sequence,
        role: Role::Active,
        state: State::Running,
        health: Health::Healthy,
        flags: Flags::HOLDS_VIP | Flags::PREFERRED_ACTIVE,
        link,
        wall_ms: 1_795_000_000_000,
        version: VERSION_V1,
        epoch: 0,
        echo: Challenge::default(),
        heard: 0,
    }
}

fn packet(h: &Heartbeat) -> [u8; PACKET_BYTES] {
    let mut full = [0u8; super::PACKET_BYTES];
    let len = key().encode(h, &mut full);
    assert_eq!(len, PACKET_BYTES);
    let mut buf = [0u8; PACKET_BYTES];
    buf.copy_from_slice(&full[..PACKET_BYTES]);
    buf
}

/// Re-signs a packet edited after encoding, to reach the checks behind the tag.
fn resign(buf: &mut [u8; PACKET_BYTES]) {
    let tag = HmacSha256::new_from_slice(KEY)
        .unwrap()
        .chain_update(&buf[..OFF_TAG])
        .finalize()
        .into_bytes();
    buf[OFF_TAG..].copy_from_slice(&tag);
}

/// bb1's tracker of bb2, two links.
fn tracker() -> PeerTracker {
    PeerTracker::new(key(), name("bb1"), BOOT_ME, name("bb2"), 2, TIMEOUT)
}

fn events(t: &mut PeerTracker, now: Instant) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = t.next_event(now) {
        out.push(e);
        assert!(out.len() < 100, "next_event never settles: {out:?}");
    }
    out
}

/// A small deterministic PRNG (xorshift64*), so the fuzz needs no dependency and is repeatable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---- codec ----

#[test]
fn round_trip_keeps_every_field() {
    let mut h = hb("bb2", BOOT_A, 1_795_000_000_000_000, 1);
    h.role = Role::Standby;
    h.state = State::TakingOver;
    h.health = Health::Starting;
    h.flags = Flags::WANTS_TAKEOVER | Flags::SWITCHOVER_ACCEPT | Flags::MAINTENANCE;
    let buf = packet(&h);
    assert_eq!(buf.len(), 144);
    assert_eq!(&buf[..4], b"BBHB");
    let back = key().decode(&buf).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.name.as_str(), "bb2");
}

#[test]
fn round_trip_of_a_64_byte_name_and_extreme_values() {
    let long = "n".repeat(64);
    let mut h = hb(&long, [0xff; 16], u64::MAX, 255);
    h.wall_ms = 0;
    h.flags = Flags::KNOWN;
    assert_eq!(key().decode(&packet(&h)).unwrap(), h);
    assert!(NodeName::new(&"n".repeat(65)).is_none());
    assert!(NodeName::new("").is_none());
}

#[test]
fn every_role_state_and_health_code_round_trips() {
    for v in 0..=255u8 {
        if let Some(r) = Role::from_u8(v) {
            assert_eq!(r as u8, v);
        }
        if let Some(s) = State::from_u8(v) {
            assert_eq!(s as u8, v);
        }
        if let Some(h) = Health::from_u8(v) {
            assert_eq!(h as u8, v);
        }
    }
    assert_eq!(State::from_u8(9), Some(State::Releasing));
    assert_eq!(State::from_u8(10), None);
}

#[test]
fn short_keys_are_refused() {
    assert_eq!(
        Key::new(b"short").unwrap_err(),
        KeyError::TooShort { bytes: 5 }
    );
    assert!(Key::new(&[7u8; MIN_KEY_BYTES]).is_ok());
}

#[test]
fn another_key_is_unauthenticated() {
    let buf = packet(&hb("bb2", BOOT_A, 5, 0));
    let other = Key::new(b"fedcba9876543210fedcba9876543210").unwrap();
    assert_eq!(other.decode(&buf), Err(Reject::Unauthenticated));
}

#[test]
fn forged_tag_is_unauthenticated() {
    let mut buf = packet(&hb("bb2", BOOT_A, 5, 0));
    buf[OFF_TAG..].fill(0);
    assert_eq!(key().decode(&buf), Err(Reject::Unauthenticated));
    // A changed field with the old tag.
    let mut buf = packet(&hb("bb2", BOOT_A, 5, 0));
    buf[OFF_ROLE] = Role::Standby as u8;
    assert_eq!(key().decode(&buf), Err(Reject::Unauthenticated));
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let good = packet(&hb("bb2", BOOT_A, 5, 0));
    for bit in 0..PACKET_BYTES * 8 {
        let mut buf = good;
        buf[bit / 8] ^= 1 << (bit % 8);
        let expected = match bit / 8 {
            0..=3 => Reject::BadMagic,
            OFF_VERSION => Reject::BadVersion,
            _ => Reject::Unauthenticated,
        };
        assert_eq!(key().decode(&buf), Err(expected), "bit {bit}");
    }
}

#[test]
fn truncated_at_every_length_and_oversized() {
    let good = packet(&hb("bb2", BOOT_A, 5, 0));
    for len in 0..PACKET_BYTES {
        assert_eq!(
            key().decode(&good[..len]),
            Err(Reject::Truncated),
            "length {len}"
        );
    }
    let mut big = [0u8; RECV_BUFFER_BYTES];
    big[..PACKET_BYTES].copy_from_slice(&good);
    for len in PACKET_BYTES + 1..=RECV_BUFFER_BYTES {
        assert_eq!(
            key().decode(&big[..len]),
            Err(Reject::Oversized),
            "length {len}"
        );
    }
}

#[test]
fn bad_magic_and_bad_version() {
    let mut buf = packet(&hb("bb2", BOOT_A, 5, 0));
    buf[..4].copy_from_slice(b"VRRP");
    assert_eq!(key().decode(&buf), Err(Reject::BadMagic));
    let mut buf = packet(&hb("bb2", BOOT_A, 5, 0));
    buf[OFF_VERSION] = 3;
    resign(&mut buf);
    assert_eq!(key().decode(&buf), Err(Reject::BadVersion));
    // A version-2 header on a version-1-sized packet is short.
    let mut buf = packet(&hb("bb2", BOOT_A, 5, 0));
    buf[OFF_VERSION] = 2;
    resign(&mut buf);
    assert_eq!(key().decode(&buf), Err(Reject::Truncated));
}

#[test]
fn authentic_but_malformed_fields_are_malformed() {
    let good = packet(&hb("bb2", BOOT_A, 5, 0));
    type Edit = fn(&mut [u8; PACKET_BYTES]);
    let edits: &[(&str, Edit)] = &[
        ("unknown role", |b| b[OFF_ROLE] = 3),
        ("unknown state", |b| b[OFF_STATE] = 10),
        ("unknown health", |b| b[OFF_HEALTH] = 5),
        ("unknown flag", |b| b[OFF_FLAGS] = 0x80),
        ("empty name", |b| b[OFF_NAME_LEN] = 0),
        ("name too long", |b| b[OFF_NAME_LEN] = 65),
        ("padding not zero", |b| b[OFF_NAME + 10] = b'x'),
        ("name not UTF-8", |b| b[OFF_NAME] = 0xff),
        ("reserved not zero", |b| b[OFF_RESERVED + 3] = 1),
    ];
    for (what, edit) in edits {
        let mut buf = good;
        edit(&mut buf);
        resign(&mut buf);
        assert_eq!(key().decode(&buf), Err(Reject::Malformed), "{what}");
    }
    // The re-signing itself is sound: an unedited packet re-signed still decodes.
    let mut buf = good;
    resign(&mut buf);
    assert!(key().decode(&buf).is_ok());
}

#[test]
fn random_mutations_never_panic_and_never_authenticate() {
    let good = packet(&hb("bb2", BOOT_A, 5, 0));
    let k = key();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; RECV_BUFFER_BYTES];
    for round in 0..20_000 {
        buf[..PACKET_BYTES].copy_from_slice(&good);
        let mut len = PACKET_BYTES;
        match round % 4 {
            // 1..8 random bytes replaced by random values (a no-op edit is retried).
            0 | 1 => {
                let mut changed = false;
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(PACKET_BYTES);
                    let v = rng.next() as u8;
                    changed |= buf[at] != v;
                    buf[at] = v;
                }
                if !changed {
                    buf[rng.below(PACKET_BYTES)] ^= 0x01;
                }
            }
            // Cut or extended with random bytes.
            2 => {
                len = rng.below(RECV_BUFFER_BYTES + 1);
                if len == PACKET_BYTES {
                    len += 1;
                }
                for b in buf.iter_mut().take(len).skip(PACKET_BYTES) {
                    *b = rng.next() as u8;
                }
            }
            // Entirely random, sometimes with the right magic and version.
            _ => {
                for b in buf.iter_mut() {
                    *b = rng.next() as u8;
                }
                if rng.below(2) == 0 {
                    buf[..4].copy_from_slice(&MAGIC);
                    buf[OFF_VERSION] = VERSION;
                }
            }
        }
        let result = k.decode(&buf[..len]);
        assert!(
            result.is_err(),
            "round {round}: a mutated packet authenticated"
        );
    }
}

// ---- tracker: who and when ----

#[test]
fn accepts_the_peer_and_counts() {
    let mut t = tracker();
    let now = Instant::now();
    let got = t
        .receive(now, 0, &packet(&hb("bb2", BOOT_A, 10, 0)))
        .unwrap();
    assert_eq!(got.sequence, 10);
    assert_eq!(t.counters().accepted, 1);
    assert_eq!(t.counters().dropped(), 0);
    assert_eq!(t.last().unwrap().role, Role::Active);
    assert_eq!(t.link(0).unwrap().accepted, 1);
}

#[test]
fn own_name_other_name_and_wrong_link_are_dropped() {
    let mut t = tracker();
    let now = Instant::now();
    assert_eq!(
        t.receive(now, 0, &packet(&hb("bb1", BOOT_A, 10, 0))),
        Err(Reject::FromSelf)
    );
    assert_eq!(
        t.receive(now, 0, &packet(&hb("bb3", BOOT_A, 10, 0))),
        Err(Reject::WrongPeer)
    );
    // Sent on link 1, arrived on link 0.
    assert_eq!(
        t.receive(now, 0, &packet(&hb("bb2", BOOT_A, 10, 1))),
        Err(Reject::WrongLink)
    );
    // A link the tracker does not have.
    assert_eq!(
        t.receive(now, 2, &packet(&hb("bb2", BOOT_A, 10, 2))),
        Err(Reject::WrongLink)
    );
    assert_eq!(t.counters().get(Reject::FromSelf), 1);
    assert_eq!(t.counters().get(Reject::WrongPeer), 1);
    assert_eq!(t.counters().get(Reject::WrongLink), 2);
    assert_eq!(t.counters().accepted, 0);
    assert!(!t.alive(now));
    assert_eq!(events(&mut t, now), vec![]);
}

#[test]
fn each_drop_class_has_its_own_counter() {
    let mut t = tracker();
    let now = Instant::now();
    let good = packet(&hb("bb2", BOOT_A, 10, 0));
    let _ = t.receive(now, 0, &good[..10]);
    let _ = t.receive(now, 0, &[0u8; 200]);
    let mut forged = good;
    forged[100] ^= 1;
    let _ = t.receive(now, 0, &forged);
    t.receive(now, 0, &good).unwrap();
    let _ = t.receive(now, 0, &good);
    let c = t.counters();
    assert_eq!(c.get(Reject::Truncated), 1);
    assert_eq!(c.get(Reject::Oversized), 1);
    assert_eq!(c.get(Reject::Unauthenticated), 1);
    assert_eq!(c.get(Reject::Replayed), 1);
    assert_eq!(c.dropped(), 4);
    assert_eq!(c.accepted, 1);
    assert_eq!(t.link(0).unwrap().dropped, 4);
    let names: Vec<&str> = Reject::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(names.len(), 11);
    assert!(names.contains(&"unauthenticated"));
}

#[test]
fn replay_of_an_old_or_the_same_packet_is_dropped() {
    let mut t = tracker();
    let now = Instant::now();
    let p10 = packet(&hb("bb2", BOOT_A, 10, 0));
    let p11 = packet(&hb("bb2", BOOT_A, 11, 0));
    t.receive(now, 0, &p10).unwrap();
    t.receive(now, 0, &p11).unwrap();
    assert_eq!(t.receive(now, 0, &p11), Err(Reject::Replayed));
    assert_eq!(t.receive(now, 0, &p10), Err(Reject::Replayed));
    assert_eq!(t.counters().get(Reject::Replayed), 2);
}

#[test]
fn links_are_sequenced_independently() {
    // The sender numbers packets across links: 20 on link 1 may arrive before 19 on link 0.
    let mut t = tracker();
    let now = Instant::now();
    t.receive(now, 1, &packet(&hb("bb2", BOOT_A, 20, 1)))
        .unwrap();
    t.receive(now, 0, &packet(&hb("bb2", BOOT_A, 19, 0)))
        .unwrap();
    assert_eq!(t.links_up(now), (2, 2));
}

#[test]
fn a_restarted_peer_is_followed_and_its_old_run_is_stale() {
    let mut t = tracker();
    let t0 = Instant::now();
    let old = packet(&hb("bb2", BOOT_A, 1_000, 0));
    t.receive(t0, 0, &old).unwrap();
    assert_eq!(events(&mut t, t0), vec![Event::LinkUp(0), Event::PeerAlive]);
    // The peer's bbwd restarts: new boot id, sequence from a later clock.
    let t1 = t0 + Duration::from_millis(300);
    t.receive(t1, 0, &packet(&hb("bb2", BOOT_B, 5_000, 0)))
        .unwrap();
    assert_eq!(events(&mut t, t1), vec![Event::PeerRestarted]);
    // The old run, replayed, even with a higher sequence: stale (retired boot id).
    let replay = packet(&hb("bb2", BOOT_A, 1_001, 0));
    assert_eq!(t.receive(t1, 0, &old), Err(Reject::Stale));
    assert_eq!(t.receive(t1, 0, &replay), Err(Reject::Stale));
    let later = t1 + TIMEOUT * 10;
    assert_eq!(
        t.receive(later, 0, &packet(&hb("bb2", BOOT_A, 9_999_999, 0))),
        Err(Reject::Stale)
    );
    assert_eq!(t.counters().get(Reject::Stale), 3);
}

#[test]
fn an_unknown_older_run_is_stale_while_the_peer_is_live_and_accepted_after_silence() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.receive(t0, 0, &packet(&hb("bb2", BOOT_A, 5_000, 0)))
        .unwrap();
    // A run that claims an earlier start (lower sequence) while A is live.
    let c = [0xc3; 16];
    let t1 = t0 + TIMEOUT / 2;
    assert_eq!(
        t.receive(t1, 0, &packet(&hb("bb2", c, 100, 0))),
        Err(Reject::Stale)
    );
    // Silence for peer_timeout: the peer is dead to us; a restart with a clock that stepped
    // back must be able to pair again.
    let t2 = t0 + TIMEOUT;
    t.receive(t2, 0, &packet(&hb("bb2", c, 101, 0))).unwrap();
    assert!(t.alive(t2));
    // A is now retired for good.
    assert_eq!(
        t.receive(t2, 0, &packet(&hb("bb2", BOOT_A, 6_000, 0))),
        Err(Reject::Stale)
    );
}

#[test]
fn retired_boot_ids_are_bounded() {
    let mut t = tracker();
    let t0 = Instant::now();
    for run in 0..(RETIRED_BOOT_IDS as u64 + 3) {
        let id = [run as u8 + 1; 16];
        t.receive(t0, 0, &packet(&hb("bb2", id, 1_000 * (run + 1), 0)))
            .unwrap();
    }
    // The most recent retired ones are refused.
    let recent = [RETIRED_BOOT_IDS as u8 + 2; 16];
    assert_eq!(
        t.receive(t0, 0, &packet(&hb("bb2", recent, 1_000_000, 0))),
        Err(Reject::Stale)
    );
    // The oldest ones have been forgotten: with a newer sequence, the first run is accepted.
    t.receive(t0, 0, &packet(&hb("bb2", [1; 16], 2_000_000, 0)))
        .unwrap();
}

// ---- tracker: liveness and events ----

#[test]
fn one_link_lost_is_not_peer_loss_all_links_lost_is() {
    let mut t = tracker();
    let t0 = Instant::now();
    let mut seq = 100;
    let mut send = |t: &mut PeerTracker, now: Instant, link: u8| {
        seq += 1;
        t.receive(
            now,
            usize::from(link),
            &packet(&hb("bb2", BOOT_A, seq, link)),
        )
        .unwrap();
    };
    assert!(!t.alive(t0));
    assert_eq!(t.next_deadline(), None);
    send(&mut t, t0, 0);
    send(&mut t, t0, 1);
    assert_eq!(
        events(&mut t, t0),
        vec![Event::LinkUp(0), Event::LinkUp(1), Event::PeerAlive]
    );
    assert_eq!(t.links_up(t0), (2, 2));
    assert_eq!(t.next_deadline(), Some(t0 + TIMEOUT));

    // Link 1 goes quiet; link 0 keeps delivering every 200 ms.
    let mut now = t0;
    for _ in 0..10 {
        now += Duration::from_millis(200);
        send(&mut t, now, 0);
        let ev = events(&mut t, now);
        if now < t0 + TIMEOUT {
            assert_eq!(ev, vec![], "at {:?}", now - t0);
        } else if now == t0 + TIMEOUT {
            assert_eq!(ev, vec![Event::LinkDown(1)]);
        } else {
            assert_eq!(ev, vec![]);
        }
        assert!(t.alive(now), "one link left: the peer is alive");
    }
    assert_eq!(t.links_up(now), (1, 2));
    assert!(!t.link(1).unwrap().up);

    // Everything quiet: alive until peer_timeout after the last packet, then lost, once.
    let last = now;
    let just_before = last + TIMEOUT - Duration::from_millis(1);
    assert!(t.alive(just_before));
    assert_eq!(events(&mut t, just_before), vec![]);
    assert_eq!(t.next_deadline(), Some(last + TIMEOUT));
    let at = last + TIMEOUT;
    assert!(!t.alive(at));
    assert_eq!(
        events(&mut t, at),
        vec![Event::LinkDown(0), Event::PeerLost]
    );
    assert_eq!(events(&mut t, at + TIMEOUT), vec![]);
    assert_eq!(t.links_up(at), (0, 2));
    assert_eq!(t.next_deadline(), None);

    // Link 1 comes back: link up and peer alive again.
    let back = at + Duration::from_secs(5);
    send(&mut t, back, 1);
    assert_eq!(
        events(&mut t, back),
        vec![Event::LinkUp(1), Event::PeerAlive]
    );
}

#[test]
fn dropped_packets_do_not_keep_a_link_up() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.receive(t0, 0, &packet(&hb("bb2", BOOT_A, 10, 0)))
        .unwrap();
    let _ = events(&mut t, t0);
    // Replays of that packet keep arriving; they must not refresh the link.
    let replay = packet(&hb("bb2", BOOT_A, 10, 0));
    let mut now = t0;
    for _ in 0..10 {
        now += Duration::from_millis(200);
        assert_eq!(t.receive(now, 0, &replay), Err(Reject::Replayed));
    }
    assert!(!t.alive(now));
    assert_eq!(
        events(&mut t, now),
        vec![Event::LinkDown(0), Event::PeerLost]
    );
}

#[test]
fn sender_numbers_every_packet_and_tracker_accepts_them() {
    let k = key();
    let mut s = Sender::new(k.clone(), name("bb2"), BOOT_A, 1_795_000_000_000_000);
    let mut t = tracker();
    let local = Local {
        role: Role::Standby,
        state: State::Running,
        health: Health::Unknown,
        flags: Flags::empty(),
    };
    let now = Instant::now();
    let mut buf = [0u8; super::PACKET_BYTES];
    let mut last = 0;
    for round in 0..5u64 {
        for link in 0..2u8 {
            let len = s.encode(
                &local,
                &Talk::default(),
                link,
                1_795_000_000_000 + round,
                VERSION,
                &mut buf,
            );
            assert_eq!(len, super::PACKET_BYTES);
            let got = t.receive(now, usize::from(link), &buf[..len]).unwrap();
            assert!(got.sequence > last);
            last = got.sequence;
            assert_eq!(got.role, Role::Standby);
            assert_eq!(got.boot_id, s.boot_id());
        }
    }
    assert_eq!(t.counters().accepted, 10);
}

// ---------------------------------------------------------------------------------------------
// Version 2: the challenge, consent, symmetric links, compatibility with version 1.

/// Two nodes' heartbeat ends, wired by hand: bb1 (`a`) and bb2 (`b`), two links.
struct Pair2 {
    a_send: Sender,
    a_track: PeerTracker,
    b_send: Sender,
    b_track: PeerTracker,
}

const BOOT_B1: BootId = [0x22; 16];

fn local(role: Role) -> Local {
    Local {
        role,
        state: State::Stopped,
        health: Health::Unknown,
        flags: Flags::empty(),
    }
}

impl Pair2 {
    fn new() -> Pair2 {
        Pair2 {
            a_send: Sender::new(key(), name("bb1"), BOOT_ME, 1_000),
            a_track: PeerTracker::new(key(), name("bb1"), BOOT_ME, name("bb2"), 2, TIMEOUT),
            b_send: Sender::new(key(), name("bb2"), BOOT_B1, 5_000),
            b_track: PeerTracker::new(key(), name("bb2"), BOOT_B1, name("bb1"), 2, TIMEOUT),
        }
    }
    /// bb2 sends one v2 packet on `link`; returns its bytes (for replays).
    fn b_to_a(&mut self, now: Instant, link: u8, deliver: bool) -> Vec<u8> {
        let talk = self.b_track.talk(now);
        let mut buf = [0u8; super::PACKET_BYTES];
        let len = self
            .b_send
            .encode(&local(Role::Standby), &talk, link, 0, VERSION, &mut buf);
        if deliver {
            let _ = self.a_track.receive(now, usize::from(link), &buf[..len]);
            while self.a_track.next_event(now).is_some() {}
        }
        buf[..len].to_vec()
    }
    fn a_to_b(&mut self, now: Instant, link: u8, deliver: bool) {
        let talk = self.a_track.talk(now);
        let mut buf = [0u8; super::PACKET_BYTES];
        let len = self
            .a_send
            .encode(&local(Role::Active), &talk, link, 0, VERSION, &mut buf);
        if deliver {
            let _ = self.b_track.receive(now, usize::from(link), &buf[..len]);
            while self.b_track.next_event(now).is_some() {}
        }
    }
    /// One exchange both ways on both links.
    fn exchange(&mut self, now: Instant) {
        for link in 0..2 {
            self.a_to_b(now, link, true);
            self.b_to_a(now, link, true);
        }
    }
}

#[test]
fn v2_round_trip_carries_the_challenge_and_the_links_heard() {
    let mut h = hb("bb2", BOOT_A, 7, 1);
    h.version = VERSION;
    h.epoch = 3;
    h.echo = Challenge {
        boot_id: BOOT_ME,
        epoch: 9,
    };
    h.heard = 0b10;
    let mut buf = [0u8; super::PACKET_BYTES];
    let len = key().encode(&h, &mut buf);
    assert_eq!(len, super::PACKET_BYTES);
    assert_eq!(key().decode(&buf[..len]), Ok(h));
    // A v2 packet cut to the v1 size, or a v1 one padded to the v2 size, is not a packet.
    assert_eq!(
        key().decode(&buf[..PACKET_BYTES_V1]),
        Err(Reject::Truncated)
    );
    let v1 = packet(&hb("bb2", BOOT_A, 7, 1));
    let mut padded = [0u8; super::PACKET_BYTES];
    padded[..PACKET_BYTES_V1].copy_from_slice(&v1);
    assert_eq!(key().decode(&padded), Err(Reject::Oversized));
}

#[test]
fn a_peer_is_alive_only_once_it_answers_our_challenge() {
    let mut p = Pair2::new();
    let t0 = Instant::now();
    // bb2 has not heard bb1 yet: its packet echoes nothing, so bb1 does not count it alive.
    p.b_to_a(t0, 0, true);
    assert!(!p.a_track.alive(t0));
    p.exchange(t0);
    p.exchange(t0);
    assert!(p.a_track.alive(t0) && p.b_track.alive(t0));
    assert!(p.a_track.consent(t0));
}

#[test]
fn replayed_authentic_packet_across_a_receiver_restart_is_not_consent() {
    // Regression (pair-safety issue, route 6): a receiver that restarted accepted an old
    // authentic packet (e.g. a hand-over) as the peer's current word.
    let mut p = Pair2::new();
    let t0 = Instant::now();
    p.exchange(t0);
    p.exchange(t0);
    let old = p.b_to_a(t0, 0, true);
    assert!(p.a_track.consent(t0));
    // bb1's bbwd restarts: a new run, a new challenge, no history.
    let mut fresh_a = PeerTracker::new(key(), name("bb1"), [0x33; 16], name("bb2"), 2, TIMEOUT);
    let t1 = t0 + Duration::from_millis(100);
    fresh_a.receive(t1, 0, &old).unwrap();
    while fresh_a.next_event(t1).is_some() {}
    assert!(!fresh_a.alive(t1), "an old packet revived the peer");
    assert!(!fresh_a.consent(t1), "an old packet was taken as consent");
}

#[test]
fn after_a_loss_only_an_answer_to_the_new_challenge_revives_the_peer() {
    let mut p = Pair2::new();
    let t0 = Instant::now();
    p.exchange(t0);
    p.exchange(t0);
    let before = p.a_track.challenge();
    // Silence past the timeout: lost, and a new challenge.
    let t1 = t0 + TIMEOUT + Duration::from_millis(1);
    while p.a_track.next_event(t1).is_some() {}
    assert!(!p.a_track.alive(t1));
    assert_ne!(p.a_track.challenge(), before);
    // bb2 still echoes the old challenge: heard, but not alive.
    p.b_to_a(t1, 0, true);
    assert!(!p.a_track.alive(t1));
    // Once bb2 has heard the new challenge, it is alive again.
    p.a_to_b(t1, 0, true);
    p.b_to_a(t1, 0, true);
    assert!(p.a_track.alive(t1));
}

#[test]
fn one_way_loss_is_seen_the_same_on_both_sides() {
    // Regression (route 10): with every link lost from bb1 to bb2, bb1 still heard bb2 and
    // counted it alive, while bb2 counted bb1 lost and fenced it.
    let mut p = Pair2::new();
    let t0 = Instant::now();
    p.exchange(t0);
    p.exchange(t0);
    let mut now = t0;
    for _ in 0..8 {
        now += Duration::from_millis(200);
        for link in 0..2 {
            p.a_to_b(now, link, false); // lost
            p.b_to_a(now, link, true);
        }
    }
    assert!(!p.b_track.alive(now));
    assert!(
        !p.a_track.alive(now),
        "bb1 must see what bb2 sees: bb2 does not hear it"
    );
    assert_eq!(p.a_track.links_up(now), (0, 2));
}

#[test]
fn a_v1_peer_is_alive_but_never_consent() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.receive(t0, 0, &packet(&hb("bb2", BOOT_A, 10, 0)))
        .unwrap();
    while t.next_event(t0).is_some() {}
    assert!(t.alive(t0));
    assert!(!t.consent(t0));
    assert!(!t.peer_speaks_v2());
}

#[test]
fn a_live_peer_whose_bbwd_restarts_does_not_look_lost() {
    // An upgrade re-executes bbwd in place: the new run must not look like a dead peer (the
    // active would fence a standby that is only being upgraded), but its word is not consent
    // until it answers the challenge.
    let mut p = Pair2::new();
    let t0 = Instant::now();
    p.exchange(t0);
    p.exchange(t0);
    assert!(p.a_track.alive(t0));
    p.b_send = Sender::new(key(), name("bb2"), [0x44; 16], 900_000);
    p.b_track = PeerTracker::new(key(), name("bb2"), [0x44; 16], name("bb1"), 2, TIMEOUT);
    let t1 = t0 + Duration::from_millis(200);
    p.b_to_a(t1, 0, true);
    assert!(p.a_track.alive(t1), "a restarted live peer stays alive");
    assert!(!p.a_track.consent(t1), "but gives no consent yet");
    p.a_to_b(t1, 0, true);
    p.b_to_a(t1, 0, true);
    assert!(p.a_track.consent(t1));
}
