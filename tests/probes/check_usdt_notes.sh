#!/usr/bin/env bash
# probes.usdt_notes: the USDT probes (src/server/probes.hpp) are in a built
# binary's .note.stapsdt section, each with provider `portico`, as
# `readelf -n` (binutils) lists them.
#
#   check_usdt_notes.sh BINARY PROBE...
#
# Exits 77 (ctest: skipped) when readelf is missing.
set -euo pipefail
bin=$1
shift
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v readelf >/dev/null || { echo "SKIP: readelf (binutils) not installed"; exit 77; }

notes=$(readelf -n "$bin") || fail "readelf -n $bin failed"
# One "provider:name" line per probe site.
sites=$(awk '/^Displaying notes found in:/ { sdt = ($NF == ".note.stapsdt") }
             sdt && $1 == "Provider:" { provider = $2 }
             sdt && $1 == "Name:" { print provider ":" $2 }' <<<"$notes")
[[ -n $sites ]] || fail "$bin has no .note.stapsdt section"
for probe in "$@"; do
  grep -qx "portico:$probe" <<<"$sites" || fail "$bin: no probe portico:$probe (found: $(sort -u <<<"$sites" | tr '\n' ' '))"
  echo "ok: portico:$probe in $(basename "$bin") ($(grep -cx "portico:$probe" <<<"$sites") site(s))"
done
# Nothing of ours under another provider name.
others=$(grep -v '^portico:' <<<"$sites" | grep -E ':(request_start|route_matched|upstream_connect|upstream_response_head|request_done)$' || true)
[[ -z $others ]] || fail "probes under another provider: $others"
