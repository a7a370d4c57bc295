#!/usr/bin/env python3
"""Writes a gateway config (GATEWAY.md's shape) with N gateway-shaped routes.

    gen_routes_config.py [--routes N] [--clusters C] [--endpoint HOST:PORT]
                         [--json] > gw.yaml

Patterns: per-service prefixes /api/<service>/v<N>/<resource>/:id/<sub>, their
static siblings (/api/<service>/v<N>/<resource>/search beside :id), tenant
routes /t/:tenantId/<service>/<resource>/:id, a few /v<N>/<service>/health
statics and catch-alls. Every 50th route has hosts, every 7th methods, every
100th a canary, every 500th a split. Deterministic: the same N writes the same
file. All routes are distinct and free of conflicts, so the file loads.
Each cluster has two endpoints on addresses nothing listens on, unless
--endpoint gives one address (a real upstream) that every cluster's single
endpoint uses, so the file can be served (bench/gateway/reload_under_load.sh).
"""
import argparse
import json
import sys

RESOURCES = ["users", "orders", "items", "carts", "payments", "invoices", "shipments",
             "reviews", "products", "accounts", "sessions", "tokens", "events", "files",
             "reports", "teams", "projects", "tasks", "comments", "tags"]
SUBS = ["items", "history", "status", "owner", "members", "audit", "settings", "links"]
METHODS = [["GET"], ["GET", "PUT"], ["POST"], ["GET", "DELETE"], ["PATCH"]]


def routes(n, clusters):
    """Yields route dicts until n are made."""
    made = 0
    service = 0
    while True:
        svc = f"svc{service}"
        cluster = f"c{service % clusters}"
        for version in (1, 2, 3):
            if made < n and service % 10 == 0:
                yield {"path": f"/v{version}/{svc}/health", "respond":
                       {"status": 200, "body": "ok\n"}}
                made += 1
            for resource in RESOURCES:
                base = f"/api/{svc}/v{version}/{resource}"
                shapes = [base, f"{base}/search", f"{base}/:id"]
                shapes += [f"{base}/:id/{sub}" for sub in SUBS]
                shapes += [f"{base}/:id/{SUBS[0]}/:itemId", f"/t/:tenantId/{svc}/v{version}/{resource}/:id"]
                if version == 1:
                    shapes.append(f"/static/{svc}/{resource}/*rest")
                for path in shapes:
                    if made >= n:
                        return
                    route = {"path": path, "cluster": cluster}
                    if made % 50 == 49:
                        route["hosts"] = [f"{svc}.example.com", "*.example.net"]
                    if made % 7 == 3:
                        route["methods"] = METHODS[made % len(METHODS)]
                    if made % 100 == 11:
                        route["canary"] = [{"header": "X-Release-Version", "value": "v2-beta",
                                            "cluster": f"c{(service + 1) % clusters}"}]
                    if made % 500 == 250:
                        del route["cluster"]
                        route["split"] = [{"cluster": cluster, "weight": 90},
                                          {"cluster": f"c{(service + 2) % clusters}", "weight": 10}]
                    yield route
                    made += 1
        service += 1


def cluster_dict(i, endpoint=None):
    if endpoint:
        return {"endpoints": [{"address": endpoint}],
                "lb": ["round_robin", "least_request", "random"][i % 3]}
    return {"endpoints": [{"address": f"127.0.0.{1 + i % 200}:{9000 + i}", "weight": 1 + i % 3},
                          {"address": f"127.0.1.{1 + i % 200}:{9000 + i}"}],
            "lb": ["round_robin", "least_request", "random"][i % 3]}


def flow(value):
    """A YAML flow value (JSON with bare keys is valid YAML)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value) if (not value or any(c in value for c in ":*{}[],#\n\"'")) else value
    return str(value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--routes", type=int, default=120000)
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--endpoint", metavar="HOST:PORT",
                    help="every cluster's one endpoint (default: two unserved addresses each)")
    ap.add_argument("--json", action="store_true", help="write JSON (valid YAML) instead")
    args = ap.parse_args()
    out = sys.stdout
    if args.json:
        json.dump({"listen": {"host": "127.0.0.1", "port": 8080},
                   "clusters": {f"c{i}": cluster_dict(i, args.endpoint) for i in range(args.clusters)},
                   "routes": list(routes(args.routes, args.clusters))}, out, indent=1)
        out.write("\n")
        return
    out.write(f"# {args.routes} gateway-shaped routes, {args.clusters} clusters "
              "(bench/gateway/gen_routes_config.py)\n")
    out.write("listen: {host: 127.0.0.1, port: 8080}\n\nclusters:\n")
    for i in range(args.clusters):
        c = cluster_dict(i, args.endpoint)
        out.write(f"  c{i}:\n    endpoints:\n")
        for e in c["endpoints"]:
            out.write(f"      - {flow(e)}\n")
        out.write(f"    lb: {c['lb']}\n")
    out.write("\nroutes:\n")
    for r in routes(args.routes, args.clusters):
        first = True
        for key, value in r.items():
            # A path is written plain, as people write it (block context
            # allows ':' and '*' inside a plain scalar).
            text = value if key == "path" else flow(value)
            out.write(("  - " if first else "    ") + f"{key}: {text}\n")
            first = False


if __name__ == "__main__":
    main()
