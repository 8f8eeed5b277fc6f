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
echo "$(printf '%s\n' "$all" | wc -l) exported symbols, all mproc_*; soname $soname"
