//! `[metrics]`.

use super::*;

#[test]
fn metrics_section() {
    let c = ok("[metrics]\nlisten = \"[::1]:9776\"\n");
    let m = c.metrics.unwrap();
    assert_eq!(m.listen, Some("[::1]:9776".parse().unwrap()));
    assert_eq!(m.textfile, None);
    let c = ok("[metrics]\ntextfile = \"/run/bbwd.prom\"\n");
    assert_eq!(c.metrics.unwrap().listen, None);
    assert_eq!(ok("").metrics, None);
    one_problem_each(&[
        (
            "[metrics]\nlisten = \"localhost:9776\"\n",
            "metrics.listen",
            Some(2),
            "invalid socket address \"localhost:9776\"",
        ),
        (
            "[metrics]\nlisten = \"127.0.0.1\"\n",
            "metrics.listen",
            Some(2),
            "expected IP:PORT",
        ),
        (
            "[metrics]\nlisten = 9776\n",
            "metrics.listen",
            Some(2),
            "expected an \"IP:PORT\" string",
        ),
        (
            "[metrics]\nlisten = \"127.0.0.1:0\"\n",
            "metrics.listen",
            Some(2),
            "port 0",
        ),
        (
            "[metrics]\ntextfile = \"bbwd.prom\"\n",
            "metrics.textfile",
            Some(2),
            "not an absolute path",
        ),
        (
            "[metrics]\ntextfile = \"/var/lib/node-exporter/bbwd.txt\"\n",
            "metrics.textfile",
            Some(2),
            "ending in .prom",
        ),
        ("\n[metrics]\n", "metrics", Some(2), "needs `listen`"),
        (
            "[metrics]\nlisten = \"127.0.0.1:9776\"\nlistn = \"x\"\n",
            "metrics.listn",
            Some(3),
            "did you mean `listen`?",
        ),
        (
            "[metric]\nlisten = \"127.0.0.1:9776\"\n",
            "metric",
            Some(1),
            "did you mean [metrics]?",
        ),
        (
            "[metrics]\nhaproxy_agent = \"0.0.0.0:7777\"\nlisten = \"127.0.0.1:9776\"\n",
            "metrics.haproxy_agent",
            Some(2),
            "belongs in [load_balancer]",
        ),
    ]);
}
