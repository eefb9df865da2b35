//! `[cluster]`: the heartbeat links and the witness.

use super::*;

#[test]
fn cluster_link_problems() {
    let dir = TempDir::new("links");
    // Lines: 1 [node], 2 name, 3 [cluster], 4 peer, 5 key_file, 6.. extra.
    one_problem(
        &pair(&dir, "listen = [\"10.0.0.1:5405\", \"192.168.0.1:5405\"]\npeer_addresses = [\"10.0.0.2:5405\"]\n", ""),
        "cluster.peer_addresses",
        Some(7),
        "1 addresses but listen has 2",
    );
    one_problem(
        &pair(
            &dir,
            "listen = [\"10.0.0.1:5405\"]\npeer_addresses = [\"[fd00::2]:5405\"]\n",
            "",
        ),
        "cluster.peer_addresses",
        Some(7),
        "not of the same IP family",
    );
    one_problem(
        &pair(
            &dir,
            "listen = []\npeer_addresses = [\"10.0.0.2:5405\"]\n",
            "",
        ),
        "cluster.listen",
        Some(6),
        "empty",
    );
    let found = problems(&pair(
        &dir,
        "listen = [\"10.0.0.1\"]\npeer_addresses = [\"10.0.0.2:5405\", \"10.0.0.2:5405\"]\n",
        "",
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        (found[0].key.as_str(), found[0].line),
        ("cluster.listen", Some(6))
    );
    assert_eq!(
        (found[1].key.as_str(), found[1].line),
        ("cluster.peer_addresses", Some(7))
    );
    assert!(found[1].message.contains("listed twice"));
    one_problem(
        &pair(&dir, "peer_addresses = [\"10.0.0.2:5405\"]\n", ""),
        "cluster.listen",
        Some(3),
        "missing: [cluster] needs `listen`",
    );
}

#[test]
fn witness_must_be_an_ip_address() {
    let dir = TempDir::new("witness");
    one_problem(
        &pair(&dir, &format!("{LINKS}witness = \"router\"\n"), ""),
        "cluster.witness",
        Some(8),
        "not an IP address",
    );
    let c = ok(&pair(&dir, &format!("{LINKS}witness = \"fd00::fe\"\n"), ""));
    assert_eq!(
        c.cluster.unwrap().witness,
        Some("fd00::fe".parse().unwrap())
    );
}
