//! Tests of the probe, the reply parser and the status target.

use super::reply::*;
use super::*;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

// ---- helpers -------------------------------------------------------------------------

/// How a test server answers after reading the request.
enum Answer {
    /// Write these bytes in pieces of at most `piece` bytes (1 = byte by byte), then close.
    Bytes { reply: Vec<u8>, piece: usize },
    /// Write these bytes, then keep the connection open until the test ends.
    BytesThenHold(Vec<u8>),
    /// Read the request and never answer (until the test ends).
    Nothing,
}

struct TestServer {
    target: StatusTarget,
    /// The request the server received.
    handle: JoinHandle<Vec<u8>>,
    /// Dropped (or sent to) to release a holding server.
    release: mpsc::Sender<()>,
}

impl TestServer {
    fn finish(self) -> Vec<u8> {
        drop(self.release);
        self.handle.join().expect("server thread")
    }
}

fn serve(bind: &str, answer: Answer) -> TestServer {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/status");
    let target = StatusTarget::parse(&url).unwrap();
    let (release, released) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                _ => return request,
            }
        }
        match answer {
            Answer::Bytes { reply, piece } => {
                for part in reply.chunks(piece) {
                    if stream.write_all(part).is_err() {
                        break;
                    }
                    if piece < reply.len() {
                        thread::sleep(Duration::from_micros(300));
                    }
                }
            }
            Answer::BytesThenHold(reply) => {
                stream.write_all(&reply).unwrap();
                let _ = released.recv();
            }
            Answer::Nothing => {
                let _ = released.recv();
            }
        }
        request
    });
    TestServer {
        target,
        handle,
        release,
    }
}

/// Drives `probe` with poll and the real clock until it reports (bounded: 10 s).
fn drive(probe: &mut HttpProbe) -> ProbeOutcome {
    let limit = Instant::now() + Duration::from_secs(10);
    while Instant::now() < limit {
        if let (Some((fd, interest)), Some(deadline)) = (probe.interest(), probe.deadline()) {
            let events = match interest {
                Interest::Readable => PollFlags::POLLIN,
                Interest::Writable => PollFlags::POLLOUT,
            };
            let wait_ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(1000) as u16;
            let mut fds = [PollFd::new(fd, events)];
            nix::poll::poll(&mut fds, PollTimeout::from(wait_ms)).expect("poll");
        }
        if let Some(outcome) = probe.advance(Instant::now()) {
            assert!(!probe.in_flight());
            assert!(probe.interest().is_none());
            return outcome;
        }
    }
    panic!("probe did not finish within 10 s");
}

fn probe_once(target: &StatusTarget, timeout: Duration) -> ProbeOutcome {
    let mut probe = HttpProbe::new();
    match probe.start(target, Instant::now(), timeout) {
        Ok(()) => drive(&mut probe),
        Err(outcome) => outcome,
    }
}

fn json_reply(code: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Content-Length: {}\r\nDate: Sun, 22 Nov 2026 14:00:00 GMT\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn reply(http_status: u16, state: Option<BbState>) -> ProbeOutcome {
    ProbeOutcome::Reply { http_status, state }
}

// ---- URL parsing -----------------------------------------------------------------------

#[test]
fn url_with_port_and_path() {
    let t = StatusTarget::parse("http://127.0.0.1:7990/status").unwrap();
    assert_eq!(t.addr, "127.0.0.1:7990".parse().unwrap());
    assert_eq!(
        t.request(),
        b"GET /status HTTP/1.0\r\nHost: 127.0.0.1:7990\r\nUser-Agent: bbwd\r\n\
          Accept: application/json\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn url_defaults_port_80() {
    let t = StatusTarget::parse("http://10.1.2.3/").unwrap();
    assert_eq!(t.addr, "10.1.2.3:80".parse().unwrap());
    assert!(t
        .request()
        .starts_with(b"GET / HTTP/1.0\r\nHost: 10.1.2.3:80\r\n"));
}

#[test]
fn url_ipv6_literal() {
    let t = StatusTarget::parse("http://[::1]:7990/bitbucket/status").unwrap();
    assert_eq!(t.addr, "[::1]:7990".parse().unwrap());
    assert!(t
        .request()
        .starts_with(b"GET /bitbucket/status HTTP/1.0\r\nHost: [::1]:7990\r\n"));
    assert_eq!(
        StatusTarget::parse("http://[::1]/").unwrap().addr.port(),
        80
    );
}

#[test]
fn url_query_kept() {
    let t = StatusTarget::parse("http://127.0.0.1:1/?a=b").unwrap();
    assert!(t.request().starts_with(b"GET /?a=b HTTP/1.0\r\n"));
}

#[test]
fn url_host_name_is_resolved() {
    let t = StatusTarget::parse("http://localhost:7990/status").unwrap();
    assert!(t.addr.ip().is_loopback(), "{:?}", t.addr);
    assert_eq!(t.addr.port(), 7990);
    assert!(t
        .request()
        .starts_with(b"GET /status HTTP/1.0\r\nHost: localhost:7990\r\n"));
}

#[test]
fn url_https_is_refused_with_a_reason() {
    let e = StatusTarget::parse("https://bitbucket.example.com/status").unwrap_err();
    assert!(e.0.contains("https is not supported"), "{e}");
    assert!(e.0.contains("plain-HTTP connector"), "{e}");
    assert!(
        e.0.contains("https://bitbucket.example.com/status"),
        "names the url: {e}"
    );
}

#[test]
fn url_errors() {
    for bad in [
        "",
        "127.0.0.1:7990/status",
        "ftp://127.0.0.1/",
        "http://",
        "http:///status",
        "http://:7990/status",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
        "http://127.0.0.1:+80/",
        "http://127.0.0.1:80x/",
        "http://user:pw@127.0.0.1/",
        "http://::1/status",
        "http://[::1/status",
        "http://[::1]x/status",
        "http://[127.0.0.1]/status",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/a\r\nX-Injected: 1",
        "http://127.0.0.1/caf\u{e9}",
        "http://bad\rhost/",
        "http://bad host/",
    ] {
        assert!(
            StatusTarget::parse(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
    let long = format!("http://127.0.0.1/{}", "a".repeat(REPLY_CAPACITY));
    assert!(StatusTarget::parse(&long)
        .unwrap_err()
        .0
        .contains("too long"));
}

// ---- the probe against real loopback servers -------------------------------------------

/// A server that writes a reply (in pieces of `piece` bytes) and closes: what the probe makes
/// of each, one case per line.
#[test]
fn replies_written_whole_or_in_pieces_then_closed() {
    let html = "<html><head><title>404</title></head><body>Not Found</body></html>";
    let not_found = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{html}",
        html.len()
    );
    let error_body =
        r#"{"state":"ERROR","results":[{"description":"The database is unreachable"}]}"#;
    let mut oversized = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
    oversized.extend(std::iter::repeat_n(b' ', REPLY_CAPACITY));
    oversized.extend_from_slice(br#"{"state":"RUNNING"}"#);
    let exact = {
        let head = "HTTP/1.0 200 OK\r\n\r\n";
        let state = r#"{"state":"MAINTENANCE"}"#;
        let padding = REPLY_CAPACITY - head.len() - state.len();
        format!("{head}{state}{}", " ".repeat(padding)).into_bytes()
    };
    assert_eq!(exact.len(), REPLY_CAPACITY);
    let whole = usize::MAX;
    let cases: Vec<(&str, Vec<u8>, usize, ProbeOutcome)> = vec![
        (
            "running_200",
            json_reply(200, "OK", r#"{"state":"RUNNING"}"#),
            whole,
            reply(200, Some(BbState::Running)),
        ),
        (
            "not_found_with_html_body_has_no_state",
            not_found.into_bytes(),
            whole,
            reply(404, None),
        ),
        (
            "error_500",
            json_reply(500, "Internal Server Error", error_body),
            whole,
            reply(500, Some(BbState::Error)),
        ),
        (
            "garbage_is_malformed",
            b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff garbage\r\n\r\n".to_vec(),
            whole,
            ProbeOutcome::Failed(ProbeFailure::Malformed),
        ),
        (
            "reply_in_one_byte_writes",
            json_reply(200, "OK", r#"{"state":"FIRST_RUN"}"#),
            1,
            reply(200, Some(BbState::FirstRun)),
        ),
        (
            "reply_without_length_ends_at_eof_in_one_byte_writes",
            b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"state\":\"STARTING\"}".to_vec(),
            1,
            reply(503, Some(BbState::Starting)),
        ),
        (
            "oversized_reply_without_length_is_too_large",
            oversized,
            whole,
            ProbeOutcome::Failed(ProbeFailure::TooLarge),
        ),
        (
            "reply_of_exactly_the_capacity_is_accepted",
            exact,
            whole,
            reply(200, Some(BbState::Maintenance)),
        ),
        (
            "peer_closing_mid_headers_is_truncated",
            b"HTTP/1.1 200 OK\r\nContent-Type: applic".to_vec(),
            whole,
            ProbeOutcome::Failed(ProbeFailure::Truncated),
        ),
        (
            "peer_closing_mid_body_is_truncated",
            b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n{\"state\":\"RUN".to_vec(),
            whole,
            ProbeOutcome::Failed(ProbeFailure::Truncated),
        ),
        (
            "peer_closing_without_a_byte_is_truncated",
            Vec::new(),
            whole,
            ProbeOutcome::Failed(ProbeFailure::Truncated),
        ),
    ];
    for (name, raw, piece, want) in cases {
        let server = serve("127.0.0.1:0", Answer::Bytes { reply: raw, piece });
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            want,
            "{name}"
        );
        server.finish();
    }
}

#[test]
fn the_server_receives_exactly_the_target_request() {
    let server = serve(
        "127.0.0.1:0",
        Answer::Bytes {
            reply: json_reply(200, "OK", r#"{"state":"RUNNING"}"#),
            piece: usize::MAX,
        },
    );
    let expected = server.target.request().to_vec();
    assert_eq!(
        probe_once(&server.target, Duration::from_secs(5)),
        reply(200, Some(BbState::Running))
    );
    assert_eq!(server.finish(), expected);
}

#[test]
fn every_state_over_the_wire() {
    for (code, name, state) in [
        (200, "RUNNING", BbState::Running),
        (200, "MAINTENANCE", BbState::Maintenance),
        (200, "FIRST_RUN", BbState::FirstRun),
        (503, "STARTING", BbState::Starting),
        (503, "STOPPING", BbState::Stopping),
        (500, "ERROR", BbState::Error),
        (200, "SOMETHING_NEW", BbState::Other),
    ] {
        let body = format!(r#"{{"state":"{name}"}}"#);
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: json_reply(code, "X", &body),
                piece: usize::MAX,
            },
        );
        assert_eq!(
            probe_once(&server.target, Duration::from_secs(5)),
            reply(code, Some(state)),
            "{name}"
        );
        server.finish();
        if state != BbState::Other {
            assert_eq!(state.as_str(), name);
            assert_eq!(BbState::from_status(state.as_str()), state);
        }
    }
}

#[test]
fn content_length_completes_without_waiting_for_eof() {
    // The server keeps the connection open: the probe must finish on Content-Length alone.
    let server = serve(
        "127.0.0.1:0",
        Answer::BytesThenHold(json_reply(200, "OK", r#"{"state":"RUNNING"}"#)),
    );
    let started = Instant::now();
    assert_eq!(
        probe_once(&server.target, Duration::from_secs(5)),
        reply(200, Some(BbState::Running))
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    server.finish();
}

#[test]
fn oversized_content_length_fails_early() {
    // Only the headers arrive and the connection stays open: TooLarge must not wait.
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{".to_vec();
    let server = serve("127.0.0.1:0", Answer::BytesThenHold(raw));
    assert_eq!(
        probe_once(&server.target, Duration::from_secs(5)),
        ProbeOutcome::Failed(ProbeFailure::TooLarge)
    );
    server.finish();
}

#[test]
fn silent_server_times_out() {
    let server = serve("127.0.0.1:0", Answer::Nothing);
    let started = Instant::now();
    let outcome = probe_once(&server.target, Duration::from_millis(200));
    let elapsed = started.elapsed();
    assert_eq!(outcome, ProbeOutcome::Failed(ProbeFailure::Timeout));
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // The request was fully sent before the wait.
    let expected = server.target.request().to_vec();
    assert_eq!(server.finish(), expected);
}

#[test]
fn timeout_is_final_even_if_the_reply_is_there() {
    let server = serve(
        "127.0.0.1:0",
        Answer::BytesThenHold(json_reply(200, "OK", r#"{"state":"RUNNING"}"#)),
    );
    let mut probe = HttpProbe::new();
    let t0 = Instant::now();
    probe
        .start(&server.target, t0, Duration::from_millis(50))
        .unwrap();
    assert_eq!(probe.deadline(), Some(t0 + Duration::from_millis(50)));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        probe.advance(t0 + Duration::from_millis(50)),
        Some(ProbeOutcome::Failed(ProbeFailure::Timeout))
    );
    assert!(!probe.in_flight());
    assert_eq!(
        probe.advance(t0 + Duration::from_secs(1)),
        None,
        "the outcome is reported once"
    );
    server.finish();
}

#[test]
fn refused_port() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = StatusTarget::parse(&format!("http://{addr}/status")).unwrap();
    assert_eq!(
        probe_once(&target, Duration::from_secs(5)),
        ProbeOutcome::Failed(ProbeFailure::Refused)
    );
}

#[test]
fn ipv6_loopback() {
    let server = serve(
        "[::1]:0",
        Answer::Bytes {
            reply: json_reply(200, "OK", r#"{"state":"RUNNING"}"#),
            piece: 3,
        },
    );
    assert!(server.target.addr.is_ipv6());
    assert_eq!(
        probe_once(&server.target, Duration::from_secs(5)),
        reply(200, Some(BbState::Running))
    );
    server.finish();
}

#[test]
fn one_probe_serves_many_requests_and_can_be_cancelled() {
    let mut probe = HttpProbe::new();
    for state in ["RUNNING", "STOPPING", "RUNNING"] {
        let server = serve(
            "127.0.0.1:0",
            Answer::Bytes {
                reply: json_reply(200, "OK", &format!(r#"{{"state":"{state}"}}"#)),
                piece: usize::MAX,
            },
        );
        probe
            .start(&server.target, Instant::now(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            drive(&mut probe),
            reply(200, Some(BbState::from_status(state)))
        );
        server.finish();
    }
    let server = serve("127.0.0.1:0", Answer::Nothing);
    probe
        .start(&server.target, Instant::now(), Duration::from_secs(5))
        .unwrap();
    assert!(probe.in_flight());
    assert_eq!(probe.interest().map(|(_, i)| i), Some(Interest::Writable));
    probe.cancel();
    assert!(!probe.in_flight());
    assert!(probe.deadline().is_none());
    assert_eq!(probe.advance(Instant::now()), None);
    server.finish();
}

#[test]
fn interest_is_readable_once_the_request_is_sent() {
    let server = serve("127.0.0.1:0", Answer::Nothing);
    let mut probe = HttpProbe::new();
    probe
        .start(&server.target, Instant::now(), Duration::from_secs(5))
        .unwrap();
    let limit = Instant::now() + Duration::from_secs(5);
    while probe.interest().map(|(_, i)| i) != Some(Interest::Readable) {
        assert!(Instant::now() < limit, "request never sent");
        assert_eq!(probe.advance(Instant::now()), None);
        thread::sleep(Duration::from_millis(1));
    }
    // A spurious advance while nothing has arrived changes nothing.
    assert_eq!(probe.advance(Instant::now()), None);
    assert!(probe.in_flight());
    probe.cancel();
    server.finish();
}

// ---- parse_reply, pure -----------------------------------------------------------------

#[test]
fn parse_needs_more_until_complete() {
    let full = json_reply(200, "OK", r#"{"state":"RUNNING"}"#);
    for cut in 0..full.len() {
        assert_eq!(parse_reply(&full[..cut], false), Ok(None), "cut at {cut}");
        assert_eq!(
            parse_reply(&full[..cut], true),
            Err(ProbeFailure::Truncated),
            "cut at {cut} + eof"
        );
    }
    assert_eq!(
        parse_reply(&full, false),
        Ok(Some(reply(200, Some(BbState::Running))))
    );
    assert_eq!(
        parse_reply(&full, true),
        Ok(Some(reply(200, Some(BbState::Running))))
    );
}

#[test]
fn parse_bodies_without_a_state() {
    let cases: &[(&str, Option<BbState>)] = &[
        ("", None),
        ("not json", None),
        ("{", None),
        ("{}", None),
        (r#"{"status":"RUNNING"}"#, None),
        (r#"{"state":null}"#, None),
        (r#"{"state":42}"#, None),
        (r#"["RUNNING"]"#, None),
        (r#""RUNNING""#, None),
        (r#"{"state":"RUNNING"} trailing"#, None),
        (r#"{"state":"RUN\u004eING"}"#, Some(BbState::Other)),
        (r#"{"state":"RUNNING","state":"RUNNING"}"#, None),
        (r#"{"state":"RUNNING",}"#, None),
        (r#"{"state":"RUNNING" "x":1}"#, None),
        (r#"{"state":"RUNNING","x":}"#, None),
        (r#"{"state":"RUNNING","x":[1,2}"#, None),
        (
            r#"{"x":"\"state\":\"ERROR\"","state":"STARTING"}"#,
            Some(BbState::Starting),
        ),
        (
            r#"{"state":"STARTING","progress":{"message":"Starting","percentage":40}}"#,
            Some(BbState::Starting),
        ),
        (
            r#"{"state" : "RUNNING" , "n" : -1.5e3 , "b" : [true, false, null] }"#,
            Some(BbState::Running),
        ),
        (
            r#"  {"other":{"state":"ERROR"},"list":[1,2,{"a":"b"}],"state":"RUNNING"}  "#,
            Some(BbState::Running),
        ),
        (r#"{"state":"running"}"#, Some(BbState::Other)),
        (r#"{"state":""}"#, Some(BbState::Other)),
    ];
    for (body, state) in cases {
        let raw = format!("HTTP/1.0 200 OK\r\n\r\n{body}");
        assert_eq!(
            parse_reply(raw.as_bytes(), true),
            Ok(Some(reply(200, *state))),
            "{body:?}"
        );
    }
}

use bbwd_testkit::Rng;

#[test]
fn body_scanner_agrees_with_serde_json() {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow, default)]
        state: Option<&'a str>,
    }
    let bases: [&[u8]; 4] = [
        br#"{"state":"RUNNING"}"#,
        br#"{"state":"STARTING","progress":{"message":"Starting","percentage":40}}"#,
        br#" {"results":[{"a":1.5e3,"b":[true,false,null]},"s\"t"],"state":"ERROR"} "#,
        br#"{"x":{},"y":[],"state":null}"#,
    ];
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut compared, mut with_state) = (0, 0);
    for round in 0..40_000 {
        let mut body = bases[round % bases.len()].to_vec();
        for _ in 0..(rng.next_u64() % 3) {
            let at = (rng.next_u64() as usize) % (body.len() + 1);
            let byte = b"{}[]\",: \"\\0ae-"[(rng.next_u64() % 14) as usize];
            match rng.next_u64() % 3 {
                0 if at < body.len() => body[at] = byte,
                1 if at < body.len() => {
                    body.remove(at);
                }
                _ => body.insert(at, byte),
            }
        }
        let ours = body_state(&body);
        // serde_json also accepts a struct as an array; the scanner wants an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            assert_eq!(ours, None, "{:?}", String::from_utf8_lossy(&body));
            continue;
        }
        // Where serde_json reads the body, the scanner must read the same state.
        if let Ok(parsed) = serde_json::from_slice::<Body<'_>>(&body) {
            compared += 1;
            with_state += usize::from(parsed.state.is_some());
            assert_eq!(
                ours,
                parsed.state.map(BbState::from_status),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // The mutations must leave enough valid bodies for the comparison to mean something.
    assert!(
        compared > 10_000 && with_state > 5_000,
        "compared {compared}, with state {with_state}"
    );
}

#[test]
fn parse_status_without_body() {
    assert_eq!(
        parse_reply(b"HTTP/1.1 204 No Content\r\n\r\n", false),
        Ok(Some(reply(204, None)))
    );
    assert_eq!(
        parse_reply(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            false
        ),
        Ok(Some(reply(304, None)))
    );
}

#[test]
fn parse_bare_lf_and_missing_reason() {
    assert_eq!(
        parse_reply(
            b"HTTP/1.1 200 OK\nContent-Length: 19\n\n{\"state\":\"RUNNING\"}",
            false
        ),
        Ok(Some(reply(200, Some(BbState::Running))))
    );
    assert_eq!(
        parse_reply(b"HTTP/1.1 503\r\n\r\n{\"state\":\"STOPPING\"}", true),
        Ok(Some(reply(503, Some(BbState::Stopping))))
    );
}

#[test]
fn parse_malformed() {
    for raw in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/9 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\x03",
    ] {
        assert_eq!(
            parse_reply(raw, true),
            Err(ProbeFailure::Malformed),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse_reply(&many, true), Err(ProbeFailure::Malformed));
}

#[test]
fn parse_duplicate_equal_content_length_is_fine() {
    assert_eq!(
        parse_reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}",
            false
        ),
        Ok(Some(reply(200, None)))
    );
}

#[test]
fn parse_content_length_beyond_capacity_is_too_large() {
    let raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        REPLY_CAPACITY
    );
    assert_eq!(
        parse_reply(raw.as_bytes(), false),
        Err(ProbeFailure::TooLarge)
    );
}

#[test]
fn parse_chunked() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                6\r\n{\"stat\r\n9;ext=1\r\ne\":\"RUNNI\r\n4\r\nNG\"}\r\n0\r\n\r\n";
    assert_eq!(
        parse_reply(raw, false),
        Ok(Some(reply(200, Some(BbState::Running))))
    );
    // Every prefix before the last chunk needs more, or is truncated at EOF.
    let last_chunk = raw.len() - b"0\r\n\r\n".len();
    for cut in 0..last_chunk + 2 {
        assert_eq!(parse_reply(&raw[..cut], false), Ok(None), "cut at {cut}");
        assert_eq!(
            parse_reply(&raw[..cut], true),
            Err(ProbeFailure::Truncated),
            "cut at {cut} + eof"
        );
    }
    // Bad framing.
    assert_eq!(
        parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false
        ),
        Err(ProbeFailure::Malformed)
    );
    assert_eq!(
        parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
            false
        ),
        Err(ProbeFailure::Malformed)
    );
    // A chunk bigger than the buffer.
    assert_eq!(
        parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffff\r\n{",
            false
        ),
        Err(ProbeFailure::TooLarge)
    );
}

#[test]
fn parse_never_panics_on_mutations() {
    // A small deterministic fuzz: flip, drop and insert bytes of a valid reply.
    let base = json_reply(
        503,
        "Service Unavailable",
        r#"{"state":"STARTING","progress":{"percentage":40}}"#,
    );
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = || rng.next_u64();
    for _ in 0..5000 {
        let mut raw = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % raw.len().max(1);
            match next() % 3 {
                0 => raw[at] = next() as u8,
                1 => {
                    raw.remove(at);
                }
                _ => raw.insert(at, next() as u8),
            }
        }
        let _ = parse_reply(&raw, false);
        let _ = parse_reply(&raw, true);
    }
}
