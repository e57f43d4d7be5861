#!/usr/bin/env bash
# Puts "// SPDX-License-Identifier: Apache-2.0" and a blank line at the top
# of every tracked .go file that does not start with it (the blank line keeps
# it out of the package's doc comment). Idempotent. With arguments, only the
# tracked .go files under those paths. internal/guard's TestSPDXHeaders
# fails for a file without it.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
header='// SPDX-License-Identifier: Apache-2.0'
n=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue # deleted in the work tree
  first=$(head -n1 -- "$f")
  [ "$first" = "$header" ] && continue
  { printf '%s\n\n' "$header"; cat -- "$f"; } > "$f.spdx.tmp"
  chmod --reference="$f" "$f.spdx.tmp"
  mv -- "$f.spdx.tmp" "$f"
  n=$((n + 1))
done < <(git ls-files -z -- "${@:-.}" | grep -z '\.go$' || true)
echo "spdx: added the header to $n files"
