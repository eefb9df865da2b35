//! The keys that reach a BMC, shared by `[watchdog.ipmi]` (this node's own BMC) and each fence
//! device of `[fencing]` (the peer's): host, port, user name, password file and, for IPMI, the
//! RMCP+ cipher suite.
//!
//! Owns: those keys' rules (an IPMI user name of at most 16 bytes, cipher suites 3, 17 or
//! "auto", never 0) and the default ports (623 for IPMI, 443 for Redfish).
//!
//! Must not: talk to a BMC, or read the password file's contents.

use toml::de::DeValue;

use super::walk::{Checker, Sec};
use super::IpmiLan;

/// Standard RMCP+ port.
const DEFAULT_IPMI_PORT: i64 = 623;
/// Longest IPMI user name, bytes: a longer one silently becomes the null user on some BMCs.
const MAX_IPMI_USER_BYTES: usize = 16;

impl Checker<'_> {
    /// The RMCP+ keys shared by `[watchdog.ipmi]` and `[fencing]` (`redfish`: the same keys
    /// for a Redfish service: port 443 by default, no IPMI limit on the user name). A host or
    /// an IPMI user name that cannot be right ends the reading of the device there.
    pub(super) fn ipmi_lan(
        &mut self,
        sec: Sec<'_, '_>,
        password_example: &str,
        redfish: bool,
    ) -> Option<IpmiLan> {
        let host = self.required_string(sec, "host", "\"10.0.1.1\"");
        if let Some((host, span)) = &host {
            if !is_host(host) {
                let message = format!("\"{host}\" is not a host name or IP address");
                self.report(sec.key("host"), Some(span.start), message);
                return None;
            }
        }
        let default_port = if redfish {
            i64::from(bbwd_platform::redfish::DEFAULT_PORT)
        } else {
            DEFAULT_IPMI_PORT
        };
        let port = self.integer(sec, "port", default_port, 1..=65535) as u16;
        let username = self.required_string(sec, "username", "\"fence\"");
        if let Some((user, span)) = &username {
            if !redfish && user.len() > MAX_IPMI_USER_BYTES {
                let len = user.len();
                let message =
                    format!("{len} bytes: IPMI user names are at most {MAX_IPMI_USER_BYTES} bytes");
                self.report(sec.key("username"), Some(span.start), message);
                return None;
            }
        }
        let password_file =
            self.secret_file(sec, "password_file", &format!("\"{password_example}\""));
        let cipher_suite = self.cipher_suite(sec);
        Some(IpmiLan {
            host: host?.0,
            port,
            username: username?.0,
            password_file: password_file?,
            cipher_suite: cipher_suite?,
        })
    }

    /// `cipher_suite`: 3 (default), 17 or "auto"; None (reported) otherwise.
    fn cipher_suite(&mut self, sec: Sec<'_, '_>) -> Option<u8> {
        use bbwd_platform::ipmi::{CIPHER_SUITE, CIPHER_SUITE_17, CIPHER_SUITE_AUTO};
        let Some(item) = sec.get("cipher_suite") else {
            return Some(CIPHER_SUITE);
        };
        let key = sec.key("cipher_suite");
        match item.get_ref() {
            DeValue::String(s) if s.as_ref() == "auto" => Some(CIPHER_SUITE_AUTO),
            DeValue::String(s) => {
                let msg = format!(
                    "\"{s}\": expected 3, 17 or \"auto\" (17 when the BMC lists it, else 3)"
                );
                self.at(key, item, msg);
                None
            }
            DeValue::Integer(int) => match i64::from_str_radix(int.as_str(), int.radix()) {
                Ok(3) => Some(CIPHER_SUITE),
                Ok(17) => Some(CIPHER_SUITE_17),
                Ok(0) => {
                    self.at(key, item, "cipher suite 0 is refused: it authenticates nothing (a BMC accepts any password with it); use 3, 17 or \"auto\"");
                    None
                }
                _ => {
                    let msg = format!("cipher suite {}: bbwd speaks 3 (RAKP-HMAC-SHA1, AES) and 17 (RAKP-HMAC-SHA256, AES); use 3, 17 or \"auto\"", int.as_str());
                    self.at(key, item, msg);
                    None
                }
            },
            _ => {
                self.wrong_type(key, item, "3, 17 or \"auto\"");
                None
            }
        }
    }
}

/// A host name or IP address as far as can be told without resolving it: no spaces, control
/// characters or '/'.
fn is_host(host: &str) -> bool {
    !host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
}
