//! `bbsim`: a Bitbucket Server stand-in for bbwd's end-to-end tests and benchmarks.
//!
//! Owns: one single-threaded, blocking HTTP/1.x server answering `GET /status` the way
//! Bitbucket does (seeds, "Monitoring"), plus `/_sim/...` admin endpoints that inject the faults
//! of SPEC.md's failure table (crash, OOME, hang ignoring SIGTERM, 500, garbage, MAINTENANCE),
//! and an append-only `events.log` in `--dir` that tests read to order what happened.
//!
//! ```text
//! bbsim --dir DIR --port PORT [--bind 127.0.0.1] [--starting-for DUR] [--stop-delay DUR]
//!       [--fail-start exit|hang] [--rss-mib N] [--node NAME]
//! ```
//!
//! * `--node NAME`: every reply carries `X-Bbsim-Node: NAME`, so a client probing a virtual IP
//!   can tell which node of a pair answered (tests/src/pairlab.rs).
//!
//! * `/status`: 503 `{"state":"STARTING"}` for `--starting-for` after start, then 200
//!   `{"state":"RUNNING"}`; 503 `{"state":"STOPPING"}` for `--stop-delay` after SIGTERM, then
//!   exit 0. One request per connection (`Connection: close`).
//! * `--fail-start exit`: exit 1 after 300 ms without listening (a Bitbucket that refuses to
//!   start, e.g. a wrong Git version); `hang`: STARTING forever. A file `DIR/fail-start` holding
//!   `exit` or `hang` has the same effect, so a test can make the *next* start fail.
//! * `/_sim/crash` exit 1 at once; `/_sim/oome?exit=3|none` print the JVM's OutOfMemoryError
//!   line to stderr, then exit 3 (`-XX:+ExitOnOutOfMemoryError`) or keep running;
//!   `/_sim/say?text=T` print T (percent-decoded, `+` = space) as a line on stderr;
//!   `/_sim/hang` ignore SIGTERM and stop serving; `/_sim/status?code=N&state=S` override the
//!   `/status` reply (empty `state` => an HTML body); `/_sim/garbage` answer `/status` with
//!   non-HTTP bytes; `/_sim/reset` back to normal. Admin requests are answered `200 ok` before
//!   the action.
//! * `/_sim/hostile?mode=M` answers every later `/status` the way a hostile server would (the
//!   probe suite, `tests/tests/probes.rs`); the process stays healthy otherwise, so bbwd's
//!   correction (stop, restart) ends it: `hang` (read, never answer, hold the connection),
//!   `trickle` (a healthy reply, one byte every 100 ms), `huge` (200 with a 100 MiB body and its
//!   `Content-Length`), `huge-close` (100 MiB, no length, ended by closing), `chunked` (a healthy
//!   body in valid chunks with a trailer), `chunked-bad` (broken chunk framing), `keep-alive`
//!   (complete with `Content-Length`, then held open), `keep-alive-no-length` (no length, held
//!   open: the body never ends), `redirect&code=301|302&location=URL` (empty body), and
//!   `body&code=N&body=B` (B percent-decoded to raw bytes, non-UTF-8 allowed; empty = no body).
//!   Slow and held connections are served beside the others, never blocking the accept loop.
//! * `/_sim/spawn-child?term=exit|ignore` starts `/bin/sh` in bbsim's own process group (a helper
//!   the JVM would start); it appends `READY` and then `TERM` for each SIGTERM it gets to
//!   `DIR/child-signals.log`, and exits on SIGTERM (`exit`) or keeps running (`ignore`). The
//!   reply body is the child's pid.
//! * `/_sim/requests` answers the number of `GET /status` requests received since start (how a
//!   test knows a monitor has looked, e.g. several Pacemaker monitors during MAINTENANCE).
//!
//! `events.log` lines: `<unix seconds>.<nanoseconds> <KIND> pid=<pid>[ code=<exit code>]` with
//! KIND in START, TERM, HANG, EXIT; each line is one `write(2)` to an `O_APPEND` file.
//!
//! Must not: spawn anything but the `/_sim/spawn-child` helper, or touch files outside `--dir`. It is a test tool: it is allowed
//! to exit with a message on a bad command line.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set by the SIGTERM handler, read by the main loop.
static TERM_RECEIVED: AtomicBool = AtomicBool::new(false);
/// `--node NAME`, set once at start; sent as `X-Bbsim-Node` in every reply.
static NODE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How long `--fail-start exit` lives before exiting 1 (a JVM that dies during start-up).
const FAIL_START_EXIT_AFTER: Duration = Duration::from_millis(300);
/// How long the accept loop sleeps in `poll(2)` between looks at the signal flag and clocks.
const POLL_SLICE_MS: i32 = 20;
/// How long a client has to send its request line and headers.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest request head read; more is answered 431 and closed.
const MAX_REQUEST_HEAD: usize = 8192;
/// The line a HotSpot JVM prints when the heap is exhausted.
const OOME_LINE: &str = "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailStart {
    Exit,
    Hang,
}

#[derive(Debug)]
struct Args {
    dir: PathBuf,
    port: u16,
    bind: String,
    starting_for: Duration,
    stop_delay: Duration,
    fail_start: Option<FailStart>,
    rss_mib: usize,
}

/// What `/status` answers, decided per request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StatusOverride {
    /// Normal Bitbucket behaviour (STARTING, RUNNING, STOPPING by the clocks).
    None,
    /// A fixed code and state (`state` empty => an HTML body).
    Fixed { code: u16, state: String },
    /// Bytes that are not HTTP at all.
    Garbage,
    /// `/_sim/hostile`: a hostile server's answer.
    Hostile(Hostile),
}

/// The hostile answers of `/_sim/hostile` (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hostile {
    Hang,
    Trickle,
    Huge,
    HugeClose,
    Chunked,
    ChunkedBad,
    KeepAlive,
    KeepAliveNoLength,
    Redirect { code: u16, location: String },
    Body { code: u16, body: Vec<u8> },
}

/// Size of the `huge` replies: 100 MiB.
const HUGE_BYTES: usize = 100 << 20;
/// What `trickle` waits between two bytes.
const TRICKLE_EVERY: Duration = Duration::from_millis(100);
/// Most connections held open (`hang`, `keep-alive`) at once; the oldest is closed beyond.
const MAX_HELD: usize = 64;
/// The healthy body.
const RUNNING_BODY: &[u8] = br#"{"state":"RUNNING"}"#;

/// A reply being written one byte at a time (`trickle`).
struct Slow {
    stream: TcpStream,
    bytes: Vec<u8>,
    sent: usize,
    next: Instant,
}

struct Sim {
    args: Args,
    events: PathBuf,
    started: Instant,
    /// When SIGTERM was noticed.
    stopping_since: Option<Instant>,
    /// `--fail-start hang` (or the file): STARTING forever.
    hang_starting: bool,
    status: StatusOverride,
    /// Connections held open without (more) answer.
    held: Vec<TcpStream>,
    /// Replies being trickled.
    slow: Vec<Slow>,
    /// `GET /status` requests received since start (`/_sim/requests`).
    status_requests: u64,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "bbsim: {message}");
            process::exit(64);
        }
    };
    if let Err(e) = fs::create_dir_all(&args.dir) {
        let _ = writeln!(
            std::io::stderr(),
            "bbsim: create {}: {e}",
            args.dir.display()
        );
        process::exit(70);
    }
    install_term_handler();
    let events = args.dir.join("events.log");
    log_event(&events, "START", None);
    let _ = writeln!(std::io::stdout(), "bbsim: starting");
    let _ = std::io::stdout().flush();

    // Bound to a name (not `_`) so the touched memory stays alive for the whole run.
    let _ballast = touch_memory(args.rss_mib);

    let fail_start = args.fail_start.or_else(|| read_fail_start_file(&args.dir));
    if fail_start == Some(FailStart::Exit) {
        std::thread::sleep(FAIL_START_EXIT_AFTER);
        exit_logged(&events, 1);
    }
    let listener = match TcpListener::bind((args.bind.as_str(), args.port)) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "bbsim: bind {}:{}: {e}",
                args.bind,
                args.port
            );
            exit_logged(&events, 1);
        }
    };
    let mut sim = Sim {
        args,
        events,
        started: Instant::now(),
        stopping_since: None,
        hang_starting: fail_start == Some(FailStart::Hang),
        status: StatusOverride::None,
        held: Vec::new(),
        slow: Vec::new(),
        status_requests: 0,
    };
    sim.serve(&listener);
}

impl Sim {
    fn serve(&mut self, listener: &TcpListener) -> ! {
        loop {
            if TERM_RECEIVED.load(Ordering::SeqCst) && self.stopping_since.is_none() {
                self.stopping_since = Some(Instant::now());
                log_event(&self.events, "TERM", None);
            }
            if let Some(since) = self.stopping_since {
                if since.elapsed() >= self.args.stop_delay {
                    exit_logged(&self.events, 0);
                }
            }
            self.trickle();
            if !wait_readable(listener.as_raw_fd(), POLL_SLICE_MS) {
                continue;
            }
            match listener.accept() {
                Ok((stream, _)) => self.handle(stream),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "bbsim: accept: {e}");
                    std::thread::sleep(Duration::from_millis(POLL_SLICE_MS as u64));
                }
            }
        }
    }

    fn handle(&mut self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(CLIENT_READ_TIMEOUT));
        let head = match read_head(&mut stream) {
            Some(head) => head,
            None => {
                respond(&mut stream, "HTTP/1.1", 400, "text/plain", b"bad request\n");
                return;
            }
        };
        let mut words = head.lines().next().unwrap_or("").split_whitespace();
        let (method, target, version) = (
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
        );
        let version = match version {
            "HTTP/1.0" | "HTTP/1.1" => version,
            _ => {
                respond(&mut stream, "HTTP/1.1", 400, "text/plain", b"bad request\n");
                return;
            }
        };
        if method != "GET" {
            respond(&mut stream, version, 405, "text/plain", b"GET only\n");
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path == "/status" {
            self.status_requests += 1;
        }
        match path {
            "/_sim/requests" => {
                let count = self.status_requests.to_string();
                respond(&mut stream, version, 200, "text/plain", count.as_bytes());
            }
            "/status" => match &self.status {
                StatusOverride::Hostile(h) if self.stopping_since.is_none() => {
                    let h = h.clone();
                    self.answer_hostile(stream, &h);
                }
                _ => self.answer_status(&mut stream, version),
            },
            "/_sim/crash" => {
                ok(&mut stream, version);
                exit_logged(&self.events, 1);
            }
            "/_sim/oome" => {
                let exit = query_param(query, "exit").unwrap_or("3");
                ok(&mut stream, version);
                drop(stream);
                let _ = writeln!(std::io::stderr(), "{OOME_LINE}");
                if exit != "none" {
                    exit_logged(&self.events, exit.parse().unwrap_or(3));
                }
            }
            "/_sim/say" => {
                // One line of output, as Bitbucket's logging would print it (probes: a line that
                // merely quotes an OutOfMemoryError).
                let text = percent_decode(query_param(query, "text").unwrap_or(""));
                ok(&mut stream, version);
                let _ = writeln!(std::io::stderr(), "{text}");
            }
            "/_sim/hang" => {
                ok(&mut stream, version);
                drop(stream);
                hang(&self.events);
            }
            "/_sim/status" => {
                let code = query_param(query, "code").and_then(|c| c.parse::<u16>().ok());
                match code {
                    Some(code) if (100..=999).contains(&code) => {
                        let state = query_param(query, "state").unwrap_or("").to_string();
                        self.status = StatusOverride::Fixed { code, state };
                        ok(&mut stream, version);
                    }
                    _ => respond(
                        &mut stream,
                        version,
                        400,
                        "text/plain",
                        b"code=NNN needed\n",
                    ),
                }
            }
            "/_sim/hostile" => match parse_hostile(query) {
                Some(h) => {
                    self.status = StatusOverride::Hostile(h);
                    ok(&mut stream, version);
                }
                None => respond(&mut stream, version, 400, "text/plain", b"bad mode\n"),
            },
            "/_sim/spawn-child" => {
                let ignore = query_param(query, "term") == Some("ignore");
                match spawn_child(&self.args.dir, ignore) {
                    Ok(pid) => respond(
                        &mut stream,
                        version,
                        200,
                        "text/plain",
                        pid.to_string().as_bytes(),
                    ),
                    Err(e) => respond(
                        &mut stream,
                        version,
                        500,
                        "text/plain",
                        format!("spawn: {e}\n").as_bytes(),
                    ),
                }
            }
            "/_sim/garbage" => {
                self.status = StatusOverride::Garbage;
                ok(&mut stream, version);
            }
            "/_sim/reset" => {
                self.status = StatusOverride::None;
                self.held.clear();
                self.slow.clear();
                self.hang_starting = false;
                ok(&mut stream, version);
            }
            _ => respond(&mut stream, version, 404, "text/plain", b"not found\n"),
        }
    }

    /// A hostile answer to `/status`: written now (blocking, bounded by the write timeout), or
    /// handed to the held or slow lists that the accept loop serves.
    fn answer_hostile(&mut self, mut stream: TcpStream, h: &Hostile) {
        match h {
            Hostile::Hang => self.hold(stream),
            Hostile::Trickle => self.slow.push(Slow {
                stream,
                bytes: raw_reply(200, &["Connection: close"], RUNNING_BODY, true),
                sent: 0,
                next: Instant::now(),
            }),
            Hostile::Huge | Hostile::HugeClose => {
                let length = format!("Content-Length: {HUGE_BYTES}");
                let headers: &[&str] = if *h == Hostile::Huge {
                    &[&length, "Connection: close"]
                } else {
                    &["Connection: close"]
                };
                let mut head = raw_reply(200, headers, b"", false);
                head.extend_from_slice(b"{\"state\":\"RUNNING\",\"pad\":\"");
                if stream.write_all(&head).is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = head.len();
                // Ends when bbwd stops reading and closes (EPIPE), or after 100 MiB.
                while sent < HUGE_BYTES && stream.write_all(&chunk).is_ok() {
                    sent += chunk.len();
                }
            }
            Hostile::Chunked => {
                let mut r = raw_reply(200, &["Transfer-Encoding: chunked"], b"", false);
                for piece in RUNNING_BODY.chunks(3) {
                    r.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    r.extend_from_slice(piece);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
                let _ = stream.write_all(&r);
            }
            Hostile::ChunkedBad => {
                let mut r = raw_reply(200, &["Transfer-Encoding: chunked"], b"", false);
                r.extend_from_slice(b"3\r\n{\"state\":\"RUNNING\"}\r\nzz\r\n0\r\n\r\n");
                let _ = stream.write_all(&r);
            }
            Hostile::KeepAlive => {
                let r = raw_reply(200, &["Connection: keep-alive"], RUNNING_BODY, true);
                if stream.write_all(&r).is_ok() {
                    self.hold(stream);
                }
            }
            Hostile::KeepAliveNoLength => {
                let mut r = raw_reply(200, &["Connection: keep-alive"], b"", false);
                r.extend_from_slice(RUNNING_BODY);
                if stream.write_all(&r).is_ok() {
                    self.hold(stream);
                }
            }
            Hostile::Redirect { code, location } => {
                let location = format!("Location: {location}");
                let r = raw_reply(*code, &[&location, "Connection: close"], b"", true);
                let _ = stream.write_all(&r);
            }
            Hostile::Body { code, body } => {
                let _ = stream.write_all(&raw_reply(*code, &["Connection: close"], body, true));
            }
        }
    }

    fn hold(&mut self, stream: TcpStream) {
        if self.held.len() >= MAX_HELD {
            self.held.remove(0);
        }
        self.held.push(stream);
    }

    /// Writes the next byte of every trickled reply that is due.
    fn trickle(&mut self) {
        let now = Instant::now();
        self.slow.retain_mut(|s| {
            if now < s.next {
                return true;
            }
            s.next = now + TRICKLE_EVERY;
            if s.stream.write_all(&s.bytes[s.sent..s.sent + 1]).is_err() {
                return false;
            }
            s.sent += 1;
            s.sent < s.bytes.len()
        });
    }

    fn answer_status(&self, stream: &mut TcpStream, version: &str) {
        let (code, state) = match &self.status {
            StatusOverride::Garbage => {
                let _ = stream.write_all(b"\x16\x03\x01\x00\xa5garbage\xff\xfe not http\r\n\r\n");
                return;
            }
            StatusOverride::Fixed { code, state } if self.stopping_since.is_none() => {
                (*code, state.as_str())
            }
            _ if self.stopping_since.is_some() => (503, "STOPPING"),
            _ if self.hang_starting || self.started.elapsed() < self.args.starting_for => {
                (503, "STARTING")
            }
            _ => (200, "RUNNING"),
        };
        if state.is_empty() {
            respond(
                stream,
                version,
                code,
                "text/html",
                b"<html>not found</html>",
            );
        } else {
            let body = format!("{{\"state\":\"{state}\"}}");
            respond(
                stream,
                version,
                code,
                "application/json;charset=UTF-8",
                body.as_bytes(),
            );
        }
    }
}

fn ok(stream: &mut TcpStream, version: &str) {
    respond(stream, version, 200, "text/plain", b"ok");
}

fn respond(stream: &mut TcpStream, version: &str, code: u16, content_type: &str, body: &[u8]) {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let node = NODE_NAME
        .get()
        .map(|n| format!("X-Bbsim-Node: {n}\r\n"))
        .unwrap_or_default();
    let mut reply = format!(
        "{version} {code} {reason}\r\nServer: bbsim\r\n{node}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(body);
    let _ = stream.write_all(&reply);
    let _ = stream.flush();
}

/// An `HTTP/1.1` reply with these headers (and `Content-Length` when `with_length`), then `body`.
fn raw_reply(code: u16, headers: &[&str], body: &[u8], with_length: bool) -> Vec<u8> {
    let mut r =
        format!("HTTP/1.1 {code} Hostile\r\nServer: bbsim\r\nContent-Type: application/json\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if with_length {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn parse_hostile(query: &str) -> Option<Hostile> {
    let code = || {
        query_param(query, "code")
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..=999).contains(c))
    };
    Some(match query_param(query, "mode")? {
        "hang" => Hostile::Hang,
        "trickle" => Hostile::Trickle,
        "huge" => Hostile::Huge,
        "huge-close" => Hostile::HugeClose,
        "chunked" => Hostile::Chunked,
        "chunked-bad" => Hostile::ChunkedBad,
        "keep-alive" => Hostile::KeepAlive,
        "keep-alive-no-length" => Hostile::KeepAliveNoLength,
        "redirect" => Hostile::Redirect {
            code: code()?,
            location: percent_decode(query_param(query, "location")?),
        },
        "body" => Hostile::Body {
            code: code().unwrap_or(200),
            body: percent_decode_bytes(query_param(query, "body").unwrap_or("")),
        },
        _ => return None,
    })
}

/// `/_sim/spawn-child`: `/bin/sh` in our process group recording its SIGTERMs (module docs).
fn spawn_child(dir: &Path, ignore_term: bool) -> std::io::Result<u32> {
    let on_term = if ignore_term {
        r#"echo TERM >> "$0""#
    } else {
        r#"echo TERM >> "$0"; exit 0"#
    };
    let script =
        format!("trap '{on_term}' TERM; echo READY >> \"$0\"; while :; do sleep 0.05; done");
    let child = process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(dir.join("child-signals.log"))
        .stdin(process::Stdio::null())
        .stdout(process::Stdio::null())
        .stderr(process::Stdio::null())
        .spawn()?;
    // Never waited for: the child outlives us on purpose (a crashed JVM's helper).
    Ok(child.id())
}

/// Reads up to the blank line ending the request head; `None` on timeout, EOF or overflow.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return String::from_utf8(head).ok();
        }
        if head.len() > MAX_REQUEST_HEAD {
            return None;
        }
    }
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `/_sim/hang`: SIGTERM ignored, nothing served, until SIGKILL.
fn hang(events: &Path) -> ! {
    // SAFETY: setting a signal disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    log_event(events, "HANG", None);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn exit_logged(events: &Path, code: i32) -> ! {
    log_event(events, "EXIT", Some(code));
    process::exit(code);
}

/// Appends `<secs>.<nanos> KIND pid=N[ code=C]` as one write.
fn log_event(events: &Path, kind: &str, code: Option<i32>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!(
        "{}.{:09} {kind} pid={}",
        now.as_secs(),
        now.subsec_nanos(),
        process::id()
    );
    if let Some(code) = code {
        line.push_str(&format!(" code={code}"));
    }
    line.push('\n');
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(events)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        let _ = writeln!(std::io::stderr(), "bbsim: append {}: {e}", events.display());
    }
}

fn read_fail_start_file(dir: &Path) -> Option<FailStart> {
    let text = fs::read_to_string(dir.join("fail-start")).ok()?;
    match text.trim() {
        "exit" => Some(FailStart::Exit),
        "hang" => Some(FailStart::Hang),
        _ => None,
    }
}

/// `poll(2)` on one fd for readability; false on timeout or EINTR.
fn wait_readable(fd: i32, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid, initialised pollfd and the count passed is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

extern "C" fn on_term(_signal: libc::c_int) {
    TERM_RECEIVED.store(true, Ordering::SeqCst);
}

fn install_term_handler() {
    // SAFETY: `sa` is zero-initialised then filled in; the handler only stores to an atomic,
    // which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_term as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Allocates and writes `mib` MiB so it is resident (a benchmark sees a JVM-like RSS).
fn touch_memory(mib: usize) -> Vec<u8> {
    let mut ballast = vec![0u8; mib * 1024 * 1024];
    for i in (0..ballast.len()).step_by(4096) {
        ballast[i] = 1;
    }
    std::hint::black_box(&mut ballast);
    ballast
}

fn parse_args() -> Result<Args, String> {
    let mut dir = None;
    let mut port = None;
    let mut bind = "127.0.0.1".to_string();
    let mut starting_for = Duration::ZERO;
    let mut stop_delay = Duration::from_millis(300);
    let mut fail_start = None;
    let mut rss_mib = 0;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--port" => {
                let v = value()?;
                port = Some(v.parse().map_err(|_| format!("--port: bad port {v:?}"))?);
            }
            "--bind" => bind = value()?,
            "--node" => {
                let _ = NODE_NAME.set(value()?);
            }
            "--starting-for" => starting_for = parse_duration(&value()?)?,
            "--stop-delay" => stop_delay = parse_duration(&value()?)?,
            "--fail-start" => {
                fail_start = Some(match value()?.as_str() {
                    "exit" => FailStart::Exit,
                    "hang" => FailStart::Hang,
                    other => return Err(format!("--fail-start: exit or hang, not {other:?}")),
                })
            }
            "--rss-mib" => {
                let v = value()?;
                rss_mib = v
                    .parse()
                    .map_err(|_| format!("--rss-mib: bad number {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        dir: dir.ok_or("--dir is required")?,
        port: port.ok_or("--port is required")?,
        bind,
        starting_for,
        stop_delay,
        fail_start,
        rss_mib,
    })
}

/// `"300ms"`, `"2s"`, `"1m"`, `"1h"`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration {text:?}: unit ms, s, m or h")),
    }
}

/// `%XX` and `+` decoding for `/_sim/say`.
fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s)).into_owned()
}

/// `%XX` and `+` decoding to raw bytes (a `/_sim/hostile` body may be non-UTF-8).
fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).map(|h| u8::from_str_radix(h, 16)) {
                    Ok(Ok(v)) => {
                        out.push(v);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}
