//! The walk's machinery: [`Sec`], one table of the document with where its header is, and the
//! [`Checker`], which every section reader drives: it turns byte offsets into lines, records
//! [`Problem`]s, finds sub-tables, keeps the checks deferred to phase 2 and, at the end, puts the
//! problems in file order. The typed getters are `values.rs`'s.
//!
//! Owns: where a problem is reported (key and line), the problems every section shares at this
//! level (wrong type, missing key), the list of deferred checks, and the final order of the
//! problems.
//!
//! Must not: know any section's keys, defaults or rules (each section's file does), or do I/O:
//! a check that needs this machine (a secret file's mode, the host name, DNS) is left to phase 2
//! through [`Checker::defer`].

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::io::{Need, Pending};
use super::timing::TimingInputs;
use super::Problem;

/// A value of the document with its span.
pub(super) type Item<'i> = Spanned<DeValue<'i>>;

/// Byte offsets into the config text.
pub(super) type Span = Range<usize>;

/// One table of the file, with where its header is (for "missing key" problems).
#[derive(Clone, Copy)]
pub(super) struct Sec<'a, 'i> {
    /// The dotted name problems use: `node`, `watchdog.ipmi`, `fencing.device`.
    pub(super) name: &'static str,
    pub(super) table: &'a DeTable<'i>,
    /// Byte offset of the header (`[node]`, or the start of an inline table).
    pub(super) header_offset: usize,
}

impl<'a, 'i> Sec<'a, 'i> {
    /// The value of `key`, if written.
    pub(super) fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.table.get(key)
    }

    /// `key`'s dotted name, as problems name it: `node.name`.
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }
}

/// Collects problems while walking the document; every getter (`values.rs`) returns the value
/// to use (the default when the key is absent or wrong) and records why when wrong.
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
    /// The 1-based line of a byte offset.
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Records a problem under `key`, on the line of `offset` when known.
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

    /// Records a problem under `key`, on the line of `item`.
    pub(super) fn at(
        &mut self,
        key: impl Into<String>,
        item: &Item<'_>,
        message: impl Into<String>,
    ) {
        self.report(key, Some(item.span().start), message);
    }

    /// "expected `expected`, found ..." at `item`.
    pub(super) fn wrong_type(&mut self, key: String, item: &Item<'_>, expected: &str) {
        let found = describe(item.get_ref());
        self.at(key, item, format!("expected {expected}, found {found}"));
    }

    /// A required key is not written: reported at the section's header, with an example.
    pub(super) fn missing(&mut self, sec: Sec<'_, '_>, key: &str, example: &str) {
        self.report(
            sec.key(key),
            Some(sec.header_offset),
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
                header_offset: item.span().start,
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
}

/// Where `section.key` (dotted, one level) is written in the file, if it is.
pub(super) fn key_offset(root: &DeTable<'_>, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.split_once('.')?;
    let item = root.get(section)?.get_ref().get(key)?;
    Some(item.span().start)
}

/// Where the section of `section.key` begins, if it is written.
pub(super) fn section_offset(root: &DeTable<'_>, dotted: &str) -> Option<usize> {
    let section = dotted.split_once('.').map_or(dotted, |(s, _)| s);
    root.get(section).map(|item| item.span().start)
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
