#!/usr/bin/env bash
# make deb: build a Debian package of repmgr (Rust) with dpkg-deb.
#
#   scripts/mkdeb.sh BINARY OUTDIR
#
# BINARY is the repmgr executable to package (make deb passes
# target/release/repmgr; the tests pass the debug binary). The package is
# written to OUTDIR (created if missing) as PACKAGE_VERSION_ARCH.deb, and its
# path is printed as the last line of standard output.
#
# Environment (all optional):
#   DEB_REVISION       Debian revision appended to Cargo.toml's version (1)
#   DEB_MAINTAINER     the Maintainer field
#   SOURCE_DATE_EPOCH  timestamp of the files and of the changelog entry
#                      (default: the last commit's, else now)
#
# Contents: the binary as /usr/lib/postgresql/15/bin/repmgr with the
# repmgrd symlink beside it, the man pages, the systemd units, the sample
# repmgr.conf and examples/ under /usr/share/doc/PACKAGE/examples (the
# sample is not installed in /etc: a configuration with a node_id is the
# DBA's to write), the copyright file and changelog.Debian.gz.
set -euo pipefail

PKG=repmgr-rs
PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
DEBIAN_REPMGR=postgresql-$PG_MAJOR-repmgr

die() {
	printf 'ERROR: %s\n' "$1" >&2
	if [ $# -gt 1 ]; then printf 'HINT: %s\n' "$2" >&2; fi
	exit 1
}

if [ $# -ne 2 ]; then
	die "usage: $0 BINARY OUTDIR" "make deb builds target/release/repmgr and calls this script"
fi
BINARY=$1
OUTDIR=$2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[ -f "$BINARY" ] && [ -x "$BINARY" ] || die "\"$BINARY\" is not an executable file" "run \"make build\" first"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found" "install the package dpkg"
command -v dpkg >/dev/null || die "dpkg not found" "install the package dpkg"

# Cargo.toml's version, from its [package] section.
UPSTREAM=$(awk '
	/^\[/ { in_pkg = ($0 == "[package]") }
	in_pkg && /^version[ \t]*=/ { gsub(/^version[ \t]*=[ \t]*"|"[ \t]*$/, ""); print; exit }
' "$ROOT/Cargo.toml")
[ -n "$UPSTREAM" ] || die "no version in the [package] section of $ROOT/Cargo.toml"
VERSION=$UPSTREAM-${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)
MAINTAINER=${DEB_MAINTAINER:-repmgr (Rust) maintainers <dev@example.invalid>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mkdeb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PKGROOT=$WORK/root
DOC=$PKGROOT/usr/share/doc/$PKG

# The binary, stripped as dh_strip would (the release build already is;
# the debug build shrinks from about 60 MB to 10 MB).
install -d -m 0755 "$PKGROOT$PG_BINDIR"
install -m 0755 "$BINARY" "$PKGROOT$PG_BINDIR/repmgr"
if command -v strip >/dev/null; then
	strip --strip-unneeded --remove-section=.comment --remove-section=.note "$PKGROOT$PG_BINDIR/repmgr"
else
	echo "NOTICE: strip not found (binutils): the binary is packaged as it is" >&2
fi
ln -s repmgr "$PKGROOT$PG_BINDIR/repmgrd"

# Man pages by section, gzipped without name and timestamp.
shopt -s nullglob
for page in "$ROOT"/man/*.[1-9]; do
	section=${page##*.}
	install -d -m 0755 "$PKGROOT/usr/share/man/man$section"
	gzip -9n <"$page" >"$PKGROOT/usr/share/man/man$section/$(basename "$page").gz"
	chmod 0644 "$PKGROOT/usr/share/man/man$section/$(basename "$page").gz"
done

# systemd units. None is enabled or started by the package: the
# configuration file must be written (and the node registered) first.
install -d -m 0755 "$PKGROOT/lib/systemd/system"
for unit in "$ROOT"/systemd/*.service; do
	install -m 0644 "$unit" "$PKGROOT/lib/systemd/system/"
done

# The sample configuration and every file of examples/ (if any).
install -d -m 0755 "$DOC/examples"
install -m 0644 "$ROOT/repmgr.conf" "$DOC/examples/repmgr.conf"
if [ -d "$ROOT/examples" ]; then
	(cd "$ROOT/examples" && find . -type f -print0) | while IFS= read -r -d '' f; do
		f=${f#./}
		install -d -m 0755 "$DOC/examples/$(dirname "$f")"
		install -m 0644 "$ROOT/examples/$f" "$DOC/examples/$f"
	done
fi

cat >"$DOC/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: repmgr (Rust)
Comment: A reimplementation in Rust of repmgr 5.x, the replication manager
 for PostgreSQL (https://repmgr.org/), without its C extension.

Files: *
Copyright: the repmgr (Rust) authors
License: GPL-3+

License: GPL-3+
 This program is free software: you can redistribute it and/or modify
 it under the terms of the GNU General Public License as published by
 the Free Software Foundation, either version 3 of the License, or
 (at your option) any later version.
 .
 This program is distributed in the hope that it will be useful,
 but WITHOUT ANY WARRANTY; without even the implied warranty of
 MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
 GNU General Public License for more details.
 .
 On Debian systems, the complete text of the GNU General Public
 License version 3 can be found in "/usr/share/common-licenses/GPL-3".
EOF
chmod 0644 "$DOC/copyright"

{
	printf '%s (%s) unstable; urgency=medium\n\n' "$PKG" "$VERSION"
	printf '  * Built from the repmgr (Rust) source tree by scripts/mkdeb.sh.\n\n'
	printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$DOC/changelog.Debian.gz"
chmod 0644 "$DOC/changelog.Debian.gz"

# Shared-library dependencies: dpkg-shlibdeps (dpkg-dev) when installed,
# else what it computes for the binary on Debian 12.
SHLIBS="libc6 (>= 2.34), libgcc-s1 (>= 4.2), libssl3 (>= 3.0.0)"
if command -v dpkg-shlibdeps >/dev/null; then
	mkdir "$WORK/src" "$WORK/src/debian"
	printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" >"$WORK/src/debian/control"
	computed=$(cd "$WORK/src" && dpkg-shlibdeps -O -e"$PKGROOT$PG_BINDIR/repmgr" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
	if [ -n "$computed" ]; then SHLIBS=$computed; fi
else
	echo "NOTICE: dpkg-shlibdeps not found (dpkg-dev): Depends lists Debian 12's libraries" >&2
fi

# Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded
# up to a KiB, one for each directory and symlink.
SIZE=$(find "$PKGROOT" -mindepth 1 -printf '%y %s\n' | awk '
	$1 == "f" { n += int(($2 + 1023) / 1024); next } { n += 1 } END { print n }')

install -d -m 0755 "$PKGROOT/DEBIAN"
# Relations to Debian's repmgr:
# - Conflicts and Replaces postgresql-15-repmgr: it owns
#   /usr/lib/postgresql/15/bin/repmgr and repmgrd, so apt removes it when
#   this package is installed (its repmgr-common, with the /usr/bin/repmgr
#   wrapper, may stay: the wrapper then runs this binary).
# - No Provides: postgresql-15-repmgr. A package depending on it may need
#   the repmgr extension (repmgr.so and its SQL files), which this package
#   does not ship; Provides would satisfy that dependency and break it.
# Depends on postgresql-15 (the server package, which pulls in the
# client): repmgr runs pg_ctl, pg_rewind and pg_basebackup from
# /usr/lib/postgresql/15/bin.
cat >"$PKGROOT/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: $SHLIBS, postgresql-$PG_MAJOR
Recommends: openssh-client, rsync
Conflicts: $DEBIAN_REPMGR
Replaces: $DEBIAN_REPMGR
Section: database
Priority: optional
Description: replication manager for PostgreSQL (repmgr and repmgrd, in Rust)
 A reimplementation of repmgr $UPSTREAM: the repmgr command (register nodes,
 clone, promote, follow, switch over, rejoin, check) and the repmgrd daemon
 (monitoring and automatic failover), with the same configuration file,
 metadata schema and command line, but without the C extension: nothing
 needs to be loaded into PostgreSQL.
 .
 Installs /usr/lib/postgresql/$PG_MAJOR/bin/repmgr and repmgrd in place of
 $DEBIAN_REPMGR, and the systemd units repmgrd.service and
 repmgrd@.service (one per cluster, e.g. repmgrd@$PG_MAJOR-main).
EOF

# Maintainer scripts: let systemd see the units (no unit is enabled or
# started), and stop running daemons before the binary goes away.
cat >"$PKGROOT/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
cat >"$PKGROOT/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
	systemctl stop repmgrd.service 'repmgrd@*.service' >/dev/null 2>&1 || true
fi
EOF
cat >"$PKGROOT/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
chmod 0755 "$PKGROOT/DEBIAN/postinst" "$PKGROOT/DEBIAN/prerm" "$PKGROOT/DEBIAN/postrm"
chmod 0644 "$PKGROOT/DEBIAN/control"

(cd "$PKGROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$PKGROOT/DEBIAN/md5sums"
chmod 0644 "$PKGROOT/DEBIAN/md5sums"

# Directories 0755 whatever the umask; reproducible timestamps.
find "$PKGROOT" -type d -exec chmod 0755 {} +
find "$PKGROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUTDIR"
DEB=$OUTDIR/${PKG}_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group --build "$PKGROOT" "$DEB" >/dev/null
echo "$DEB"
