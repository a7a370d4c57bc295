#!/usr/bin/env bash
# compare_routers.sh: portico's router against Go's httprouter and gin and C's
# r3, on the same route tables, in one run.
#
#   bench/router/compare_routers.sh [--runs N] [--cpu N] [--build-dir DIR]
#                                   [--requests N] [--no-portico]
#                                   [--tables NAME,NAME...]
#
# Builds portico-route (Release, in --build-dir, default build-peers) and the
# peers (bench/router/peers/bin/, git-ignored), generates the gateway tables of
# about 120,000 routes (bench/results/, git-ignored: gateway, and the shapes
# services, shuffled and rpc that httprouter accepts whole), then on each table
# (github, static, gateway, services, shuffled, rpc; --tables picks some)
# runs `portico-route --bench` and each peer, interleaved, N times (default
# 5), each pinned to one core (taskset -c CPU, default 1). It prints,
# and writes to bench/results/compare.md, a markdown table of the medians,
# the ratios portico/best peer and portico/httprouter, and correctness: every
# router's answers are checked against the table's .expected file (written by
# bench/router/tables/gen_tables.py from its own reference matcher), and
# `portico-route ROUTES REQUESTS` is diffed against it. With matplotlib
# (python3-matplotlib) it also draws bench/results/routers.svg from the same
# medians (bench/lib/charts.py); without it, a note says the chart is skipped.
#
# It installs nothing: it names the Debian packages to apt-get install when
# something is missing. Every run has a time limit, so the script stops by
# itself (a few minutes in all).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=5
cpu=1
build_dir="$root/build-peers"
gateway_requests=20000
with_portico=1
only_tables=""

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --requests) gateway_requests=$2; shift 2 ;;
    --no-portico) with_portico=0; shift ;;
    --tables) only_tables=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

# --- what we need ------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need python3 python3
need go golang-go
need gcc gcc
need pkg-config pkg-config
need taskset util-linux
need timeout coreutils
if [[ $with_portico == 1 ]]; then
  need cmake cmake
  need ninja ninja-build
  need g++ g++
fi
gopath=/usr/share/gocode
[[ -d $gopath/src/github.com/julienschmidt/httprouter ]] ||
  missing+=(golang-github-julienschmidt-httprouter-dev)
[[ -d $gopath/src/github.com/gin-gonic/gin ]] || missing+=(golang-github-gin-gonic-gin-dev)
pkg-config --exists r3 2>/dev/null || missing+=(libr3-dev)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "compare_routers.sh: missing tools; install them with:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! taskset -c "$cpu" true 2>/dev/null; then
  echo "compare_routers.sh: cannot pin to CPU $cpu (try --cpu 0)" >&2
  exit 1
fi

log() { printf '== %s\n' "$*" >&2; }

# --- build -------------------------------------------------------------------
bin="$here/peers/bin"
results="$root/bench/results"
mkdir -p "$bin" "$results"

if [[ $with_portico == 1 ]]; then
  log "building portico-route (Release) in $build_dir"
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPORTICO_BUILD_TESTS=OFF -DPORTICO_BUILD_BENCH=OFF -DPORTICO_BUILD_EXAMPLES=ON \
    >"$results/cmake.log" 2>&1 || { cat "$results/cmake.log" >&2; exit 1; }
  cmake --build "$build_dir" --target portico-route -j2 >"$results/build.log" 2>&1 ||
    { tail -50 "$results/build.log" >&2; exit 1; }
  portico_route="$build_dir/examples/portico-route"
fi

log "building the peers in $bin"
# Debian's Go packages, offline: GOPATH mode, nothing fetched.
export GOPATH=$gopath GO111MODULE=off GOFLAGS='' GOPROXY=off GOCACHE="$bin/gocache"
(cd "$here/peers" &&
  go build -o "$bin/httprouter_bench" httprouter_bench.go peer_common.go &&
  go build -o "$bin/gin_bench" gin_bench.go peer_common.go)
# shellcheck disable=SC2046  # pkg-config's flags are meant to split
gcc -O2 -std=gnu11 -Wall -Wextra -o "$bin/r3_bench" "$here/peers/r3_bench.c" \
  $(pkg-config --cflags --libs r3)

# --- run -----------------------------------------------------------------------
tables=()
for name in github static gateway services shuffled rpc; do
  [[ -z $only_tables || ,$only_tables, == *,$name,* ]] || continue
  case $name in
    github | static) tables+=("$name:$here/tables/$name") ;;
    *)
      log "generating the $name table in $results"
      python3 "$here/tables/gen_tables.py" "$name" "$results" "$gateway_requests"
      tables+=("$name:$results/$name")
      ;;
  esac
done
routers=(httprouter gin r3)
[[ $with_portico == 1 ]] && routers=(portico "${routers[@]}")

raw="$results/compare.raw"
: >"$raw"
rm -f "$results/routers.svg"   # the last run's chart would pass for this one's
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')   # before anything can move it
# One line per run: table router key=value...
run_one() { # table base router
  local out
  case $3 in
    portico) out=$(taskset -c "$cpu" timeout 120 "$portico_route" --bench "$2.routes" "$2.requests") ;;
    *) out=$(taskset -c "$cpu" timeout 120 "$bin/$3_bench" "$2.routes" "$2.requests" "$2.expected") ;;
  esac || out="failed=1"
  echo "$1 $3 $out" >>"$raw"
}

for entry in "${tables[@]}"; do
  name=${entry%%:*} base=${entry#*:}
  log "$name: $runs runs of ${routers[*]}, interleaved, on CPU $cpu"
  for ((i = 1; i <= runs; i++)); do
    for router in "${routers[@]}"; do run_one "$name" "$base" "$router"; done
  done
  if [[ $with_portico == 1 ]]; then
    # Correctness: portico-route's answers against the expected file.
    timeout 120 "$portico_route" "$base.routes" "$base.requests" >"$results/$name.portico.out" ||
      true
    wrong=$(python3 - "$results/$name.portico.out" "$base.expected" <<'PY'
import sys
got = open(sys.argv[1]).read().splitlines()
want = open(sys.argv[2]).read().splitlines()
print(sum(1 for i in range(max(len(got), len(want)))
          if i >= len(got) or i >= len(want) or got[i] != want[i]))
PY
)
    echo "$name portico-diff wrong=$wrong" >>"$raw"
  fi
done

# --- report --------------------------------------------------------------------
run_text="bench/router/compare_routers.sh --runs $runs --cpu $cpu${only_tables:+ --tables $only_tables},"
run_text+=" $started_at, portico $commit,"
run_text+=" load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
python3 - "$raw" "$runs" "$cpu" "$results" "$run_text" "$root/bench/lib" >"$results/compare.md" <<'PY'
import statistics
import sys

raw, runs, cpu, chart_dir, run_text = sys.argv[1:6]
sys.path.insert(0, sys.argv[6])
import charts  # bench/lib/charts.py
rows = {}      # (table, router) -> {metric: [values]}
order = []     # tables in order
routers = []
diffs = {}
for line in open(raw):
    parts = line.split()
    table, router, fields = parts[0], parts[1], parts[2:]
    kv = dict(f.split("=", 1) for f in fields if "=" in f)
    if router == "portico-diff":
        diffs[table] = int(kv["wrong"])
        continue
    if table not in order:
        order.append(table)
    if router not in routers:
        routers.append(router)
    cell = rows.setdefault((table, router), {})
    for k, v in kv.items():
        cell.setdefault(k, []).append(float(v))

def med(table, router, key):
    values = rows.get((table, router), {}).get(key)
    return statistics.median(values) if values else None

def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"

print(f"{run_text}\n")
print(f"Medians of {runs} interleaved runs per router, each pinned to CPU {cpu}.")
print("ns/lookup: best of 5 timed passes over all requests after a warm-up;")
print("build: time to add all routes; memory: heap bytes the built router holds;")
print("wrong: answers differing from the table's .expected file.\n")
print("| table | router | routes | rejected | ns/lookup | build ms | memory bytes | bytes/route | matched/requests | wrong |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for table in order:
    for router in routers:
        if (table, router) not in rows:
            continue
        if med(table, router, "failed") is not None:
            print(f"| {table} | {router} | failed | | | | | | | |")
            continue
        routes = med(table, router, "routes")
        memory = med(table, router, "memory_bytes")
        rejected = med(table, router, "rejected")
        wrong = med(table, router, "wrong")
        if router == "portico":
            rejected = 0
            wrong = diffs.get(table)
        print(f"| {table} | {router} | {fmt(routes)} | {fmt(rejected)} | "
              f"{fmt(med(table, router, 'ns_per_lookup'), 1)} | "
              f"{fmt(med(table, router, 'build_ms'), 2)} | {fmt(memory)} | "
              f"{fmt(memory / routes if memory is not None and routes else None, 1)} | "
              f"{fmt(med(table, router, 'matched'))}/{fmt(med(table, router, 'requests'))} | "
              f"{fmt(wrong)} |")

if "portico" in routers:
    print("\n| table | fastest peer | portico/fastest ns | portico/httprouter ns | portico/httprouter memory | portico/httprouter build |")
    print("|---|---|--:|--:|--:|--:|")
    def ratio(a, b):
        return f"{a / b:.2f}x" if a is not None and b else "n/a"
    for table in order:
        peers = [(med(table, r, "ns_per_lookup"), r) for r in routers
                 if r != "portico" and med(table, r, "ns_per_lookup") is not None]
        best_ns, best = min(peers) if peers else (None, "n/a")
        p = lambda k: med(table, "portico", k)
        h = lambda k: med(table, "httprouter", k)
        print(f"| {table} | {best} | {ratio(p('ns_per_lookup'), best_ns)} | "
              f"{ratio(p('ns_per_lookup'), h('ns_per_lookup'))} | "
              f"{ratio(p('memory_bytes'), h('memory_bytes'))} | "
              f"{ratio(p('build_ms'), h('build_ms'))} |")

# The chart: the medians above, one group of bars per table, on log axes
# (the tables span two orders of magnitude); portico's bars carry its ratios.
if "portico" in routers and charts.available():
    def group(key, unit, digits, versus):
        bars = []
        for table in order:
            routes = med(table, "portico", "routes")
            bars.append(f"{table} ({fmt(routes)} routes)" if routes else table)
            best_ns, best = min(((med(table, r, "ns_per_lookup"), r) for r in routers
                                 if r != "portico" and med(table, r, "ns_per_lookup") is not None),
                                default=(None, None))
            for router in routers:
                if (table, router) not in rows or med(table, router, "failed") is not None:
                    bars.append(charts.Bar(router, None))
                    continue
                v = med(table, router, key)
                text = f"{fmt(v, digits)} {unit}"
                if router == "portico":
                    other = best if versus == "fastest" else "httprouter"
                    o = med(table, other, key) if other else None
                    if o:
                        text += f" · {v / o:.2f}x {other}"
                elif versus == "fastest":
                    wrong = med(table, router, "wrong")
                    if wrong:
                        text += f" ({fmt(wrong)} wrong)"
                bars.append(charts.Bar(router, v, "portico" if router == "portico" else "peer", text))
        return bars
    panels = [
        charts.Panel("Lookup: ns per request (log scale, lower is better)",
                     group("ns_per_lookup", "ns", 1, "fastest"), unit="ns per lookup", log=True),
        charts.Panel("Build: ms to add every route (log scale)",
                     group("build_ms", "ms", 2, "httprouter"), unit="ms", log=True),
    ]
    charts.draw(f"{chart_dir}/routers.svg",
                "Routers: portico vs Go's httprouter and gin and C's r3, same route tables",
                f"{run_text}\nMedians of {runs} interleaved runs, each router pinned to CPU {cpu}; lookup ="
                " best of 5 timed passes over the table's requests after a warm-up. (N wrong): answers"
                " that differ from the reference matcher's; a router that refuses some routes answers"
                " their requests wrong." + (" portico answers every request right."
                                            if all(diffs.get(t) == 0 for t in order) else ""),
                panels, columns=2, column_width=5.4)
PY
cat "$results/compare.md"
