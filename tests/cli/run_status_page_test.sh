#!/usr/bin/env bash
# cli.gateway.status_page: the admin listener's status page (GET /) as a
# person would see it. Runs portico-gateway's built-in demo (free ports),
# sends known traffic with curl (5 requests to /api/users/:id, 3 of them
# with the canary header, and 1 to a path no route has), then loads the page
# in headless Chromium, lets its script fetch /metrics, /clusters and /routes
# and render at least twice, and checks the rendered DOM: both clusters with
# closed breakers and healthy endpoints, what each cluster was sent (2 and
# 3), the route's 5 requests and 0 errors,
# the unrouted request under route "none" with route_not_found, the
# endpoints' upstream requests, req/s filled in.
#
#   run_status_page_test.sh PATH/TO/portico-gateway
# Exit 77 (skipped) when Chromium is not installed, unless CI is set.
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
  [[ -n ${CI:-} ]] && fail "chromium is not installed (.ci/setup installs it)"
  echo "SKIP: chromium is not installed (apt-get install chromium)"
  exit 77
fi

# shellcheck source=gateway_demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_demo.sh"
start_gateway_demo "$bin"
gateway=$demo_pid
profile=$(mktemp -d)
trap 'kill "$gateway" 2>/dev/null || true; rm -rf "$profile"' EXIT

for i in 1 2; do
  [[ $(curl -sS --max-time 10 "$base/api/users/$i") == "users v1: user $i" ]] || fail "v1 request"
done
for i in 3 4 5; do
  [[ $(curl -sS --max-time 10 -H 'X-Release-Version: v2-beta' "$base/api/users/$i") == "users v2: user $i" ]] ||
    fail "canary request"
done
[[ $(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$base/nowhere") == 404 ]] || fail "404"
got=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{content_type}' "$admin/")
[[ $got == "200 text/html; charset=utf-8" ]] || fail "GET /: $got, not the HTML page"

# Virtual time: the page's refresh timer (1 s here) fires within the budget
# without the test waiting for it in real time; the fetches are real.
dom=$(timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$profile" --virtual-time-budget=4000 --dump-dom \
        "$admin/?refresh=1" 2>/dev/null) || fail "chromium failed"
[[ -n $dom ]] || fail "chromium rendered nothing"

# The rendered tables, checked with the standard library's HTML parser.
python3 - "$dom" <<'PY' || fail "the rendered page (above)"
import sys
from html.parser import HTMLParser

class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell, self.body = [], None, None, {}
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "tr":
            self.row = {"attrs": attrs, "cells": []}
            self.rows.append(self.row)
        elif tag == "td" and self.row is not None:
            self.cell = {"attrs": attrs, "text": ""}
            self.row["cells"].append(self.cell)
        elif tag == "span" and attrs.get("id") == "state":
            self.cell = {"attrs": attrs, "text": ""}
            self.state = self.cell
    def handle_endtag(self, tag):
        if tag in ("td", "span"):
            self.cell = None
    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data

page = Page()
page.feed(sys.argv[1])
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

def find(key, value):
    for row in page.rows:
        if row["attrs"].get(key) == value:
            return [c["text"] for c in row["cells"]]
    return None

check(page.state["text"] == "serving", "state: " + page.state["text"])
check(int(page.body.get("data-updates", "0")) >= 2, "rendered fewer than twice: %r" % page.body)
for cluster, sent in (("users", 2), ("users-v2", 3)):
    row = find("data-cluster", cluster)
    check(row is not None, "no row for cluster " + cluster)
    if row:
        check(row[1] == "closed", "%s breaker: %r" % (cluster, row))
        check(row[6] == str(sent), "%s requests: %r" % (cluster, row))
endpoints = [r for r in page.rows if r["attrs"].get("class") == "endpoint"]
check(len(endpoints) == 2, "endpoints: %d rows" % len(endpoints))
sent = sorted(int(r["cells"][6]["text"]) for r in endpoints if r["cells"][6]["text"].isdigit())
check(sent == [2, 3], "upstream requests per endpoint: %r" % sent)
for r in endpoints:
    check(r["cells"][1]["text"] == "up", "endpoint health: %r" % [c["text"] for c in r["cells"]])
route = find("data-route", "/api/users/:id")
check(route is not None, "no row for route /api/users/:id")
if route:
    check(route[2] == "5", "route requests: %r" % route)
    check(route[4] == "0.0 %", "route errors: %r" % route)
    check(route[3] != "\u2013", "route req/s not computed: %r" % route)
    check(route[5].endswith(("s", "ms")), "route p50: %r" % route)
none = find("data-route", "none")
check(none is not None and none[2] == "1" and "route_not_found 1" in none[7],
      "unrouted request: %r" % none)
if problems:
    print(sys.argv[1][:20000], file=sys.stderr)
    for p in problems:
        print("FAIL: " + p, file=sys.stderr)
    sys.exit(1)
print("ok: status page rendered clusters, endpoints and routes")
PY

kill -TERM "$gateway"
wait "$gateway" || fail "portico-gateway exited with status $? after SIGTERM"
trap 'rm -rf "$profile"' EXIT
