#!/usr/bin/env bash
# The long hardening drills of issue 6 (items 6 and 8), bounded:
#   - shed: wrk holds 3x the permits for SHED_SECS (default 60) against the
#     drover binary (16 permits, a 100 ms fake node, queue_wait 0), sampling
#     RSS, queue depth and permits every second, probing rejection latency;
#   - slowloris / slow bodies: slowhttptest -H and -B with 3000 connections
#     for SLOW_SECS (default 30) each, measuring normal traffic p99 before and
#     during and checking that no slow connection holds a router slot;
#   - SIGTERM: 50 streams in flight finish intact, new connections are refused,
#     drover exits 0.
# Everything runs on 127.0.0.1; each drill kills what it started.
#
#   tests/drills/run.sh              # all drills (about 3 minutes plus the build)
#   tests/drills/run.sh shed         # one drill (a test name filter)
#
# Needs wrk and slowhttptest (installed with apt when missing and possible).
set -euo pipefail
cd "$(dirname "$0")/../.."
for t in wrk slowhttptest; do
  if ! command -v "$t" >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$t"
    else
      echo "missing $t: apt-get install -y $t" >&2; exit 1
    fi
  fi
done
# slowhttptest's connections and drover's both need file descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt 8192 ]; then
  echo "ulimit -n is $(ulimit -n); the slow-client drills need at least 8192" >&2; exit 1
fi
nice -n 10 cargo build --profile prof -p drover
export DROVER_BIN="${DROVER_BIN:-$PWD/target/prof/drover}"
timeout 900 cargo test -p drover-tests --test hardening_drills -- --ignored --nocapture --test-threads 1 "$@"
