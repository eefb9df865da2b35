//! What a line of Bitbucket's output means to the supervisor: only the JVM's own report of an
//! `OutOfMemoryError` is one; a line that merely quotes the class name (a user name, a commit
//! message, a log line about an earlier error) is counted, never acted on.
//!
//! The JVM's own forms (HotSpot):
//! * an uncaught error: `Exception in thread "NAME" java.lang.OutOfMemoryError: ...`
//! * `-XX:+ExitOnOutOfMemoryError`: `Terminating due to java.lang.OutOfMemoryError: ...`
//! * `-XX:+CrashOnOutOfMemoryError`: `Aborting due to java.lang.OutOfMemoryError: ...`
//!
//! Each must start the line (leading blanks allowed); the thread name may hold anything but a
//! line break.

#![forbid(unsafe_code)]

/// The class name every form carries.
pub const OOME_CLASS: &[u8] = b"java.lang.OutOfMemoryError";

/// A line's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The JVM itself reports an OutOfMemoryError: restart.
    Oome,
    /// The class name appears, but not in one of the JVM's own forms: count it only.
    Mention,
    Other,
}

/// Classifies one line of output (without its newline).
pub fn classify(line: &[u8]) -> Line {
    let Some(at) = find(line, OOME_CLASS) else {
        return Line::Other;
    };
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(line.len());
    let head = &line[start..at];
    let own = head == b"Terminating due to "
        || head == b"Aborting due to "
        || (head.starts_with(b"Exception in thread \"")
            && head.ends_with(b"\" ")
            && head.len() >= b"Exception in thread \"\" ".len());
    let rest = &line[at + OOME_CLASS.len()..];
    if own && (rest.is_empty() || rest.starts_with(b":")) {
        Line::Oome
    } else {
        Line::Mention
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_line_quoting_outofmemoryerror_is_counted_not_acted_on() {
        for own in [
            &b"Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space"[..],
            b"Exception in thread \"http-nio-7990-exec-3\" java.lang.OutOfMemoryError: GC overhead limit exceeded",
            b"\tException in thread \"a \\\"quoted\\\" name\" java.lang.OutOfMemoryError",
            b"Terminating due to java.lang.OutOfMemoryError: Java heap space",
            b"Aborting due to java.lang.OutOfMemoryError: Metaspace",
        ] {
            assert_eq!(classify(own), Line::Oome, "{}", String::from_utf8_lossy(own));
        }
        for quoted in [
            &b"2026-01-01 ERROR user 'java.lang.OutOfMemoryError' not found"[..],
            b"Authentication failed for java.lang.OutOfMemoryError",
            b"[INFO] commit: fix java.lang.OutOfMemoryError in tests",
            b"WARN Exception in thread \"main\" java.lang.OutOfMemoryError: quoted in a log line",
            b"Exception in thread \"main\" java.lang.OutOfMemoryErrorHandler: not the class",
            b"Terminating due to java.lang.OutOfMemoryErrorX",
            b"java.lang.OutOfMemoryError",
        ] {
            assert_eq!(
                classify(quoted),
                Line::Mention,
                "{}",
                String::from_utf8_lossy(quoted)
            );
        }
        assert_eq!(classify(b"all fine"), Line::Other);
        assert_eq!(classify(b""), Line::Other);
    }
}
