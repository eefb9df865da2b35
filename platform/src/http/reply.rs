//! The reply to the `/status` probe: the HTTP status and Bitbucket's `state`, parsed from the
//! bytes read so far without allocating.
//!
//! Owns: the status line and headers (httparse), the end of the reply (Content-Length, EOF, or
//! the last chunk of a chunked body), and the small JSON scanner that finds `"state"`. Must not:
//! classify the answer (healthy or not is the state machine's call), or read the socket.

use super::*;

/// Parses a complete reply held in `buf` (exposed for tests and fuzzing).
///
/// `Ok(None)`: need more bytes (only when `eof` is false). `eof` says the peer closed after
/// `buf`: a reply without `Content-Length` ends there, and anything incomplete is `Truncated`.
/// A `Content-Length` that cannot fit in `REPLY_CAPACITY` is `TooLarge` at once. Never panics
/// and never allocates.
pub fn parse_reply(buf: &[u8], eof: bool) -> Result<Option<ProbeOutcome>, ProbeFailure> {
    let need_more = if eof {
        Err(ProbeFailure::Truncated)
    } else {
        Ok(None)
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let header_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return need_more,
        Err(_) => return Err(ProbeFailure::Malformed),
    };
    let http_status = response.code.ok_or(ProbeFailure::Malformed)?;

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = parse_decimal(header.value).ok_or(ProbeFailure::Malformed)?;
            if content_length.is_some_and(|seen| seen != value) {
                return Err(ProbeFailure::Malformed);
            }
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in header.value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") && !coding.is_empty() {
                    return Err(ProbeFailure::Malformed);
                }
            }
        }
    }
    let rest = &buf[header_len..];
    let reply = |state| Ok(Some(ProbeOutcome::Reply { http_status, state }));

    // 1xx, 204 and 304 replies have no body whatever the headers say.
    if http_status < 200 || http_status == 204 || http_status == 304 {
        return reply(None);
    }
    if chunked {
        // Chunked wins over Content-Length (RFC 9112 6.3).
        let mut decoded = [0u8; REPLY_CAPACITY];
        return match dechunk(rest, &mut decoded)? {
            Some(body_len) => reply(body_state(&decoded[..body_len])),
            None => need_more,
        };
    }
    match content_length {
        Some(length) if header_len.saturating_add(length) > REPLY_CAPACITY => {
            Err(ProbeFailure::TooLarge)
        }
        Some(length) if rest.len() < length => need_more,
        Some(length) => reply(body_state(&rest[..length])),
        None if eof => reply(body_state(rest)),
        None => Ok(None),
    }
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside), no overflow.
pub(crate) fn parse_decimal(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Decodes a chunked body from `src` into `out`. `Ok(Some(len))` once the last (zero-size)
/// chunk is seen, `Ok(None)` if more bytes are needed.
pub(crate) fn dechunk(src: &[u8], out: &mut [u8]) -> Result<Option<usize>, ProbeFailure> {
    let mut pos = 0;
    let mut out_len = 0;
    loop {
        let (size_line_len, size) = match httparse::parse_chunk_size(&src[pos..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ProbeFailure::Malformed),
        };
        pos += size_line_len;
        if size == 0 {
            return Ok(Some(out_len));
        }
        let size = usize::try_from(size).map_err(|_| ProbeFailure::TooLarge)?;
        let data_end = pos.checked_add(size).ok_or(ProbeFailure::TooLarge)?;
        if out_len.saturating_add(size) > out.len() {
            return Err(ProbeFailure::TooLarge);
        }
        let Some(data) = src.get(pos..data_end) else {
            return Ok(None);
        };
        out[out_len..out_len + size].copy_from_slice(data);
        out_len += size;
        match src.get(data_end..data_end + 2) {
            Some(b"\r\n") => pos = data_end + 2,
            Some(_) => return Err(ProbeFailure::Malformed),
            // Not all of the CRLF after the data yet (or only the CR).
            None if src[data_end..].iter().all(|&b| b == b'\r') => return Ok(None),
            None => return Err(ProbeFailure::Malformed),
        }
    }
}

/// The `state` field of a JSON object body; `None` for anything else (HTML error pages,
/// garbage, a missing, duplicated or non-string `state`, text after the object). Other fields
/// are skipped, nested or not. A state string is compared as sent: one with escapes is `Other`.
///
/// A scanner rather than serde_json so that no body, however nested, costs an allocation.
/// It is looser than a JSON parser inside skipped values (brackets are counted, not matched,
/// and literals are not spelled out), which cannot change the answer for the top-level key.
pub(crate) fn body_state(body: &[u8]) -> Option<BbState> {
    let mut json = JsonScan { bytes: body, at: 0 };
    json.eat(b'{')?;
    let mut state: Option<&[u8]> = None;
    let mut seen_state = false;
    if json.eat(b'}').is_none() {
        loop {
            let key = json.string()?;
            json.eat(b':')?;
            if key == b"state" {
                if seen_state {
                    return None;
                }
                seen_state = true;
                json.skip_ws();
                if json.peek() == Some(b'"') {
                    state = Some(json.string()?);
                } else {
                    json.skip_value()?;
                }
            } else {
                json.skip_value()?;
            }
            if json.eat(b',').is_none() {
                json.eat(b'}')?;
                break;
            }
        }
    }
    json.skip_ws();
    if json.at != body.len() {
        return None;
    }
    let raw = state?;
    Some(std::str::from_utf8(raw).map_or(BbState::Other, BbState::from_status))
}

/// A cursor over JSON text. Every method returns `None` on bad or missing input, never panics
/// (indexes are checked with `get`), and never allocates.
struct JsonScan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> JsonScan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }
    /// Skips whitespace, then consumes `byte`.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }
    /// Skips whitespace, then consumes a string; returns its raw content (escapes as sent).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => {
                    let raw = self.bytes.get(start..self.at)?;
                    self.at += 1;
                    return Some(raw);
                }
                b'\\' => self.at += 2,
                byte if byte < 0x20 => return None,
                _ => self.at += 1,
            }
        }
    }
    /// Skips whitespace and one value of any kind, nested objects and arrays included.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' if depth > 0 => self.at += 1,
                byte if is_literal_byte(byte) => {
                    while self.peek().is_some_and(is_literal_byte) {
                        self.at += 1;
                    }
                }
                _ => return None,
            }
            if depth == 0 {
                return Some(());
            }
        }
    }
}

/// Bytes of `true`, `false`, `null` and numbers.
pub(crate) fn is_literal_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'+' | b'.')
}
