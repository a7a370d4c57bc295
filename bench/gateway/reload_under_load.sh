#!/usr/bin/env bash
# reload_under_load.sh: issue 14's reload and big-config goals, measured on a
# serving portico-gateway with a real upstream behind it.
#
#   bench/gateway/reload_under_load.sh [--gateway BIN] [--build-dir DIR]
#       [--routes N] [--big-reloads N] [--big-duration S] [--reloads N]
#       [--duration S] [--connections N] [--admin] [--gateway-cpu C]
#       [--client-cpu C] [--base-port P]
#
# The upstream: one nginx worker with two servers on 127.0.0.1 (--base-port
# P and P+1) answering "upstream a\n" and "upstream b\n" to any path.
#
#   big      A --routes N (120000) route file from gen_routes_config.py
#            --endpoint (every cluster's endpoint the "a" server), served:
#            the time from exec to the `listening on` line, then VmRSS and
#            VmHWM (/proc/PID/status) once they stop moving (goal: VmRSS at
#            most 64 MiB once settled, as issue 14 sets it; VmHWM, the peak
#            while the file was parsed and built, is reported beside).
#   big-reload  wrk -t1 -c --connections (8) for --big-duration S (20) on
#            a route of that file while it is reloaded --big-reloads N (3)
#            times, spaced over the run; each reload is waited for before
#            the next. Failed requests: non-200 answers (counted by a wrk Lua
#            response() hook) plus wrk's socket errors (goal: 0). Then
#            VmRSS once settled again (goal: 64 MiB, as after the start).
#   flip     a two-route config, wrk -t1 -c --connections for --duration S
#            (30) while it is reloaded --reloads N (100) times, spaced over
#            the run, alternating between two files that route the same URL
#            to the "a" and the "b" server. Failed requests as above (goal:
#            0); both servers must have answered.
#
# A reload is SIGHUP (the gateway's stderr says `reload: ok`), or with
# --admin POST /reload on an admin listener (its answer says "ok": true).
# The gateway runs pinned to --gateway-cpu (0), nginx and wrk to
# --client-cpu (1). Loopback only; everything started is stopped on exit.
# About a minute and a half. Prints a summary and writes it to
# bench/results/reload_under_load.md. Exit status 1 when a goal is missed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"

build_dir="$root/build/release"
gateway=""
routes=120000
big_reloads=3
big_duration=20
reloads=100
duration=30
connections=8
use_admin=0
gateway_cpu=0
client_cpu=1
base_port=18300

usage() { sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --gateway) gateway=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --routes) routes=$2; shift 2 ;;
    --big-reloads) big_reloads=$2; shift 2 ;;
    --big-duration) big_duration=$2; shift 2 ;;
    --reloads) reloads=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --admin) use_admin=1; shift ;;
    --gateway-cpu) gateway_cpu=$2; shift 2 ;;
    --client-cpu) client_cpu=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ -n $gateway ]] || gateway="$build_dir/portico-gateway"

need wrk wrk
need curl curl
need nginx nginx-light
need taskset util-linux
need timeout coreutils
need python3 python3
require_tools reload_under_load.sh
check_cpus reload_under_load.sh "$gateway_cpu" "$client_cpu"
[[ -x $gateway ]] || {
  echo "reload_under_load.sh: no $gateway (cmake --build $build_dir --target portico-gateway)" >&2
  exit 1
}

ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d /tmp/reload_under_load.XXXXXX)
results="$root/bench/results"
mkdir -p "$results"
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
port_a=$base_port
port_b=$((base_port + 1))
up_pid=""
gw_pid=""
gw_port=""
admin_port=""
reloads_seen=0   # `reload: ok` lines read so far from the gateway's stderr
missed=0         # goals missed

cleanup() {
  [[ -n $gw_pid ]] && stop_tree "$gw_pid"
  [[ -n $up_pid ]] && stop_tree "$up_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the upstream --------------------------------------------------------------
start_upstream() {
  local dir="$tmp/upstream" i ok=0
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    default_type text/plain;
    server { listen 127.0.0.1:$port_a; location / { return 200 "upstream a\n"; } }
    server { listen 127.0.0.1:$port_b; location / { return 200 "upstream b\n"; } }
}
EOF
  [[ $(id -u) -eq 0 ]] || sed -i '/^user root;$/d' "$dir/nginx.conf"
  taskset -c "$client_cpu" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
    >"$tmp/upstream.log" 2>&1 &
  up_pid=$!
  for i in $(seq 100); do
    [[ $(curl -s --max-time 1 "http://127.0.0.1:$port_a/") == "upstream a" &&
       $(curl -s --max-time 1 "http://127.0.0.1:$port_b/") == "upstream b" ]] && ok=1 && break
    kill -0 "$up_pid" 2>/dev/null || break
    sleep 0.1
  done
  ((ok)) || {
    echo "reload_under_load.sh: nginx did not start on 127.0.0.1:$port_a and :$port_b:" \
         "$(tail -3 "$tmp/upstream.log" "$dir/error.log" 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
  }
  log "upstream: nginx pid $up_pid, a on 127.0.0.1:$port_a, b on 127.0.0.1:$port_b"
}

# --- the gateway ---------------------------------------------------------------
# start_gateway CONFIG: starts it on a free port (--port 0), waits for its
# `listening on` line (and `admin on` with --admin); sets gw_pid, gw_port,
# admin_port and start_ms (exec to `listening on`, milliseconds).
start_gateway() {
  local config=$1
  local t0 line="" i args=(--config "$config" --port 0)
  ((use_admin)) && args+=(--admin-port 0)
  : >"$tmp/gateway.out"
  : >"$tmp/gateway.err"
  reloads_seen=0
  t0=$(date +%s%N)
  taskset -c "$gateway_cpu" "$gateway" "${args[@]}" >"$tmp/gateway.out" 2>"$tmp/gateway.err" &
  gw_pid=$!
  # Polled every 5 ms: the start time is read to that.
  for i in $(seq 6000); do
    line=$(grep -m1 -o 'listening on http://[^ ]*' "$tmp/gateway.out" || true)
    [[ -n $line ]] && break
    kill -0 "$gw_pid" 2>/dev/null || break
    sleep 0.005
  done
  start_ms=$((($(date +%s%N) - t0) / 1000000))
  [[ -n $line ]] || {
    echo "reload_under_load.sh: portico-gateway did not start: $(tail -3 "$tmp/gateway.err")" >&2
    exit 1
  }
  gw_port=${line##*:}
  admin_port=""
  if ((use_admin)); then
    for i in $(seq 200); do
      line=$(grep -m1 -o 'admin on http://[^ ]*' "$tmp/gateway.out" || true)
      [[ -n $line ]] && break
      sleep 0.01
    done
    [[ -n $line ]] || { echo "reload_under_load.sh: no 'admin on' line" >&2; exit 1; }
    admin_port=${line##*:}
  fi
}

stop_gateway() {
  [[ -n $gw_pid ]] && stop_tree "$gw_pid"
  gw_pid=""
}

# vm FIELD: FIELD (VmRSS, VmHWM) of the gateway, KiB.
vm() { vm_kib "$gw_pid" "$1"; }
settle() { settle_rss "$gw_pid"; }

# reload: one reload of the gateway's file, waited for (30 s at most); fails
# when it did not succeed.
reload() {
  local i answer
  if ((use_admin)); then
    answer=$(curl -s --max-time 30 -X POST "http://127.0.0.1:$admin_port/reload") || true
    [[ $answer == *'"ok": true'* ]] || { log "reload failed: ${answer:0:300}"; return 1; }
    return 0
  fi
  kill -HUP "$gw_pid"
  # SIGHUPs sent before the last is taken would merge into one: wait for
  # each one's `reload: ok` (or `reload: failed`).
  for i in $(seq 3000); do
    if grep -q 'reload: failed' "$tmp/gateway.err"; then
      log "reload failed: $(grep 'reload:' "$tmp/gateway.err" | tail -3 | tr '\n' ' ')"
      return 1
    fi
    if (($(grep -c '^reload: ok$' "$tmp/gateway.err") > reloads_seen)); then
      reloads_seen=$((reloads_seen + 1))
      return 0
    fi
    sleep 0.01
  done
  log "reload: no answer in 30 s"
  return 1
}

# The wrk Lua script: counts answers by status and body (a: "upstream a\n",
# b: "upstream b\n"), printed by done() as one line "lua: ...".
cat >"$tmp/count.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0; a = 0; b = 0; other = 0 end
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1
  elseif body == "upstream a\n" then a = a + 1
  elseif body == "upstream b\n" then b = b + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local n, ca, cb, o = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    n = n + t:get("non200"); ca = ca + t:get("a"); cb = cb + t:get("b"); o = o + t:get("other")
  end
  io.write(string.format("lua: non200 %d a %d b %d other %d\n", n, ca, cb, o))
end
EOF

# under_load URL SECONDS COUNT: wrk on URL for SECONDS while COUNT reloads run,
# spaced evenly; sets wrk_out (wrk's output), reloads_done, and the counts
# non200, count_a, count_b, other, socket_errors, requests, failed.
under_load() {
  local url=$1 seconds=$2 count=$3 wrk_pid i gap_ms t0 due now
  taskset -c "$client_cpu" timeout $((seconds + 60)) \
    wrk -t1 -c "$connections" -d "${seconds}s" --timeout 5s -s "$tmp/count.lua" "$url" \
    >"$tmp/wrk.out" 2>&1 &
  wrk_pid=$!
  reloads_done=0
  # Reloads from 1/(COUNT+1) of the run to COUNT/(COUNT+1): each has traffic
  # before and after it.
  gap_ms=$((seconds * 1000 / (count + 1)))
  t0=$(date +%s%N)
  for ((i = 1; i <= count; i++)); do
    due=$((t0 + i * gap_ms * 1000000))
    now=$(date +%s%N)
    ((due > now)) && sleep "$(awk -v n=$((due - now)) 'BEGIN {printf "%.3f", n / 1e9}')"
    kill -0 "$wrk_pid" 2>/dev/null || { log "wrk ended before reload $i"; break; }
    "${before_reload:-true}" "$i"
    reload || break
    reloads_done=$i
  done
  wait "$wrk_pid" || true
  wrk_out=$(<"$tmp/wrk.out")
  read -r _ non200 _ count_a _ count_b _ other < <(grep '^lua:' <<<"$wrk_out" | cut -d' ' -f2-) || {
    echo "reload_under_load.sh: wrk printed no counts: ${wrk_out:0:400}" >&2
    exit 1
  }
  requests=$(awk '/ requests in / {print $1}' <<<"$wrk_out")
  socket_errors=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$wrk_out")
  socket_errors=${socket_errors:-0}
  failed=$((non200 + socket_errors))
}

summary=()
say() { summary+=("$*"); log "$*"; }

start_upstream

# --- big: serving a 120,000-route file -------------------------------------------
python3 "$here/gen_routes_config.py" --routes "$routes" --endpoint "127.0.0.1:$port_a" \
  >"$tmp/big.yaml"
((use_admin)) && echo 'admin: {host: 127.0.0.1, port: 0}' >>"$tmp/big.yaml"
big_url_path=/api/svc0/v1/users/123   # /api/svc0/v1/users/:id, GET, cluster c0
log "big: $routes routes, $(stat -c %s "$tmp/big.yaml") bytes"
start_gateway "$tmp/big.yaml"
got=$(curl -s --max-time 5 "http://127.0.0.1:$gw_port$big_url_path" || true)
[[ $got == "upstream a" ]] || { echo "reload_under_load.sh: $big_url_path answered '${got:0:200}'" >&2; exit 1; }
settle
rss=$(vm VmRSS)
hwm=$(vm VmHWM)
say "big: $routes routes served; start to \`listening on\` $start_ms ms;" \
    "VmRSS $(mib "$rss") MiB once settled (goal: 64 MiB), VmHWM $(mib "$hwm") MiB"
((rss <= 65536)) || missed=$((missed + 1))

# --- big-reload: reloading it under load -----------------------------------------
under_load "http://127.0.0.1:$gw_port$big_url_path" "$big_duration" "$big_reloads"
settle
rss=$(vm VmRSS)
say "big-reload: wrk -t1 -c$connections ${big_duration}s, $reloads_done of $big_reloads reloads" \
    "of the $routes-route file: $requests requests, failed $failed (non-200 $non200," \
    "socket errors $socket_errors; goal 0); VmRSS $(mib "$rss") MiB once settled after them" \
    "(goal: 64 MiB), VmHWM $(mib "$(vm VmHWM)") MiB"
((failed == 0 && reloads_done == big_reloads && count_a > 0 && rss <= 65536)) ||
  missed=$((missed + 1))
stop_gateway

# --- flip: 100 reloads between two upstreams ---------------------------------------
# flip.yaml is what the gateway reads; reload i first replaces it with
# flip-b.yaml (i odd) or flip-a.yaml (i even), renamed over it whole.
flip_config() {
  cat <<EOF
# reload_under_load.sh: /api/users/:id to upstream $1
listen: {host: 127.0.0.1, port: 0, threads: 1}
access_log: {format: none}
$( ((use_admin)) && echo 'admin: {host: 127.0.0.1, port: 0}')
clusters:
  svc:
    endpoints: [{address: "127.0.0.1:$2"}]
routes:
  - path: /api/users/:id
    cluster: svc
  - path: /healthz
    respond: {status: 200, body: "ok\n"}
EOF
}
flip_config a "$port_a" >"$tmp/flip-a.yaml"
flip_config b "$port_b" >"$tmp/flip-b.yaml"
cp "$tmp/flip-a.yaml" "$tmp/flip.yaml"
flip_to() {
  local side=a
  (($1 % 2)) && side=b
  cp "$tmp/flip-$side.yaml" "$tmp/flip.next"
  mv -f "$tmp/flip.next" "$tmp/flip.yaml"
}
start_gateway "$tmp/flip.yaml"
got=$(curl -s --max-time 5 "http://127.0.0.1:$gw_port/api/users/7" || true)
[[ $got == "upstream a" ]] || { echo "reload_under_load.sh: /api/users/7 answered '${got:0:200}'" >&2; exit 1; }
before_reload=flip_to under_load "http://127.0.0.1:$gw_port/api/users/7" "$duration" "$reloads"
say "flip: wrk -t1 -c$connections ${duration}s, $reloads_done of $reloads reloads alternating" \
    "a/b: $requests requests, failed $failed (non-200 $non200, socket errors $socket_errors;" \
    "goal 0); answered by a $count_a, by b $count_b, other bodies $other"
((failed == 0 && other == 0 && reloads_done == reloads && count_a > 0 && count_b > 0)) ||
  missed=$((missed + 1))
stop_gateway
stop_tree "$up_pid"
up_pid=""

{
  echo "# reload_under_load.sh, $started_at"
  echo
  echo "\`bench/gateway/reload_under_load.sh --routes $routes --big-reloads $big_reloads" \
       "--big-duration $big_duration --reloads $reloads --duration $duration" \
       "--connections $connections$( ((use_admin)) && echo ' --admin')\`, reloads by" \
       "$( ((use_admin)) && echo 'POST /reload' || echo 'SIGHUP');" \
       "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
       "$(uname -r); portico $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?');" \
       "load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo
  for line in "${summary[@]}"; do echo "- $line"; done
  echo
  echo "goals missed: $missed"
} >"$results/reload_under_load.md"
cat "$results/reload_under_load.md"
((missed == 0)) || exit 1
