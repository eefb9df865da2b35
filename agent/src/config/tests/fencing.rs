//! `[fencing]` and `[[fencing.device]]`: IPMI cipher suites, the Redfish keys, the device list.

use super::*;

#[test]
fn cipher_suite_zero_refused() {
    let dir = TempDir::new("cipher");
    one_problem(
        &pair(&dir, LINKS, "cipher_suite = 0\n"),
        "fencing.cipher_suite",
        Some(12),
        "cipher suite 0 is refused",
    );
    one_problem(
        &pair(&dir, LINKS, "cipher_suite = 256\n"),
        "fencing.cipher_suite",
        Some(12),
        "cipher suite 256: bbwd speaks 3",
    );
    let suite = |extra: &str| ok(&pair(&dir, LINKS, extra)).fencing.unwrap().cipher_suite;
    assert_eq!(suite(""), 3, "the default stays 3");
    assert_eq!(suite("cipher_suite = 3\n"), 3);
    assert_eq!(suite("cipher_suite = 17\n"), 17);
    assert_eq!(
        suite("cipher_suite = \"auto\"\n"),
        bbwd_platform::ipmi::CIPHER_SUITE_AUTO
    );
}

#[test]
fn cipher_suites_other_than_3_17_auto_are_refused_naming_the_key() {
    let dir = TempDir::new("cipher-other");
    for (value, says) in [
        ("1", "cipher suite 1: bbwd speaks 3"),
        ("6", "use 3, 17 or \"auto\""),
        ("\"17\"", "\"17\": expected 3, 17 or \"auto\""),
        ("\"best\"", "\"best\": expected 3, 17 or \"auto\""),
        ("true", "expected 3, 17 or \"auto\", found"),
    ] {
        one_problem(
            &pair(&dir, LINKS, &format!("cipher_suite = {value}\n")),
            "fencing.cipher_suite",
            Some(12),
            says,
        );
    }
    // [watchdog.ipmi] takes the same key.
    let pw = dir.secret("wd.pass", 0o600);
    let text = |v: &str| {
        format!(
            "[watchdog]\ndevice = \"ipmi\"\n[watchdog.ipmi]\nhost = \"10.0.1.1\"\nusername = \"wd\"\npassword_file = \"{pw}\"\n{v}"
        )
    };
    let c = ok(&text("cipher_suite = \"auto\"\n"));
    assert_eq!(
        c.watchdog.ipmi.unwrap().cipher_suite,
        bbwd_platform::ipmi::CIPHER_SUITE_AUTO
    );
    assert_eq!(ok(&text("")).watchdog.ipmi.unwrap().cipher_suite, 3);
    one_problem(
        &text("cipher_suite = 2\n"),
        "watchdog.ipmi.cipher_suite",
        Some(7),
        "cipher suite 2: bbwd speaks 3",
    );
}

/// A CA certificate (P-256, self-signed) for the `ca_file` checks: data, never trusted.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBkTCCATegAwIBAgIUB4EODe8jOB8DgQEJR+VgTRutlUswCgYIKoZIzj0EAwIw\n\
HjEcMBoGA1UEAwwTYmJ3ZCBjb25maWcgdGVzdCBDQTAeFw0yNjEyMDQyMDIzMTJa\n\
Fw0zNjEyMDEyMDIzMTJaMB4xHDAaBgNVBAMME2Jid2QgY29uZmlnIHRlc3QgQ0Ew\n\
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQNSu0v3M/hu+7Lomx8EuMo4kV7bD99\n\
dFaRcmvElsj39B1rXtN3iAbsnH4TeY7j666qcNehAtwBsXRNgfTpBSbZo1MwUTAd\n\
BgNVHQ4EFgQU60Ax/Gyayrum/SZ8ag1zAQ7tri4wHwYDVR0jBBgwFoAU60Ax/Gya\n\
yrum/SZ8ag1zAQ7tri4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF\n\
AiEAtzORmC/2DMelsuwYLCyhyGrIRtJ2qyCT9K+LMutr76YCIEAZ4w5oEju6BSII\n\
t+h8RlXtLvUB/0zX7TsGjndYo2kC\n\
-----END CERTIFICATE-----\n\
";

/// A pair config with `method = "redfish"` and `extra` lines in its `[fencing]` (lines: 8
/// `[fencing]`, 12 `method`, 13.. `extra`).
fn redfish_pair(dir: &TempDir, extra: &str) -> String {
    pair(dir, LINKS, &format!("method = \"redfish\"\n{extra}"))
}

/// A `tls_fingerprint` line (of no real certificate: nothing connects).
fn pin() -> String {
    format!("tls_fingerprint = \"sha256:{}\"\n", "ab".repeat(32))
}

/// `method = "redfish"`: the TLS check is required and exactly one; each key's value is
/// checked (a readable PEM CA file, a sha256 fingerprint, a /redfish/v1/ path); the IPMI
/// and Redfish keys stay with their method; port 443 by default; insecure is a warning.
#[test]
fn redfish_keys_checked() {
    let dir = TempDir::new("redfish");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, TEST_CA_PEM).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    redfish_keys_refused(&dir, &ca, &not_pem);
    let rf = |extra: &str| redfish_pair(&dir, extra);
    let pin = pin();

    // Valid: a CA file, a pin, or insecure (then a warning naming the key).
    let c = ok(&rf(&format!(
        "ca_file = \"{}\"\nsystem = \"/redfish/v1/Systems/abc\"\n",
        ca.display()
    )));
    let f = c.fencing.unwrap();
    assert_eq!((f.method.as_str(), f.lan.port), ("redfish", 443));
    let r = f.redfish.unwrap();
    assert_eq!(r.tls, RedfishTls::CaFile(ca.clone()));
    assert_eq!(r.system.as_deref(), Some("/redfish/v1/Systems/abc"));
    let c = ok(&rf(&format!("{pin}port = 8443\n")));
    let f = c.fencing.as_ref().unwrap();
    assert_eq!(f.lan.port, 8443);
    assert_eq!(
        f.redfish.as_ref().unwrap().tls,
        RedfishTls::Fingerprint([0xab; 32])
    );
    assert!(warnings(&c).iter().all(|w| w.key != "fencing.insecure"));
    let c = ok(&rf("insecure = true\n"));
    assert_eq!(
        c.fencing.as_ref().unwrap().redfish.as_ref().unwrap().tls,
        RedfishTls::Insecure
    );
    let w = warnings(&c);
    assert!(
        w.iter()
            .any(|w| w.key == "fencing.insecure" && w.message.contains("NOT verified")),
        "{w:?}"
    );
    // Redfish user names are not bound by IPMI's 16 bytes.
    let long_user = rf(&pin).replace(
        "username = \"fence\"",
        "username = \"a-very-long-user-name\"",
    );
    assert_eq!(
        ok(&long_user).fencing.unwrap().lan.username,
        "a-very-long-user-name"
    );
}

/// The refusals of [`redfish_keys_checked`], each the one problem of its config.
fn redfish_keys_refused(dir: &TempDir, ca: &Path, not_pem: &Path) {
    let rf = |extra: &str| redfish_pair(dir, extra);
    let pin = pin();
    let not_pem_file = format!("ca_file = \"{}\"\n", not_pem.display());
    let two_checks = format!("ca_file = \"{}\"\n{pin}", ca.display());
    let refused = [
        (rf(""), "ca_file", 8, "needs the BMC's certificate checked"),
        (
            rf(&not_pem_file),
            "ca_file",
            13,
            "not a PEM certificate file",
        ),
        (
            rf("ca_file = \"/nonexistent/ca.pem\"\n"),
            "ca_file",
            13,
            "No such file",
        ),
        (
            rf("tls_fingerprint = \"AB:CD\"\n"),
            "tls_fingerprint",
            13,
            "expected \"sha256:\"",
        ),
        (
            rf("tls_fingerprint = \"sha256:ABCD\"\n"),
            "tls_fingerprint",
            13,
            "64 hex digits",
        ),
        (
            rf(&two_checks),
            "tls_fingerprint",
            14,
            "exactly one of ca_file, tls_fingerprint and insecure",
        ),
        (
            rf(&format!("{pin}insecure = true\n")),
            "insecure",
            14,
            "exactly one",
        ),
        (
            rf(&format!("{pin}system = \"Systems/1\"\n")),
            "system",
            14,
            "ComputerSystem's path",
        ),
        (
            rf(&format!("{pin}cipher_suite = 3\n")),
            "cipher_suite",
            14,
            "IPMI key",
        ),
    ];
    for (text, key, line, needle) in &refused {
        one_problem(text, &format!("fencing.{key}"), Some(*line), needle);
    }
    one_problem(
        &pair(dir, LINKS, &pin),
        "fencing.tls_fingerprint",
        Some(12),
        "needs method = \"redfish\"",
    );
}

/// `[[fencing.device]]`: several devices in order, each with the keys of a single
/// `[fencing]`; action and timeout stay in `[fencing]`; device keys there are refused.
#[test]
fn fence_devices_are_listed_in_order() {
    let dir = TempDir::new("devices");
    let pw = dir.secret("peer2.pass", 0o600);
    let key = dir.secret("cluster.key", 0o600);
    let pin = format!("tls_fingerprint = \"sha256:{}\"", "ab".repeat(32));
    let text = |top: &str, devices: &str| {
        format!(
            "[node]\nname = \"bb1\"\n[cluster]\npeer = \"bb2\"\nkey_file = \"{key}\"\n{LINKS}\
                 [fencing]\n{top}timeout = \"20s\"\n{devices}\
                 [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n"
        )
    };
    let two = format!(
        "[[fencing.device]]\nmethod = \"redfish\"\nhost = \"10.0.1.2\"\nusername = \"fence\"\n\
         password_file = \"{pw}\"\n{pin}\n\
         [[fencing.device]]\nhost = \"10.0.2.2\"\nusername = \"fence\"\npassword_file = \"{pw}\"\n"
    );
    let c = ok(&text("", &two));
    let f = c.fencing.unwrap();
    assert_eq!(f.devices.len(), 2);
    assert_eq!(
        (f.devices[0].method.as_str(), f.devices[0].lan.port),
        ("redfish", 443)
    );
    assert_eq!(
        (
            f.devices[1].method.as_str(),
            f.devices[1].lan.port,
            f.devices[1].cipher_suite
        ),
        ("ipmi", 623, 3)
    );
    // The first device is also the single-device view.
    assert_eq!(
        (f.method.as_str(), f.lan.host.as_str()),
        ("redfish", "10.0.1.2")
    );
    assert_eq!(f.timeout, Duration::from_secs(20));
    // The single form is one device.
    let single = ok(&pair(&dir, LINKS, "")).fencing.unwrap();
    assert_eq!(single.devices.len(), 1);
    assert_eq!(single.devices[0].lan, single.lan);
    // Device keys beside the list: refused, naming the key (line 9: [fencing] is 8).
    one_problem(
        &text("host = \"10.0.9.9\"\n", &two),
        "fencing.host",
        Some(9),
        "belongs in each device",
    );
    // Each device is checked like [fencing]: a Redfish device without its TLS check.
    let bad = format!(
        "[[fencing.device]]\nmethod = \"redfish\"\nhost = \"10.0.1.2\"\nusername = \"fence\"\n\
             password_file = \"{pw}\"\n"
    );
    one_problem(
        &text("", &bad),
        "fencing.device.ca_file",
        Some(10),
        "needs the BMC's certificate checked",
    );
    one_problem(
        &text("", &format!("{two}bogus = 1\n")),
        "fencing.device.bogus",
        Some(20),
        "unknown key",
    );
}

#[test]
fn fencing_keys_checked() {
    let dir = TempDir::new("fencing");
    one_problem(
        &pair(&dir, LINKS, "method = \"ipmilan\"\n"),
        "fencing.method",
        Some(12),
        "expected \"ipmi\" or \"redfish\"",
    );
    one_problem(
        &pair(&dir, LINKS, "action = \"reboot\"\n"),
        "fencing.action",
        Some(12),
        "expected \"off\" or \"cycle\"",
    );
    one_problem(
        &pair(&dir, LINKS, "username = \"a-very-long-user-name\"\n"),
        "",
        Some(12),
        "duplicate key",
    );
    let long_user = pair(&dir, LINKS, "").replace(
        "username = \"fence\"",
        "username = \"a-very-long-user-name\"",
    );
    one_problem(&long_user, "fencing.username", Some(10), "at most 16 bytes");
    assert_eq!(
        ok(&pair(&dir, LINKS, "action = \"cycle\"\n"))
            .fencing
            .unwrap()
            .action,
        FenceAction::Cycle
    );
}
