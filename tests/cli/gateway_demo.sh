# gateway_demo.sh — sourced by the shell tests that drive portico-gateway's
# built-in demo. start_gateway_demo BIN starts it on free ports (stderr
# dropped) and reads its `listening on` and `admin on` lines; it sets
# demo_pid, base (the traffic listener's URL) and admin (the admin
# listener's). The caller defines fail() and stops demo_pid itself.
start_gateway_demo() {
  local line out
  exec {out}< <(exec "$1" --port 0 --admin-port 0 2>/dev/null)
  demo_pid=$!
  IFS= read -r -t 30 -u "$out" line || fail "no listening line from $1"
  [[ $line =~ ^listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "first line: $line"
  base="http://127.0.0.1:${BASH_REMATCH[1]}"
  IFS= read -r -t 30 -u "$out" line || fail "no admin line from $1"
  [[ $line =~ ^admin\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "second line: $line"
  admin="http://127.0.0.1:${BASH_REMATCH[1]}"
}
