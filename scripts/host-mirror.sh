#!/bin/bash
# host-mirror.sh — print the first Debian archive URI of the host's apt
# sources (deb822 .sources first, then sources.list), so image builds use the
# same reachable mirror apt-get uses here; nothing when there is none.
set -euo pipefail
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	uri=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' "$f")
	[ -n "$uri" ] && { echo "$uri"; exit 0; }
done
if [ -f /etc/apt/sources.list ]; then
	awk '$1 == "deb" && $2 !~ /^\[/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list
fi
