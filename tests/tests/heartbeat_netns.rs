//! Root test: the heartbeat over two real links between two network namespaces this test
//! creates (`bbhb<pid>a`, `bbhb<pid>b`, joined by two veth pairs), with the real link sockets
//! (`bbwd_platform::heartbeat::Links`) and the agent's codec and tracker
//! (`bbwd_core::heartbeat`).
//!
//! How the namespaces are entered: a socket belongs to the network namespace it was created in,
//! whatever thread uses it later. So each node's sockets are opened on a short-lived thread that
//! first `setns(2)`s into the node's namespace; the test then drives both nodes from its own
//! thread (no helper process, nothing to reap). Links are cut with `ip link set ... down`.
//!
//! Must not: touch anything outside the two namespaces (no address or route in the root
//! namespace; the veths live inside them), or leave them behind: [`Lab`]'s drop deletes both,
//! also when an assertion fails.

use bbwd_core::heartbeat;

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use bbwd_platform::heartbeat::{Links, SendError};
use heartbeat::{Event, Flags, Health, Key, Local, NodeName, PeerTracker, Reject, Role, Sender};
use nix::errno::Errno;

/// Heartbeat period of the test nodes, ms-scale to keep the test short.
const INTERVAL: Duration = Duration::from_millis(50);
/// Generous on purpose (60 intervals): a stall of the shared test machine must not look like a
/// lost peer. The test asserts ordering and lower bounds, never how fast.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound for any awaited event (a test failure, not a measurement).
const WAIT: Duration = Duration::from_secs(30);
const KEY: &[u8] = b"heartbeat-netns-test-key-32bytes";

// ---------------------------------------------------------------------------------------------
// The lab

/// Two namespaces, `a` and `b`, with link 0 = veth `hb0` (10.91.0.1 <-> .2) and link 1 = veth
/// `hb1` (10.91.1.1 <-> .2). Deleted on drop.
struct Lab {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new() -> Lab {
        let pid = std::process::id();
        let lab = Lab {
            a: format!("bbhb{pid}a"),
            b: format!("bbhb{pid}b"),
        };
        // Leftovers of an earlier run with the same pid (cannot be ours otherwise).
        lab.delete();
        ip(&["netns", "add", &lab.a]);
        ip(&["netns", "add", &lab.b]);
        for link in 0..2 {
            let dev = format!("hb{link}");
            ip(&[
                "-n", &lab.a, "link", "add", &dev, "type", "veth", "peer", "name", &dev, "netns",
                &lab.b,
            ]);
            for (ns, host) in [(&lab.a, 1), (&lab.b, 2)] {
                ip(&[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("10.91.{link}.{host}/24"),
                    "dev",
                    &dev,
                ]);
                ip(&["-n", ns, "link", "set", &dev, "up"]);
            }
        }
        lab
    }

    fn delete(&self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }

    fn set_link(&self, ns: &str, link: usize, up: bool) {
        let dev = format!("hb{link}");
        ip(&[
            "-n",
            ns,
            "link",
            "set",
            &dev,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Opens `listen` <-> `peers` sockets inside namespace `ns` (on a thread that enters it).
fn links_in(ns: &str, listen: Vec<SocketAddr>, peers: Vec<SocketAddr>) -> Links {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        Links::bind(&listen, &peers).unwrap_or_else(|e| panic!("{e}"))
    })
    .join()
    .expect("socket thread")
}

fn addr(link: usize, host: u8) -> SocketAddr {
    format!("10.91.{link}.{host}:5405").parse().unwrap()
}

/// Whether this test can run (root and `ip`): true, or the test fails saying what is missing
/// (it is `#[ignore = "needs root ..."]`: `scripts/test.sh` runs it with `--include-ignored`).
fn can_run() -> bool {
    let euid_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    let has_ip = Command::new("ip").arg("-V").output().is_ok();
    if euid_root && has_ip {
        return true;
    }
    let what = format!(
        "heartbeat_netns needs root (network namespaces) and `ip` (iproute2): root={euid_root} ip={has_ip}"
    );
    panic!("{what}");
}

// ---------------------------------------------------------------------------------------------
// A node: sockets, sender, tracker, and what happened to it

struct Node {
    name: &'static str,
    links: Links,
    sender: Sender,
    tracker: PeerTracker,
    events: Vec<(Instant, Event)>,
    send_errors: Vec<SendError>,
    /// The last packet this node sent on link 0 (for the replay injection).
    last_sent: [u8; heartbeat::PACKET_BYTES],
}

impl Node {
    fn new(name: &'static str, peer: &str, links: Links, boot: u8) -> Node {
        let key = Key::new(KEY).unwrap();
        let me = NodeName::new(name).unwrap();
        let n = links.len();
        Node {
            name,
            sender: Sender::new(key.clone(), me, [boot; 16], 1_000_000),
            tracker: PeerTracker::new(
                key,
                me,
                [boot; 16],
                NodeName::new(peer).unwrap(),
                n,
                PEER_TIMEOUT,
            ),
            links,
            events: Vec::new(),
            send_errors: Vec::new(),
            last_sent: [0; heartbeat::PACKET_BYTES],
        }
    }

    fn send_all(&mut self) {
        let local = Local {
            role: Role::Standby,
            state: heartbeat::State::Running,
            health: Health::Unknown,
            flags: Flags::empty(),
        };
        let mut buf = [0u8; heartbeat::PACKET_BYTES];
        let talk = self.tracker.talk(Instant::now());
        for link in 0..self.links.len() {
            let len =
                self.sender
                    .encode(&local, &talk, link as u8, 0, heartbeat::VERSION, &mut buf);
            assert_eq!(len, heartbeat::PACKET_BYTES);
            if link == 0 {
                self.last_sent = buf;
            }
            if let Err(e) = self.links.send(link, &buf[..len]) {
                self.send_errors.push(e);
            }
        }
    }

    fn receive_all(&mut self) {
        let mut buf = [0u8; heartbeat::RECV_BUFFER_BYTES];
        while let Some(got) = self.links.recv(&mut buf).unwrap_or_else(|e| panic!("{e}")) {
            let _ = self
                .tracker
                .receive(Instant::now(), got.link, &buf[..got.len]);
        }
        let now = Instant::now();
        while let Some(e) = self.tracker.next_event(now) {
            eprintln!("{}: {e:?}", self.name);
            self.events.push((now, e));
        }
    }

    fn saw(&self, event: Event, since: usize) -> bool {
        self.events[since..].iter().any(|(_, e)| *e == event)
    }
}

/// Runs both nodes (send every INTERVAL, receive in between) until `done` holds, or panics
/// after WAIT with both nodes' events.
fn run_until(a: &mut Node, b: &mut Node, what: &str, done: impl Fn(&Node, &Node) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        a.send_all();
        b.send_all();
        let next = Instant::now() + INTERVAL;
        while Instant::now() < next {
            let mut fds: Vec<_> = a
                .links
                .fds()
                .chain(b.links.fds())
                .map(|fd| nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN))
                .collect();
            let left = next.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            drop(fds);
            a.receive_all();
            b.receive_all();
        }
        if done(a, b) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}\n a events: {:?}\n b events: {:?}",
            a.events,
            b.events
        );
    }
}

#[test]
#[ignore = "needs root and iproute2: network namespaces"]
fn heartbeat_over_two_links_survives_one_cut_and_reports_peer_loss_when_both_are_cut() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let la = links_in(
        &lab.a,
        vec![addr(0, 1), addr(1, 1)],
        vec![addr(0, 2), addr(1, 2)],
    );
    let lb = links_in(
        &lab.b,
        vec![addr(0, 2), addr(1, 2)],
        vec![addr(0, 1), addr(1, 1)],
    );
    let mut a = Node::new("bb1", "bb2", la, 0xa1);
    let mut b = Node::new("bb2", "bb1", lb, 0xb2);

    // 1. Both links carry heartbeats both ways.
    run_until(&mut a, &mut b, "both links up on both nodes", |a, b| {
        let now = Instant::now();
        a.tracker.links_up(now) == (2, 2) && b.tracker.links_up(now) == (2, 2)
    });
    for n in [&a, &b] {
        assert!(
            n.saw(Event::LinkUp(0), 0) && n.saw(Event::LinkUp(1), 0),
            "{:?}",
            n.events
        );
        assert!(n.saw(Event::PeerAlive, 0), "{:?}", n.events);
        assert!(n.send_errors.is_empty(), "{:?}", n.send_errors);
    }

    // Injected from b's namespace on link 0: a replay of b's last packet and a forged one.
    // Ignored and counted by a; nothing else changes.
    let replay = b.last_sent;
    let mut forged = b.last_sent;
    forged[heartbeat::PACKET_BYTES - 1] ^= 0x55;
    // The original was sent a full interval ago and a has accepted it by now.
    b.links.send(0, &replay).unwrap();
    b.links.send(0, &forged).unwrap();
    run_until(&mut a, &mut b, "a counted the injected packets", |a, _| {
        let c = a.tracker.counters();
        c.get(Reject::Replayed) >= 1 && c.get(Reject::Unauthenticated) >= 1
    });
    assert!(a.tracker.alive(Instant::now()));

    // 2. Link 1 cut on a's side: a link event on both nodes, the peer stays alive.
    let mark_a = a.events.len();
    let mark_b = b.events.len();
    let errors_before = a.send_errors.len();
    lab.set_link(&lab.a, 1, false);
    run_until(&mut a, &mut b, "link 1 down on both nodes", |a, b| {
        a.saw(Event::LinkDown(1), mark_a) && b.saw(Event::LinkDown(1), mark_b)
    });
    for (n, mark) in [(&a, mark_a), (&b, mark_b)] {
        assert!(!n.saw(Event::PeerLost, mark), "{}: {:?}", n.name, n.events);
        assert!(
            !n.saw(Event::LinkDown(0), mark),
            "{}: {:?}",
            n.name,
            n.events
        );
        assert!(
            n.tracker.alive(Instant::now()),
            "{}: peer still alive on link 0",
            n.name
        );
        assert_eq!(n.tracker.links_up(Instant::now()), (1, 2), "{}", n.name);
    }
    // a cannot send on its downed link: reported per link, never fatal, link 0 unaffected.
    let new_errors = &a.send_errors[errors_before..];
    assert!(!new_errors.is_empty(), "sending on a downed link must fail");
    assert!(
        new_errors
            .iter()
            .all(|e| e.link == 1 && e.errno == Errno::ENETUNREACH),
        "{new_errors:?}"
    );

    // 3. Link 0 cut too: no valid packet anywhere, the peer is lost after peer_timeout.
    let mark_a = a.events.len();
    let mark_b = b.events.len();
    lab.set_link(&lab.a, 0, false);
    run_until(&mut a, &mut b, "peer lost on both nodes", |a, b| {
        a.saw(Event::PeerLost, mark_a) && b.saw(Event::PeerLost, mark_b)
    });
    for (n, mark) in [(&a, mark_a), (&b, mark_b)] {
        let (lost_at, _) = n.events[mark..]
            .iter()
            .find(|(_, e)| *e == Event::PeerLost)
            .copied()
            .unwrap();
        let last_valid = n.tracker.link(0).unwrap().last_valid.unwrap();
        assert!(
            lost_at.duration_since(last_valid) >= PEER_TIMEOUT,
            "{}: lost {:?} after the last packet, before peer_timeout",
            n.name,
            lost_at.duration_since(last_valid)
        );
        assert!(
            n.saw(Event::LinkDown(0), mark),
            "{}: {:?}",
            n.name,
            n.events
        );
        assert!(!n.tracker.alive(Instant::now()));
    }

    // 4. Link 1 back: link up and peer alive again, on both nodes.
    let mark_a = a.events.len();
    let mark_b = b.events.len();
    lab.set_link(&lab.a, 1, true);
    run_until(&mut a, &mut b, "peer alive again over link 1", |a, b| {
        a.saw(Event::PeerAlive, mark_a) && b.saw(Event::PeerAlive, mark_b)
    });
    for (n, mark) in [(&a, mark_a), (&b, mark_b)] {
        assert!(n.saw(Event::LinkUp(1), mark), "{}: {:?}", n.name, n.events);
        assert!(!n.saw(Event::LinkUp(0), mark), "{}: {:?}", n.name, n.events);
        // Nothing from the tested nodes was ever dropped except what the test injected.
        let c = n.tracker.counters();
        assert_eq!(c.get(Reject::Stale), 0, "{}", n.name);
        assert_eq!(c.get(Reject::WrongLink), 0, "{}", n.name);
    }
    drop(lab);
}
