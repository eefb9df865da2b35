//! `[bitbucket]`: the status URL and the environment table.

use super::*;

#[test]
fn bad_status_urls() {
    let cases = [
        ("https://127.0.0.1:8443/status", "https is not supported"),
        ("HTTPS://bb/status", "https is not supported"),
        ("ftp://127.0.0.1/status", "expected http://HOST[:PORT]/PATH"),
        ("127.0.0.1:7990/status", "expected http://HOST[:PORT]/PATH"),
        ("http://127.0.0.1:7990", "missing path"),
        ("http://:7990/status", "missing host"),
        ("http://127.0.0.1:0/status", "not a port"),
        ("http://127.0.0.1:99999/status", "not a port"),
        ("http://127.0.0.1:+80/status", "not a port"),
        ("http://::1:7990/status", "must be in brackets"),
        ("http://[::1/status", "unclosed '['"),
        ("http://[zz::1]:7990/status", "not an IPv6 address"),
        ("http://user@bb:7990/status", "user@"),
        ("http://bb:7990/status#x", "fragment"),
        ("http://bb b:7990/status", "spaces"),
        ("http://bb_1:7990/status", "not a host name"),
    ];
    for (url, needle) in cases {
        one_problem(
            &format!("[bitbucket]\nstatus_url = \"{url}\"\n"),
            "bitbucket.status_url",
            Some(2),
            needle,
        );
    }
    for url in [
        "http://localhost/status",
        "http://bb1.example.com:7990/status?x=1",
        "http://[::1]/status",
        "http://10.0.0.5:7990/",
    ] {
        assert_eq!(
            ok(&format!("[bitbucket]\nstatus_url = \"{url}\"\n"))
                .bitbucket
                .status_url,
            url
        );
    }
}

#[test]
fn environment_names_checked() {
    one_problem(
        "[bitbucket]\nenvironment = { \"A=B\" = \"x\" }\n",
        "bitbucket.environment.A=B",
        Some(2),
        "not a valid environment variable name",
    );
    let c = ok("[bitbucket.environment]\nJAVA_HOME = \"/opt/java\"\nLANG = \"C.UTF-8\"\n");
    assert_eq!(c.bitbucket.environment.len(), 2);
}
