#!/usr/bin/env bash
# example.gateway_host: the embedding example as a user would run it. Its
# upstream is portico-gateway's demo (so /api/users/:id is served behind two
# gateways); /local is the host's own route.
#
#   run_gateway_host_test.sh PATH/TO/portico-gateway-host PATH/TO/portico-gateway
set -euo pipefail
host_bin=$1 gateway_bin=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

exec {demo_out}< <(exec "$gateway_bin" --port 0 --admin-port 0 2>/dev/null)
demo=$!
host=""
trap 'kill $demo $host 2>/dev/null || true' EXIT
IFS= read -r -t 30 -u "$demo_out" line || fail "no listening line from the demo"
[[ $line =~ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "demo: $line"
demo_port=${BASH_REMATCH[1]}

exec {host_out}< <(exec "$host_bin" --port 0 --upstream "127.0.0.1:$demo_port")
host=$!
IFS= read -r -t 30 -u "$host_out" line || fail "no listening line from the host"
[[ $line =~ ^listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "host: $line"
base="http://127.0.0.1:${BASH_REMATCH[1]}"

got=$(curl -sS --max-time 10 "$base/local") || fail "curl /local"
[[ $got == "answered by the host" ]] || fail "/local: '$got'"
echo "ok: /local"
got=$(curl -sS --max-time 10 "$base/api/users/42") || fail "curl /api/users/42"
[[ $got == "users v1: user 42" ]] || fail "/api/users/42: '$got'"
echo "ok: /api/users/42 through the host's proxy"
got=$(curl -sS --max-time 10 -H 'X-Release-Version: v2-beta' "$base/api/users/7") || fail "curl canary"
[[ $got == "users v2: user 7" ]] || fail "canary: '$got'"
echo "ok: the canary header passes through"

kill -TERM "$host"
status=0
wait "$host" || status=$?
[[ $status == 0 ]] || fail "portico-gateway-host exited with status $status after SIGTERM"
echo "ok: SIGTERM -> exit 0"
