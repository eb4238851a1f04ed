#!/usr/bin/env bash
# The fault tests five times in a row on a busy machine: `stress-ng --cpu 2` keeps two cores
# busy (bounded by its --timeout) while `./dev test tests/faults` runs, each run bounded too.
# A worker or server that races its own start-up, or gives up while the database is away,
# fails here first. Extra arguments go to pytest; TEST_DATABASE_URL is honoured as usual.
#   tests/faults/stress.sh [-x] [-k restart]
#   RUNS=5 RUN_TIMEOUT=900 STRESS_TIMEOUT=5400 tests/faults/stress.sh
# Needs stress-ng (Debian package `stress-ng`).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-5}
run_timeout=${RUN_TIMEOUT:-900}
stress_timeout=${STRESS_TIMEOUT:-$((runs * run_timeout))}
command -v stress-ng >/dev/null || { echo "stress: needs stress-ng (Debian package stress-ng)" >&2; exit 2; }

stress-ng --cpu 2 --timeout "${stress_timeout}s" --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true' EXIT

started=$(date +%s)
for i in $(seq 1 "$runs"); do
  echo "stress: run $i of $runs (stress-ng --cpu 2, pid $stress_pid)"
  if ! timeout "$run_timeout" ./dev test tests/faults -n 0 -q -p no:cacheprovider "$@"; then
    echo "stress: run $i of $runs FAILED after $(( $(date +%s) - started )) s" >&2
    exit 1
  fi
done
echo "stress: all $runs runs of tests/faults passed under stress-ng --cpu 2 in $(( $(date +%s) - started )) s"
