#!/usr/bin/env bash
# The whole test suite: host set-up, formatting, lints, and every crate's
# tests (unit, integration, doc tests). Exits non-zero on any failure and
# ends with one summary line: "tests: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

# The guest SDK's example agents, rebuilt when the wasm32 target can be had
# (the tests load sdk/prebuilt/*.wasm either way).
bash scripts/build-agents.sh --if-possible

cargo fmt --all -- --check
(cd sdk && cargo fmt --all -- --check)
cargo clippy --workspace --all-targets --quiet -- -D warnings
mkdir -p target
set +e
cargo test --workspace 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e
# Only cargo's own summary lines count (tests print figures of their own).
summaries() { grep -E '^test result: ' target/test-output.log | grep -Eo "[0-9]+ $1" || true; }
passed=$(summaries passed | awk '{s+=$1} END {print s+0}')
failed=$(summaries failed | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
