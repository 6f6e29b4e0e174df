#!/usr/bin/env bash
# Builds Quire and runs a node on the embedded default configuration with
# --demo: one shard per CPU of this process's affinity mask, demo agents
# calling each other across shards, a latency summary every 2 s, until
# Ctrl-C. Extra arguments go to `quire node` (e.g. --cpuset 0-1).
#
# It builds exactly what scripts/test.sh builds (the workspace's test build:
# the same profile, the same feature set), so running the tests afterwards
# rebuilds nothing. That profile optimises every dependency and lightly
# optimises Quire's own crates (Cargo.toml, [profile.dev]); benchmarks and
# production use `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true
cargo test --workspace --no-run --quiet
exec target/debug/quire node --demo "$@"
