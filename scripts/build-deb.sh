#!/usr/bin/env bash
# Builds the Debian package target/debian/bbwd_<version>_<arch>.deb from this checkout with
# dpkg-deb (no debhelper, no fakeroot: --root-owner-group makes every file root's).
#
#   scripts/build-deb.sh [--binary PATH] [--out DIR]
#
#   --binary PATH  package this bbwd binary instead of building the shipped one; default: the
#                  static musl release build of scripts/lib/release.sh, which reuses an
#                  up-to-date build.
#   --out DIR      where the .deb goes (default target/debian). The staging tree is DIR/root.
#
# Contents: /usr/sbin/bbwd; /lib/systemd/system/bbwd.service (installed disabled and stopped:
# see packaging/postinst for why); /etc/bbwd/bbwd.toml from examples/bbwd.toml as a conffile;
# the OCF agent /usr/lib/ocf/resource.d/bbwd/bitbucket -> /usr/sbin/bbwd; bbwd(8); copyright,
# changelog and README in /usr/share/doc/bbwd. Prints the package's path last.
# Needs: cargo, dpkg-deb, gzip; dpkg-shlibdeps (dpkg-dev) for an exact libc dependency
# (objdump's GLIBC versions otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
out="target/debian"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Reproducible: file dates in the package are clamped to the last commit's date.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

pkgid=$(cargo pkgid -p bbwd)
version=${pkgid##*[#@]}
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-"bbwd maintainers <maintainers@users.noreply.r-seed-0fcfba31.example>"}

if [ -z "$binary" ]; then
  . scripts/lib/release.sh
  bbwd_release_build
  binary=$BBWD_RELEASE_BIN
fi
[ -x "$binary" ] || { echo "build-deb: $binary is not an executable" >&2; exit 1; }

changelog_version=$(sed -n '1s/^bbwd (\([^)]*\)).*/\1/p' packaging/changelog)
if [ "$changelog_version" != "$version" ]; then
  echo "build-deb: warning: packaging/changelog's latest entry is $changelog_version, the crate is $version" >&2
fi

mkdir -p "$out"
root="$out/root"
rm -rf "$root"
umask 022
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/lib/systemd/system" "$root/etc/bbwd" \
  "$root/usr/lib/ocf/resource.d/bbwd" "$root/usr/share/man/man8" "$root/usr/share/doc/bbwd" \
  "$root/usr/share/lintian/overrides"

install -m 0755 "$binary" "$root/usr/sbin/bbwd"
# A debug binary (tests) is stripped here; the release profile strips already, and the
# sections lintian calls unneeded go as well.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/sbin/bbwd"
install -m 0644 systemd/bbwd.service "$root/lib/systemd/system/bbwd.service"
install -m 0644 examples/bbwd.toml "$root/etc/bbwd/bbwd.toml"
# Relative, as Debian policy asks for links within /usr; resolves to /usr/sbin/bbwd.
ln -s ../../../../sbin/bbwd "$root/usr/lib/ocf/resource.d/bbwd/bitbucket"

sed "1,/^\.TH/s/\"bbwd [^\"]*\"/\"bbwd $version\"/" packaging/bbwd.8 | gzip -9n > "$root/usr/share/man/man8/bbwd.8.gz"
gzip -9n < packaging/changelog > "$root/usr/share/doc/bbwd/changelog.gz"
gzip -9n < README.md > "$root/usr/share/doc/bbwd/README.md.gz"
crates=$(cargo tree -p bbwd -e normal --prefix none -f '{p} {l}' \
  | grep -v ' (/' | sed 's/ (\*)$//' | sort -u | sed 's/^/ /')
while IFS= read -r line; do
  if [ "$line" = " @CRATES@" ]; then printf '%s\n' "$crates"; else printf '%s\n' "$line"; fi
done < packaging/copyright > "$root/usr/share/doc/bbwd/copyright"
chmod 0644 "$root/usr/share/doc/bbwd/"*
install -m 0644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/bbwd"

for script in postinst prerm postrm; do
  install -m 0755 "packaging/$script" "$root/DEBIAN/$script"
done
echo "/etc/bbwd/bbwd.toml" > "$root/DEBIAN/conffiles"

# The C library version the binary needs: none for the shipped static build (no dynamic section).
depends=""
static=false
if ! objdump -p "$root/usr/sbin/bbwd" | grep -q 'NEEDED'; then
  static=true
elif command -v dpkg-shlibdeps >/dev/null; then
  shl=$(mktemp -d)
  mkdir -p "$shl/debian"
  printf 'Source: bbwd\n\nPackage: bbwd\nArchitecture: any\n' > "$shl/debian/control"
  abs_bin=$(realpath "$root/usr/sbin/bbwd")
  depends=$(cd "$shl" && dpkg-shlibdeps -O "$abs_bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p') || depends=""
  rm -rf "$shl"
fi
if [ -z "$depends" ] && ! $static; then
  glibc=$(objdump -T "$root/usr/sbin/bbwd" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
  depends="libc6 (>= ${glibc:-2.34})"
  if objdump -p "$root/usr/sbin/bbwd" | grep -q 'NEEDED *libgcc_s'; then
    depends="$depends, libgcc-s1"
  fi
fi

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
  | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/conffiles"

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: bbwd
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_kb
Depends: ${depends:+$depends, }init-system-helpers (>= 1.54~)
Suggests: pacemaker, resource-agents
Section: admin
Priority: optional
Description: Bitbucket Server high-availability agent for bare-metal nodes
 bbwd is one small daemon per node, run by systemd, that keeps Bitbucket
 Server (formerly Stash) available the way Atlassian's high-availability
 guide describes: it starts Bitbucket, checks its /status page and corrects
 failures (graceful stop, kill, restart), holds while the database is down,
 ties the node to a hardware or BMC watchdog, and in a cold-standby pair fences
 the failed node through its BMC before taking over the virtual IP.
 .
 It can also run as the Pacemaker OCF resource agent ocf:bbwd:bitbucket.
 The service is installed disabled: edit /etc/bbwd/bbwd.toml, run
 "bbwd check-config", then "systemctl enable --now bbwd".
EOF

deb="$out/bbwd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
