#!/usr/bin/env bash
# example.portico_hello: runs the example server as a user would (a free
# port, two reactor threads), checks the five endpoints of issue 4 and the
# router's 404/405 answers with curl, then stops it with SIGTERM and expects
# a clean exit.
#
#   run_hello_test.sh PATH/TO/portico-hello
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

# Its first line names the port; read it from a pipe (no polling).
exec {out}< <(exec "$bin" --port 0 --threads 2 --workers 4)
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
IFS= read -r -t 30 -u "$out" line || fail "no listening line from portico-hello"
[[ $line =~ http://127\.0\.0\.1:([0-9]+)/ ]] || fail "unexpected first line: $line"
base="http://127.0.0.1:${BASH_REMATCH[1]}"

# expect METHOD PATH STATUS CONTENT-TYPE BODY [curl args...]
expect() {
  local method=$1 path=$2 status=$3 type=$4 body=$5
  shift 5
  # The body, then a last line of its own with the status and content type.
  local out got got_body
  out=$(curl -sS --max-time 10 -X "$method" -w '\n%{http_code} %{content_type}' "$@" "$base$path") ||
    fail "$method $path: curl failed"
  got=${out##*$'\n'}
  got_body=${out%$'\n'*}
  [[ $got == "$status $type" ]] || fail "$method $path: got '$got', want '$status $type'"
  [[ $got_body == "$body" ]] || fail "$method $path: body '$got_body', want '$body'"
  echo "ok: $method $path -> $status"
}

expect GET /plaintext 200 text/plain 'Hello, World!'
expect GET /json 200 application/json '{"message":"Hello, World!"}'
expect GET /users/42 200 text/plain 'user 42'
expect GET /users/alice 200 text/plain 'user alice'
expect POST /echo 200 text/plain 'echo me' -H 'Content-Type: text/plain' --data-binary 'echo me'
expect GET /slow 200 text/plain 'slow'
expect GET /missing 404 text/plain 'Not Found'
expect POST /plaintext 405 text/plain 'Method Not Allowed'
expect DELETE /users/1 405 text/plain 'Method Not Allowed'

# Three requests on one connection: the last two reuse it (no new connect).
got=$(curl -sS --max-time 10 -w ' %{num_connects}\n' "$base/plaintext" "$base/users/1" "$base/json")
want=$'Hello, World! 1\nuser 1 0\n{"message":"Hello, World!"} 0'
[[ $got == "$want" ]] || fail "three requests on one connection: got '$got'"
echo "ok: keep-alive"

kill -TERM "$server"
status=0
wait "$server" || status=$?
trap - EXIT
[[ $status == 0 ]] || fail "portico-hello exited with status $status after SIGTERM"
echo "ok: SIGTERM -> exit 0"
