//! The checks that need this machine: secret files' modes and existence, and DNS.

use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn insecure_key_file_refused_with_chmod_hint() {
    let dir = TempDir::new("insecure");
    let text = pair(&dir, LINKS, "");
    let key = dir.path().join("cluster.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (found[0].key.as_str(), found[0].line),
        ("cluster.key_file", Some(5))
    );
    assert!(
        found[0].message.contains("mode 0644 is too open"),
        "{}",
        found[0].message
    );
    assert!(
        found[0]
            .message
            .contains(&format!("chmod 600 {}", key.display())),
        "{}",
        found[0].message
    );
}

#[test]
fn missing_and_relative_secret_files() {
    let dir = TempDir::new("missing-secret");
    let text = pair(&dir, LINKS, "").replace("peer.pass", "no-such.pass");
    one_problem(&text, "fencing.password_file", Some(11), "No such file");
    let text = pair(&dir, LINKS, "").replace(&format!("\"{}", dir.path().display()), "\"relative");
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found
        .iter()
        .all(|p| p.message.contains("not an absolute path")));
}

#[test]
fn database_address_must_resolve() {
    one_problem_each(&[
        (
            "[database]\naddress = \"db.example.com\"\n",
            "database.address",
            Some(2),
            "expected HOST:PORT",
        ),
        (
            "[database]\naddress = \"127.0.0.1:99999\"\n",
            "database.address",
            Some(2),
            "expected HOST:PORT",
        ),
        (
            "[database]\naddress = \"[::1\"\n",
            "database.address",
            Some(2),
            "cannot resolve",
        ),
        (
            "[database]\ntimeout = \"5s\"\n",
            "database.address",
            Some(1),
            "missing",
        ),
    ]);
    let c = ok("[database]\naddress = \"[::1]:5432\"\n");
    assert_eq!(c.database.unwrap().resolved, "[::1]:5432".parse().unwrap());
}
