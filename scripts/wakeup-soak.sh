#!/usr/bin/env bash
# Runs the node, storage and network test binaries (embedded nodes and real
# `quire node` processes) again and again, counting the reactor's safety
# nets over every node they start: the watchdog's nudges (a reactor asleep
# past its own timers) and the heartbeat's rescues (work a lost wake-up left
# waiting a whole heartbeat). Correct wake-ups mean 0 of both and no hang.
#
#   bash scripts/wakeup-soak.sh [RUNS] [TEST...]   (default: 200 runs of
#   node, node_process, network, cluster, storage, storage_faults)
#
# A run that takes longer than 300 s is a hang (its threads' kernel stacks
# go to /tmp/quire-soak-hang-RUN.txt). Every node appends one line
# to $QUIRE_SAFETY_NET_LOG when its watchdog stops (a node killed with
# SIGKILL writes none). Exits non-zero on any hang, failure, nudge or rescue.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
shift || true
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(node node_process network cluster storage storage_faults)
fi
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
# The binaries, built once (the same profile and features as the suite).
mapfile -t binaries < <(cargo test --workspace "${args[@]}" --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null and .target.kind == ["test"]) | .executable')
[ ${#binaries[@]} -eq ${#tests[@]} ] || { echo "wakeup-soak: found ${#binaries[@]} of ${#tests[@]} test binaries" >&2; exit 2; }

# Each thread of process $1: name, state, kernel wait channel, system call.
dump_threads() {
    for task in /proc/"$1"/task/*; do
        echo "$(cat "$task/comm") $(awk '{print $3}' "$task/stat") wchan=$(cat "$task/wchan") syscall=$(cat "$task/syscall")"
        cat "$task/stack" 2>/dev/null | sed 's/^/    /'
    done
}

export QUIRE_SAFETY_NET_LOG
QUIRE_SAFETY_NET_LOG=$(mktemp /tmp/quire-safety-nets.XXXXXX)
hangs=0
failures=0
declare -A nudged # test binary -> nudges its nodes counted
started=$(date +%s)
for ((run = 1; run <= runs; run++)); do
    for bin in "${binaries[@]}"; do
        before=$(awk '{s += $2} END {print s + 0}' "$QUIRE_SAFETY_NET_LOG")
        set +e
        (cd runtime && exec "$bin" -q >"/tmp/quire-soak-last.log" 2>&1) &
        pid=$!
        waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < 3000)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            # A hang: where every thread sleeps, before it is killed.
            dump_threads "$pid" >"/tmp/quire-soak-hang-$run.txt" 2>&1
            kill -9 "$pid"
            wait "$pid" 2>/dev/null
            status=124
        else
            wait "$pid"
            status=$?
        fi
        set -e
        name=$(basename "$bin" | sed 's/-[0-9a-f]*$//')
        after=$(awk '{s += $2} END {print s + 0}' "$QUIRE_SAFETY_NET_LOG")
        nudged[$name]=$(( ${nudged[$name]:-0} + after - before ))
        if [ $status -eq 124 ]; then
            hangs=$((hangs + 1))
            echo "run $run: $(basename "$bin") hung (300 s)" >&2
        elif [ $status -ne 0 ]; then
            failures=$((failures + 1))
            echo "run $run: $(basename "$bin") failed:" >&2
            tail -20 /tmp/quire-soak-last.log >&2
        fi
    done
    if ((run % 10 == 0)); then
        echo "wakeup-soak: $run/$runs runs, $(( $(date +%s) - started )) s" >&2
    fi
done
stops=$(wc -l <"$QUIRE_SAFETY_NET_LOG")
nudges=$(awk '{s += $2} END {print s + 0}' "$QUIRE_SAFETY_NET_LOG")
rescues=$(awk '{s += $4} END {print s + 0}' "$QUIRE_SAFETY_NET_LOG")
# A figure of every line, by its name (lines are `name value` pairs).
total() { awk -v name="$1" '{for (i = 1; i < NF; i += 2) if ($i == name) s += $(i + 1)} END {print s + 0}' "$QUIRE_SAFETY_NET_LOG"; }
oversleeps=$(total oversleeps)
missed=$(total missed)
untimed=$(total untimed)
past_timer=$(total past_timer)
ready_parks=$(total ready_parks)
for name in "${!nudged[@]}"; do echo "  ${name}: ${nudged[$name]} nudges"; done
echo "wakeup-soak: ${runs} runs of ${tests[*]} in $(( $(date +%s) - started )) s: hangs ${hangs}, failures ${failures}, node stops ${stops}, nudges ${nudges}, rescues ${rescues}, oversleeps ${oversleeps}, missed wake-ups ${missed}; sleeps a signal ended with no timer ${untimed}, past their timer ${past_timer}; parks skipped with tasks ready ${ready_parks}"
[ "$hangs" -eq 0 ] && [ "$failures" -eq 0 ] && [ "$nudges" -eq 0 ] && [ "$rescues" -eq 0 ]
