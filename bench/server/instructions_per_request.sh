#!/usr/bin/env bash
# instructions_per_request.sh: user-space instructions portico-hello spends
# per request, counted by callgrind — a figure the shared, noisy machine does
# not move, unlike CPU time.
#
#   bench/server/instructions_per_request.sh [--portico BIN] [--duration S]
#       [--no-metrics] [PATH...]
#
# For each PATH (default /plaintext /users/42): runs BIN (default
# build/release/examples/portico-hello) under valgrind --tool=callgrind with
# one thread on 127.0.0.1:28090, drives it with wrk -t1 -c64 for S seconds
# (default 4), and divides the instructions by the requests wrk completed,
# after subtracting a run of the same binary that served no load (startup and
# shutdown). --no-metrics passes --no-metrics to BIN (ServerOptions::metrics
# off), to measure what the request metrics cost. Needs valgrind and wrk
# (.ci/setup --bench).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"
bin="$here/../../build/release/examples/portico-hello"
duration=4
port=28090
paths=()
server_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --portico) bin=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --no-metrics) server_args+=(--no-metrics); shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) paths+=("$1"); shift ;;
  esac
done
((${#paths[@]})) || paths=(/plaintext /users/42)
for tool in valgrind wrk curl callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "needs $tool (.ci/setup --bench)" >&2; exit 1; }
done
work=$(mktemp -d)
server=""
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

# Prints the instructions of one run; drives `$1` for `$2` seconds (0: none)
# and leaves the request count in $work/requests.
measure() {
  local path=$1 seconds=$2 out="$work/callgrind.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --port "$port" --threads 1 "${server_args[@]}" \
    >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/plaintext" && break
    sleep 0.1
  done
  echo 0 >"$work/requests"
  if ((seconds > 0)); then
    wrk -t1 -c64 -d"${seconds}s" "http://127.0.0.1:$port$path" |
      awk '/requests in/ {print $1}' >"$work/requests"
  fi
  interrupt_and_wait "$server"
  callgrind_total "$out"
}

base=$(measure /plaintext 0)
printf '%-12s %10s %14s\n' path requests instr/request
for path in "${paths[@]}"; do
  total=$(measure "$path" "$duration")
  requests=$(cat "$work/requests")
  printf '%-12s %10s %14s\n' "$path" "$requests" $(((total - base) / requests))
done
