//! `[node]`: this node's name, its state directory and its control socket.
//!
//! Owns: the keys of `[node]` and their defaults, and the rule for a node's name
//! ([`check_name`], which `cluster.peer` shares).
//!
//! Must not: read the host name: when `name` is not written the walk defers it to phase 2
//! (`io.rs`), which reads it and checks it with [`check_name`].

use std::path::PathBuf;

use toml::de::DeTable;

use super::io::Need;
use super::walk::Checker;
use super::{Node, MAX_NAME_BYTES};

pub(super) const NODE_KEYS: &[&str] = &["name", "state_dir", "control_socket", "status_group"];

pub(super) const DEFAULT_STATE_DIR: &str = "/var/lib/bbwd";

pub(super) const DEFAULT_CONTROL_SOCKET: &str = "/run/bbwd/control.sock";

/// Longest Unix socket path, bytes (`sun_path` is 108 bytes including the NUL).
pub(super) const MAX_SOCKET_PATH_BYTES: usize = 107;

/// `[node]` as the walk reads it: a [`Node`] whose `name` is `None` when not written (the host
/// name serves; phase 2 reads it).
pub(super) struct Draft {
    pub(super) name: Option<String>,
    pub(super) state_dir: PathBuf,
    pub(super) control_socket: PathBuf,
    pub(super) status_group: Option<String>,
}

impl Draft {
    /// The [`Node`], named by `host_name` (from phase 2) when `name` is not written; `None`
    /// when neither is there (the host name could not serve: reported).
    pub(super) fn finish(self, host_name: Option<String>) -> Option<Node> {
        Some(Node {
            name: self.name.or(host_name)?,
            state_dir: self.state_dir,
            control_socket: self.control_socket,
            status_group: self.status_group,
        })
    }
}

impl Checker<'_> {
    pub(super) fn node(&mut self, root: &DeTable<'_>) -> Option<Draft> {
        let Some(sec) = self.section(root, "node", "node") else {
            if root.contains_key("node") {
                return None; // not a table: reported
            }
            self.defer_host_name();
            return Some(Draft {
                name: None,
                state_dir: PathBuf::from(DEFAULT_STATE_DIR),
                control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
                status_group: None,
            });
        };
        self.unknown_keys(sec, NODE_KEYS);
        let name = match self.string(sec, "name") {
            Some((name, span)) => match check_name(&name) {
                Ok(()) => Some(Some(name)),
                Err(why) => {
                    self.report(sec.key("name"), Some(span.start), why);
                    None
                }
            },
            None if sec.get("name").is_none() => {
                self.defer_host_name();
                Some(None)
            }
            None => None,
        };
        let state_dir = self.path(
            sec,
            "state_dir",
            Some(DEFAULT_STATE_DIR),
            "\"/var/lib/bbwd\"",
        );
        let control_socket = self.path(
            sec,
            "control_socket",
            Some(DEFAULT_CONTROL_SOCKET),
            "\"/run/bbwd/control.sock\"",
        );
        if let Some((path, span)) = &control_socket {
            let len = path.as_os_str().len();
            if len > MAX_SOCKET_PATH_BYTES {
                self.report(
                    sec.key("control_socket"),
                    Some(span.start),
                    format!("{len} bytes is too long for a Unix socket path (at most {MAX_SOCKET_PATH_BYTES})"),
                );
                return None;
            }
        }
        let status_group = match self.string(sec, "status_group") {
            Some((g, span)) if g.is_empty() => {
                self.report(
                    sec.key("status_group"),
                    Some(span.start),
                    "must name a group (e.g. \"nagios\") or be left out".to_string(),
                );
                return None;
            }
            Some((g, _)) => Some(g),
            None if sec.get("status_group").is_some() => return None,
            None => None,
        };
        Some(Draft {
            name: name?,
            state_dir: state_dir?.0,
            control_socket: control_socket?.0,
            status_group,
        })
    }

    /// `name` is not written: the host name serves, read in phase 2 (`io.rs`).
    fn defer_host_name(&mut self) {
        self.defer("node.name".to_string(), None, Need::HostName);
    }
}

/// A node or peer name: 1..=64 bytes of letters, digits, `-`, `_`, `.`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("\"{name}\" is longer than {MAX_NAME_BYTES} bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "\"{name}\": use only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}
