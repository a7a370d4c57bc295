#!/usr/bin/env bash
# probes.route_latency: bench/trace/route_latency.bt attached with bpftrace
# to a running portico-hello (server probes) and portico-gateway's built-in
# demo (gateway probes, and the demo's in-process upstreams' server probes):
# requests sent with curl must show up counted by route pattern, exactly.
# Then upstream_connect and upstream_response_head's arguments on the demo:
# a new upstream connection (from_pool 0), then the pooled one (1).
#
#   run_route_latency_test.sh SCRIPT.bt PORTICO-HELLO PORTICO-GATEWAY
#
# Exits 77 (ctest: skipped) with the reason when bpftrace cannot attach
# here: not installed, not root, or the kernel refuses BPF/uprobes.
#
# No sleeps: bpftrace runs BEGIN only once every probe is attached, so the
# requests go after its first line; each request_done fires before the
# response leaves (local answers), or before the next request on the same
# connection is read (proxied ones: a last local 404 on that connection
# closes the set). The script runs with one probe added that calls exit()
# when a request for a stop target starts (its route is not checked): a
# SIGINT that lands before bpftrace waits for events is lost (seen with
# bpftrace 0.17), an exit() from the kernel side is not.
set -euo pipefail
script=$1 hello=$2 gateway=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

command -v bpftrace >/dev/null || skip "bpftrace not installed (apt-get install bpftrace)"
[[ $(id -u) == 0 ]] || skip "bpftrace needs root (running as uid $(id -u))"
# A uprobe on the program's main (no USDT involved): can bpftrace attach
# user-space probes at all here? (BEGIN runs once it has.)
if ! probe_check=$(timeout 60 bpftrace -e "uprobe:$hello:main {} BEGIN { printf(\"ready\n\"); exit(); }" 2>&1) ||
   [[ $probe_check != *ready* ]]; then
  skip "bpftrace cannot attach uprobes here: $(tr '\n' ' ' <<<"$probe_check")"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# trace PID BINARY STOP-TARGET [SCRIPT]: starts SCRIPT (default: the one
# under test) on PID; returns once it is attached (its BEGIN line read).
# Sets $tracer and $trace_out.
trace() {
  local pid=$1 bin=$2 stop=$3 program=${4:-$script} line
  trace_out="$work/trace.$pid.${program##*/}"
  mkfifo "$trace_out.fifo"
  { cat "$program"
    printf 'usdt:$1:portico:request_start /str(arg3, arg4) == "%s"/ { exit(); }\n' "$stop"
  } >"$trace_out.bt"
  bpftrace -p "$pid" "$trace_out.bt" "$bin" >"$trace_out.fifo" 2>"$trace_out.err" &
  tracer=$!
  pids+=("$tracer")
  exec {trace_fd}<"$trace_out.fifo"
  while IFS= read -r -t 120 -u "$trace_fd" line; do
    [[ $line == Tracing* ]] && return 0
  done
  fail "bpftrace did not attach: $(cat "$trace_out.err")"
}

# finish URL: stops the tracer with a request for its stop target (it prints
# the maps as it exits) and keeps its output.
finish() {
  curl -sS --max-time 10 "$1" >/dev/null || fail "curl $1 failed"
  cat <&"$trace_fd" >"$trace_out" || true
  wait "$tracer" || fail "bpftrace exited with $?: $(cat "$trace_out.err")"
  exec {trace_fd}<&-
  echo "--- bpftrace printed:"
  cat "$trace_out"
}

# expect_count ROUTE N: the script counted N requests of ROUTE.
expect_count() {
  local got
  got=$(awk -v key="@requests[$1]:" 'index($0, key) == 1 { print $NF }' "$trace_out")
  [[ $got == "$2" ]] || fail "@requests[$1]: got '${got}', want $2"
  grep -qF "@latency_us[$1]:" "$trace_out" || fail "no histogram for $1"
  echo "ok: $1 counted $2"
}

# ---- portico-hello: the server's probes ----------------------------------------
exec {out}< <(exec "$hello" --port 0 --threads 1)
server=$!
pids+=("$server")
IFS= read -r -t 30 -u "$out" line || fail "no listening line from portico-hello"
[[ $line =~ http://127\.0\.0\.1:([0-9]+)/ ]] || fail "unexpected first line: $line"
base="http://127.0.0.1:${BASH_REMATCH[1]}"
trace "$server" "$hello" /json
curl -sS --max-time 10 "$base/plaintext" "$base/plaintext" "$base/plaintext" \
  "$base/users/1" "$base/users/2" "$base/missing" >/dev/null || fail "curl to portico-hello failed"
curl -sS --max-time 10 -X POST "$base/plaintext" >/dev/null || fail "curl to portico-hello failed"
finish "$base/json"
expect_count /plaintext 3
expect_count /users/:id 2
expect_count "(no route)" 2  # the 404 and the 405
kill -TERM "$server"
wait "$server" || fail "portico-hello exited with $?"

# ---- portico-gateway's demo: the gateway's probes --------------------------------
# shellcheck source=../cli/gateway_demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/../cli/gateway_demo.sh"
start_gateway_demo "$gateway"
gw=$demo_pid
pids+=("$gw")
trace "$gw" "$gateway" /ready
# One connection: the 404 last is read only once the proxied ones are done.
curl -sS --max-time 10 "$base/api/users/1" "$base/api/users/2" \
  "$base/api/users/3" "$base/nothing-here" >/dev/null || fail "curl to portico-gateway failed"
finish "$admin/ready"  # the admin listener is a portico server too
expect_count /api/users/:id 3
expect_count /users/:id 3  # the demo's upstream, a portico server in the same process
expect_count "(no route)" 1

# The gateway's own probes and their arguments: two proxied requests on one
# client connection, both to the canary cluster (one endpoint): a new
# upstream connection, then the pooled one.
cat >"$work/upstream.bt" <<'BT'
BEGIN { printf("Tracing\n"); }
usdt:$1:portico:upstream_connect { printf("connect %d %s\n", arg1, str(arg2, arg3)); }
usdt:$1:portico:upstream_response_head { printf("head %d %d\n", arg1, arg2); }
BT
trace "$gw" "$gateway" /ready "$work/upstream.bt"
curl -sS --max-time 10 -H 'X-Release-Version: v2-beta' "$base/api/users/1" "$base/api/users/2" \
  >/dev/null || fail "curl to portico-gateway failed"
finish "$admin/ready"
mapfile -t lines < <(grep -E '^(connect|head) ' "$trace_out")
[[ ${#lines[@]} == 4 && ${lines[0]} =~ ^connect\ 0\ 127\.0\.0\.1:[0-9]+$ &&
   ${lines[1]} == "head 200 0" && ${lines[2]} == "connect 1 ${lines[0]#connect 0 }" &&
   ${lines[3]} == "head 200 0" ]] ||
  fail "upstream probes: got '${lines[*]}', want connect 0 ADDR, head 200 0, connect 1 ADDR, head 200 0"
echo "ok: upstream_connect (new, then pooled) and upstream_response_head"
kill -TERM "$gw"
wait "$gw" || fail "portico-gateway exited with $?"
echo "ok: route_latency.bt"
