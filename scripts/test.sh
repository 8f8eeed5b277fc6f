#!/bin/sh
# Builds mproc and runs every test suite through CTest: a release build (C suites, ABI and install
# checks, the Python binding's pytest suites and examples), then a debug build of the C suites
# with AddressSanitizer and UndefinedBehaviorSanitizer (an ASan extension cannot be loaded into
# Debian's python3, so the bindings are left out there). Installs missing Debian packages first.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --timeout 300)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMPROC_SANITIZE=ON -DMPROC_BUILD_BENCH=OFF -DMPROC_BUILD_PYTHON=OFF -DMPROC_BUILD_LUA=OFF -DMPROC_BUILD_MPI=OFF > /dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 300)
