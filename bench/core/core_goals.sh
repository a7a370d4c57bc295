#!/usr/bin/env bash
# core_goals.sh: issue 3's goals for MpmcQueue and BufferPool, measured the
# way the machine allows: every case of a round runs within a minute of the
# others, rounds are repeated, and each goal is the median over rounds of the
# ratio taken within a round (single runs on the 2-vCPU machine drift by a
# third, and the cross-core cases also move with where the vCPUs land).
#
#   bench/core/core_goals.sh [--rounds N] [--bench-dir DIR]
#
# Uses mpmc_queue_bench and buffer_pool_bench from DIR (default
# build/release/bench, built by `cmake --workflow --preset release`). Each
# round runs, in turn:
#   mpmc_queue_bench  the Transfer and TransferBatch cases (all threads free)
#   mpmc_queue_bench  the PushPopPair cases, pinned to one CPU (taskset -c 0)
#   buffer_pool_bench acquire+release of 16 KiB blocks against glibc and
#                     mimalloc, 1024 local against 1024 cross-core releases,
#                     and the owner's reclaim() of 1024 cross-core releases
# (25–50 s a round on the 2-vCPU machine; default 5 rounds). It prints, and writes to
# bench/results/core.md (git-ignored), one line per goal with its median
# ratio, the range over rounds, and whether the median meets it. The JSON of
# every run stays in bench/results/core/. Installs nothing; the peers
# (libconcurrentqueue-dev, libboost-dev, libmimalloc2.0) come with .ci/setup.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=5
bench_dir="$root/build/release/bench"

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --bench-dir) bench_dir=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "core_goals.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
  echo "core_goals.sh: --rounds wants a positive integer, got '$rounds'" >&2
  exit 2
fi
for b in mpmc_queue_bench buffer_pool_bench; do
  if [[ ! -x $bench_dir/$b ]]; then
    echo "core_goals.sh: $bench_dir/$b not found: run 'cmake --workflow --preset release' first" >&2
    exit 1
  fi
done
command -v taskset >/dev/null || { echo "core_goals.sh: needs taskset (apt-get install util-linux)" >&2; exit 1; }

out="$root/bench/results/core"
rm -rf "$out"
mkdir -p "$out"
# Each bench run is bounded; a hung run fails the script instead of stalling it.
# Its console output goes to a log, shown if it fails.
run() {
  local json=$1; shift
  if ! timeout 300 "$@" --benchmark_out="$json" --benchmark_out_format=json \
      >"${json%.json}.log" 2>&1; then
    cat "${json%.json}.log" >&2
    echo "core_goals.sh: failed: $*" >&2
    exit 1
  fi
}
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds ($(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1 /proc/loadavg))" >&2
  run "$out/queue_$r.json" "$bench_dir/mpmc_queue_bench" --benchmark_filter='^Transfer(Batch)?/'
  run "$out/pair_$r.json" taskset -c 0 "$bench_dir/mpmc_queue_bench" \
    --benchmark_filter='^PushPopPair/' --benchmark_min_time=0.5
  run "$out/pool_$r.json" "$bench_dir/buffer_pool_bench" --benchmark_min_time=0.2 \
    --benchmark_filter='^BM_AcquireRelease<.*>/16384$|^BM_Release<PoolAlloc, |^BM_ReclaimRemote'
done
python3 "$here/core_goals.py" "$out" | tee "$root/bench/results/core.md"
