//! Unknown keys and sections: "did you mean", "belongs in [x]", and the distance behind them.

use super::*;
use crate::config::database;
use crate::config::hints::{closest, edit_distance};

#[test]
fn unknown_section_suggests_the_closest() {
    one_problem(
        "[bitbucet]\nuser = \"x\"\n",
        "bitbucet",
        Some(1),
        "unknown section [bitbucet]; did you mean [bitbucket]?",
    );
    one_problem(
        "[frobnicate]\n",
        "frobnicate",
        Some(1),
        "unknown section [frobnicate]",
    );
}

#[test]
fn unknown_key_suggests_the_closest() {
    one_problem(
        "[bitbucket]\nmonitor_intervall = \"15s\"\n",
        "bitbucket.monitor_intervall",
        Some(2),
        "unknown key `monitor_intervall` in [bitbucket]; did you mean `monitor_interval`?",
    );
    one_problem(
        "[node]\n\nnmae = \"bb1\"\n",
        "node.nmae",
        Some(3),
        "did you mean `name`?",
    );
    // Nothing close: list what the section knows.
    one_problem(
        "[database]\naddress = \"127.0.0.1:5432\"\nzzz = 1\n",
        "database.zzz",
        Some(3),
        "knows: address, timeout",
    );
}

#[test]
fn key_in_the_wrong_section_says_where_it_belongs() {
    one_problem_each(&[
        (
            "[bitbucket]\npeer_timeout = \"1s\"\n",
            "bitbucket.peer_timeout",
            Some(2),
            "`peer_timeout` belongs in [cluster]",
        ),
        ("name = \"bb1\"\n", "name", Some(1), "outside any section"),
        (
            "[watchdog.foo]\n",
            "watchdog.foo",
            Some(1),
            "unknown section [watchdog.foo]",
        ),
    ]);
}

#[test]
fn edit_distance_counts_typos() {
    assert_eq!(edit_distance("monitor_intervall", "monitor_interval"), 1);
    assert_eq!(edit_distance("nmae", "name"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
    assert_eq!(closest("adress", database::KEYS), Some("address"));
    assert_eq!(closest("xyz", database::KEYS), None);
}
