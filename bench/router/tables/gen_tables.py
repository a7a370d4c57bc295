#!/usr/bin/env python3
"""Route tables, requests and expected answers for bench/router/compare_routers.sh.

  gen_tables.py small            rewrite the committed small tables in this
                                 directory: github.{requests,expected} (from
                                 the hand-written github.routes) and
                                 static.{routes,requests,expected}
  gen_tables.py gateway OUTDIR [N]
                                 write gateway.{routes,requests,expected}
                                 (about 120,000 routes, N requests) into OUTDIR
  gen_tables.py SHAPE OUTDIR [N] the same for another gateway shape, with
                                 no route httprouter refuses (no static
                                 sibling of a param, one param name per
                                 position, no catch-all beside routes):
                                   services  /api/<service>/v<N>/<resource>/
                                             :id/<sub>/:subId, tenant routes
                                             /t/:tenantId/<service>/..., and
                                             /v<N>/<service>/health statics;
                                             routes grouped by service, as a
                                             config file lists them
                                   shuffled  the services table's routes in
                                             random order (tables merged from
                                             many files, or read from a map)
                                   rpc       RPC-style statics, mostly
                                             POST /<package>.v<N>.<Service>/
                                             <Method>, plus REST bindings
                                             /v<N>/<collection>/:name...
  gen_tables.py expect ROUTES REQUESTS
                                 print the expected answers for any table

Everything is deterministic (fixed seeds), so two runs write the same bytes.

The expected answers come from a reference matcher written here, on its own
(segment by segment, linear over candidate routes), not from portico's trie,
so the comparison script can check every router's correctness:

  * a pattern is split at '/'; a segment is static text, a param ":name"
    (matches one non-empty segment) or a catch-all "*name" (last segment,
    matches a non-empty rest of the path, '/' included, value taken from
    where its segment starts);
  * of the routes that match the path and have the request's method (or
    "*"/"ANY"), the one whose segment kinds sort first wins: static before
    param before catch-all, compared segment by segment from the left (this
    is what a trie with backtracking finds), a method-specific route before
    an any-method one;
  * none with that method but some with another: "405 " + the union of the
    methods of every route matching the path, ASCII-sorted, comma-separated;
  * none at all: "404". The request's "?query" and "#fragment" are ignored.
"""

import random
import sys
from pathlib import Path

STATIC, PARAM, CATCH_ALL = 0, 2, 3
ANY_METHODS = ("*", "ANY")


def split_path(path):
    # "/a/b" -> ["a", "b"]; "/" -> [""]; "/a/" -> ["a", ""].
    return path[1:].split("/")


class Route:
    __slots__ = ("method", "pattern", "segments", "kinds", "names")

    def __init__(self, method, pattern):
        self.method = method
        self.pattern = pattern
        self.segments = split_path(pattern)
        self.kinds = []
        self.names = []
        for seg in self.segments:
            if seg.startswith(":"):
                self.kinds.append(PARAM)
                self.names.append(seg[1:])
            elif seg.startswith("*"):
                self.kinds.append(CATCH_ALL)
                self.names.append(seg[1:])
            else:
                self.kinds.append(STATIC)
                self.names.append(None)
        self.kinds = tuple(self.kinds)

    def leading_static(self):
        n = 0
        for kind in self.kinds:
            if kind != STATIC:
                break
            n += 1
        return n

    def match(self, segs):
        """Param values in order, or None."""
        values = []
        n = len(self.segments)
        for i, kind in enumerate(self.kinds):
            if kind == CATCH_ALL:
                rest = "/".join(segs[i:])
                if not rest:
                    return None
                values.append(rest)
                return values
            if i >= len(segs):
                return None
            if kind == STATIC:
                if segs[i] != self.segments[i]:
                    return None
            elif not segs[i]:
                return None
            else:
                values.append(segs[i])
        return values if len(segs) == n else None


def read_routes(path):
    routes = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        method, pattern = line.split()
        routes.append(Route(method, pattern))
    return routes


class Reference:
    """Linear matching over candidate routes (an index only to keep 120,000
    routes fast enough): a route without a catch-all is filed under its
    segment count and its first DEPTH segments (None for a param), and a
    request tries every way of reading its first segments as static text or
    a param; catch-all routes are filed under their leading static segments.
    """

    DEPTH = 5

    def __init__(self, routes):
        self.exact = {}
        self.catch_alls = {}
        for route in routes:
            if CATCH_ALL in route.kinds:
                k = min(self.DEPTH, route.leading_static())
                key = (k, tuple(route.segments[:k]))
                self.catch_alls.setdefault(key, []).append(route)
            else:
                self.exact.setdefault(self.exact_key(route.segments, route.kinds),
                                      []).append(route)

    def exact_key(self, segs, kinds):
        n = len(segs)
        return (n, tuple(s if k == STATIC else None
                         for s, k in zip(segs[:self.DEPTH], kinds[:self.DEPTH])))

    def candidates(self, segs):
        n = len(segs)
        head = segs[:self.DEPTH]
        for mask in range(1 << len(head)):
            key = (n, tuple(None if (mask >> i) & 1 else s for i, s in enumerate(head)))
            yield from self.exact.get(key, ())
        for k in range(self.DEPTH + 1):
            if k > n:
                break
            yield from self.catch_alls.get((k, tuple(segs[:k])), ())

    def answer(self, method, target):
        for sep in "?#":
            target = target.split(sep, 1)[0]
        segs = split_path(target)
        best = None
        allowed = set()
        for route in self.candidates(segs):
            values = route.match(segs)
            if values is None:
                continue
            allowed.add(route.method)
            if route.method != method and route.method not in ANY_METHODS:
                continue
            rank = (route.kinds, route.method in ANY_METHODS)
            if best is None or rank < best[0]:
                best = (rank, route, values)
        if best is not None:
            _, route, values = best
            names = [n for n in route.names if n is not None]
            params = "".join(f" {n}={v}" for n, v in zip(names, values))
            return f"200 {route.pattern}{params}"
        if allowed:
            return "405 " + ",".join(sorted(allowed))
        return "404"


def expected_lines(routes, requests):
    ref = Reference(routes)
    return [ref.answer(m, p) for m, p in requests]


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def write_requests(path, requests):
    write_lines(path, [f"{m} {p}" for m, p in requests])


# Concrete values for the GitHub table's params, by name.
GITHUB_VALUES = {
    "owner": "octocat", "repo": "hello-world", "user": "mojombo",
    "org": "github", "id": "1296269", "number": "1347", "sha":
    "6dcb09b5b57875f334f61aebed695e2e4193db5e", "name": "bug",
    "client_id": "a1b2c3d4", "access_token": "e72e16c7e42f292c",
    "comment_id": "4711", "assignee": "hubot", "branch": "main",
    "ref": "v1.0.0", "license": "mit", "email": "octo@github.com",
    "keyword": "router", "repository": "linguist", "state": "open",
    "target_user": "defunkt",
}


def fill(route, values):
    out = []
    for seg, kind, name in zip(route.segments, route.kinds, route.names):
        if kind == STATIC:
            out.append(seg)
        elif kind == PARAM:
            out.append(values(name))
        else:
            out.append(values(name) + "/more")
    return "/" + "/".join(out)


def github(here):
    routes = read_routes(here / "github.routes")
    requests = [(r.method, fill(r, GITHUB_VALUES.__getitem__)) for r in routes]
    requests += [
        # Misses: unknown paths, empty and extra segments, trailing slashes.
        ("GET", "/repos/octocat/hello-world/issues/1347/nope"),
        ("GET", "/repos/octocat//issues"),
        ("GET", "/users/mojombo/"),
        ("GET", "/user/starred/octocat"),
        ("GET", "/nope"),
        ("GET", "/Users/mojombo"),
        # Wrong methods: 405 with the allowed set.
        ("DELETE", "/repos/octocat/hello-world/issues"),
        ("POST", "/users/mojombo"),
        ("PUT", "/gists/42"),
        ("POST", "/repos/octocat/hello-world/pulls/1347/merge"),
        ("GET", "/markdown"),
        # Query strings and fragments are not part of the path.
        ("GET", "/repos/octocat/hello-world/issues?state=open&page=2"),
        ("GET", "/search/code?q=addClass#top"),
    ]
    write_requests(here / "github.requests", requests)
    write_lines(here / "github.expected", expected_lines(routes, requests))


# A documentation site: sections, guides, API reference pages, blog posts.
STATIC_SECTIONS = {
    "docs/guide": ["introduction", "installation", "getting-started",
                   "configuration", "routing", "middleware", "handlers",
                   "requests", "responses", "errors", "logging", "testing",
                   "deployment", "upgrading", "faq"],
    "docs/api": ["router", "server", "request", "response", "headers",
                 "cookies", "params", "query", "body", "streams", "timers",
                 "buffer-pool", "mpmc-queue", "reactor", "gateway",
                 "upstream", "health", "retries", "metrics", "tls"],
    "docs/tutorials": ["hello-world", "rest-api", "static-files",
                       "websockets", "reverse-proxy", "rate-limiting",
                       "authentication", "canary-releases"],
    "docs/reference/config": ["listen", "threads", "timeouts", "limits",
                              "upstreams", "routes", "logging", "metrics"],
    "docs/reference/cli": ["serve", "route", "check", "bench", "version"],
    "docs/examples": ["hello", "json-api", "file-server", "proxy",
                      "router-only", "httplib-dispatch", "graceful-shutdown",
                      "metrics-endpoint", "health-checks", "canary",
                      "rate-limit", "cors"],
    "blog/2024": ["announcing-portico", "radix-tries", "zero-copy",
                  "lock-free-queues", "benchmarks", "release-0-2",
                  "release-0-3", "year-in-review"],
    "blog/2025": ["gateway-preview", "release-1-0", "http2-plans",
                  "observability", "case-study-acme", "community"],
    "community": ["code-of-conduct", "contributing", "governance",
                  "support", "events", "sponsors"],
    "legal": ["privacy", "terms", "cookies", "licenses", "security"],
    "assets/css": ["main.css", "print.css", "syntax.css", "search.css"],
    "assets/js": ["main.js", "search.js", "analytics.js", "theme.js"],
    "assets/img": ["logo.svg", "logo-dark.svg", "favicon.ico",
                   "og-image.png", "diagram-flow.svg", "diagram-trie.svg"],
}
STATIC_TOP = ["/", "/about", "/pricing", "/download", "/changelog",
              "/roadmap", "/status",
              "/robots.txt", "/sitemap.xml", "/feed.xml", "/search",
              "/login", "/logout", "/signup", "/contact", "/careers",
              "/press", "/security.txt", "/.well-known/security.txt",
              "/.well-known/change-password"]
STATIC_POSTS = ["/search", "/login", "/logout", "/signup", "/contact",
                "/api/feedback", "/api/newsletter/subscribe",
                "/api/newsletter/unsubscribe"]


def static(here):
    routes = [Route("GET", p) for p in STATIC_TOP]
    for section, pages in STATIC_SECTIONS.items():
        routes.append(Route("GET", f"/{section}"))
        routes += [Route("GET", f"/{section}/{page}") for page in pages]
    routes += [Route("POST", p) for p in STATIC_POSTS]
    header = [
        "# A static-only table: a documentation site's pages and assets,",
        "# plus a few POST endpoints. Written by gen_tables.py small.",
    ]
    write_lines(here / "static.routes",
                header + [f"{r.method} {r.pattern}" for r in routes])
    requests = [(r.method, r.pattern) for r in routes]
    requests += [
        ("GET", "/docs/guide/routing/"),
        ("GET", "/docs/guide/rout"),
        ("GET", "/docs/guide/routingx"),
        ("GET", "/Docs"),
        ("GET", "/docs//guide"),
        ("GET", "/api/feedbacks"),
        ("DELETE", "/docs/api/router"),
        ("GET", "/api/feedback"),
        ("PUT", "/login"),
        ("GET", "/docs/api/router?version=1#params"),
    ]
    write_requests(here / "static.requests", requests)
    write_lines(here / "static.expected", expected_lines(routes, requests))


# --- the gateway table --------------------------------------------------------

WORDS = """account address alert archive asset audit backup badge balance batch
bill blob board booking branch budget bundle cache campaign card cart case
catalog channel charge chart check claim client cluster comment config
contact contract coupon credit customer dashboard device discount dispute
document domain draft event export feature feed file filter folder form
gateway grant group hook image import incident invoice issue item job key
label lead ledger license link list log mailbox media member message meter
metric model monitor note notice offer order owner package page partner
payment payout plan policy pool post price product profile project promo
queue quota quote receipt record refund region release report request
review role rule run schedule scope secret segment session setting share
shipment site slot snapshot source space stage stock store subscription
survey tag task team template ticket token topic track transfer trigger
upload user vault vendor version volume voucher wallet webhook widget
workflow zone""".split()

VERSIONS = ["v1", "v2", "v3"]
N_SERVICES = 100
N_RESOURCES = 20
CATCH_ALL_EVERY = 10  # every 10th service has a GET /api/V/S/*path fallback


def plural(word):
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def gateway_layout():
    rng = random.Random(20261123)
    services = []
    used = set()
    while len(services) < N_SERVICES:
        name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
        if name not in used:
            used.add(name)
            services.append(name)
    layout = []
    for s_index, service in enumerate(services):
        resources = rng.sample(WORDS, N_RESOURCES)
        subs = [rng.sample([w for w in WORDS if w != r], 2) for r in resources]
        layout.append((s_index, service, [
            (plural(r), plural(sub[0]), plural(sub[1]))
            for r, sub in zip(resources, subs)]))
    return layout


def gateway_routes(layout):
    routes = []
    for version in VERSIONS:
        for s_index, service, resources in layout:
            base = f"/api/{version}/{service}"
            for res, sub, sub2 in resources:
                r = f"{base}/{res}"
                t = f"{base}/tenants/:tenant/{res}"
                routes += [
                    ("GET", r), ("POST", r),
                    ("GET", f"{r}/new"),  # a static sibling of :id
                    ("GET", f"{r}/:id"), ("PUT", f"{r}/:id"),
                    ("DELETE", f"{r}/:id"),
                    ("GET", f"{r}/:id/{sub}"), ("POST", f"{r}/:id/{sub}"),
                    ("GET", f"{r}/:id/{sub}/:sid"),
                    ("PATCH", f"{r}/:id/{sub}/:sid"),
                    ("DELETE", f"{r}/:id/{sub}/:sid"),
                    ("GET", f"{r}/:id/{sub}/latest"),  # sibling of :sid
                    ("GET", f"{r}/:id/{sub2}"),
                    ("GET", f"{r}/:id/{sub2}/:sid/items/:iid"),
                    ("GET", t), ("POST", t),
                    ("GET", f"{t}/:id"), ("PUT", f"{t}/:id"),
                    ("GET", f"{t}/:id/{sub}"),
                    ("GET", f"{t}/:id/{sub}/:sid"),
                ]
            if s_index % CATCH_ALL_EVERY == 0:
                routes.append(("GET", f"{base}/*path"))
    return [Route(m, p) for m, p in routes]


def gateway_requests(routes, layout, count):
    rng = random.Random(7)
    tenants = ["acme", "globex", "initech", "umbrella", "hooli"]

    def value(name):
        if name == "tenant":
            return rng.choice(tenants)
        if name == "path":
            return "x"
        return str(rng.randrange(1, 10_000_000))

    catch_all_bases = [
        f"/api/{v}/{s}" for v in VERSIONS
        for i, s, _ in layout if i % CATCH_ALL_EVERY == 0]
    other_bases = [
        f"/api/{v}/{s}" for v in VERSIONS
        for i, s, _ in layout if i % CATCH_ALL_EVERY != 0]
    requests = []
    while len(requests) < count:
        roll = rng.random()
        route = rng.choice(routes)
        path = fill(route, value)
        if roll < 0.80:
            requests.append((route.method, path))
        elif roll < 0.84:
            # A param value that equals a static sibling's text, or starts
            # like it: "new" goes to the static route, "newest" to :id.
            segs = split_path(path)
            if len(segs) >= 5 and segs[3] != "tenants":
                word = rng.choice(["new", "newest", "ne", "latest"])
                requests.append(("GET", "/".join([""] + segs[:4] + [word])))
            else:
                requests.append(("GET", path))
        elif roll < 0.90:
            # Wrong method on an existing path.
            requests.append((rng.choice(["PATCH", "PUT", "POST", "DELETE"]),
                             path))
        elif roll < 0.94:
            # Under a service with a catch-all: unknown sub-paths fall back
            # to it (after backtracking from the :id branch when deep).
            base = rng.choice(catch_all_bases)
            tail = rng.choice([
                "unknown/x", "health", f"{rng.choice(WORDS)}s/1/2/3/4",
                "tenants/acme", "tenants/acme/nothing/1"])
            requests.append(("GET", f"{base}/{tail}"))
        else:
            # Misses: unknown service, trailing slash, empty segment,
            # an extra segment, no catch-all to fall back to.
            base = rng.choice(other_bases)
            kind = rng.randrange(4)
            if kind == 0:
                requests.append(("GET", f"/api/v9/{rng.choice(WORDS)}/1"))
            elif kind == 1:
                requests.append((route.method, path + "/"))
            elif kind == 2:
                requests.append(("GET", f"{base}//1"))
            else:
                requests.append(("GET", f"{base}/nothing/1/2"))
    return requests


def gateway(outdir, count):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    layout = gateway_layout()
    routes = gateway_routes(layout)
    write_lines(outdir / "gateway.routes",
                [f"{r.method} {r.pattern}" for r in routes])
    requests = gateway_requests(routes, layout, count)
    write_requests(outdir / "gateway.requests", requests)
    write_lines(outdir / "gateway.expected", expected_lines(routes, requests))


# --- more gateway shapes, all accepted by httprouter ---------------------------
#
# One generated table is not a benchmark of "gateway-shaped" tables: route
# order and where the params sit change what building costs. These shapes
# follow a gateway team's description of its own 117k-route table, which
# httprouter accepts whole (so its build pays no panics for refused routes).

SERVICES_COUNT = 155
SHAPES = ("services", "shuffled", "rpc")


def unique_names(rng, count, make):
    names, used = [], set()
    while len(names) < count:
        name = make()
        if name not in used:
            used.add(name)
            names.append(name)
    return names


def services_routes():
    """/api/<service>/v<N>/<resource>[/:id[/<sub>[/:subId]]], tenant routes
    /t/:tenantId/<service>/<resource>[/:id], /v<N>/<service>/health; grouped
    by service. About 118,000 routes."""
    rng = random.Random(20261205)
    services = unique_names(rng, SERVICES_COUNT,
                            lambda: f"{rng.choice(WORDS)}-{rng.choice(WORDS)}")
    routes = []
    for service in services:
        versions = [f"v{n}" for n in range(1, rng.choice([1, 2, 2, 3, 3, 4]) + 1)]
        resources = [plural(r) for r in rng.sample(WORDS, rng.randrange(14, 27))]
        for version in versions:
            routes.append(("GET", f"/{version}/{service}/health"))
            for res in resources:
                r = f"/api/{service}/{version}/{res}"
                subs = [plural(w) for w in rng.sample(WORDS, 2)]
                routes += [("GET", r), ("POST", r),
                           ("GET", f"{r}/:id"), ("PUT", f"{r}/:id"),
                           ("PATCH", f"{r}/:id"), ("DELETE", f"{r}/:id")]
                for sub in subs:
                    routes += [("GET", f"{r}/:id/{sub}"), ("POST", f"{r}/:id/{sub}"),
                               ("GET", f"{r}/:id/{sub}/:subId"),
                               ("DELETE", f"{r}/:id/{sub}/:subId")]
        for res in resources:
            t = f"/t/:tenantId/{service}/{res}"
            routes += [("GET", t), ("GET", f"{t}/:id"), ("PUT", f"{t}/:id")]
    return [Route(m, p) for m, p in routes]


def rpc_routes():
    """RPC-style endpoints (POST /<package>.v<N>.<Service>/<Method>) with
    REST bindings (/v<N>/<collection>/:name[/<sub>/:subName][:verb-free]);
    mostly static, long shared prefixes. About 118,000 routes."""
    rng = random.Random(20261206)
    packages = unique_names(rng, 97, lambda: f"{rng.choice(WORDS)}{rng.choice(WORDS)}")
    verbs = ["Get", "List", "Create", "Update", "Delete", "Batch", "Search",
             "Watch", "Export", "Import", "Validate", "Undelete"]
    routes = []
    for package in packages:
        for n in range(1, rng.choice([2, 3, 3, 4]) + 1):
            version = f"v{n}"
            for service in rng.sample(WORDS, rng.randrange(6, 14)):
                svc = service.capitalize() + "Service"
                for noun in rng.sample(WORDS, rng.randrange(3, 8)):
                    for verb in rng.sample(verbs, rng.randrange(4, len(verbs) + 1)):
                        routes.append(("POST", f"/{package}.{version}.{svc}/{verb}{noun.capitalize()}"))
            for coll in rng.sample(WORDS, 6):
                b = f"/{version}/{package}/{plural(coll)}"
                routes += [("GET", b), ("POST", b), ("GET", f"{b}/:name"),
                           ("DELETE", f"{b}/:name"), ("GET", f"{b}/:name/history/:rev")]
    return [Route(m, p) for m, p in routes]


def shape_requests(routes, count, seed):
    """Hits (80%), wrong methods, trailing slashes, an extra or empty
    segment, unknown first segments."""
    rng = random.Random(seed)

    def value(name):
        if name == "tenantId":
            return rng.choice(["acme", "globex", "initech", "umbrella", "hooli"])
        return str(rng.randrange(1, 10_000_000))

    requests = []
    while len(requests) < count:
        roll = rng.random()
        route = rng.choice(routes)
        path = fill(route, value)
        if roll < 0.80:
            requests.append((route.method, path))
        elif roll < 0.88:
            requests.append((rng.choice(["GET", "PATCH", "PUT", "POST", "DELETE"]), path))
        elif roll < 0.92:
            requests.append((route.method, path + "/"))
        elif roll < 0.96:
            requests.append((route.method, path + "/extra"))
        elif roll < 0.98:
            requests.append((route.method, path.replace("/", "//", 2)))
        else:
            requests.append(("GET", f"/{rng.choice(WORDS)}/{rng.choice(WORDS)}/1"))
    return requests


def write_shape(outdir, name, routes, count, seed):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    write_lines(outdir / f"{name}.routes", [f"{r.method} {r.pattern}" for r in routes])
    requests = shape_requests(routes, count, seed)
    write_requests(outdir / f"{name}.requests", requests)
    write_lines(outdir / f"{name}.expected", expected_lines(routes, requests))


def shape(name, outdir, count):
    if name == "services":
        routes = services_routes()
    elif name == "shuffled":
        routes = services_routes()
        random.Random(20261207).shuffle(routes)
    else:
        routes = rpc_routes()
    write_shape(outdir, name, routes, count, seed=11)


def main(argv):
    here = Path(__file__).resolve().parent
    if len(argv) == 2 and argv[1] == "small":
        github(here)
        static(here)
    elif len(argv) in (3, 4) and argv[1] == "gateway":
        gateway(argv[2], int(argv[3]) if len(argv) == 4 else 20_000)
    elif len(argv) in (3, 4) and argv[1] in SHAPES:
        shape(argv[1], argv[2], int(argv[3]) if len(argv) == 4 else 20_000)
    elif len(argv) == 4 and argv[1] == "expect":
        routes = read_routes(argv[2])
        requests = []
        for line in Path(argv[3]).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                requests.append((parts[0], parts[1]))
        print("\n".join(expected_lines(routes, requests)))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
