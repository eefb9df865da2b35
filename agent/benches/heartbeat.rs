//! Heartbeat codec cost per packet: encode + HMAC-SHA256, decode + verify, and the tracker's
//! whole receive path. A measurement for BENCHMARKS.md, not a test: nothing is asserted.
//!
//! Run: `cargo bench -p bbwd --bench heartbeat` (the release profile: opt-level "s", LTO).
//! The codec is `bbwd_core::heartbeat`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bbwd_core::heartbeat::{
    self, Flags, Health, Key, Local, NodeName, PeerTracker, Role, Sender, State, Talk,
};

/// The agent's counting global allocator (the `alloc-count` bench build's): every figure also
/// reports allocations per packet.
#[path = "../src/alloc_count.rs"]
#[allow(dead_code)]
mod alloc_count;

/// Packets per timed run.
const PACKETS: u32 = 200_000;
/// Timed runs per figure; the median is reported, with the range.
const RUNS: usize = 7;

fn measure(what: &str, mut one: impl FnMut(u32)) {
    for i in 0..PACKETS / 10 {
        one(i); // warm-up
    }
    let mut per_packet = Vec::with_capacity(RUNS);
    let allocs_before = alloc_count::allocations();
    per_packet.extend((0..RUNS).map(|_| {
        let start = Instant::now();
        for i in 0..PACKETS {
            one(i);
        }
        start.elapsed() / PACKETS
    }));
    let allocs = alloc_count::allocations() - allocs_before;
    per_packet.sort();
    println!(
        "{what:<38} median {:>5} ns/packet (range {}-{} ns, {RUNS} runs of {PACKETS}); {allocs} allocations",
        per_packet[RUNS / 2].as_nanos(),
        per_packet[0].as_nanos(),
        per_packet[RUNS - 1].as_nanos()
    );
}

fn main() {
    let key = Key::new(b"0123456789abcdef0123456789abcdef").unwrap();
    let local = Local {
        role: Role::Active,
        state: State::Running,
        health: Health::Healthy,
        flags: Flags::HOLDS_VIP | Flags::PREFERRED_ACTIVE,
    };
    println!(
        "packet size: {} bytes (UDP payload)",
        heartbeat::PACKET_BYTES
    );

    let mut sender = Sender::new(key.clone(), NodeName::new("bb2").unwrap(), [7; 16], 1);
    let mut buf = [0u8; heartbeat::PACKET_BYTES];
    measure("encode + HMAC-SHA256", |_| {
        sender.encode(
            black_box(&local),
            &Talk::default(),
            0,
            1_795_000_000_000,
            heartbeat::VERSION,
            &mut buf,
        );
        black_box(&buf);
    });

    let packet = buf;
    measure("decode + verify", |_| {
        black_box(key.decode(black_box(&packet)).is_ok());
    });

    let mut forged = packet;
    forged[50] ^= 1;
    measure("decode of a forged packet (rejected)", |_| {
        black_box(key.decode(black_box(&forged)).is_err());
    });

    // The whole path of one accepted packet, sender to receiver: encode (fresh sequence) then
    // the tracker's receive (decode, verify, name/link/sequence checks, bookkeeping).
    let mut peer = Sender::new(key.clone(), NodeName::new("bb2").unwrap(), [9; 16], 1);
    let mut tracker = PeerTracker::new(
        key.clone(),
        NodeName::new("bb1").unwrap(),
        [1; 16],
        NodeName::new("bb2").unwrap(),
        1,
        Duration::from_secs(1),
    );
    let now = Instant::now();
    let mut p = [0u8; heartbeat::PACKET_BYTES];
    measure("encode + tracker.receive (full path)", |_| {
        peer.encode(&local, &Talk::default(), 0, 0, heartbeat::VERSION, &mut p);
        let accepted = tracker.receive(now, 0, black_box(&p[..])).is_ok();
        assert!(accepted);
    });
}
