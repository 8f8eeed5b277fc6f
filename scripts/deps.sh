#!/bin/sh
# Installs the Debian packages mproc needs that are missing (run as root on Debian 12).
set -eu
# python3-mpi4py: only for bench/bench_mpi.py's comparison with mpi4py.futures and the optional
# test mproc.python.mpi.with_mpi4py; mproc.mpi itself runs on libmproc-mpi (no mpi4py).
pkgs="build-essential cmake pkg-config libuv1-dev libcmocka-dev swig python3 python3-dev python3-pytest python3-cloudpickle lua5.4 liblua5.4-dev libopenmpi-dev openmpi-bin python3-mpi4py debhelper dh-python lintian clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
