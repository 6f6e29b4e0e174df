#!/usr/bin/env bash
# Builds the example agents of the Rust guest SDK (sdk/quire-agent/examples)
# for wasm32-unknown-unknown and refreshes sdk/prebuilt/*.wasm, which the
# test suite and benchmarks load. Adds the wasm32 target with rustup when it
# is missing; where that cannot be done, says so and leaves the prebuilt
# modules as they are (exit 0 with --if-possible, 1 otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
if_possible=false
[ "${1:-}" = "--if-possible" ] && if_possible=true
give_up() {
  echo "build-agents: $1; the prebuilt modules in sdk/prebuilt are used as they are" >&2
  $if_possible && exit 0 || exit 1
}
target=wasm32-unknown-unknown
if ! rustc --print target-libdir --target "$target" >/dev/null 2>&1 ||
   [ ! -d "$(rustc --print target-libdir --target "$target" 2>/dev/null)" ]; then
  command -v rustup >/dev/null || give_up "the $target target is missing and rustup is not here to add it"
  rustup target add "$target" >/dev/null 2>&1 || give_up "rustup could not add the $target target"
fi
(cd sdk && cargo build --quiet --release --target "$target" --examples) || give_up "the SDK examples did not build"
mkdir -p sdk/prebuilt
for agent in echo counter forwarder aggregator; do
  cp "sdk/target/$target/release/examples/$agent.wasm" "sdk/prebuilt/$agent.wasm"
done
echo "build-agents: sdk/prebuilt/{echo,counter,forwarder,aggregator}.wasm rebuilt"
