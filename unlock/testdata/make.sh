#!/bin/sh
# Remakes the LUKS2 volumes of the known-answer test and the fuzz seeds:
# small volumes whose keyslot area is cut to one slot and whose data is one
# 4 KiB sector right after it. NAME.key opens NAME.img; NAME.volume-key is
# the volume key in hex, as cryptsetup recovers it.
set -eu
cd "$(dirname "$0")"
make() {
	name=$1
	shift
	printf 'keel test key for %s\n' "$name" >"$name.key"
	rm -f "$name.img"
	truncate -s 1M "$name.img"
	cryptsetup luksFormat --type luks2 -q --key-size 256 --luks2-metadata-size 16384 \
		--luks2-keyslots-size 131072 --offset 320 "$@" "$name.img" "$name.key" 2>/dev/null
	truncate -s 167936 "$name.img"
	cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$name.key" "$name.img" |
		awk '/MK dump:|Volume key:/ { on = 1; sub(/.*:/, "") } on && !/^[ \t]/ && !/:/ { on = 0 } on { printf "%s", $0 }' |
		tr -d ' \t' >"$name.volume-key"
	echo >>"$name.volume-key"
}
make argon2id --pbkdf argon2id --pbkdf-memory 64 --pbkdf-force-iterations 4 --pbkdf-parallel 1
make pbkdf2-sha512 --pbkdf pbkdf2 --hash sha512 --pbkdf-force-iterations 1000 --sector-size 4096
