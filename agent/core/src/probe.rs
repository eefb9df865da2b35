//! The vocabulary the supervisor and the platform share: what a `/status` probe found and how a
//! process ended. Plain data, no I/O: the platform produces these values (`bbwd_platform::http`,
//! `bbwd_platform::process` re-export them), the machines decide on them.

/// Size of the probe's reply buffer (status line + headers + body), bytes.
pub const REPLY_CAPACITY: usize = 4096;

/// The `state` values Bitbucket's `/status` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BbState {
    Running,
    Maintenance,
    FirstRun,
    Starting,
    Stopping,
    Error,
    /// A `state` string not in the list above.
    Other,
}

impl BbState {
    pub fn as_str(self) -> &'static str {
        match self {
            BbState::Running => "RUNNING",
            BbState::Maintenance => "MAINTENANCE",
            BbState::FirstRun => "FIRST_RUN",
            BbState::Starting => "STARTING",
            BbState::Stopping => "STOPPING",
            BbState::Error => "ERROR",
            BbState::Other => "OTHER",
        }
    }

    /// The state named by a `/status` `state` string (exact, upper case as Bitbucket sends it);
    /// anything else is `Other`.
    pub fn from_status(state: &str) -> BbState {
        match state {
            "RUNNING" => BbState::Running,
            "MAINTENANCE" => BbState::Maintenance,
            "FIRST_RUN" => BbState::FirstRun,
            "STARTING" => BbState::Starting,
            "STOPPING" => BbState::Stopping,
            "ERROR" => BbState::Error,
            _ => BbState::Other,
        }
    }
}

/// Why a probe got no HTTP reply, or a reply it could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeFailure {
    /// Connection refused (Tomcat not listening).
    Refused,
    /// No complete reply within the timeout.
    Timeout,
    /// Another socket error (errno).
    Io(i32),
    /// The peer closed before a complete status line and headers, or before the body its
    /// `Content-Length` (or chunked encoding) announced.
    Truncated,
    /// Not HTTP, or a malformed status line/headers (including more than 32 headers, a bad
    /// `Content-Length`, an unknown transfer coding, or bad chunk framing).
    Malformed,
    /// The reply exceeded `REPLY_CAPACITY`.
    TooLarge,
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeFailure::Refused => f.write_str("connection refused"),
            ProbeFailure::Timeout => f.write_str("no complete reply within the timeout"),
            ProbeFailure::Io(errno) => write!(
                f,
                "socket error: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            ProbeFailure::Truncated => {
                f.write_str("connection closed before the reply was complete")
            }
            ProbeFailure::Malformed => f.write_str("malformed HTTP reply"),
            ProbeFailure::TooLarge => write!(f, "reply larger than {REPLY_CAPACITY} bytes"),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeOutcome {
    /// An HTTP reply: its status code and the `state` field of a JSON body, if there was one.
    Reply {
        http_status: u16,
        state: Option<BbState>,
    },
    Failed(ProbeFailure),
}

/// How the leader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// exit(code).
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// Not our child (adopted): it is gone, but its status is unknowable.
    Unknown,
}
