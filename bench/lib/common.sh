# shellcheck shell=bash
# bench/lib/common.sh: shell functions the comparison scripts in bench/ share
# (process trees and their CPU time and memory, stopping servers, wrk's
# figures, callgrind's totals). Source it from bash:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
#
# It defines functions only; nothing runs when it is sourced.

log() { printf '== %s\n' "$*" >&2; }

# need TOOL PACKAGE: remembers PACKAGE in $missing when TOOL is not on PATH;
# require_tools SCRIPT then exits with the apt-get line when any is missing.
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
require_tools() {
  ((${#missing[@]} == 0)) && return 0
  echo "$1: missing tools; install them with:" >&2
  echo "  apt-get install -y ${missing[*]}   (or .ci/setup --bench)" >&2
  exit 1
}

# check_cpus SCRIPT CPU...: exits unless taskset can pin to every CPU.
check_cpus() {
  local script=$1 c
  shift
  for c in "$@"; do
    taskset -c "$c" true 2>/dev/null || { echo "$script: cannot pin to CPU $c" >&2; exit 1; }
  done
}

# process_tree PID: PID and all its descendants, one a line.
process_tree() {
  local p=$1 c f
  echo "$p"
  for f in /proc/"$p"/task/*/children; do
    [[ -r $f ]] || continue
    for c in $(<"$f"); do process_tree "$c"; done
  done
}

# cpu_ticks PID: utime+stime, in clock ticks (getconf CLK_TCK), of PID's
# process tree (all threads of each process).
cpu_ticks() {
  local total=0 p line rest
  local -a f
  for p in $(process_tree "$1"); do
    line=$(<"/proc/$p/stat") || continue
    rest=${line##*) }          # fields from 3 (state) on; comm may hold spaces
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))   # fields 14 (utime) and 15 (stime)
  done
  echo "$total"
}

# hwm_kib PID: VmHWM (peak resident set, KiB) summed over PID's process tree.
hwm_kib() {
  local total=0 p v
  for p in $(process_tree "$1"); do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# vm_kib PID FIELD: FIELD (VmRSS, VmHWM, ...) of PID alone, KiB.
vm_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
# mib KIB: KiB as MiB with one decimal.
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
# settle_rss PID: waits until PID's VmRSS has not moved for a second (10 s
# at most).
settle_rss() {
  local last=-1 now
  for _ in $(seq 20); do
    now=$(vm_kib "$1" VmRSS)
    [[ $now == "$last" ]] && return 0
    last=$now
    sleep 0.5
  done
}

# stop_tree PID: SIGTERM to PID's process tree, up to 5 s to exit, then
# SIGKILL; reaps PID when it is the caller's child.
stop_tree() {
  local p=$1 tree
  kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
  mapfile -t tree < <(process_tree "$p" 2>/dev/null)
  kill -TERM "${tree[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${tree[@]}" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# interrupt_and_wait PID [SIGNAL]: SIGNAL (default INT) until PID (a child)
# exits, then reaps it; SIGKILL after a minute. Under valgrind a signal sent
# right after start-up is sometimes lost (seen on idle runs), so it is sent
# again every 5 s.
interrupt_and_wait() {
  local p=$1 sig=${2:-INT}
  for _ in $(seq 12); do
    kill "-$sig" "$p" 2>/dev/null || break
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break 2; sleep 0.1; done
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# callgrind_total FILE: the instructions a callgrind output file counted.
callgrind_total() {
  callgrind_annotate "$1" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

# wrk_stats < WRK_OUTPUT: one tab-separated line "rps p50_us p99_us requests
# errors" from the output of wrk --latency; fails when wrk completed no
# request. wrk 4.1 sometimes prints 0.00us for upper percentiles (wrk issues
# 236, 354; seen here with pipelining): a zero latency is impossible, so it
# is given as nan (missing).
wrk_stats() {
  awk '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /s$/) return v * 1000000
      return v
    }
    $1 == "50%" { p50 = us($2); if (p50 == 0) p50 = "nan" }
    $1 == "99%" { p99 = us($2); if (p99 == 0) p99 = "nan" }
    / requests in / { requests = $1 }
    /Requests\/sec:/ { rps = $2 }
    /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    END {
      if (requests == 0) exit 1
      if (p50 == "") p50 = "nan"
      if (p99 == "") p99 = "nan"
      printf "%.0f\t%s\t%s\t%d\t%d\n", rps, p50, p99, requests, errors
    }'
}
