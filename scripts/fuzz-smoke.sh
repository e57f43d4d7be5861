#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 3s),
# FUZZ_JOBS targets at a time (default 2, the test machines' cores), each
# with one fuzzing worker (-parallel=1): the same fuzzing per core-second as
# one target at a time with a worker per core, but the start-up of each run
# (building and loading the instrumented binary, running the seed corpus)
# overlaps another target's fuzzing instead of leaving a core idle.
set -euo pipefail
t=${1:-3s}
jobs=${FUZZ_JOBS:-2}
go=${GO:-go}
export t go

# one PKG TARGET: runs one target and prints its verdict; the exit status
# is the verdict's.
one() {
  local pkg=$1 f=$2 out
  if ! out=$($go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" -fuzzminimizetime=0 -parallel=1 "$pkg" 2>&1); then
    # Go's fuzzer can end a time-bounded run with "context deadline
    # exceeded" when a new input arrives at the deadline; a real finding
    # always writes its failing input to testdata/fuzz.
    if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
      echo "ok   fuzz $pkg $f ($t; ended at the deadline while adding an input)"
      return 0
    fi
    echo "FAIL fuzz $pkg $f"
    echo "$out" | tail -20
    return 1
  fi
  echo "ok   fuzz $pkg $f ($t)"
}
export -f one

targets=()
for pkg in $($go list ./...); do
  for f in $($go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    targets+=("$pkg" "$f")
  done
done
n=$((${#targets[@]} / 2))
fail=0
# xargs exits 123 when any run failed; each run's lines come out whole.
printf '%s\n' "${targets[@]}" | xargs -n 2 -P "$jobs" bash -c 'one "$@"' _ || fail=1
echo "fuzz smoke: $n targets, $jobs at a time"
exit $fail
