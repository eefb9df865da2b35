#!/usr/bin/env bash
# Installs what bbwd's demo or tests need on a fresh Debian machine, idempotently: Debian
# packages only when missing, the Rust target of the shipped build, and a check for the Rust
# toolchain. Run as root (scripts/demo.sh and scripts/test.sh become root themselves first).
#
#   scripts/setup.sh demo    what scripts/demo.sh needs, nothing more
#   scripts/setup.sh [test]  everything the test suite and the benchmarks need (the default)
set -euo pipefail
profile=${1:-test}
case "$profile" in
  demo|test) ;;
  *) echo "setup: unknown profile $profile (demo or test)" >&2; exit 2 ;;
esac

# Debian packages the demo uses (each named for what needs it); the tests use them too.
DEMO_PACKAGES=(
  gcc           # the linker cargo calls (cc); IPMI tests also build tests/ipmi/wdfix.c with it
  musl-tools    # musl-gcc: ring's C parts in the shipped static musl build (scripts/lib/release.sh)
  libc6-dev     # the C runtime objects that link needs; the wdfix shim's headers
  curl          # the demo pokes the Bitbucket simulator's fault endpoints
  procps        # ps/pgrep for the demo's process listing
  openipmi      # the pair demo and the IPMI tests (tests/src/ipmisim.rs): ipmi_sim, a real BMC per node over RMCP+
  ipmitool      # the pair demo powers nodes through their BMCs; in the IPMI tests an independent client, the fence baseline, and the validation of the suite-17 test BMC (tests/tests/testbmc.rs)
  iproute2      # the pair demo and the network tests: ip netns/link/addr/neigh build and inspect the namespaces
)

# Debian packages only the tests and benchmarks use (each named for what needs it).
PACKAGES=(
  systemd       # systemd-analyze verify of systemd/bbwd.service
  qemu-system-x86  # VM tests (tests/src/vm.rs): the i6300esb watchdog guest and the systemd guest, under TCG
  mmdebstrap    # VM tests: builds the Debian rootfs with systemd as PID 1 (cached in /var/cache/bbwd-vm)
  e2fsprogs     # VM tests: mke2fs -d turns that rootfs into an ext4 image without mounting it
  xz-utils      # VM tests: unpacks the uncompressed vmlinux from Debian's bzImage (boots faster by PVH)
  kmod          # VM tests: depmod indexes the Debian kernel's modules for the guest's modprobe
  libopenipmi-dev  # IPMI tests: OpenIPMI's os_handler.h, the struct that shim patches
  arping        # scripts/bench.sh vip: Habets' arping -U, the baseline GARP bbwd's own is measured against
  keepalived    # scripts/bench.sh keepalived (and failover): the VRRP failover baseline on the pair lab (tests/src/pairlab.rs)
  prometheus    # metrics tests (tests/tests/metrics.rs): promtool checks every scrape, a real prometheus scrapes bbwd (~94 MiB installed, no recommends)
  haproxy       # mirror-farm tests (tests/tests/mirror_haproxy.rs): the real load balancer bbwd's agent check answers
  resource-agents  # OCF tests (tests/tests/ocf.rs): ocf-tester and ra-api-1.dtd check `bbwd ocf` as Pacemaker would
  libxml2-utils # OCF tests: xmllint, with which ocf-tester validates the agent's meta-data
  corosync      # Pacemaker test (tests/tests/pacemaker.rs): the membership layer of the real two-node cluster in namespaces
  pacemaker     # Pacemaker test: pacemakerd and its daemons run ocf:bbwd:bitbucket for real
  pacemaker-cli-utils  # Pacemaker test: crm_mon, cibadmin, crm_attribute, crm_failcount configure and watch it
  dpkg-dev      # scripts/build-deb.sh: dpkg-shlibdeps computes the package's exact libc dependency
  binutils      # scripts/build-deb.sh: strip and objdump on the packaged binary
  lintian       # package test (tests/tests/deb.rs): the built .deb must be lintian-clean
  man-db        # package test: `man -l` renders the packaged bbwd(8) without warnings
  python3-venv  # Redfish tests (tests/src/sushy.rs): the venv for sushy-tools (PyPI), the Redfish emulator; python3 runs tests/redfish/responder.py
  openssl       # Redfish tests: the test CA and the emulator's TLS certificate (openssl req / x509)
)

wanted=("${DEMO_PACKAGES[@]}")
[ "$profile" = test ] && wanted+=("${PACKAGES[@]}")
missing=()
for p in "${wanted[@]}"; do
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
  # Installing pacemaker and corosync enables and starts a one-node cluster on the host (where
  # the service manager lets it). The Pacemaker test runs its own cluster in namespaces and
  # needs none here, so a cluster this script has just installed is stopped and disabled; one
  # that was already installed is left alone.
  for svc in pacemaker corosync; do
    if printf '%s\n' "${missing[@]}" | grep -qx "$svc"; then
      if [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      else
        invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
      fi
    fi
  done
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# The shipped bbwd is linked statically against musl (scripts/lib/release.sh says why): the Rust
# standard library for that target comes from rustup, once.
. "$(dirname "$0")/lib/release.sh"
if ! rustup target list --installed 2>/dev/null | grep -qx "$BBWD_RELEASE_TARGET"; then
  echo "setup: adding the Rust target $BBWD_RELEASE_TARGET (the shipped static build)"
  rustup target add "$BBWD_RELEASE_TARGET" >/dev/null
fi
