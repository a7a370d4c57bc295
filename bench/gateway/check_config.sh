#!/usr/bin/env bash
# The gateway config goal (issue 14): `portico-gateway --check` of a
# 120,000-route file in at most 0.5 s, route table included. Generates the
# file (gen_routes_config.py), then runs --check N times pinned to one CPU
# and prints each run's wall, user, sys and peak RSS and the median wall;
# with --libraries, the three YAML parsers on the same file too
# (yaml_parse_compare, one process each).
#   bench/gateway/check_config.sh [--routes N] [--runs N] [--libraries]
#                                 [--build DIR] (default build/release)
set -euo pipefail
routes=120000 runs=5 libraries=0 build=build/release
while (($#)); do
  case "$1" in
    --routes) routes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --libraries) libraries=1; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--routes N] [--runs N] [--libraries] [--build DIR]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
gateway="$build/portico-gateway"
[[ -x "$gateway" ]] || { echo "build $gateway first (cmake --build $build --target portico-gateway)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/gen_routes_config.py" --routes "$routes" > "$work/routes.yaml"
echo "file: $routes routes, $(stat -c %s "$work/routes.yaml") bytes; load: $(cut -d' ' -f1-3 /proc/loadavg)"
walls=()
for ((i = 0; i < runs; i++)); do
  line=$(taskset -c 1 /usr/bin/time -f "%e %U %S %M" "$gateway" --config "$work/routes.yaml" --check 2>&1 >/dev/null | tail -1)
  read -r wall user sys rss <<< "$line"
  echo "check: wall ${wall} s, user ${user} s, sys ${sys} s, peak RSS $((rss / 1024)) MiB"
  walls+=("$wall")
done
printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print "median wall: " a[int((NR+1)/2)] " s (goal: 0.5 s)"}'
if ((libraries)); then
  compare="$build/bench/yaml_parse_compare"
  [[ -x "$compare" ]] || { echo "no $compare (needs libfyaml-dev, libyaml-cpp-dev)" >&2; exit 2; }
  for library in libyaml libfyaml yaml-cpp; do taskset -c 1 "$compare" "$library" "$work/routes.yaml"; done
fi
