#!/usr/bin/env bash
# load_shedding.sh: issue 15's load-shedding goal, measured. An upstream of
# fixed capacity (fixed_capacity_upstream: --service-ms 10 per request, 64
# workers: 6,400 requests/s) behind portico-gateway, whose cluster's circuit
# breaker matches it (max_requests 64, max_pending --pending (64)); h2load
# offers it a rate open loop for --duration S (15), as connections each
# sending --per-connection N (50) requests a second (h2load --rps; they
# start together, so the load comes in bursts of one request a connection):
#
#   under    half the capacity (3,200/s): the reference p99.
#   over     --factor (2) times the capacity (12,800/s).
#   again    the same once more: memory that is bounded stops growing.
#
# For each: requests sent, answered 200, answered 503 (refused: overflow),
# anything else (other statuses, errors, timeouts: goal 0: every request is
# answered or its connection cleanly closed), p50 and p99 of the 200s (from
# h2load's per-request log; goal: the p99 of the admitted stays bounded,
# reported beside the under-load p99), the gateway's VmRSS before and after
# and VmHWM (goal: bounded, a few MiB of growth).
#
#   bench/gateway/load_shedding.sh [--gateway BIN] [--build-dir DIR]
#       [--duration S] [--factor F] [--pending N] [--per-connection N]
#       [--gateway-cpu C] [--client-cpu C] [--base-port P]
#
# The gateway is pinned to --gateway-cpu (0); the upstream and h2load to
# --client-cpu (1). Loopback only; everything started is stopped on exit.
# Writes bench/results/load_shedding.md. Exit status 1 when a goal is missed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"

build_dir="$root/build/release"
gateway=""
duration=15
factor=2
pending=64
per_connection=50
gateway_cpu=0
client_cpu=1
base_port=18400

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --gateway) gateway=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --factor) factor=$2; shift 2 ;;
    --pending) pending=$2; shift 2 ;;
    --per-connection) per_connection=$2; shift 2 ;;
    --gateway-cpu) gateway_cpu=$2; shift 2 ;;
    --client-cpu) client_cpu=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ -n $gateway ]] || gateway="$build_dir/portico-gateway"
upstream_bin="$build_dir/bench/fixed_capacity_upstream"

need h2load nghttp2-client
need curl curl
need taskset util-linux
need python3 python3
require_tools load_shedding.sh
check_cpus load_shedding.sh "$gateway_cpu" "$client_cpu"
for bin in "$gateway" "$upstream_bin"; do
  [[ -x $bin ]] || {
    echo "load_shedding.sh: no $bin (cmake --build $build_dir --target portico-gateway fixed_capacity_upstream)" >&2
    exit 1
  }
done

ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d /tmp/load_shedding.XXXXXX)
results="$root/bench/results"
mkdir -p "$results"
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
up_port=$base_port
gw_port=$((base_port + 1))
up_pid=""
gw_pid=""
missed=0
capacity=6400

cleanup() {
  [[ -n $gw_pid ]] && stop_tree "$gw_pid"
  [[ -n $up_pid ]] && stop_tree "$up_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {  # URL: until it answers 200 (10 s)
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1") == 200 ]] && return 0
    sleep 0.1
  done
  echo "load_shedding.sh: $1 did not answer" >&2
  exit 1
}

taskset -c "$client_cpu" "$upstream_bin" "$up_port" --workers 64 --service-ms 10 \
  >"$tmp/upstream.out" 2>&1 &
up_pid=$!
wait_for "http://127.0.0.1:$up_port/work"

cat >"$tmp/gateway.yaml" <<EOF
listen: {host: 127.0.0.1, port: $gw_port, threads: 1}
clusters:
  fixed:
    endpoints: [{address: "127.0.0.1:$up_port"}]
    max_idle_per_endpoint: 256
    circuit_breaker: {max_connections: 256, max_requests: 64, max_pending: $pending}
routes:
  - {path: /work, cluster: fixed, timeout: 5s}
EOF
taskset -c "$gateway_cpu" "$gateway" --config "$tmp/gateway.yaml" >"$tmp/gateway.out" 2>&1 &
gw_pid=$!
wait_for "http://127.0.0.1:$gw_port/work"
vm() { vm_kib "$gw_pid" "$1"; }

# run NAME RATE: h2load at RATE requests/s in all; prints a table row.
run() {
  local name=$1 rate=$2 per=$per_connection connections
  connections=$(( (rate + per - 1) / per ))
  local rss_before hwm_before
  rss_before=$(vm VmRSS)
  hwm_before=$(vm VmHWM)
  log "$name: $((per * connections)) requests/s offered ($connections connections x $per) for ${duration}s"
  taskset -c "$client_cpu" h2load --h1 -c "$connections" --rps "$per" -D "$duration" \
    --log-file "$tmp/$name.log" "http://127.0.0.1:$gw_port/work" >"$tmp/$name.h2load" 2>&1 || true
  local rss_after hwm_after
  rss_after=$(vm VmRSS)
  hwm_after=$(vm VmHWM)
  python3 - "$tmp/$name.log" "$tmp/$name.h2load" "$name" "$((per * connections))" \
    "$rss_before" "$rss_after" "$hwm_before" "$hwm_after" "$duration" <<'PY' | tee -a "$tmp/rows"
import sys, re
log, summary, name, offered, rss0, rss1, hwm0, hwm1, duration = sys.argv[1:]
statuses = {}
ok = []
for line in open(log):
    parts = line.split()
    if len(parts) < 3:
        continue
    status = int(parts[1])
    statuses[status] = statuses.get(status, 0) + 1
    if status == 200:
        ok.append(int(parts[2]) / 1000.0)
ok.sort()
pct = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] if ok else float('nan')
text = open(summary).read()
m = re.search(r'requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout', text)
total, started, done, succeeded, failed, errored, timeout = (int(x) for x in m.groups()) if m else (0,) * 7
other = sum(v for k, v in statuses.items() if k not in (200, 503))
print(f"| {name} | {offered} | {done} | {statuses.get(200, 0)} ({statuses.get(200, 0) / float(duration):.0f}/s) "
      f"| {statuses.get(503, 0)} | {other + errored + timeout} | {pct(0.5):.1f} | {pct(0.99):.1f} "
      f"| {int(rss0) / 1024:.1f} -> {int(rss1) / 1024:.1f} | {int(hwm1) / 1024:.1f} |")
PY
}

{
  echo "load_shedding.sh, $started_at, load $load_before; upstream: 64 workers x 10 ms"
  echo "(capacity $capacity/s); cluster circuit_breaker max_requests 64, max_pending $pending"
  echo
  echo "| run | offered/s | done | 200 | 503 | other, errors, timeouts | p50 ms (200s) | p99 ms (200s) | VmRSS MiB | VmHWM MiB |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
} >"$tmp/head"
run under $((capacity / 2))
run over "$(python3 -c "print(int($capacity * $factor))")"
run again "$(python3 -c "print(int($capacity * $factor))")"

{
  cat "$tmp/head"
  cat "$tmp/rows"
} >"$results/load_shedding.md"
log "written to bench/results/load_shedding.md"
cat "$results/load_shedding.md"
# Goals: nothing but 200 and 503 answers, and no error or timeout.
if awk -F'|' 'NF > 8 && $2 ~ /over|under|again/ { gsub(/ /, "", $7); if ($7 != "0") bad = 1 } END { exit !bad }' "$results/load_shedding.md"; then
  echo "load_shedding.sh: requests neither answered 200/503 nor cleanly closed" >&2
  missed=1
fi
exit "$missed"
