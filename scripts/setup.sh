#!/usr/bin/env bash
# Installs what bbwd's demo and tests need on a fresh Debian machine, idempotently: Debian
# packages only when missing, and a check for the Rust toolchain. Run as root.
set -euo pipefail

# Debian packages the tests and demo use (each named for what needs it).
PACKAGES=(
  curl          # the demo pokes the Bitbucket simulator's fault endpoints
  procps        # ps/pgrep for the demo's process listing
  systemd       # systemd-analyze verify of systemd/bbwd.service
  qemu-system-x86  # VM tests (tests/src/vm.rs): the i6300esb watchdog guest and the systemd guest, under TCG
  mmdebstrap    # VM tests: builds the Debian rootfs with systemd as PID 1 (cached in /var/cache/bbwd-vm)
  e2fsprogs     # VM tests: mke2fs -d turns that rootfs into an ext4 image without mounting it
  xz-utils      # VM tests: unpacks the uncompressed vmlinux from Debian's bzImage (boots faster by PVH)
  kmod          # VM tests: depmod indexes the Debian kernel's modules for the guest's modprobe
  openipmi      # IPMI tests (tests/src/ipmisim.rs): ipmi_sim, a real BMC over RMCP+ for fencing and the BMC watchdog
  ipmitool      # IPMI tests: an independent client (no session leak: it can still log in) and the fence baseline
  gcc           # IPMI tests: builds tests/ipmi/wdfix.c, the LD_PRELOAD fix for ipmi_sim's watchdog reset bug
  libc6-dev     # IPMI tests: headers for that shim
  libopenipmi-dev  # IPMI tests: OpenIPMI's os_handler.h, the struct that shim patches
  iproute2      # VIP tests (tests/tests/vip_netns.rs): ip netns/link/addr/neigh build and inspect the namespaces
  arping        # scripts/bench-vip.sh: Habets' arping -U, the baseline GARP bbwd's own is measured against
  keepalived    # scripts/bench-keepalived.sh: the VRRP failover baseline on the pair lab (tests/src/pairlab.rs)
  haproxy       # mirror-farm tests (tests/tests/mirror_haproxy.rs): the real load balancer bbwd's agent check answers
  resource-agents  # OCF tests (tests/tests/ocf.rs): ocf-tester and ra-api-1.dtd check `bbwd ocf` as Pacemaker would
  libxml2-utils # OCF tests: xmllint, with which ocf-tester validates the agent's meta-data
  dpkg-dev      # scripts/build-deb.sh: dpkg-shlibdeps computes the package's exact libc dependency
  binutils      # scripts/build-deb.sh: strip and objdump on the packaged binary
  lintian       # package test (tests/tests/deb.rs): the built .deb must be lintian-clean
  man-db        # package test: `man -l` renders the packaged bbwd(8) without warnings
  python3-venv  # Redfish tests (tests/src/sushy.rs): the venv for sushy-tools (PyPI), the Redfish emulator; python3 runs tests/redfish/responder.py
  openssl       # Redfish tests: the test CA and the emulator's TLS certificate (openssl req / x509)
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
