#!/usr/bin/env bash
# make install's guard: refuse to overwrite files that an installed Debian
# package owns.
#
#   scripts/install-guard.sh PATH...
#
# PATH is each file make install is about to write, without DESTDIR. For
# each one that exists and that dpkg says belongs to a package other than
# ours (repmgr-rs, from make deb), the guard reports the owner and exits 1
# before anything is copied. Nothing is checked:
#   - with DESTDIR set (a staging directory: its files belong to no package);
#   - with FORCE=1 (each package-owned file is then named in a warning);
#   - without dpkg (not a Debian system).
set -euo pipefail

OUR_PACKAGE=repmgr-rs

if [ -n "${DESTDIR:-}" ]; then
	exit 0
fi
if ! command -v dpkg-query >/dev/null; then
	exit 0
fi

# The packages owning PATH, one a line, ours left out. dpkg-query -S prints
# "pkg1, pkg2: PATH" (and "diversion by ..." lines, skipped).
owners() {
	local out line
	out=$(dpkg-query -S "$1" 2>/dev/null) || return 0
	while IFS= read -r line; do
		case $line in
		"diversion by "*) continue ;;
		*": $1") ;;
		*) continue ;;
		esac
		line=${line%": $1"}
		tr ',' '\n' <<<"$line" | sed 's/^ *//; s/ *$//; s/:[^:]*$//'
	done <<<"$out" | grep -vxF "$OUR_PACKAGE" | sort -u || true
}

owned=()
packages=()
for path in "$@"; do
	if [ ! -e "$path" ] && [ ! -L "$path" ]; then
		continue
	fi
	pkgs=$(owners "$path")
	if [ -z "$pkgs" ]; then
		continue
	fi
	owned+=("$path (package $(paste -sd, - <<<"$pkgs" | sed 's/,/, /g'))")
	while IFS= read -r p; do packages+=("$p"); done <<<"$pkgs"
done

if [ ${#owned[@]} -eq 0 ]; then
	exit 0
fi
if [ "${FORCE:-}" = 1 ]; then
	for o in "${owned[@]}"; do
		printf 'WARNING: overwriting %s (FORCE=1)\n' "$o" >&2
	done
	exit 0
fi

pkglist=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd' ' -)
{
	if [ ${#owned[@]} -eq 1 ]; then
		printf 'ERROR: make install would overwrite a file of an installed package\n'
	else
		printf 'ERROR: make install would overwrite %d files of installed packages\n' "${#owned[@]}"
	fi
	for o in "${owned[@]}"; do
		printf 'DETAIL: %s\n' "$o"
	done
	printf 'HINT: remove the package first ("apt remove %s"), or install the package "make deb" builds instead (it replaces postgresql-15-repmgr), or overwrite anyway with "make install FORCE=1"\n' "$pkglist"
} >&2
exit 1
