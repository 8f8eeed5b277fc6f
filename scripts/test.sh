#!/bin/sh
# Builds mproc and runs every test suite through CTest: a release build (C suites, ABI and install
# checks, the Python binding's pytest suites and examples), then a debug build of the C suites
# with AddressSanitizer and UndefinedBehaviorSanitizer (an ASan extension cannot be loaded into
# Debian's python3, so the bindings are left out there), then the libFuzzer targets (clang) for a
# short bounded run each, and the C suites under ThreadSanitizer (docs/testing.md). Installs
# missing Debian packages first.
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
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DMPROC_FUZZ=ON -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF -DMPROC_BUILD_STATIC=OFF -DMPROC_BUILD_PYTHON=OFF -DMPROC_BUILD_LUA=OFF -DMPROC_BUILD_MPI=OFF > /dev/null
cmake --build build-fuzz -j"$jobs"
(cd build-fuzz && ctest --output-on-failure -j"$jobs")
cmake -S . -B build-tsan -DMPROC_SANITIZE_THREAD=ON -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF -DMPROC_BUILD_STATIC=OFF -DMPROC_BUILD_PYTHON=OFF -DMPROC_BUILD_LUA=OFF -DMPROC_BUILD_MPI=OFF > /dev/null
cmake --build build-tsan -j"$jobs"
# The 256 MiB message is left out here: TSan's instrumented copies make it take minutes.
(cd build-tsan && ctest --output-on-failure --timeout 300 -E 'message_of_256_mib')
