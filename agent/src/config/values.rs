//! The typed getters every section reader uses: strings (required, checked, one of some
//! words), booleans, integers in a range, durations, absolute paths, secret files, commands as
//! argument vectors, and socket addresses. Each returns the value to use (the default when the
//! key is absent, `None` when it is wrong) and records why when it is wrong, so one pass
//! reports everything.
//!
//! Owns: the wording of the problems every section shares (wrong type, missing or empty, out of
//! range, bad duration, not an absolute path, bad command, bad socket address).
//!
//! Must not: know any section's keys, defaults or rules (each section's file does), or do I/O:
//! a secret file's mode is left to phase 2 ([`Checker::defer`]).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeValue;

use super::io::Need;
use super::walk::{describe, Checker, Item, Sec, Span};
use super::{parse_duration, MAX_LINKS};

/// Whether a zero duration is meaningful for a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    Refused,
    Allowed,
}

impl Checker<'_> {
    /// A string value (`None`: absent, or not a string: reported).
    pub(super) fn string(&mut self, sec: Sec<'_, '_>, key: &str) -> Option<(String, Span)> {
        let item = sec.get(key)?;
        match item.get_ref().as_str() {
            Some(s) => Some((s.to_string(), item.span())),
            None => {
                self.wrong_type(sec.key(key), item, "a string");
                None
            }
        }
    }

    /// A string that must be there and not be empty.
    pub(super) fn required_string(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<(String, Span)> {
        if sec.get(key).is_none() {
            self.missing(sec, key, example);
            return None;
        }
        let (s, span) = self.string(sec, key)?;
        if s.is_empty() {
            self.report(
                sec.key(key),
                Some(span.start),
                format!("must not be empty (e.g. {key} = {example})"),
            );
            return None;
        }
        Some((s, span))
    }

    /// A required, non-empty string key that `check` turns into its value; `None` when it is
    /// missing, empty, not a string, or `check` refuses it (reported at the value, in `check`'s
    /// words).
    pub(super) fn required<T>(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (text, span) = self.required_string(sec, key, example)?;
        match check(&text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.report(sec.key(key), Some(span.start), message);
                None
            }
        }
    }

    /// An optional string key that `check` turns into its value: `Some(default)` when the key
    /// is absent; `None` when it is not a string or `check` refuses it (reported at the value,
    /// in `check`'s words).
    pub(super) fn parsed<T>(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: T,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let Some((text, span)) = self.string(sec, key) else {
            return sec.get(key).is_none().then_some(default);
        };
        match check(&text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.report(sec.key(key), Some(span.start), message);
                None
            }
        }
    }

    /// An optional key that must be one of `words`: `Some(default)` when absent; `None` when
    /// it is not one of them (reported, listing them).
    pub(super) fn keyword<T: Copy>(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: T,
        words: &[(&str, T)],
    ) -> Option<T> {
        self.parsed(sec, key, default, |s| {
            words
                .iter()
                .find(|(word, _)| *word == s)
                .map(|&(_, value)| value)
                .ok_or_else(|| format!("\"{s}\": expected {}", one_of(words)))
        })
    }

    /// A boolean (`default` when absent, or not a boolean: reported).
    pub(super) fn boolean(&mut self, sec: Sec<'_, '_>, key: &str, default: bool) -> bool {
        let Some(item) = sec.get(key) else {
            return default;
        };
        match item.get_ref().as_bool() {
            Some(b) => b,
            None => {
                self.wrong_type(sec.key(key), item, "true or false");
                default
            }
        }
    }

    /// An integer in `allowed` (`default` when absent, or wrong: reported).
    pub(super) fn integer(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: i64,
        allowed: RangeInclusive<i64>,
    ) -> i64 {
        let Some(item) = sec.get(key) else {
            return default;
        };
        let DeValue::Integer(int) = item.get_ref() else {
            self.wrong_type(sec.key(key), item, "an integer");
            return default;
        };
        let shown = int.to_string();
        match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if allowed.contains(&n) => n,
            _ => {
                self.at(
                    sec.key(key),
                    item,
                    format!(
                        "{shown} is out of range: must be between {} and {}",
                        allowed.start(),
                        allowed.end()
                    ),
                );
                default
            }
        }
    }

    /// A duration string; returns it and its span (None when defaulted).
    pub(super) fn duration(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: Duration,
        zero: Zero,
    ) -> (Duration, Option<Span>) {
        let Some(item) = sec.get(key) else {
            return (default, None);
        };
        let text = match item.get_ref() {
            DeValue::String(s) => s,
            DeValue::Integer(int) => {
                self.at(
                    sec.key(key),
                    item,
                    format!("expected a duration string with a unit, found the integer {int} (e.g. \"{int}s\")"),
                );
                return (default, None);
            }
            _ => {
                self.wrong_type(sec.key(key), item, "a duration string such as \"15s\"");
                return (default, None);
            }
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && zero == Zero::Refused => {
                self.at(
                    sec.key(key),
                    item,
                    format!("\"{text}\": must be greater than zero"),
                );
                (default, None)
            }
            Ok(d) => (d, Some(item.span())),
            Err(e) => {
                self.at(sec.key(key), item, e);
                (default, None)
            }
        }
    }

    /// An absolute path (a relative one would depend on the daemon's working directory).
    pub(super) fn path(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: Option<&str>,
        example: &str,
    ) -> Option<(PathBuf, Span)> {
        let (s, span) = match default {
            Some(default) if sec.get(key).is_none() => return Some((PathBuf::from(default), 0..0)),
            Some(_) => self.string(sec, key)?,
            None => self.required_string(sec, key, example)?,
        };
        if !s.starts_with('/') || s.contains('\0') {
            self.report(
                sec.key(key),
                Some(span.start),
                format!("\"{s}\" is not an absolute path (e.g. {example})"),
            );
            return None;
        }
        Some((PathBuf::from(s), span))
    }

    /// A secret file: required and absolute; its mode is checked in phase 2 (`io.rs`).
    pub(super) fn secret_file(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<PathBuf> {
        let (path, span) = self.path(sec, key, None, example)?;
        self.defer(
            sec.key(key),
            Some(span.start),
            Need::SecretFile(path.clone()),
        );
        Some(path)
    }

    /// An argument vector: a non-empty array of strings whose first element (the program) is
    /// not empty.
    pub(super) fn argv(&mut self, key: &str, item: &Item<'_>) -> Option<Vec<String>> {
        let Some(array) = item.get_ref().as_array() else {
            let hint = if item.get_ref().is_str() {
                " (write the program and its arguments as a list: [\"/path/to/program\", \"arg\"])"
            } else {
                ""
            };
            let found = describe(item.get_ref());
            self.at(
                key,
                item,
                format!("expected an array of strings, found {found}{hint}"),
            );
            return None;
        };
        if array.is_empty() {
            self.at(
                key,
                item,
                "empty command: give at least the program, e.g. [\"/path/to/program\"]",
            );
            return None;
        }
        let args: Vec<Option<String>> = array
            .iter()
            .enumerate()
            .map(|(i, element)| self.argument(key, i, element))
            .collect();
        let argv: Vec<String> = args.into_iter().collect::<Option<_>>()?;
        if argv[0].is_empty() {
            self.at(key, item, "the program (first element) must not be empty");
            return None;
        }
        Some(argv)
    }

    /// Element `i` (from 0) of an argument vector: a string without a NUL byte.
    fn argument(&mut self, key: &str, i: usize, element: &Item<'_>) -> Option<String> {
        match element.get_ref().as_str() {
            Some(s) if s.contains('\0') => {
                let message = format!("argument {} contains a NUL byte", i + 1);
                self.at(key, element, message);
                None
            }
            Some(s) => Some(s.to_string()),
            None => {
                let found = describe(element.get_ref());
                let message = format!("argument {}: expected a string, found {found}", i + 1);
                self.at(key, element, message);
                None
            }
        }
    }

    /// A required argument vector key.
    pub(super) fn command(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<Vec<String>> {
        match sec.get(key) {
            Some(item) => self.argv(&sec.key(key), item),
            None => {
                self.missing(sec, key, example);
                None
            }
        }
    }

    /// A list of argument vectors (`[hooks]`).
    pub(super) fn argv_list(&mut self, sec: Sec<'_, '_>, key: &str) -> Vec<Vec<String>> {
        let Some(item) = sec.get(key) else {
            return Vec::new();
        };
        let Some(array) = item.get_ref().as_array() else {
            self.wrong_type(
                sec.key(key),
                item,
                "an array of commands, e.g. [[\"/bin/mount\", \"/data\"]]",
            );
            return Vec::new();
        };
        array
            .iter()
            .filter_map(|element| self.argv(&sec.key(key), element))
            .collect()
    }

    /// An `IP:PORT` socket address (port not 0).
    pub(super) fn socket_addr(
        &mut self,
        key: &str,
        item: &Item<'_>,
        example: &str,
    ) -> Option<SocketAddr> {
        let Some(s) = item.get_ref().as_str() else {
            self.wrong_type(
                key.to_string(),
                item,
                &format!("an \"IP:PORT\" string such as \"{example}\""),
            );
            return None;
        };
        match s.parse::<SocketAddr>() {
            Ok(addr) if addr.port() == 0 => {
                self.at(
                    key,
                    item,
                    format!("\"{s}\": port 0 is not a port the peer can reach"),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.at(
                    key,
                    item,
                    format!("invalid socket address \"{s}\": expected IP:PORT, e.g. \"{example}\" (IPv6: \"[fd00::1]:5405\")"),
                );
                None
            }
        }
    }

    /// A non-empty array of socket addresses.
    pub(super) fn socket_addrs(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<(Vec<SocketAddr>, Span)> {
        let Some(item) = sec.get(key) else {
            self.missing(sec, key, &format!("[\"{example}\"]"));
            return None;
        };
        let Some(array) = item.get_ref().as_array() else {
            self.wrong_type(
                sec.key(key),
                item,
                &format!("an array of \"IP:PORT\" strings, e.g. [\"{example}\"]"),
            );
            return None;
        };
        if array.is_empty() {
            self.at(
                sec.key(key),
                item,
                format!("empty: give one address per heartbeat link, e.g. [\"{example}\"]"),
            );
            return None;
        }
        if array.len() > MAX_LINKS {
            self.at(
                sec.key(key),
                item,
                format!(
                    "{} addresses: at most {MAX_LINKS} heartbeat links",
                    array.len()
                ),
            );
            return None;
        }
        let mut addrs = Vec::with_capacity(array.len());
        let mut ok = true;
        for element in array.iter() {
            match self.socket_addr(&sec.key(key), element, example) {
                Some(addr) if addrs.contains(&addr) => {
                    self.at(sec.key(key), element, format!("{addr} is listed twice"));
                    ok = false;
                }
                Some(addr) => addrs.push(addr),
                None => ok = false,
            }
        }
        ok.then_some((addrs, item.span()))
    }
}

/// `"a", "b" or "c"`: the words of a [`Checker::keyword`].
fn one_of<T>(words: &[(&str, T)]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|(word, _)| format!("\"{word}\""))
        .collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
