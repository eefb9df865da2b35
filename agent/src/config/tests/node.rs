//! `[node]` (and the names it shares with `[bitbucket] user`): names, paths, socket path length.

use super::*;

#[test]
fn names_checked() {
    one_problem(
        "[node]\nname = \"bb 1\"\n",
        "node.name",
        Some(2),
        "use only letters",
    );
    one_problem(
        "[node]\nname = \"\"\n",
        "node.name",
        Some(2),
        "must not be empty",
    );
    one_problem(
        &format!("[node]\nname = \"{}\"\n", "a".repeat(65)),
        "node.name",
        Some(2),
        "longer than 64",
    );
    one_problem(
        "[bitbucket]\nuser = \"atl bitbucket\"\n",
        "bitbucket.user",
        Some(2),
        "not a user name",
    );
}

#[test]
fn paths_must_be_absolute_and_socket_paths_short() {
    one_problem(
        "[node]\nstate_dir = \"var/lib/bbwd\"\n",
        "node.state_dir",
        Some(2),
        "not an absolute path",
    );
    let long = format!("/run/{}/control.sock", "x".repeat(100));
    one_problem(
        &format!("[node]\ncontrol_socket = \"{long}\"\n"),
        "node.control_socket",
        Some(2),
        "too long for a Unix socket path",
    );
}
