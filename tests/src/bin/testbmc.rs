//! The test BMC (`bbwd_tests::testbmc`, RMCP+ cipher suites 3 and 17) as a process, for
//! benchmarks (`scripts/bench-fence.sh`): `testbmc PORT [SUITES]`, e.g. `testbmc 9624 3,17`.
//! Prints `ready PORT` once it answers; runs until killed. Power starts on; Chassis Control
//! sets it at once. User and password: `admin` / `s3cret-Pw17`.

use bbwd_tests::testbmc::{Mode, Options, TestBmc};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: testbmc PORT [SUITES, e.g. 3,17]");
        std::process::exit(2)
    });
    let suites = args
        .next()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![3, 17]);
    let bmc = TestBmc::start_on(
        port,
        Options {
            suites,
            mode: Mode::Honest,
            lists_suites: true,
        },
    )
    .unwrap_or_else(|e| {
        eprintln!("testbmc: bind 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    println!("ready {}", bmc.port);
    loop {
        std::thread::park();
    }
}
