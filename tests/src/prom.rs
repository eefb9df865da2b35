//! Prometheus for the metrics tests (issue 10, part 1): Debian's `prometheus` package gives
//! `promtool` (the exposition format's own checker and linter) and `prometheus` (a real server
//! that scrapes bbwd). Also a scrape client and a sample reader for the tests' assertions.
//!
//! With `CI` set, a missing package fails the test instead of skipping it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until};

/// Whether `promtool` can be run: true, or the test fails saying so (the tests that call this
/// are `#[ignore = "needs ..."]`; `scripts/test.sh` runs them with `--include-ignored`).
pub fn available() -> bool {
    let ok = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "promtool is not installed (scripts/setup.sh installs Debian's prometheus)"
    );
    ok
}

/// `promtool check metrics` on `text` (format errors and lint problems): `Err` with its output.
pub fn check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `GET /metrics` on `addr`: (status code, content type, body). Panics on I/O errors.
pub fn scrape(addr: SocketAddr) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain;version=0.0.4\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .unwrap_or_else(|e| panic!("read the scrape from {addr}: {e}"));
    parse_reply(&reply)
}

/// An HTTP reply's status, content type and body.
pub fn parse_reply(reply: &str) -> (u16, String, String) {
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (code, ctype, body.to_string())
}

/// The value of the sample written exactly `series` (`name` or `name{labels}`), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A real Prometheus server scraping `target` every second, on a free loopback port, with its
/// data in `dir`. Ended (by its PID) on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(dir: &Path, target: SocketAddr) -> Server {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: bbwd\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn prometheus");
        Server { child, port }
    }

    /// An instant query through the HTTP API: the JSON reply.
    pub fn query(&self, promql: &str) -> Option<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (code, body) = crate::http_get(self.port, &path).ok()?;
        (code == 200)
            .then(|| serde_json::from_slice(&body).ok())
            .flatten()
    }

    /// Waits until `promql` returns one series whose value is `want`.
    pub fn wait_value(&self, promql: &str, want: f64, timeout: Duration) {
        wait_until(timeout, &format!("Prometheus: {promql} == {want}"), || {
            self.query(promql).is_some_and(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    == Some(want)
            })
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
