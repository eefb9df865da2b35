#!/bin/sh
# Model check of two real bbwd-core Nodes (agent/model): a breadth-first search of every
# interleaving up to a bound, then seeded random walks that go deeper (more faults, longer
# runs). Release build. The last line is always
#   model: S states, depth D, complete|bounded, V violations
# and the exit code is 0 only when V = 0.
#   scripts/model-check.sh                 full bound: 1,200,000 states breadth-first (3 faults
#                                          per trace), then 20,000 walks
#   scripts/model-check.sh --ci            CI bound (300,000 states, 5,000 walks) and every mutant
#   scripts/model-check.sh --mutant NAME   re-introduce a known defect: must exit 1, printing the
#                                          counterexample
#   scripts/model-check.sh --list-mutants
# Extra arguments go to model-check (--faults K, --max-states N, --max-depth D, --horizon-ms T,
# --walks N, --seed S; --persistent-record and --allow-spin re-enable two defects the checker
# found first, for the record).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -q -p bbwd-model
bin=target/release/model-check
mutant_bound="--faults 3 --max-states 400000 --walks 20000"
case "${1:-}" in
--list-mutants) exec "$bin" --list-mutants ;;
--mutant)
    # shellcheck disable=SC2086
    exec "$bin" $mutant_bound "$@" ;;
--ci)
    shift
    fail=0
    out=$(mktemp -d)
    for m in $("$bin" --list-mutants | cut -d' ' -f1); do
        # shellcheck disable=SC2086
        if "$bin" $mutant_bound --mutant "$m" >"$out/$m.txt" 2>/dev/null; then
            echo "mutant $m SURVIVED: the checker did not find the defect"
            fail=1
        else
            echo "mutant $m killed: $(head -1 "$out/$m.txt") ($(tail -1 "$out/$m.txt"))"
        fi
    done
    rm -rf "$out"
    "$bin" --faults 3 --max-states 300000 --walks 5000 "$@" || fail=1
    exit $fail ;;
*) exec "$bin" --faults 3 --max-states 1200000 --walks 20000 "$@" ;;
esac
