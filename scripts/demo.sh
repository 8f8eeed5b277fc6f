#!/bin/sh
# Builds mproc and runs the tutorial's examples in C (examples/) and, when the Python binding
# is built, in Python (bindings/python/examples/). Installs missing Debian packages first.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j"$(nproc)" > /dev/null
for ex in process_jobs pool_map pool_map_async pool_errors producer_consumer shared_value_array lock_counter; do
  if [ -x "build/examples/$ex" ]; then
    echo "== C: examples/$ex.c"
    "build/examples/$ex"
  fi
done
if [ -d build/bindings/python ] && [ -d bindings/python/examples ]; then
  for ex in bindings/python/examples/*.py; do
    echo "== Python: $ex"
    env -u PYTHONUNBUFFERED PYTHONPATH=build/bindings/python /usr/bin/python3 "$ex"
  done
fi
