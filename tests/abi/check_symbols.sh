#!/bin/sh
# Fails when libmproc.so exports any symbol not named mproc_* (the version node MPROC_0 aside).
set -eu
lib="$1"
all=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//')
[ -n "$all" ] || { echo "no exported symbols found in $lib"; exit 1; }
bad=$(printf '%s\n' "$all" | grep -v '^mproc_' || true)
if [ -n "$bad" ]; then
  echo "symbols exported without the mproc_ prefix:"; printf '%s\n' "$bad"; exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libmproc.so.0" ] || { echo "soname is '$soname', expected libmproc.so.0"; exit 1; }
# The Debian symbols file is the record of the ABI: every exported function is listed there (a
# new one with the version that brings it), and nothing listed has gone.
if [ -n "${2:-}" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  grep -o '^ mproc_[A-Za-z0-9_]*' "$2" | tr -d ' ' | sort > "$tmp/listed"
  printf '%s\n' "$all" | grep '^mproc_' | sort > "$tmp/exported"
  new=$(comm -23 "$tmp/exported" "$tmp/listed"); gone=$(comm -13 "$tmp/exported" "$tmp/listed")
  [ -z "$new" ] || { echo "exported but not in $2 (add ' <name>@MPROC_0 <version>'):"; echo "$new"; }
  [ -z "$gone" ] || { echo "in $2 but no longer exported (an ABI break):"; echo "$gone"; }
  [ -z "$new$gone" ] || exit 1
fi
echo "$(printf '%s\n' "$all" | wc -l) exported symbols, all mproc_*; soname $soname"
