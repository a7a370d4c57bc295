#!/usr/bin/env bash
# cli.gateway.demo: runs portico-gateway's built-in demo as a user would (free
# ports), reads its `listening on` and `admin on` lines, checks the routes and
# the canary with curl, the admin listener, then SIGHUP (no config file: the
# old config keeps serving) and SIGTERM (a clean exit).
#
#   run_gateway_demo_test.sh PATH/TO/portico-gateway
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

# shellcheck source=gateway_demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_demo.sh"
start_gateway_demo "$bin"
gateway=$demo_pid
trap 'kill "$gateway" 2>/dev/null || true' EXIT

# expect URL STATUS BODY [curl args...]
expect() {
  local url=$1 status=$2 body=$3
  shift 3
  local out got got_body
  out=$(curl -sS --max-time 10 -w '\n%{http_code}' "$@" "$url") || fail "$url: curl failed"
  got=${out##*$'\n'}
  got_body=${out%$'\n'*}
  [[ $got == "$status" ]] || fail "$url: status $got, want $status"
  [[ $got_body == "$body" ]] || fail "$url: body '$got_body', want '$body'"
  echo "ok: $* $url -> $status"
}

expect "$base/api/users/42" 200 'users v1: user 42'
expect "$base/api/users/42" 200 'users v2: user 42' -H 'X-Release-Version: v2-beta'
expect "$base/api/users/42" 200 'users v1: user 42' -H 'X-Release-Version: v3'
expect "$base/users/42" 404 'Not Found'
expect "$admin/healthz" 200 $'ok\n'
expect "$admin/ready" 200 $'ready\n'
clusters=$(curl -sS --max-time 10 "$admin/clusters")
[[ $clusters == '{"users": {"breaker": "closed"'* ]] || fail "/clusters: $clusters"
echo "ok: /clusters"

# No config file to re-read: the reload fails and the demo keeps serving.
kill -HUP "$gateway"
expect "$base/api/users/7" 200 'users v1: user 7'

kill -TERM "$gateway"
status=0
wait "$gateway" || status=$?
trap - EXIT
[[ $status == 0 ]] || fail "portico-gateway exited with status $status after SIGTERM"
echo "ok: SIGTERM -> exit 0"
