#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 3s).
set -euo pipefail
t=${1:-3s}
go=${GO:-go}
fail=0 n=0
for pkg in $($go list ./...); do
  for f in $($go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    n=$((n + 1))
    if ! out=$($go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg" 2>&1); then
      echo "FAIL fuzz $pkg $f"; echo "$out" | tail -20; fail=1
    else
      echo "ok   fuzz $pkg $f ($t)"
    fi
  done
done
echo "fuzz smoke: $n targets"
exit $fail
