#!/usr/bin/env bash
# compare_servers.sh: portico-hello against nginx and h2o doing the same work,
# and a canned-bytes stub (the floor), in one run, interleaved.
#
#   bench/server/compare_servers.sh [--portico BIN] [--runs N] [--duration S]
#                                   [--server-cpu C] [--client-cpu C] [--only a,b]
#                                   [--idle N] [--base-port P]
#
# Servers: portico (BIN --port P --threads 1; default
# build/release/examples/portico-hello), portico-unbatched (the same with
# --no-batch-io: one recv(2)/send(2) per connection instead of one io_uring
# call per loop iteration for the reads and one for the sends), nginx (1 worker, `return 200`
# locations), nginx-regex50 (the same with 50 more regex locations before the
# /users one), h2o (1 thread; static files and an mruby /users handler) and
# stub (bench/server/stub_server.c). Each is started once, pinned with taskset
# to --server-cpu (default 0), from templates in bench/server/http/ with its state in
# a temporary directory; each is killed on exit. A missing one is skipped with
# a message, and so is one that answers a correctness pre-check wrongly.
#
# Each of --runs N (default 3) runs every workload against every server in
# turn: wrk -t1 pinned to --client-cpu (default 1), --duration S (default 5):
#   keepalive  /plaintext   64 connections
#   pipelined  /plaintext  256 connections, 16 requests deep
#   keepalive  /users/123   64 connections
#   pipelined  /users/123  256 connections, 16 requests deep
# recording requests/s, p50/p99 latency (per batch when pipelined) and the
# server's CPU time (utime+stime of all its processes and threads) per request.
# It prints, and writes to bench/results/servers.md, the medians and the
# ratios portico/nginx and portico/h2o; raw rows go to bench/results/servers.tsv.
# With matplotlib (python3-matplotlib) it also draws bench/results/servers.svg
# from the same figures (bench/lib/charts.py); without it, a note says so.
#
# --idle N (default 0 = skip) then restarts each server and measures what N
# idle keep-alive connections cost it in memory (bench/server/idle_memory.py).
# --runs 0 skips the throughput part.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"
portico="$root/build/release/examples/portico-hello"
runs=3
duration=5
server_cpu=0
client_cpu=1
only=""
idle=0
base_port=18080
all_servers=(portico portico-unbatched nginx nginx-regex50 h2o stub)

usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --portico) portico=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --server-cpu) server_cpu=$2; shift 2 ;;
    --client-cpu) client_cpu=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

# --- what we need ------------------------------------------------------------
need wrk wrk
need curl curl
need cc gcc
need taskset util-linux
need timeout coreutils
need python3 python3
require_tools compare_servers.sh
check_cpus compare_servers.sh "$server_cpu" "$client_cpu"
[[ $server_cpu != "$client_cpu" ]] || log "warning: server and client share CPU $server_cpu"

servers=()
for s in "${all_servers[@]}"; do
  [[ -z $only || ",$only," == *",$s,"* ]] && servers+=("$s")
done
[[ ${#servers[@]} -gt 0 ]] || { echo "compare_servers.sh: --only matches no server (${all_servers[*]})" >&2; exit 2; }

# Servers and clients need many descriptors (--idle N); the hard limit is as
# high as an unprivileged process may go, and the servers inherit it.
ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
if ((idle > 0 && nofile < idle + 100)); then
  echo "compare_servers.sh: fd limit $nofile is too low for --idle $idle" >&2
  exit 1
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')   # before anything can move it
tmp=$(mktemp -d /tmp/compare_servers.XXXXXX)
results="$root/bench/results"
mkdir -p "$results"
declare -A pid port
started=()

port_of() {
  local i
  for i in "${!all_servers[@]}"; do
    [[ ${all_servers[$i]} == "$1" ]] && { echo $((base_port + i)); return; }
  done
}

stop_server() {
  local s=$1 p=${pid[$1]:-}
  [[ -n $p ]] || return 0
  stop_tree "$p"
  unset "pid[$s]"
}

cleanup() {
  local s
  for s in "${started[@]}"; do stop_server "$s"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- servers -----------------------------------------------------------------
regex50_locations() {
  local i
  for i in $(seq 1 50); do
    printf '        location ~ ^/api/v1/resource%d/([^/]+)$ {\n' "$i"
    printf '            default_type text/plain;\n'
    # shellcheck disable=SC2016  # $1 is nginx's capture, not the shell's
    printf '            return 200 "resource%d $1";\n' "$i"
    printf '        }\n'
  done
}

# Writes the server's config into $tmp/NAME and prints its command line.
prepare() {
  local s=$1 p=$2 dir="$tmp/$1"
  mkdir -p "$dir"
  case $s in
    portico|portico-unbatched)
      [[ -x $portico ]] || { log "skipping $s: $portico not found (cmake --workflow --preset release builds it)"; return 1; }
      if [[ $s == portico ]]; then
        echo "$portico --port $p --threads 1"
      else
        echo "$portico --port $p --threads 1 --no-batch-io"
      fi ;;
    nginx|nginx-regex50)
      command -v nginx >/dev/null || { log "skipping $s: nginx not installed (apt-get install nginx-light)"; return 1; }
      local extra=""
      [[ $s == nginx-regex50 ]] && extra=$(regex50_locations)
      NGINX_EXTRA=$extra python3 - "$here/http/nginx.conf.in" "$dir/nginx.conf" "$dir" "$p" "$nofile" <<'EOF'
import os, sys
src, dst, d, port, nofile = sys.argv[1:]
text = open(src).read()
# The extra locations replace the line that holds only their placeholder (the
# header comment names it too).
text = text.replace("\n@EXTRA_LOCATIONS@\n", "\n" + os.environ["NGINX_EXTRA"] + "\n")
for k, v in (("@DIR@", d), ("@PORT@", port), ("@NOFILE@", nofile)):
    text = text.replace(k, v)
open(dst, "w").write(text)
EOF
      echo "nginx -p $dir -e $dir/error.log -c $dir/nginx.conf" ;;
    h2o)
      command -v h2o >/dev/null || { log "skipping h2o: not installed (apt-get install h2o)"; return 1; }
      printf 'Hello, World!' >"$dir/plaintext.txt"
      printf '{"message":"Hello, World!"}' >"$dir/json.json"
      # `user: root` keeps h2o from switching to nobody when started as root
      # (its pid file and the files it serves are in our temporary dir).
      local as_root=(-e 's/^user: root$//')
      [[ $(id -u) -eq 0 ]] && as_root=()
      sed -e "s#@DIR@#$dir#g" -e "s#@PORT@#$p#g" "${as_root[@]}" "$here/http/h2o.conf.in" >"$dir/h2o.conf"
      echo "h2o -c $dir/h2o.conf" ;;
    stub)
      cc -O2 -o "$dir/stub_server" "$here/stub_server.c" || { log "skipping stub: it does not compile"; return 1; }
      echo "$dir/stub_server $p" ;;
  esac
}

# body PORT PATH [curl args...]: the response body, or nothing on failure.
body() {
  local p=$1 path=$2; shift 2
  curl -s --max-time 2 -f "$@" "http://127.0.0.1:$p$path" || true
}

# Every endpoint the workloads use must answer right. The stub answers every
# request with "Hello, World!": it is the floor, not a router, so only
# /plaintext is checked and its /users/123 rows measure the same canned bytes.
precheck() {
  local s=$1 p=$2 ok=1 got
  check() {
    got=$(body "$p" "${@:2}")
    [[ $got == "$1" ]] || { log "$s: ${*:2} answered '${got:0:80}', expected '$1'"; ok=0; }
  }
  check 'Hello, World!' /plaintext
  if [[ $s != stub ]]; then
    check '{"message":"Hello, World!"}' /json
    check 'user 123' /users/123
  fi
  [[ $s == portico* ]] && check 'ping-pong' /echo --data-binary ping-pong
  ((ok))
}

start_server() {
  local s=$1 p cmd
  p=$(port_of "$s")
  if curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$p/"; then
    log "skipping $s: something already listens on 127.0.0.1:$p (try --base-port)"
    return 1
  fi
  cmd=$(prepare "$s" "$p") || return 1
  # shellcheck disable=SC2086  # cmd is a word list built above
  taskset -c "$server_cpu" $cmd >"$tmp/$s.log" 2>&1 &
  pid[$s]=$!
  port[$s]=$p
  started+=("$s")
  local i
  for i in $(seq 100); do
    curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$p/plaintext" && break
    kill -0 "${pid[$s]}" 2>/dev/null || break
    sleep 0.1
  done
  if ! precheck "$s" "$p"; then
    log "skipping $s: it failed the correctness pre-check (log: $(tail -3 "$tmp/$s.log" | tr '\n' ' '))"
    stop_server "$s"
    return 1
  fi
  log "$s: pid ${pid[$s]} on 127.0.0.1:$p, CPU $server_cpu"
}

# --- throughput --------------------------------------------------------------
workloads=(keepalive:/plaintext pipelined:/plaintext keepalive:/users/123 pipelined:/users/123)
tsv="$results/servers.tsv"
rm -f "$results/servers.svg"   # the last run's chart would pass for this one's
printf 'run\tworkload\tserver\trps\tp50_us\tp99_us\tcpu_us_per_req\trequests\terrors\n' >"$tsv"
hz=$(getconf CLK_TCK)

# run_wrk SERVER WORKLOAD RUN: one wrk measurement, one row of $tsv.
run_wrk() {
  local s=$1 w=$2 run=$3 kind=${2%%:*} path=${2#*:} p=${port[$1]} args out before after stats
  if [[ $kind == keepalive ]]; then
    args=(-c 64 "http://127.0.0.1:$p$path")
  else
    args=(-c 256 -s "$here/wrk_pipeline.lua" "http://127.0.0.1:$p" -- "$path" 16)
  fi
  before=$(cpu_ticks "${pid[$s]}")
  out=$(timeout $((duration + 30)) taskset -c "$client_cpu" \
        wrk -t 1 -d "${duration}s" --timeout 5s --latency "${args[@]}" 2>&1) || {
    log "$s $w: wrk failed: ${out:0:300}"; return 0; }
  after=$(cpu_ticks "${pid[$s]}")
  if stats=$(wrk_stats <<<"$out"); then
    awk -F'\t' -v run="$run" -v w="$w" -v s="$s" -v ticks=$((after - before)) -v hz="$hz" '{
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\n", run, w, s, $1, $2, $3,
             ticks / hz * 1e6 / $4, $4, $5 }' <<<"$stats" >>"$tsv"
  else
    log "$s $w: could not parse wrk output: ${out:0:300}"
  fi
  tail -1 "$tsv" | awk -F'\t' -v s="$s" -v w="$w" '$3 == s && $2 == w {
    printf "   %-14s %-21s %10s req/s  p50 %8s us  p99 %8s us  %7s us CPU/req%s\n",
           s, w, $4, $5, $6, $7, ($9 > 0 ? "  ERRORS " $9 : "") }' >&2
}

live=()
if ((runs > 0)); then
  for s in "${servers[@]}"; do
    start_server "$s" && live+=("$s")
  done
  [[ ${#live[@]} -gt 0 ]] || { echo "compare_servers.sh: no server to measure" >&2; exit 1; }
  for ((run = 1; run <= runs; run++)); do
    log "run $run of $runs (${duration}s per measurement)"
    for w in "${workloads[@]}"; do
      for s in "${live[@]}"; do
        run_wrk "$s" "$w" "$run"
      done
    done
  done
  for s in "${live[@]}"; do stop_server "$s"; done
fi

# --- idle connections --------------------------------------------------------
idle_tsv="$results/servers_idle.tsv"
printf 'server\tconnections\tpss_per_conn\tprivate_per_conn\trss_per_conn\tclosed\n' >"$idle_tsv"
if ((idle > 0)); then
  for s in "${servers[@]}"; do
    # A fresh server: memory freed after the load runs would hide the cost.
    start_server "$s" || continue
    log "$s: $idle idle keep-alive connections"
    if out=$(timeout 300 python3 "$here/idle_memory.py" --port "${port[$s]}" \
               --pid "${pid[$s]}" --connections "$idle" 2>&1); then
      printf '%s\n' "$out" | grep -v '^RESULT' >&2
      printf '%s\n' "$out" | awk -v s="$s" '/^RESULT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%s\t%s\t%s\t%s\t%s\t%s\n", s, v["connections"], v["pss_per_conn"],
               v["private_per_conn"], v["rss_per_conn"], v["closed"] }' >>"$idle_tsv"
    else
      log "$s: idle_memory.py failed: ${out:0:400}"
    fi
    stop_server "$s"
  done
fi

# --- summary -----------------------------------------------------------------
command="bench/server/compare_servers.sh --runs $runs --duration $duration --server-cpu $server_cpu"
command+=" --client-cpu $client_cpu${only:+ --only $only}"
((idle > 0)) && command+=" --idle $idle"
finished_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# compare_servers.sh, $finished_at"
  echo
  echo "\`$command\`, portico $commit," \
       "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
       "$(uname -r); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), nginx $(nginx -v 2>&1 | sed 's/.*\///')," \
       "h2o $(h2o --version 2>/dev/null | head -1 | awk '{print $3}');" \
       "load average $load_before at the start, $load_after at the end"
  echo
  # With matplotlib, also bench/results/servers.svg (bench/lib/charts.py).
  python3 "$here/summarize.py" "$tsv" "$idle_tsv" --charts "$results" \
    --run "$command, $started_at to ${finished_at#* }, portico $commit, load average $load_before at the start, $load_after at the end"
} >"$results/servers.md"
cat "$results/servers.md"
