#!/bin/sh
# Run one fuzz target for a bounded time: run.sh <target> <seed corpus dir> <seconds> [flags...]
# New inputs go to a scratch corpus beside the binary (the seeds in the tree are only read); a
# crash, leak, out-of-bounds access or an input taking over 10 s (a hang) fails the run, and the
# input is saved as <binary>-crash-* / -timeout-* for replay (<binary> <file>).
set -eu
bin=$1 seeds=$2 secs=$3
shift 3
work="$bin.corpus"
mkdir -p "$work"
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$bin-" "$@" "$work" "$seeds"
