//! The TOML-walking primitives every section reader uses: [`Sec`], one table of the document
//! with where its header is, and the [`Checker`], which turns byte offsets into lines, records
//! [`Problem`]s, and reads typed values. Each getter returns the value to use (the default when
//! the key is absent, `None` when it is wrong) and records why when it is wrong, so one pass
//! reports everything.
//!
//! Owns: the wording of the problems every section shares (wrong type, missing key, out of
//! range, bad duration, not an absolute path, bad command, bad socket address, unknown key),
//! the list of checks deferred to phase 2, and the final order of the problems.
//!
//! Must not: know any section's keys, defaults or rules (each section's file does), or do I/O:
//! a check that needs this machine (a secret file's mode, the host name, DNS) is left to phase 2
//! through [`Checker::defer`].

use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::hints::{closest, key_hint, sections_with_key, TOP_LEVEL};
use super::io::{Need, Pending};
use super::timing::TimingInputs;
use super::{parse_duration, Problem, MAX_LINKS};

pub(super) type Item<'i> = Spanned<DeValue<'i>>;

pub(super) type Span = Range<usize>;

/// Whether a zero duration is meaningful for a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    Refused,
    Allowed,
}

/// One table of the file, with where its header is (for "missing key" problems).
#[derive(Clone, Copy)]
pub(super) struct Sec<'a, 'i> {
    pub(super) name: &'static str,
    pub(super) table: &'a DeTable<'i>,
    pub(super) header: usize,
}

impl<'a, 'i> Sec<'a, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.table.get(key)
    }
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }
}

/// Collects problems while walking the document; every getter returns the value to use (the
/// default when the key is absent or wrong) and records why when wrong.
pub(super) struct Checker<'t> {
    text: &'t str,
    pub(super) problems: Vec<Problem>,
    /// The durations the timing rules relate, as the sections are read.
    pub(super) times: TimingInputs,
    /// The checks left to phase 2 (`io.rs`), in the order the walk met them.
    pub(super) pending: Vec<Pending>,
    /// How many of `problems`, at the start, are the TOML parser's own.
    syntax_count: usize,
    /// The lines of those.
    syntax_lines: Vec<usize>,
}

impl<'t> Checker<'t> {
    /// A checker of `text`, starting with the TOML parser's own errors.
    pub(super) fn new(text: &'t str, syntax_errors: &[toml::de::Error]) -> Self {
        let mut ck = Checker {
            text,
            problems: Vec::new(),
            times: TimingInputs::default(),
            pending: Vec::new(),
            syntax_count: 0,
            syntax_lines: Vec::new(),
        };
        for error in syntax_errors {
            let line = error.span().map(|span| ck.line_of(span.start));
            ck.syntax_lines.extend(line);
            ck.problems.push(Problem {
                key: String::new(),
                line,
                message: format!("TOML syntax error: {}", error.message()),
            });
        }
        ck.syntax_count = ck.problems.len();
        ck
    }

    /// Every problem, in file order: problems without a line (the file as a whole) first, and
    /// within a line in the order they were found. Problems on a line the TOML parser rejected
    /// are dropped: what it recovered there is a guess, so they would only be noise.
    pub(super) fn into_problems(self) -> Vec<Problem> {
        let mut problems = self.problems;
        let mut semantic = problems.split_off(self.syntax_count);
        semantic.retain(|p| p.line.is_none_or(|line| !self.syntax_lines.contains(&line)));
        problems.extend(semantic);
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        problems
    }
}

impl Checker<'_> {
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn report(
        &mut self,
        key: impl Into<String>,
        offset: Option<usize>,
        message: impl Into<String>,
    ) {
        let line = offset.map(|o| self.line_of(o));
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    pub(super) fn at(
        &mut self,
        key: impl Into<String>,
        item: &Item<'_>,
        message: impl Into<String>,
    ) {
        self.report(key, Some(item.span().start), message);
    }

    pub(super) fn wrong_type(&mut self, key: String, item: &Item<'_>, expected: &str) {
        let found = describe(item.get_ref());
        self.at(key, item, format!("expected {expected}, found {found}"));
    }

    pub(super) fn missing(&mut self, sec: Sec<'_, '_>, key: &str, example: &str) {
        self.report(
            sec.key(key),
            Some(sec.header),
            format!(
                "missing: [{}] needs `{key}` (e.g. {key} = {example})",
                sec.name
            ),
        );
    }

    /// A sub-table (`[name]` at the top, `[watchdog.ipmi]` inside `[watchdog]`).
    pub(super) fn section<'a, 'i>(
        &mut self,
        parent: &'a DeTable<'i>,
        key: &str,
        full_name: &'static str,
    ) -> Option<Sec<'a, 'i>> {
        let item = parent.get(key)?;
        match item.get_ref() {
            DeValue::Table(table) => Some(Sec {
                name: full_name,
                table,
                header: item.span().start,
            }),
            _ => {
                self.wrong_type(
                    full_name.to_string(),
                    item,
                    &format!("a table ([{full_name}])"),
                );
                None
            }
        }
    }

    /// Reports every key of `sec` not in `known`, with a hint where one helps.
    pub(super) fn unknown_keys(&mut self, sec: Sec<'_, '_>, known: &[&str]) {
        for (key, value) in sec.table.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let what = if value.get_ref().is_table() {
                format!("unknown section [{}.{name}]", sec.name)
            } else {
                format!("unknown key `{name}` in [{}]", sec.name)
            };
            let hint = key_hint(name, sec.name, known);
            self.report(
                sec.key(name),
                Some(key.span().start),
                format!("{what}{hint}"),
            );
        }
    }

    pub(super) fn top_level_unknowns(&mut self, root: &DeTable<'_>) {
        for (key, value) in root.iter() {
            let name: &str = key.get_ref();
            if TOP_LEVEL.contains(&name) {
                continue;
            }
            let message = if value.get_ref().is_table() {
                let hint = closest(name, TOP_LEVEL)
                    .map(|s| format!("; did you mean [{s}]?"))
                    .unwrap_or_default();
                format!("unknown section [{name}]{hint}")
            } else {
                let home = sections_with_key(name);
                let hint = if home.is_empty() {
                    String::new()
                } else {
                    format!("; `{name}` belongs in {home}")
                };
                format!("key `{name}` outside any section: keys go under a [section] header{hint}")
            };
            self.report(name.to_string(), Some(key.span().start), message);
        }
    }

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

    /// Leaves a check that needs this machine to phase 2 (`io.rs`), which reports a failure
    /// under `key` at `offset`, in the place among the problems where it is found now.
    pub(super) fn defer(&mut self, key: String, offset: Option<usize>, need: Need) {
        let slot = self.problems.len();
        self.pending.push(Pending {
            key,
            offset,
            slot,
            need,
        });
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
        let mut argv = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, element) in array.iter().enumerate() {
            match element.get_ref().as_str() {
                Some(s) if s.contains('\0') => {
                    self.at(
                        key,
                        element,
                        format!("argument {} contains a NUL byte", i + 1),
                    );
                    ok = false;
                }
                Some(s) => argv.push(s.to_string()),
                None => {
                    let found = describe(element.get_ref());
                    self.at(
                        key,
                        element,
                        format!("argument {}: expected a string, found {found}", i + 1),
                    );
                    ok = false;
                }
            }
        }
        if ok && argv[0].is_empty() {
            self.at(key, item, "the program (first element) must not be empty");
            ok = false;
        }
        ok.then_some(argv)
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

/// How a value is named in a "found ..." message.
pub(super) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string \"{s}\""),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        other => format!("a {}", other.type_str()),
    }
}
