#!/usr/bin/env bash
# Builds Quire in release mode and runs a node on the embedded default
# configuration: one shard per CPU of this process's affinity mask, demo
# agents calling each other across shards, a latency summary every 2 s,
# until Ctrl-C. Extra arguments go to `quire node` (e.g. --cpuset 0-1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
ulimit -l unlimited 2>/dev/null || true
cargo build --release -p quire-runtime --bin quire
exec target/release/quire node "$@"
