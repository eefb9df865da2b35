#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this). Run as root from the
# repository: installs what it needs, checks formatting and lints, builds, and runs every test
# (unit, property, end-to-end against the Bitbucket simulator, systemd unit verification).
set -euo pipefail
. "$(dirname "$0")/lib/root.sh"
bbwd_become_root "$0" "$@"
cd "$(dirname "$0")/.."

bash scripts/setup.sh test

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== build"
cargo build --workspace --bins --quiet
# The end-to-end tests run the bbwd that ships (scripts/lib/release.sh: static musl release), not
# the debug build: what is tested is what the package installs. Unit tests stay debug builds.
. scripts/lib/release.sh
bbwd_release_build
export BBWD_BIN="$PWD/$BBWD_RELEASE_BIN"
echo "end-to-end tests run $BBWD_BIN"

echo "== tests"
# --include-ignored: the tests that need root, namespaces or installed peers are marked
# #[ignore = "needs ..."] (a plain `cargo test` lists them as ignored, never as passed unrun);
# here, as root with everything installed, every one of them runs. (Benchmarks are not tests:
# scripts/bench.sh runs them.)
cargo test --workspace --no-fail-fast -- --include-ignored 2>&1 | tee target/test-output.txt

echo "== model check (two real nodes, CI bound, every mutant)"
bash scripts/model-check.sh --ci 2>/dev/null | tee target/model-check.txt

echo "== pair fault soak (30 faults on the namespace lab with real BMCs)"
bash scripts/soak.sh 30 2>&1 | tee target/soak.txt | grep -E '^(soak:|VIOLATION|  )' || true
tail -1 target/soak.txt | grep -q '^soak: .* 0 violations,' || { echo "soak: violations (target/soak.txt)"; exit 1; }

# One closing line for the whole run (cargo's last line is a doc-test section that may be empty).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' target/test-output.txt
