//! The OCF meta-data (`bbwd ocf meta-data`, ra-api-1.dtd): the agent's description, its one
//! parameter (`config`) and the actions with their default timeouts.
//!
//! Owns the XML and its escaping. Must not: work out the default timeouts (`timeouts.rs`) or
//! read the config (the meta-data is the same on every node).

use std::fmt::Write as _;
use std::time::Duration;

use crate::config;

use super::timeouts::{
    meta_timeouts, DEFAULT_KILL_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, DEFAULT_STOP_TIMEOUT,
};
use super::AGENT_NAME;

/// Escapes text for XML character data and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// The OCF meta-data (ra-api-1.dtd).
pub fn meta_data() -> String {
    let t = meta_timeouts(
        DEFAULT_STARTUP_TIMEOUT,
        DEFAULT_STOP_TIMEOUT,
        DEFAULT_KILL_TIMEOUT,
    );
    let longdesc = "Starts, stops and monitors Bitbucket Server (formerly Stash) on this node the \
way Atlassian's high-availability guide describes. Health comes from Bitbucket's /status page \
only: 200 RUNNING, MAINTENANCE or FIRST_RUN is healthy (so a backup never triggers a failover), \
503 STARTING is accepted within bitbucket.startup_timeout of a start, anything else is a failure. \
Stop sends SIGTERM to Bitbucket's process group, waits bitbucket.stop_timeout, then SIGKILL, \
always before Pacemaker's own operation timeout runs out. Everything but the config path comes \
from bbwd.toml: [bitbucket] command, user, environment, status_url and timeouts, [node] \
state_dir (pid file ocf-bitbucket.pid, Bitbucket's output in ocf-bitbucket.out). Pacemaker \
supervises in this mode: do not run bbwd's daemon (bbwd.service) on the same nodes. If you \
raise stop_timeout + kill_timeout or startup_timeout, raise the stop and start operation \
timeouts with them. Implemented by bbwd (bbwd ocf ACTION).";
    let config_longdesc = "Path of bbwd's configuration file (bbwd.toml). Check it with \
`bbwd check-config -c PATH`; validate-all reports a missing Bitbucket program or user as \
not installed (5) and an invalid file as not configured (6).";
    let mut x = String::new();
    let _ = writeln!(x, "<?xml version=\"1.0\"?>");
    let _ = writeln!(x, "<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">");
    let _ = writeln!(
        x,
        "<resource-agent name=\"{AGENT_NAME}\" version=\"{}\">",
        xml_escape(env!("CARGO_PKG_VERSION"))
    );
    let _ = writeln!(x, "<version>1.0</version>");
    let _ = writeln!(
        x,
        "<longdesc lang=\"en\">{}</longdesc>",
        xml_escape(longdesc)
    );
    let _ = writeln!(
        x,
        "<shortdesc lang=\"en\">Bitbucket Server, started, stopped and monitored by bbwd</shortdesc>"
    );
    let _ = writeln!(x, "<parameters>");
    let _ = writeln!(x, "<parameter name=\"config\" unique=\"1\" required=\"0\">");
    let _ = writeln!(
        x,
        "<longdesc lang=\"en\">{}</longdesc>",
        xml_escape(config_longdesc)
    );
    let _ = writeln!(x, "<shortdesc lang=\"en\">bbwd.toml path</shortdesc>");
    let _ = writeln!(
        x,
        "<content type=\"string\" default=\"{}\"/>",
        xml_escape(config::DEFAULT_PATH)
    );
    let _ = writeln!(x, "</parameter>");
    let _ = writeln!(x, "</parameters>");
    let _ = writeln!(x, "<actions>");
    let _ = writeln!(x, "<action name=\"start\" timeout=\"{}\"/>", secs(t.start));
    let _ = writeln!(x, "<action name=\"stop\" timeout=\"{}\"/>", secs(t.stop));
    let _ = writeln!(
        x,
        "<action name=\"monitor\" timeout=\"{}\" interval=\"{}\" depth=\"0\"/>",
        secs(t.monitor),
        secs(t.monitor_interval)
    );
    let _ = writeln!(x, "<action name=\"validate-all\" timeout=\"30s\"/>");
    let _ = writeln!(x, "<action name=\"meta-data\" timeout=\"5s\"/>");
    let _ = writeln!(x, "</actions>");
    let _ = writeln!(x, "</resource-agent>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small well-formedness check: every tag closes in order, attribute values are quoted,
    /// no bare `&` or `<` in text. (The test suite validates against ra-api-1.dtd with xmllint.)
    fn well_formed(xml: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = xml;
        while let Some(i) = rest.find('<') {
            let text = &rest[..i];
            if let Some(amp) = text.find('&') {
                let ent = &text[amp..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| ent.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let end = rest[i..].find('>').ok_or("unclosed <")? + i;
            let tag = &rest[i + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if tag.contains('<') {
                return Err(format!("< inside tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_ascii_whitespace().next().ok_or("empty tag")?;
            if body.matches('"').count() % 2 != 0
                || body.matches('=').count() * 2 != body.matches('"').count()
            {
                return Err(format!("unquoted attribute in {tag:?}"));
            }
            seen.push(name.to_string());
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        Ok(seen)
    }

    #[test]
    fn meta_data_is_well_formed_and_complete() {
        let xml = meta_data();
        assert!(xml.starts_with(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"
        ));
        let seen = well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        // The DTD's order: version, longdesc, shortdesc, parameters, actions.
        let top: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|t| ["resource-agent", "version", "parameters", "actions"].contains(t))
            .collect();
        assert_eq!(top, ["resource-agent", "version", "parameters", "actions"]);
        assert!(xml.contains("<resource-agent name=\"bitbucket\""));
        assert!(xml.contains("<parameter name=\"config\" unique=\"1\" required=\"0\">"));
        assert!(xml.contains("default=\"/etc/bbwd/bbwd.toml\""));
        assert!(xml.contains("<action name=\"monitor\" timeout=\"30s\" interval=\"15s\""));
        assert!(xml.contains("<action name=\"start\" timeout=\"660s\"/>"));
        assert!(xml.contains("<action name=\"stop\" timeout=\"160s\"/>"));
        for a in ["meta-data", "validate-all"] {
            assert!(xml.contains(&format!("<action name=\"{a}\"")), "{a}");
        }
        // The checker itself catches what it should.
        assert!(well_formed("<a><b></a></b>").is_err());
        assert!(well_formed("<a x=1/>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
        assert!(well_formed("<a>").is_err());
        assert_eq!(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
