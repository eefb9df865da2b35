# The build of bbwd that ships, in one place: sourced by the scripts that package, soak, demo or
# measure it (build-deb.sh, soak.sh, demo.sh, bench.sh).
#
# Release profile (Cargo.toml: opt-level "s", LTO, stripped), linked statically against musl.
# Why musl: the pair-mode daemon measured 3.5 MiB RSS linked dynamically against glibc, of which
# ~1.5 MiB were clean file pages of glibc, ld.so and libgcc_s; the same code static with musl
# measures under 2 MiB (BENCHMARKS.md, "Footprint: the static musl build"). What it costs: users
# and groups (`bitbucket.user`, `node.status_group`) come from /etc/passwd and /etc/group (or
# nscd), never from NSS modules such as sssd or LDAP; host names from /etc/hosts and DNS.
#
# After sourcing: `bbwd_release_build` builds it (quietly, reusing an up-to-date build) and
# $BBWD_RELEASE_BIN is its path, relative to the repository root.
BBWD_RELEASE_TARGET="$(uname -m)-unknown-linux-musl"
BBWD_RELEASE_BIN="target/$BBWD_RELEASE_TARGET/release/bbwd"
# ring (rustls' crypto, Redfish fencing) has C and assembly parts: built for musl with Debian's
# musl-gcc wrapper (musl-tools), which cc-rs would otherwise look for as x86_64-linux-musl-gcc.
export "CC_$(uname -m)_unknown_linux_musl=musl-gcc"

bbwd_release_build() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$BBWD_RELEASE_TARGET"; then
    echo "release: the Rust target $BBWD_RELEASE_TARGET is missing: run scripts/setup.sh (rustup target add $BBWD_RELEASE_TARGET)" >&2
    return 1
  fi
  cargo build --release --quiet -p bbwd --target "$BBWD_RELEASE_TARGET"
}
