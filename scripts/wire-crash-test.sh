#!/usr/bin/env bash
# The crash test at the node's edge, for as many cycles as asked (default
# 100): a `quire node` process whose counters are called over the wire is
# killed with SIGKILL at random moments and restarted; no increment a reply
# acknowledged may be lost, in batched and in immediate mode.
#   scripts/wire-crash-test.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-100}"
bash scripts/setup-host.sh >/dev/null
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true
QUIRE_WIRE_CRASH_CYCLES="$cycles" exec cargo test -q -p quire-runtime --test wire_crash -- --nocapture --test-threads 1
