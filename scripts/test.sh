#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this). Run as root from the
# repository: installs what it needs, checks formatting and lints, builds, and runs every test
# (unit, property, end-to-end against the Bitbucket simulator, systemd unit verification).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== build"
cargo build --workspace --bins --quiet

echo "== tests"
cargo test --workspace 2>&1 | tee target/test-output.txt
