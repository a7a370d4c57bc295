#!/usr/bin/env python3
"""summarize.py: the markdown tables of bench/server/compare_servers.sh.

    summarize.py servers.tsv [servers_idle.tsv] [--charts DIR --run TEXT]

Medians over runs of each (workload, server), ratios of portico to nginx and
to h2o, the routing cost (/users/123 over /plaintext CPU per request) and the
idle-connection memory. Python 3 standard library only; with --charts, also
DIR/servers.svg of the same figures (bench/lib/charts.py, matplotlib; skipped
with a note without it), TEXT naming the run under it.
"""

import argparse
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tables import fmt, load, median, ratio  # noqa: E402  (bench/lib/tables.py)
import charts  # noqa: E402  (bench/lib/charts.py)

ORDER = ["portico", "portico-unbatched", "nginx", "nginx-regex50", "h2o", "stub"]
FIELDS = ["rps", "p50_us", "p99_us", "cpu_us_per_req"]


def paired(rows, a, b, field):
    """The median over runs of a's field over b's in the same run, or None;
    a and b are (workload, server). Pairing within a run cancels the drift
    between runs, which on a shared machine is larger than the differences
    measured (single runs of one server move by a third)."""
    by_run = {}
    for r in rows:
        for key, name in ((a, "a"), (b, "b")):
            if (r["workload"], r["server"]) == key:
                by_run.setdefault(r["run"], {})[name] = float(r[field])
    ratios = [v["a"] / v["b"] for v in by_run.values()
              if "a" in v and v.get("b") and not math.isnan(v["a"]) and not math.isnan(v["b"])]
    return statistics.median(ratios) if ratios else None


def routing_ratio(rows, kind, server):
    """/users/123 over /plaintext CPU per request, paired by run."""
    return paired(rows, (f"{kind}:/users/123", server), (f"{kind}:/plaintext", server), "cpu_us_per_req")


def goals(rows, med, idle):
    """Issue 4's speed goals, each a ratio against a peer measured in this run."""
    def get(w, s, k):
        m = med.get((w, s))
        return None if m is None else m[k]

    lines = []
    p_rps, h_rps = get("pipelined:/plaintext", "portico", "rps"), get("pipelined:/plaintext", "h2o", "rps")
    if p_rps and h_rps:
        lines.append((p_rps >= 2 * h_rps, f"pipelined /plaintext req/s >= 2x h2o: {p_rps / h_rps:.2f}x"))
    w = "keepalive:/plaintext"
    pc, nc = get(w, "portico", "cpu_us_per_req"), get(w, "nginx", "cpu_us_per_req")
    if pc and nc:
        pr, nr = get(w, "portico", "rps"), get(w, "nginx", "rps")
        pp, np_ = get(w, "portico", "p99_us"), get(w, "nginx", "p99_us")
        # Paired by run (see paired()); the ratios of the medians are shown too.
        cpu, rps, p99 = (paired(rows, (w, "portico"), (w, "nginx"), k) for k in ("cpu_us_per_req", "rps", "p99_us"))
        # This workload is client-bound (every server gets the same req/s), so
        # req/s within 3% of nginx's counts as "no fewer".
        # No run measured both servers' CPU and req/s (all NaN): not met.
        ok = cpu is not None and rps is not None and cpu <= 0.9 and rps >= 0.97 and (p99 is None or p99 <= 1.0)
        fmt = lambda v: "–" if v is None else f"{v:.2f}"
        lines.append((ok, f"keepalive /plaintext CPU/req <= 0.9x nginx at >= req/s (-3%), <= p99, paired by run:"
                          f" CPU {fmt(cpu)}x, req/s {fmt(rps)}x, p99 {fmt(p99)}x"
                          f" (ratios of the medians: {pc / nc:.2f}x, {pr / nr:.2f}x, {ratio(pp, np_)}x)"))
    for kind in ("keepalive", "pipelined"):
        r = routing_ratio(rows, kind, "portico")
        if r is not None:
            stub = routing_ratio(rows, kind, "stub")
            noise = "" if stub is None else f" (the stub, same work on both paths: {stub:.2f}x)"
            lines.append((r <= 1.05, f"{kind} /users/123 CPU/req within 5% of /plaintext: {r:.2f}x{noise}"))
    for r in idle:
        if r["server"] == "portico":
            b = float(r["private_per_conn"])
            lines.append((b <= 256, f"idle keep-alive connection <= 256 B (Private): {b:.0f} B"))
    if lines:
        print("Issue 4 goals (portico):")
        print()
        for ok, text in lines:
            print(f"- {'met' if ok else 'NOT met'}: {text}")
        print()


LABELS = {"stub": "stub (floor)"}
KINDS = {"portico": "portico", "portico-unbatched": "variant", "stub": "floor"}
WORKLOADS = {"keepalive:/plaintext": "keep-alive /plaintext, 64 connections",
             "pipelined:/plaintext": "pipelined /plaintext, 256 connections x 16",
             "keepalive:/users/123": "keep-alive /users/123, 64 connections",
             "pipelined:/users/123": "pipelined /users/123, 256 connections x 16"}


def chart(path, run, rows, med, idle, workloads, servers):
    """servers.svg: the medians of the tables, per workload; portico's CPU
    ratios paired by run (as its goal and the README give them), its req/s
    ratios those of the medians (the ratio table's)."""
    def bars(key, digits, unit, paired_ratio):
        out = []
        for w in workloads:
            out.append(WORKLOADS.get(w, w))
            for s in servers:
                m = med.get((w, s))
                v = None if m is None else m[key]
                text = "" if v is None else f"{fmt(v, digits)}{unit}"
                if s == "portico" and v is not None:
                    vs = []
                    for peer in ("nginx", "h2o"):
                        if paired_ratio:
                            r = paired(rows, (w, s), (w, peer), key)
                        else:
                            q = med.get((w, peer))
                            r = v / q[key] if q and q[key] else None
                        if r is not None:
                            vs.append(f"{r:.2f}x {peer}")
                    if vs:
                        text += " · " + ", ".join(vs)
                out.append(charts.Bar(LABELS.get(s, s), v, KINDS.get(s, "peer"), text))
        return out
    panels = [
        charts.Panel("Server CPU per request (log scale, lower is better)",
                     bars("cpu_us_per_req", 2, " µs", True), unit="µs of the server's CPU time per request",
                     log=True),
        charts.Panel("Requests/s (keep-alive: client-bound, one wrk thread)",
                     bars("rps", 0, "", False), unit="requests/s"),
    ]
    if idle:
        panels.append(charts.Panel(
            f"Memory per idle keep-alive connection, {int(idle[0]['connections']):,} open",
            [charts.Bar(LABELS.get(r["server"], r["server"]), float(r["private_per_conn"]),
                        KINDS.get(r["server"], "peer"), f"{fmt(float(r['private_per_conn']))} B")
             for r in sorted(idle, key=lambda r: ORDER.index(r["server"]) if r["server"] in ORDER else 99)],
            unit="bytes of private memory per connection (smaps_rollup)"))
    panels = [p for p in panels if p.bars]
    nruns = max((m["runs"] for m in med.values()), default=0)
    charts.draw(path, "HTTP servers, one worker each: portico vs nginx and h2o",
                f"{run}\nEach server pinned to one core, wrk -t1 on the other; medians of {nruns} runs, every"
                " server measured in turn within each. portico's CPU ratios are medians of per-run ratios,"
                " its req/s ratios those of the medians. The stub answers every request with canned"
                " bytes, parsing nothing: the floor.",
                panels, columns=2, column_width=6.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("servers_tsv")
    ap.add_argument("idle_tsv", nargs="?")
    ap.add_argument("--charts", help="directory for servers.svg")
    ap.add_argument("--run", default="", help="the run, as the chart names it")
    args = ap.parse_args()
    rows = load(args.servers_tsv)
    idle = load(args.idle_tsv) if args.idle_tsv else []
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    servers = sorted({r["server"] for r in rows}, key=lambda s: ORDER.index(s) if s in ORDER else 99)

    med = {}
    for w in workloads:
        for s in servers:
            mine = [r for r in rows if r["workload"] == w and r["server"] == s]
            if mine:
                med[w, s] = {k: median([float(r[k]) for r in mine]) for k in FIELDS}
                med[w, s]["runs"] = len(mine)
                cpu = [float(r["cpu_us_per_req"]) for r in mine]
                med[w, s]["cpu_range"] = f"{min(cpu):.2f}–{max(cpu):.2f}"
                med[w, s]["errors"] = sum(int(r["errors"]) for r in mine)

    if rows:
        print("Medians per server and workload (wrk -t1; keepalive = 64 connections;"
              " pipelined = 256 connections x 16 deep, latency per 16-request batch;"
              " CPU = server utime+stime per request):")
        print()
        print("| workload | server | req/s | p50 µs | p99 µs | CPU µs/req | CPU min–max | runs | errors |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for w in workloads:
            for s in servers:
                m = med.get((w, s))
                if m:
                    print(f"| {w} | {s} | {fmt(m['rps'])} | {fmt(m['p50_us'], 1)} | {fmt(m['p99_us'], 1)}"
                          f" | {fmt(m['cpu_us_per_req'], 2)} | {m['cpu_range']} | {m['runs']} | {m['errors']} |")
        print()
        ratios = []
        for w in workloads:
            p = med.get((w, "portico"))
            for peer in ("portico-unbatched", "nginx", "h2o"):
                q = med.get((w, peer))
                if p and q:
                    ratios.append(f"| {w} | {peer} | {ratio(p['rps'], q['rps'])} | {ratio(p['p99_us'], q['p99_us'])}"
                                  f" | {ratio(p['cpu_us_per_req'], q['cpu_us_per_req'])} |")
        if ratios:
            print("Ratios of the medians (portico / peer):")
            print()
            print("| workload | peer | req/s | p99 | CPU/req |")
            print("|---|---|---:|---:|---:|")
            print("\n".join(ratios))
            print()
        print("Routing cost: CPU per request on /users/123 over /plaintext"
              " (median of the per-run ratios):")
        print()
        print("| server | keepalive | pipelined |")
        print("|---|---:|---:|")
        for s in servers:
            cells = []
            for kind in ("keepalive", "pipelined"):
                r = routing_ratio(rows, kind, s)
                cells.append("–" if r is None else f"{r:.2f}")
            print(f"| {s} | {cells[0]} | {cells[1]} |")
        print()

    goals(rows, med, idle)

    if idle:
        print("Idle keep-alive connections: process memory per connection"
              " (bench/server/idle_memory.py; smaps_rollup summed over the server's processes):")
        print()
        print("| server | connections | Pss B/conn | Private B/conn | Rss B/conn | closed by server |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in sorted(idle, key=lambda r: ORDER.index(r["server"]) if r["server"] in ORDER else 99):
            print(f"| {r['server']} | {r['connections']} | {r['pss_per_conn']} | {r['private_per_conn']}"
                  f" | {r['rss_per_conn']} | {r['closed']} |")
        print()

    if args.charts and (rows or idle) and charts.available():
        chart(os.path.join(args.charts, "servers.svg"), args.run, rows, med, idle, workloads, servers)


if __name__ == "__main__":
    main()
