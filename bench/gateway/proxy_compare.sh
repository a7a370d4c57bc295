#!/usr/bin/env bash
# proxy_compare.sh: portico-gateway against nginx, HAProxy and h2o as reverse
# proxies to the same upstream, and a proxy with no HTTP (the floor), in one
# run, interleaved.
#
#   bench/gateway/proxy_compare.sh [--gateway BIN] [--build-dir DIR]
#       [--rounds N] [--duration S] [--warmup S] [--connections N]
#       [--proxy-cpu C] [--client-cpu C] [--only a,b] [--base-port P]
#       [--keepalive] [--bulk] [--bulk-bytes N] [--callgrind]
#
# Proxies: portico-gateway (BIN --config FILE, default
# build/release/portico-gateway; its `listening on` line is read), nginx,
# haproxy, h2o (configs in bench/gateway/proxies/) and stub (stub_proxy from
# bench/gateway/stub_proxy.cpp: one upstream connection per client
# connection, bytes relayed as they come). Each runs with one worker/thread,
# pinned with taskset to --proxy-cpu (default 0), with a keep-alive pool to
# the upstream. The upstream, one nginx worker answering "Hello, World!"
# (13 bytes) on 127.0.0.1, runs on --client-cpu (default 1) beside the
# client. A proxy that is not installed, does not start or answers wrongly is
# skipped with a message and the run goes on.
#
# Modes (--keepalive is the default; give several to run several):
#   --keepalive  --rounds N (3) rounds; in each, every proxy in turn (the
#                order rotates by one each round) gets wrk -t1
#                -c --connections (64) for --duration S (10) seconds, after a
#                --warmup S (1) run once at start. Recorded: req/s, p99, and
#                the proxy's CPU time (utime+stime of its process tree, from
#                /proc/PID/stat) per request. About 3 minutes.
#   --bulk       --bulk-bytes N (1 GiB) through each proxy with curl, once
#                each way per round: a POST with Content-Length to
#                bench/gateway/upload_sink.cpp (reads and discards), and a GET
#                of a file the upstream nginx sends. Each transfer gets a
#                freshly started proxy; recorded: throughput, the proxy's
#                VmHWM growth (its peak RSS, /proc/PID/status, before and
#                after), its CPU time per GiB. About 2 minutes.
#   --callgrind  each proxy under valgrind --tool=callgrind, driven by wrk
#                -t1 -c --connections for --duration S; instructions per
#                proxied request after subtracting a run with no load
#                (start-up, one request, shutdown). About 2 minutes.
#
# Writes bench/results/proxies.md (medians, ratios to the best of nginx,
# HAProxy and h2o, issue 14's goals) and the raw rows in
# bench/results/proxies*.tsv; with matplotlib (python3-matplotlib) also
# bench/results/proxies_keepalive.svg and proxies_bulk.svg of the same
# figures (bench/lib/charts.py; without it, a note says they are skipped).
# Needs .ci/setup --bench and the release build of stub_proxy and
# upload_sink (built here when missing).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"

build_dir="$root/build/release"
gateway=""
rounds=3
duration=10
warmup=1
connections=64
proxy_cpu=0
client_cpu=1
only=""
base_port=18180
bulk_bytes=$((1 << 30))
modes=()
all_proxies=(portico-gateway nginx haproxy h2o stub)
peers=(nginx haproxy h2o)   # the best of these is what the ratios are to

usage() { sed -n '2,47p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --gateway) gateway=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --proxy-cpu) proxy_cpu=$2; shift 2 ;;
    --client-cpu) client_cpu=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --keepalive) modes+=(keepalive); shift ;;
    --bulk) modes+=(bulk); shift ;;
    --bulk-bytes) bulk_bytes=$2; shift 2 ;;
    --callgrind) modes+=(callgrind); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ -n $gateway ]] || gateway="$build_dir/portico-gateway"
((${#modes[@]})) || modes=(keepalive)
has_mode() { [[ " ${modes[*]} " == *" $1 "* ]]; }

# --- what we need ------------------------------------------------------------
need wrk wrk
need curl curl
need nginx nginx-light        # the upstream, whatever --only says
need taskset util-linux
need timeout coreutils
need python3 python3
has_mode callgrind && need valgrind valgrind
require_tools proxy_compare.sh
check_cpus proxy_compare.sh "$proxy_cpu" "$client_cpu"
[[ $proxy_cpu != "$client_cpu" ]] || log "warning: proxy and client share CPU $proxy_cpu"

proxies=()
for p in "${all_proxies[@]}"; do
  [[ -z $only || ",$only," == *",$p,"* ]] && proxies+=("$p")
done
((${#proxies[@]})) || { echo "proxy_compare.sh: --only matches no proxy (${all_proxies[*]})" >&2; exit 2; }

# The bench programs: built from this tree when missing (two small targets).
stub_proxy="$build_dir/bench/stub_proxy"
upload_sink="$build_dir/bench/upload_sink"
if [[ ! -x $stub_proxy || ! -x $upload_sink ]]; then
  log "building stub_proxy and upload_sink in $build_dir"
  cmake --build "$build_dir" --target stub_proxy upload_sink >&2 ||
    { echo "proxy_compare.sh: cannot build them (cmake --preset release first)" >&2; exit 1; }
fi

ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')   # before anything can move it
tmp=$(mktemp -d /tmp/proxy_compare.XXXXXX)
results="$root/bench/results"
mkdir -p "$results"
hz=$(getconf CLK_TCK)
declare -A pid port
up_pid=""
sink_pid=""
# The stub cannot route: it relays to the upstream nginx, or to the sink for
# --bulk's upload.
stub_upstream=""

up_port=$((base_port + ${#all_proxies[@]}))
sink_port=$((up_port + 1))
port_of() {
  local i
  for i in "${!all_proxies[@]}"; do
    [[ ${all_proxies[$i]} == "$1" ]] && { echo $((base_port + i)); return; }
  done
}

stop_proxy() {
  local p=${pid[$1]:-}
  [[ -n $p ]] || return 0
  stop_tree "$p"
  unset "pid[$1]"
}

cleanup() {
  local s
  for s in "${!pid[@]}"; do stop_tree "${pid[$s]}"; done
  [[ -n $up_pid ]] && stop_tree "$up_pid"
  [[ -n $sink_pid ]] && stop_tree "$sink_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# fill TEMPLATE OUT DIR PORT [MASTER]: a config from bench/gateway/proxies/.
fill() {
  sed -e "s#@DIR@#$3#g" -e "s#@PORT@#$4#g" -e "s#@UP_PORT@#$up_port#g" \
      -e "s#@SINK_PORT@#$sink_port#g" -e "s#@NOFILE@#$nofile#g" -e "s#@MASTER@#${5:-on}#g" \
      "$here/proxies/$1" >"$2"
}

# body URL [curl args...]: the response body, or nothing on failure.
body() {
  local url=$1; shift
  curl -s --max-time 5 -f "$@" "$url" || true
}

# wait_for URL EXPECTED PID: until URL answers EXPECTED (10 s at most, less
# when PID exits).
wait_for() {
  local i
  for i in $(seq 100); do
    [[ $(body "$1") == "$2" ]] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# --- the upstream and the sink -----------------------------------------------
start_upstream() {
  local dir="$tmp/upstream"
  mkdir -p "$dir"
  fill upstream-nginx.conf.in "$dir/nginx.conf" "$dir" "$up_port"
  # Sparse: nginx sends zero pages from the page cache, nothing is read from disk.
  truncate -s "$bulk_bytes" "$dir/bulk.bin"
  taskset -c "$client_cpu" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
    >"$tmp/upstream.log" 2>&1 &
  up_pid=$!
  wait_for "http://127.0.0.1:$up_port/plaintext" 'Hello, World!' "$up_pid" || {
    echo "proxy_compare.sh: the upstream nginx did not start on 127.0.0.1:$up_port:" \
         "$(tail -3 "$tmp/upstream.log" "$dir/error.log" 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
  }
  log "upstream: nginx pid $up_pid on 127.0.0.1:$up_port, CPU $client_cpu"
}

start_sink() {
  taskset -c "$client_cpu" "$upload_sink" "$sink_port" >"$tmp/sink.log" 2>&1 &
  sink_pid=$!
  wait_for "http://127.0.0.1:$sink_port/upload" 'received 0' "$sink_pid" || {
    echo "proxy_compare.sh: upload_sink did not start on 127.0.0.1:$sink_port" >&2
    exit 1
  }
  log "sink: upload_sink pid $sink_pid on 127.0.0.1:$sink_port, CPU $client_cpu"
}

# --- the proxies -------------------------------------------------------------
# command NAME PORT [callgrind]: writes NAME's config under $tmp/NAME and
# prints its command line, or says why NAME cannot run and fails.
command_of() {
  local s=$1 p=$2 dir="$tmp/$1" master=on
  [[ ${3:-} == callgrind ]] && master=off
  mkdir -p "$dir"
  case $s in
    portico-gateway)
      [[ -x $gateway ]] || { log "$s: did not start ($gateway not found)"; return 1; }
      fill portico-gateway.yaml.in "$dir/gateway.yaml" "$dir" "$p"
      echo "$gateway --config $dir/gateway.yaml" ;;
    nginx)
      fill nginx.conf.in "$dir/nginx.conf" "$dir" "$p" "$master"
      echo "nginx -p $dir -e $dir/error.log -c $dir/nginx.conf" ;;
    haproxy)
      command -v haproxy >/dev/null || { log "skipping haproxy: not installed (apt-get install haproxy)"; return 1; }
      fill haproxy.cfg.in "$dir/haproxy.cfg" "$dir" "$p"
      echo "haproxy -db -f $dir/haproxy.cfg" ;;
    h2o)
      command -v h2o >/dev/null || { log "skipping h2o: not installed (apt-get install h2o)"; return 1; }
      fill h2o.conf.in "$dir/h2o.conf" "$dir" "$p"
      # `user: root` keeps h2o from switching to nobody when run as root.
      [[ $(id -u) -eq 0 ]] || sed -i 's/^user: root$//' "$dir/h2o.conf"
      echo "h2o -c $dir/h2o.conf" ;;
    stub)
      echo "$stub_proxy $p ${stub_upstream:-$up_port}" ;;
  esac
}

# start_proxy NAME [callgrind]: starts NAME pinned to the proxy CPU (under
# callgrind when asked), waits until it proxies, checks what it answers.
start_proxy() {
  local s=$1 mode=${2:-} p cmd log_file="$tmp/$1.log" prefix=()
  p=$(port_of "$s")
  if curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$p/"; then
    log "skipping $s: something already listens on 127.0.0.1:$p (try --base-port)"
    return 1
  fi
  cmd=$(command_of "$s" "$p" "$mode") || return 1
  [[ $mode == callgrind ]] &&
    prefix=(valgrind --tool=callgrind --callgrind-out-file="$tmp/$s.callgrind.out")
  # shellcheck disable=SC2086  # cmd is a word list built above
  taskset -c "$proxy_cpu" "${prefix[@]}" $cmd >"$log_file" 2>&1 &
  pid[$s]=$!
  port[$s]=$p
  if [[ $s == portico-gateway ]]; then
    # GATEWAY.md: it prints `listening on http://HOST:PORT` once serving.
    local i line=""
    for i in $(seq 300); do
      line=$(grep -m1 -o 'listening on http://[^ ]*' "$log_file" || true)
      [[ -n $line ]] && break
      kill -0 "${pid[$s]}" 2>/dev/null || break
      sleep 0.1
    done
    if [[ -z $line ]]; then
      log "portico-gateway: did not start (no 'listening on' line; log: $(tail -3 "$log_file" | tr '\n' ' '))"
      stop_proxy "$s"
      return 1
    fi
    port[$s]=${line##*:}
  fi
  local base="http://127.0.0.1:${port[$s]}"
  # What it must answer: /plaintext from the upstream nginx; POST /upload
  # from the sink when one runs. The stub reaches only one of them.
  local timeout=10 ok=1 got plain=1 upload=0
  [[ -n $sink_pid ]] && upload=1
  [[ $s == stub && -n $stub_upstream ]] && plain=0
  [[ $s == stub && -z $stub_upstream ]] && upload=0
  [[ $mode == callgrind ]] && timeout=60
  for _ in $(seq $((timeout * 10))); do
    curl -s --max-time 1 -o /dev/null "$base/" && break
    kill -0 "${pid[$s]}" 2>/dev/null || break
    sleep 0.1
  done
  if ((plain)); then
    got=$(body "$base/plaintext")
    [[ $got == 'Hello, World!' ]] || { log "$s: /plaintext answered '${got:0:80}'"; ok=0; }
  fi
  if ((upload && ok)); then
    got=$(body "$base/upload" -H 'Expect:' --data-binary ping-pong)
    [[ $got == 'received 9' ]] || { log "$s: POST /upload answered '${got:0:80}'"; ok=0; }
  fi
  if ((!ok)); then
    if [[ $s == portico-gateway ]]; then
      log "portico-gateway: did not start (it does not proxy yet)"
    else
      log "skipping $s: it failed the pre-check (log: $(tail -3 "$log_file" | tr '\n' ' '))"
    fi
    stop_proxy "$s"
    return 1
  fi
}

# rotated ROUND NAME...: the names, starting at the ROUND-th (mod their count).
rotated() {
  local r=$1; shift
  local n=$# i
  local -a a=("$@")
  for ((i = 0; i < n; i++)); do echo "${a[$(((r - 1 + i) % n))]}"; done
}

# --- keep-alive proxying -----------------------------------------------------
ka_tsv="$results/proxies.tsv"
bulk_tsv="$results/proxies_bulk.tsv"
cg_tsv="$results/proxies_callgrind.tsv"

# run_wrk NAME ROUND SECONDS [record]: wrk -t1 through NAME; a row of
# $ka_tsv when recording.
run_wrk() {
  local s=$1 round=$2 seconds=$3 record=${4:-} out before after stats
  before=$(cpu_ticks "${pid[$s]}")
  out=$(timeout $((seconds + 30)) taskset -c "$client_cpu" \
        wrk -t 1 -c "$connections" -d "${seconds}s" --timeout 5s --latency \
        "http://127.0.0.1:${port[$s]}/plaintext" 2>&1) || {
    log "$s: wrk failed: ${out:0:300}"; return 0; }
  after=$(cpu_ticks "${pid[$s]}")
  [[ -n $record ]] || return 0
  if ! stats=$(wrk_stats <<<"$out"); then
    log "$s: could not parse wrk output: ${out:0:300}"
    return 0
  fi
  awk -F'\t' -v round="$round" -v s="$s" -v ticks=$((after - before)) -v hz="$hz" '{
    printf "%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\n", round, s, $1, $2, $3, ticks / hz * 1e6 / $4, $4, $5
  }' <<<"$stats" >>"$ka_tsv"
  tail -1 "$ka_tsv" | awk -F'\t' '{
    printf "   %-16s %10s req/s  p50 %8s us  p99 %8s us  %7s us CPU/req%s\n",
           $2, $3, $4, $5, $6, ($8 > 0 ? "  ERRORS " $8 : "") }' >&2
}

keepalive() {
  printf 'round\tproxy\trps\tp50_us\tp99_us\tcpu_us_per_req\trequests\terrors\n' >"$ka_tsv"
  local live=() s r
  for s in "${proxies[@]}"; do
    start_proxy "$s" || continue
    live+=("$s")
    log "$s: pid ${pid[$s]} on 127.0.0.1:${port[$s]}, CPU $proxy_cpu"
    # Fills the upstream pools and the caches before anything is measured.
    ((warmup > 0)) && run_wrk "$s" 0 "$warmup"
  done
  ((${#live[@]})) || { log "keep-alive: no proxy to measure"; return 0; }
  for ((r = 1; r <= rounds; r++)); do
    log "keep-alive round $r of $rounds (wrk -t1 -c$connections, ${duration}s each)"
    for s in $(rotated "$r" "${live[@]}"); do run_wrk "$s" "$r" "$duration" record; done
  done
  for s in "${live[@]}"; do stop_proxy "$s"; done
}

# --- 1 GiB each way ----------------------------------------------------------
# transfer NAME DIRECTION ROUND: one bulk transfer through a fresh NAME.
transfer() {
  local s=$1 dir=$2 round=$3 url out hwm0 hwm1 cpu0 cpu1 code secs size ok=1
  stub_upstream=""
  [[ $dir == upload ]] && stub_upstream=$sink_port
  start_proxy "$s" || return 0
  url="http://127.0.0.1:${port[$s]}"
  hwm0=$(hwm_kib "${pid[$s]}")
  cpu0=$(cpu_ticks "${pid[$s]}")
  if [[ $dir == upload ]]; then
    # -T streams the file with its Content-Length; no Expect: 100-continue,
    # so no proxy waits on it.
    out=$(timeout 300 taskset -c "$client_cpu" curl -sS -H 'Expect:' -X POST \
          -T "$tmp/upstream/bulk.bin" -o "$tmp/upload.out" \
          -w '%{http_code} %{time_total} %{size_upload}' "$url/upload" 2>&1) || ok=0
    [[ $(cat "$tmp/upload.out" 2>/dev/null) == "received $bulk_bytes" ]] || ok=0
  else
    out=$(timeout 300 taskset -c "$client_cpu" curl -sS -o /dev/null \
          -w '%{http_code} %{time_total} %{size_download}' "$url/bulk.bin" 2>&1) || ok=0
  fi
  hwm1=$(hwm_kib "${pid[$s]}")
  cpu1=$(cpu_ticks "${pid[$s]}")
  stop_proxy "$s"
  read -r code secs size <<<"$out" || true
  [[ $code == 200 && $size == "$bulk_bytes" ]] || ok=0
  ((ok)) || log "$s $dir: failed (${out:0:200}; $(head -c 200 "$tmp/upload.out" 2>/dev/null))"
  awk -v round="$round" -v d="$dir" -v s="$s" -v bytes="$bulk_bytes" -v secs="${secs:-0}" \
      -v h0="$hwm0" -v h1="$hwm1" -v ticks=$((cpu1 - cpu0)) -v hz="$hz" -v ok="$ok" 'BEGIN {
    mibs = secs > 0 ? bytes / 1048576 / secs : 0
    printf "%s\t%s\t%s\t%d\t%.3f\t%.1f\t%d\t%d\t%.3f\t%d\n", round, d, s, bytes, secs, mibs,
           h0, h1 - h0, ticks / hz / (bytes / 1073741824), ok }' >>"$bulk_tsv"
  tail -1 "$bulk_tsv" | awk -F'\t' '{
    printf "   %-16s %-8s %8s MiB/s  %6.1f s  RSS +%6.1f MiB  CPU %6s s/GiB%s\n",
           $3, $2, $6, $5, $8 / 1024, $9, ($10 == 1 ? "" : "  FAILED") }' >&2
}

bulk() {
  printf 'round\tdirection\tproxy\tbytes\tseconds\tmib_per_s\thwm_before_kib\thwm_growth_kib\tcpu_s_per_gib\tok\n' >"$bulk_tsv"
  start_sink
  local r dir s
  for ((r = 1; r <= rounds; r++)); do
    for dir in upload download; do
      log "bulk round $r of $rounds: $dir of $bulk_bytes bytes, a fresh proxy each"
      for s in $(rotated "$r" "${proxies[@]}"); do transfer "$s" "$dir" "$r"; done
    done
  done
}

# --- instructions per proxied request ----------------------------------------
# instructions NAME SECONDS: runs NAME under callgrind, driven for SECONDS
# (0: only the start-up check), and sets $counted to the instructions and
# $requests to wrk's request count. Fails when NAME does not start.
instructions() {
  local s=$1 seconds=$2 out
  counted=""
  requests=0
  start_proxy "$s" callgrind || return 1
  if ((seconds > 0)); then
    out=$(timeout $((seconds + 60)) taskset -c "$client_cpu" \
          wrk -t 1 -c "$connections" -d "${seconds}s" --timeout 10s --latency \
          "http://127.0.0.1:${port[$s]}/plaintext" 2>&1) || true
    requests=$(wrk_stats <<<"$out" | cut -f4) || requests=0
  fi
  # SIGTERM: every proxy here exits cleanly on it (h2o and HAProxy -db do
  # not on SIGINT), so callgrind writes its counts.
  interrupt_and_wait "${pid[$s]}" TERM
  unset "pid[$s]"
  counted=$(callgrind_total "$tmp/$s.callgrind.out" 2>/dev/null) || counted=""
}

callgrind() {
  printf 'proxy\trequests\tinstructions\tidle_instructions\tinstructions_per_request\n' >"$cg_tsv"
  local s idle per
  for s in "${proxies[@]}"; do
    log "$s under callgrind: an idle run, then ${duration}s of wrk -t1 -c$connections"
    instructions "$s" 0 || continue
    idle=$counted
    instructions "$s" "$duration" || continue
    if [[ -z $idle || -z $counted ]] || ((${requests:-0} == 0)); then
      log "$s: no count (idle '$idle', loaded '$counted', requests '$requests')"
      continue
    fi
    per=$(((counted - idle) / requests))
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$requests" "$counted" "$idle" "$per" >>"$cg_tsv"
    log "$s: $requests requests, $per instructions per request"
  done
}

# --- run ---------------------------------------------------------------------
start_upstream
# The last run's charts go too: a chart left from it would pass for this one's.
rm -f "$ka_tsv" "$bulk_tsv" "$cg_tsv" "$results/proxies_keepalive.svg" "$results/proxies_bulk.svg"
for m in "${modes[@]}"; do "$m"; done
stop_tree "$up_pid"; up_pid=""
[[ -n $sink_pid ]] && { stop_tree "$sink_pid"; sink_pid=""; }

version() { "$@" 2>&1 | head -1 || true; }
{
  echo "# proxy_compare.sh, $started_at"
  echo
  echo "\`bench/gateway/proxy_compare.sh$(printf ' --%s' "${modes[@]}") --rounds $rounds" \
       "--duration $duration --connections $connections --proxy-cpu $proxy_cpu" \
       "--client-cpu $client_cpu${only:+ --only $only}\`," \
       "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -r);" \
       "$(version nginx -v | sed 's/.*: //'), $(version haproxy -v | awk '{print "HAProxy " $3}')," \
       "$(version h2o --version), $(version wrk -v | awk '{print "wrk " $2}');" \
       "portico $commit;" \
       "load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo
  args=()
  [[ -f $ka_tsv ]] && args+=(--keepalive "$ka_tsv")
  [[ -f $bulk_tsv ]] && args+=(--bulk "$bulk_tsv")
  [[ -f $cg_tsv ]] && args+=(--callgrind "$cg_tsv")
  # With matplotlib, also bench/results/proxies_keepalive.svg and
  # proxies_bulk.svg (bench/lib/charts.py).
  python3 "$here/proxy_summary.py" --peers "$(IFS=,; echo "${peers[*]}")" "${args[@]}" \
    --charts "$results" --run "bench/gateway/proxy_compare.sh$(printf ' --%s' "${modes[@]}") --rounds $rounds --duration $duration${only:+ --only $only}, $started_at, portico $commit, load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
} >"$results/proxies.md"
cat "$results/proxies.md"
