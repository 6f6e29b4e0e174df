#!/usr/bin/env bash
# Runs the storage crash test for as many cycles as asked (default 100):
# a durable node under load is killed with SIGKILL at random moments and
# restarted; every acknowledged message must survive, none be handled twice.
#   scripts/crash-test.sh [CYCLES] [extra quire-bench crash options...]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-100}"
shift || true
bash scripts/setup-host.sh >/dev/null
ulimit -l unlimited 2>/dev/null || true
exec cargo run --release -q -p quire-bench -- crash --cycles "$cycles" "$@"
