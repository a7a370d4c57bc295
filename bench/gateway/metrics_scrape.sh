#!/usr/bin/env bash
# metrics_scrape.sh: issue 16's scrape goals, measured. portico-gateway
# serves a --routes N (120000) route file (gen_routes_config.py, every
# cluster's endpoint a port nothing listens on) with its admin listener; one
# request to each of --seen N (1000) distinct routes (one curl), then:
#
#   scrapes  --scrapes N (8) curl scrapes of the admin listener's /metrics,
#            one after another: first byte and whole (goal: under 50 ms
#            each), the text's size, and the distinct `route` labels
#            (goal: the routes requested, plus `none`, and no more);
#            `promtool check metrics` on the last one where promtool is.
#   loaded   the same scrapes while wrk -t1 -c --connections (8) requests
#            one of those routes all along (the gateway answers 502 at
#            once: nothing listens upstream), as a scrape in production
#            comes: the gateway busy.
#   reloads  --reloads N (3) POST /reload of the same file.
#
# VmRSS (/proc/PID/status) once settled after the start, after the traffic,
# after the scrapes and after the reloads (goal: at most 64 MiB, the gateway
# issue's bound, at every step), and VmHWM at the end.
#
#   bench/gateway/metrics_scrape.sh [--gateway BIN] [--build-dir DIR]
#       [--routes N] [--seen N] [--scrapes N] [--reloads N]
#       [--connections N] [--gateway-cpu C] [--client-cpu C] [--base-port P]
#
# The gateway runs on --gateway-cpu (0), curl and wrk on --client-cpu (1).
# Loopback only; everything started is stopped on exit. Writes
# bench/results/metrics_scrape.md. Exit status 1 when a goal is missed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"

build_dir="$root/build/release"
gateway=""
routes=120000
seen=1000
scrapes=8
reloads=3
connections=8
gateway_cpu=0
client_cpu=1
base_port=18500

usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --gateway) gateway=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --routes) routes=$2; shift 2 ;;
    --seen) seen=$2; shift 2 ;;
    --scrapes) scrapes=$2; shift 2 ;;
    --reloads) reloads=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --gateway-cpu) gateway_cpu=$2; shift 2 ;;
    --client-cpu) client_cpu=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ -n $gateway ]] || gateway="$build_dir/portico-gateway"

need curl curl
need wrk wrk
need taskset util-linux
need python3 python3
require_tools metrics_scrape.sh
check_cpus metrics_scrape.sh "$gateway_cpu" "$client_cpu"
[[ -x $gateway ]] || {
  echo "metrics_scrape.sh: no $gateway (cmake --build $build_dir --target portico-gateway)" >&2
  exit 1
}

tmp=$(mktemp -d /tmp/metrics_scrape.XXXXXX)
results="$root/bench/results"
mkdir -p "$results"
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
gw_port=$base_port
admin_port=$((base_port + 1))
dead_port=$((base_port + 2))  # nothing listens here
gw_pid=""
wrk_pid=""
missed=0

cleanup() {
  [[ -n $wrk_pid ]] && stop_tree "$wrk_pid"
  [[ -n $gw_pid ]] && stop_tree "$gw_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

vm() { vm_kib "$gw_pid" "$1"; }
summary=()
say() { summary+=("$*"); log "$*"; }
# rss_step NAME: VmRSS once settled, said and checked against 64 MiB.
rss_step() {
  settle_rss "$gw_pid"
  local rss
  rss=$(vm VmRSS)
  say "VmRSS $(mib "$rss") MiB $1 (goal: 64 MiB)"
  ((rss <= 65536)) || missed=$((missed + 1))
}

python3 "$here/gen_routes_config.py" --routes "$routes" --endpoint "127.0.0.1:$dead_port" \
  >"$tmp/big.yaml"
sed -i "s/^listen: .*/listen: {host: 127.0.0.1, port: $gw_port, threads: 1}/" "$tmp/big.yaml"
echo "admin: {host: 127.0.0.1, port: $admin_port}" >>"$tmp/big.yaml"
echo "access_log: {format: none}" >>"$tmp/big.yaml"
# --seen paths of distinct routes, spread over the file: every k-th route's
# path with its parameters filled in, its host when it names one.
python3 - "$tmp/big.yaml" "$seen" "http://127.0.0.1:$gw_port" >"$tmp/urls.txt" <<'EOF'
import re, sys
path, seen, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
routes, current = [], None
for line in open(path):
    m = re.match(r"\s*- path: (\S+)", line)
    if m:
        current = [m.group(1), None]
        routes.append(current)
        continue
    m = re.match(r"\s*hosts: \[([^,\]]+)", line)
    if m and current is not None and current[1] is None:
        current[1] = m.group(1).strip('"')
step = max(1, len(routes) // seen)
for path, host in routes[::step][:seen]:
    filled = re.sub(r":[A-Za-z_]+", "7", re.sub(r"\*[A-Za-z_]*", "x/y", path))
    print(f"{base}{filled}\t{host or ''}")
EOF

log "gateway: $routes routes, admin on $admin_port"
taskset -c "$gateway_cpu" "$gateway" --config "$tmp/big.yaml" >"$tmp/gateway.out" 2>"$tmp/gateway.err" &
gw_pid=$!
for _ in $(seq 600); do
  grep -q "admin on" "$tmp/gateway.out" 2>/dev/null && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$tmp/gateway.err" >&2; exit 1; }
  sleep 0.05
done
grep -q "admin on" "$tmp/gateway.out" || { echo "metrics_scrape.sh: the gateway did not start" >&2; exit 1; }
rss_step "after the start"

# One curl per host (its Host header), each with all of its URLs.
while IFS= read -r host; do
  args=()
  [[ -n $host ]] && args=(-H "Host: $host")
  awk -F'\t' -v h="$host" '$2 == h {print "url = \"" $1 "\""; print "output = \"/dev/null\""}' \
    "$tmp/urls.txt" >"$tmp/curl.cfg"
  taskset -c "$client_cpu" curl -s "${args[@]}" -K "$tmp/curl.cfg" || true
done < <(cut -f2 "$tmp/urls.txt" | sort -u)
rss_step "after $seen requests to distinct routes"

# scrape_all NAME: --scrapes scrapes; says the times and checks the goal.
scrape_all() {
  local name=$1 times=() first total size slow=0
  for ((i = 1; i <= scrapes; i++)); do
    read -r first total size < <(taskset -c "$client_cpu" curl -s -o "$tmp/scrape.txt" \
      -w '%{time_starttransfer} %{time_total} %{size_download}\n' \
      "http://127.0.0.1:$admin_port/metrics")
    first=$(awk -v s="$first" 'BEGIN {printf "%.1f", s * 1000}')
    total=$(awk -v s="$total" 'BEGIN {printf "%.1f", s * 1000}')
    times+=("$first/$total")
    awk -v t="$total" 'BEGIN {exit !(t >= 50)}' && slow=$((slow + 1))
  done
  local labels
  labels=$(grep -o '^portico_requests_total{route="[^"]*"' "$tmp/scrape.txt" | sort -u | wc -l)
  say "$name: $scrapes scrapes of $size bytes, first byte/whole ms: ${times[*]};" \
      "$slow at or over 50 ms (goal: 0); $labels distinct route labels"
  ((slow == 0)) || missed=$((missed + 1))
}

scrape_all "scrapes"
rss_step "after $scrapes scrapes"
expected=$(cut -f1 "$tmp/urls.txt" | wc -l)
if command -v promtool >/dev/null 2>&1; then
  if promtool check metrics <"$tmp/scrape.txt" >"$tmp/promtool.out" 2>&1; then
    say "promtool check metrics: accepted"
  else
    say "promtool check metrics: $(head -c 300 "$tmp/promtool.out")"
    missed=$((missed + 1))
  fi
fi
labels=$(grep -o '^portico_requests_total{route="[^"]*"' "$tmp/scrape.txt" | sort -u | wc -l)
((labels <= expected + 1)) || {
  say "more route labels ($labels) than routes requested ($expected) and none"
  missed=$((missed + 1))
}

busy_url=$(head -1 "$tmp/urls.txt" | cut -f1)
taskset -c "$client_cpu" wrk -t1 -c "$connections" -d 600s "$busy_url" >"$tmp/wrk.out" 2>&1 &
wrk_pid=$!
sleep 1  # wrk's connections up: the scrapes below are what is measured, not this
scrape_all "loaded (wrk -c$connections on $busy_url)"
stop_tree "$wrk_pid"
wrk_pid=""

for ((i = 1; i <= reloads; i++)); do
  answer=$(curl -s --max-time 60 -X POST "http://127.0.0.1:$admin_port/reload") || true
  [[ $answer == *'"ok": true'* ]] || {
    say "reload $i failed: ${answer:0:300}"
    missed=$((missed + 1))
    break
  }
done
rss_step "after $reloads reloads (POST /reload)"
say "VmHWM $(mib "$(vm VmHWM)") MiB"

{
  echo "# metrics_scrape.sh, $started_at"
  echo
  echo "\`bench/gateway/metrics_scrape.sh --routes $routes --seen $seen --scrapes $scrapes" \
       "--reloads $reloads --connections $connections\`;" \
       "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
       "$(uname -r); portico $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?');" \
       "load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo
  for line in "${summary[@]}"; do echo "- $line"; done
  echo
  echo "goals missed: $missed"
} >"$results/metrics_scrape.md"
cat "$results/metrics_scrape.md"
((missed == 0)) || exit 1
