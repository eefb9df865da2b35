//! The TLS under Redfish: how the service's certificate is checked ([`Tls`]: a CA file, a
//! pinned SHA-256 fingerprint, or, only when asked, nothing), the rustls client configuration
//! for it, and the connection that passes that check ([`connect`]).
//!
//! Owns: reading and parsing `ca_file`, parsing and printing fingerprints, the certificate
//! verifier for a pin (and for `insecure`), the TCP connect and TLS handshake within the
//! deadline, and naming why a handshake was refused. Must not: send anything over the
//! connection (HTTP is `http.rs`'s) or read the password.

use std::fmt;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

use super::http::left;
use super::{Failure, Service};

/// A TLS connection to the service whose certificate passed the check.
pub(super) type Stream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// How the service's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Signed by a CA in this PEM file, and valid for the host name or IP address.
    CaFile(PathBuf),
    /// Exactly this certificate (SHA-256 of its DER), whoever signed it, whatever its names.
    Fingerprint([u8; 32]),
    /// Not checked at all (`insecure = true`): anyone on the path can read the password.
    Insecure,
}

/// Reads the CA certificates of a PEM file; at least one, all parseable.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(c.map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "{}: no \"BEGIN CERTIFICATE\" block: not a PEM certificate file",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    let (_, bad) = roots.add_parsable_certificates(certs.iter().cloned());
    if bad > 0 || roots.is_empty() {
        return Err(format!(
            "{}: {bad} of {} certificates cannot be used as a CA (not valid X.509)",
            path.display(),
            certs.len()
        ));
    }
    Ok(certs)
}

/// Parses `sha256:AB:CD:...` (or the 64 hex digits without colons) into the digest.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let Some(hex) = text.strip_prefix("sha256:") else {
        return Err(format!(
            "\"{text}\": expected \"sha256:\" followed by the certificate's SHA-256 in hex \
             (openssl x509 -noout -fingerprint -sha256)"
        ));
    };
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "\"{text}\": a SHA-256 fingerprint is 64 hex digits (32 bytes, colons allowed)"
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).unwrap_or("00");
        out[i] = u8::from_str_radix(s, 16).map_err(|e| format!("\"{text}\": {e}"))?;
    }
    Ok(out)
}

/// `sha256:AB:CD:...` of a certificate, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint_text(digest: &[u8; 32]) -> String {
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hex.join(":"))
}

/// A certificate that is not the pinned one (the text names both fingerprints).
#[derive(Debug)]
struct PinMismatch(String);

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly one certificate (by SHA-256), or any (`insecure`); the handshake signature
/// is verified either way, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct PinVerifier {
    /// `None`: insecure, any certificate.
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(
                    format!(
                        "its fingerprint is {}, not the pinned tls_fingerprint {}",
                        fingerprint_text(&seen),
                        fingerprint_text(&pin)
                    ),
                )))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS client configuration for `tls` (reads the CA file).
pub(super) fn tls_config(tls: &Tls) -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Unsupported(format!("TLS: {e}")))?;
    let config = match tls {
        Tls::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(read_ca_file(path).map_err(Failure::Unsupported)?);
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Tls::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: Some(*pin),
                provider,
            }))
            .with_no_client_auth(),
        Tls::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: None,
                provider,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Opens the TCP connection and completes the TLS handshake (the certificate check).
pub(super) fn connect(
    service: &Service,
    config: &Arc<ClientConfig>,
    reply_timeout: Duration,
    deadline: Instant,
) -> Result<Stream, Failure> {
    let addr: SocketAddr = (service.host.as_str(), service.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Unreachable(format!("cannot resolve {}: {e}", service.host)))?
        .next()
        .ok_or_else(|| Failure::Unreachable(format!("{} has no address", service.host)))?;
    let wait = left(deadline, reply_timeout)?;
    let tcp = TcpStream::connect_timeout(&addr, wait).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Failure::Unreachable(format!(
                "no answer within {} ms (wrong address or port, BMC down, or filtered)",
                wait.as_millis()
            ))
        }
        std::io::ErrorKind::ConnectionRefused => {
            Failure::Unreachable("connection refused (nothing listens on that TCP port)".into())
        }
        _ => Failure::Unreachable(e.to_string()),
    })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(service.host.clone())
        .map_err(|e| Failure::Unsupported(format!("\"{}\": {e}", service.host)))?;
    let tls = ClientConnection::new(config.clone(), name)
        .map_err(|e| Failure::Unsupported(format!("TLS: {e}")))?;
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    while stream.conn.is_handshaking() {
        let wait = left(deadline, reply_timeout)?;
        let _ = stream.sock.set_read_timeout(Some(wait));
        let _ = stream.sock.set_write_timeout(Some(wait));
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                let hint = match tls {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                        " (the certificate is not signed by a CA in ca_file)"
                    }
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. },
                    ) => " (the certificate does not name this host or IP address)",
                    _ => "",
                };
                return Err(Failure::Unreachable(format!(
                    "TLS handshake refused: {tls}{hint}"
                )));
            }
            return Err(match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    Failure::Unreachable(format!(
                        "TLS handshake: no answer within {} ms",
                        wait.as_millis()
                    ))
                }
                _ => Failure::Unreachable(format!("TLS handshake: {e}")),
            });
        }
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_and_without_colons_and_print_back() {
        let hex = "AB".repeat(32);
        let a = parse_fingerprint(&format!("sha256:{hex}")).unwrap();
        assert_eq!(a, [0xAB; 32]);
        let colons = fingerprint_text(&a);
        assert_eq!(parse_fingerprint(&colons).unwrap(), a);
        assert!(parse_fingerprint(&hex).unwrap_err().contains("sha256:"));
        assert!(parse_fingerprint("sha256:ABCD")
            .unwrap_err()
            .contains("64 hex"));
        assert!(parse_fingerprint(&format!("sha256:{}", "ZZ".repeat(32))).is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("bbwd-redfish-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(read_ca_file(&path)
            .unwrap_err()
            .contains("BEGIN CERTIFICATE"));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(read_ca_file(&path).is_err());
        assert!(read_ca_file(&dir.join("missing.pem")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
