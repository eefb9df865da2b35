//! The typed getters (`values.rs`): wrong types, bad durations, out-of-range numbers, empty
//! commands and bad socket addresses, each named by key and line.

use super::*;

#[test]
fn wrong_types() {
    one_problem_each(&[
        (
            "[bitbucket]\nmax_restarts = \"1\"\n",
            "bitbucket.max_restarts",
            Some(2),
            "expected an integer, found the string \"1\"",
        ),
        (
            "[watchdog]\nrealtime = \"yes\"\n",
            "watchdog.realtime",
            Some(2),
            "expected true or false",
        ),
        (
            "[bitbucket]\nstatus_url = 7990\n",
            "bitbucket.status_url",
            Some(2),
            "expected a string, found the integer 7990",
        ),
        ("node = 1\n", "node", Some(1), "expected a table ([node])"),
        (
            "[bitbucket]\ncommand = \"/bin/true\"\n",
            "bitbucket.command",
            Some(2),
            "as a list",
        ),
        (
            "[bitbucket]\ncommand = [\"/bin/echo\", 1]\n",
            "bitbucket.command",
            Some(2),
            "argument 2: expected a string",
        ),
        (
            "[bitbucket]\nenvironment = { A = 1 }\n",
            "bitbucket.environment.A",
            Some(2),
            "expected a string",
        ),
        (
            "[bitbucket]\nfailures_before_action = 2.5\n",
            "bitbucket.failures_before_action",
            Some(2),
            "found a float",
        ),
    ]);
}

#[test]
fn bad_durations_name_the_key_and_line() {
    let found = problems("[bitbucket]\nmonitor_interval = \"15x\"\n");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].to_string(),
        "bitbucket.monitor_interval (line 2): invalid duration \"15x\": expected an integer followed by a unit \
         (ms, s, m, h), e.g. \"250ms\", \"15s\", \"10m\", \"1m30s\""
    );
    one_problem_each(&[
        (
            "[bitbucket]\nstop_timeout = 120\n",
            "bitbucket.stop_timeout",
            Some(2),
            "found the integer 120 (e.g. \"120s\")",
        ),
        (
            "[bitbucket]\nkill_timeout = \"0s\"\n",
            "bitbucket.kill_timeout",
            Some(2),
            "must be greater than zero",
        ),
        (
            "[database]\naddress = \"127.0.0.1:5432\"\ntimeout = \"0ms\"\n",
            "database.timeout",
            Some(3),
            "greater than zero",
        ),
        (
            "[watchdog]\ntimeout = \"500ms\"\n",
            "watchdog.timeout",
            Some(2),
            "at least 1s",
        ),
        (
            "[watchdog]\ndevice = \"ipmi\"\ntimeout = \"2h\"\n",
            "watchdog.timeout",
            Some(3),
            "at most 6553s",
        ),
    ]);
}

#[test]
fn out_of_range_numbers() {
    one_problem_each(&[
        (
            "[bitbucket]\nfailures_before_action = 0\n",
            "bitbucket.failures_before_action",
            Some(2),
            "0 is out of range: must be between 1 and 1000",
        ),
        (
            "[bitbucket]\nmax_restarts = -1\n",
            "bitbucket.max_restarts",
            Some(2),
            "-1 is out of range",
        ),
        (
            "[bitbucket]\nmax_restarts = 99999999999999999999\n",
            "bitbucket.max_restarts",
            Some(2),
            "99999999999999999999 is out of range",
        ),
    ]);
    let dir = TempDir::new("range");
    let text = format!(
        "[watchdog]\ndevice = \"ipmi\"\n[watchdog.ipmi]\nhost = \"h\"\nport = 70000\n\
             username = \"u\"\npassword_file = \"{}\"\n",
        dir.secret("own.pass", 0o600)
    );
    one_problem(
        &text,
        "watchdog.ipmi.port",
        Some(5),
        "70000 is out of range",
    );
}

#[test]
fn empty_commands_refused() {
    one_problem_each(&[
        (
            "[bitbucket]\ncommand = []\n",
            "bitbucket.command",
            Some(2),
            "empty command",
        ),
        (
            "[bitbucket]\ncommand = [\"\", \"-fg\"]\n",
            "bitbucket.command",
            Some(2),
            "program (first element) must not be empty",
        ),
        (
            "[notify]\ncommand = []\n",
            "notify.command",
            Some(2),
            "empty command",
        ),
        (
            "[notify]\ntimeout = \"5s\"\n",
            "notify.command",
            Some(1),
            "missing: [notify] needs `command`",
        ),
        (
            "[hooks]\n\nbefore_start = [[\"/bin/true\"], []]\n",
            "hooks.before_start",
            Some(3),
            "empty command",
        ),
        (
            "[hooks]\nafter_stop = [\"/bin/umount\"]\n",
            "hooks.after_stop",
            Some(2),
            "expected an array of strings, found the string",
        ),
    ]);
}

#[test]
fn bad_socket_addresses() {
    one_problem_each(&[
        (
            "[load_balancer]\nhaproxy_agent = \"localhost:7777\"\n",
            "load_balancer.haproxy_agent",
            Some(2),
            "invalid socket address \"localhost:7777\": expected IP:PORT",
        ),
        (
            "[load_balancer]\nhaproxy_agent = \"0.0.0.0\"\n",
            "load_balancer.haproxy_agent",
            Some(2),
            "invalid socket address",
        ),
        (
            "[load_balancer]\nhaproxy_agent = \"0.0.0.0:0\"\n",
            "load_balancer.haproxy_agent",
            Some(2),
            "port 0",
        ),
        (
            "[load_balancer]\n",
            "load_balancer.haproxy_agent",
            Some(1),
            "missing",
        ),
    ]);
}
