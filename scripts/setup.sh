#!/usr/bin/env bash
# Installs what bbwd's demo and tests need on a fresh Debian machine, idempotently: Debian
# packages only when missing, and a check for the Rust toolchain. Run as root.
set -euo pipefail

# Debian packages the tests and demo use (each named for what needs it).
PACKAGES=(
  curl          # the demo pokes the Bitbucket simulator's fault endpoints
  procps        # ps/pgrep for the demo's process listing
  systemd       # systemd-analyze verify of systemd/bbwd.service
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
