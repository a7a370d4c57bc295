#!/usr/bin/env python3
"""proxy_summary.py: the markdown tables of bench/gateway/proxy_compare.sh.

    proxy_summary.py --peers nginx,haproxy,h2o [--keepalive proxies.tsv]
                     [--bulk proxies_bulk.tsv] [--callgrind proxies_callgrind.tsv]
                     [--charts DIR --run TEXT]

Medians over rounds per proxy, each beside its ratio to the best of the peers
(the highest req/s or throughput, the lowest CPU, p99, RSS growth or
instruction count among them), and issue 14's goals for portico-gateway,
paired by round. Python 3 standard library only; with --charts, also
DIR/proxies_keepalive.svg and DIR/proxies_bulk.svg of the same figures
(bench/lib/charts.py, matplotlib; skipped with a note without it), TEXT
naming the run under them.
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tables import fmt, load, median, ratio  # noqa: E402  (bench/lib/tables.py)
import charts  # noqa: E402  (bench/lib/charts.py)

ORDER = ["portico-gateway", "nginx", "haproxy", "h2o", "stub"]
GATEWAY = "portico-gateway"
LABELS = {"portico-gateway": "portico", "haproxy": "HAProxy", "stub": "stub (floor)"}


def bar(name, value, text):
    """A chart bar for a proxy: portico in colour, the stub as the floor."""
    kind = "portico" if name == GATEWAY else "floor" if name == "stub" else "peer"
    return charts.Bar(LABELS.get(name, name), value, kind, text)


def ordered(names):
    return sorted(names, key=lambda s: ORDER.index(s) if s in ORDER else 99)


def best_peer(values, peers, higher_is_better):
    """The best value among the peers that have one (a dict name -> value)."""
    mine = [values[p] for p in peers if values.get(p) is not None]
    if not mine:
        return None
    return max(mine) if higher_is_better else min(mine)


def paired_to_best(rows, key, field, peers, higher_is_better, name=GATEWAY):
    """Median over rounds of name's field over the best peer's in that round.
    Pairing within a round cancels the drift between rounds, which on this
    shared machine is larger than the differences measured."""
    by_round = {}
    for r in rows:
        by_round.setdefault(key(r), {})[r["proxy"]] = float(r[field])
    ratios = []
    for values in by_round.values():
        best = best_peer(values, peers, higher_is_better)
        if name in values and best:
            ratios.append(values[name] / best)
    return statistics.median(ratios) if ratios else None


def x(v):
    return "–" if v is None else f"{v:.2f}x"


def keepalive(rows, peers):
    proxies = ordered({r["proxy"] for r in rows})
    med = {}
    for s in proxies:
        mine = [r for r in rows if r["proxy"] == s]
        med[s] = {k: median([float(r[k]) for r in mine]) for k in ("rps", "p99_us", "cpu_us_per_req")}
        cpu = [float(r["cpu_us_per_req"]) for r in mine]
        med[s]["cpu_range"] = f"{min(cpu):.2f}–{max(cpu):.2f}"
        med[s]["rounds"] = len(mine)
        med[s]["errors"] = sum(int(r["errors"]) for r in mine)
    best = {k: best_peer({s: m[k] for s, m in med.items()}, peers, k == "rps")
            for k in ("rps", "p99_us", "cpu_us_per_req")}
    print("Keep-alive proxying: medians over rounds (wrk -t1 to /plaintext, a 13-byte body from"
          " the upstream nginx; CPU = the proxy's utime+stime per request), each with its ratio"
          " to the best of " + ", ".join(peers) + " (highest req/s, lowest CPU and p99):")
    print()
    print("| proxy | req/s | × best | CPU µs/req | × best | p99 µs | × best | CPU min–max | rounds | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in proxies:
        m = med[s]
        print(f"| {s} | {fmt(m['rps'])} | {ratio(m['rps'], best['rps'])}"
              f" | {fmt(m['cpu_us_per_req'], 2)} | {ratio(m['cpu_us_per_req'], best['cpu_us_per_req'])}"
              f" | {fmt(m['p99_us'])} | {ratio(m['p99_us'], best['p99_us'])}"
              f" | {m['cpu_range']} | {m['rounds']} | {m['errors']} |")
    print()

    goals = []
    if GATEWAY in med:
        by_round = lambda r: r["round"]
        cpu = paired_to_best(rows, by_round, "cpu_us_per_req", peers, False)
        rps = paired_to_best(rows, by_round, "rps", peers, True)
        floor = paired_to_best(rows, by_round, "cpu_us_per_req", peers, False, name="stub")
        if cpu is not None and rps is not None:
            if floor is not None and floor > 0.75:
                # The fallback: the floor itself sits above 0.75x.
                stub_rows = [r for r in rows if r["proxy"] in (GATEWAY, "stub")]
                to_floor = paired_to_best(stub_rows, by_round, "cpu_us_per_req", ["stub"], False)
                ok = to_floor is not None and to_floor <= 1.1 and rps >= 1.0
                text = (f"keep-alive CPU/req within 1.1x of the stub's floor (the floor is {floor:.2f}x"
                        f" the best peer, above 0.75x): {x(to_floor)}, req/s {x(rps)} the best peer's")
            else:
                ok = cpu <= 0.75 and rps >= 1.0
                text = (f"keep-alive CPU/req <= 0.75x the best peer's and req/s >= its: CPU {x(cpu)},"
                        f" req/s {x(rps)} (stub floor {x(floor)})")
            goals.append((ok, text + ", medians of per-round ratios"))

    # The chart: the medians of the table, portico's ratios paired by round
    # (as its goal line and the README give them).
    by_round = lambda r: r["round"]
    cpu = paired_to_best(rows, by_round, "cpu_us_per_req", peers, False)
    rps = paired_to_best(rows, by_round, "rps", peers, True)
    panels = [
        charts.Panel("Proxy CPU per request (lower is better)", [
            bar(s, med[s]["cpu_us_per_req"], f"{fmt(med[s]['cpu_us_per_req'], 1)} µs"
                + (f" · {x(cpu)} the best peer" if s == GATEWAY and cpu is not None else ""))
            for s in proxies], unit="µs of the proxy's CPU time per request"),
        charts.Panel("Requests/s (client-bound: one wrk thread)", [
            bar(s, med[s]["rps"], fmt(med[s]["rps"])
                + (f" · {x(rps)} the best peer" if s == GATEWAY and rps is not None else ""))
            for s in proxies], unit="requests/s"),
    ]
    return goals, panels


def bulk(rows, peers):
    goals = []
    panels = {}
    for d in ("upload", "download"):
        mine = [r for r in rows if r["direction"] == d]
        if not mine:
            continue
        proxies = ordered({r["proxy"] for r in mine})
        med = {}
        for s in proxies:
            ok = [r for r in mine if r["proxy"] == s and r["ok"] == "1"]
            med[s] = {
                "mib_per_s": median([float(r["mib_per_s"]) for r in ok]),
                "growth_mib": median([float(r["hwm_growth_kib"]) / 1024 for r in ok]),
                "max_growth_mib": max((float(r["hwm_growth_kib"]) / 1024 for r in ok), default=None),
                "cpu": median([float(r["cpu_s_per_gib"]) for r in ok]),
                "rounds": len(ok),
                "failed": sum(1 for r in mine if r["proxy"] == s and r["ok"] != "1"),
            }
        best = {k: best_peer({s: m[k] for s, m in med.items()}, peers, k == "mib_per_s")
                for k in ("mib_per_s", "growth_mib", "cpu")}
        size = int(mine[0]["bytes"])
        print(f"Bulk {d} of {size:,} bytes (curl through a freshly started proxy; RSS growth ="
              " the proxy's VmHWM after minus before; CPU = its utime+stime per GiB), medians over"
              " rounds, each with its ratio to the best peer:")
        print()
        print("| proxy | MiB/s | × best | RSS growth MiB | max | CPU s/GiB | × best | rounds | failed |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in proxies:
            m = med[s]
            print(f"| {s} | {fmt(m['mib_per_s'])} | {ratio(m['mib_per_s'], best['mib_per_s'])}"
                  f" | {fmt(m['growth_mib'], 1)} | {fmt(m['max_growth_mib'], 1)}"
                  f" | {fmt(m['cpu'], 3)} | {ratio(m['cpu'], best['cpu'])}"
                  f" | {m['rounds']} | {m['failed']} |")
        print()
        g = med.get(GATEWAY)
        if g and g["rounds"]:
            key = lambda r: r["round"]
            ok_rows = [r for r in mine if r["ok"] == "1"]
            tput = paired_to_best(ok_rows, key, "mib_per_s", ["nginx"], True)
            met = (g["max_growth_mib"] is not None and g["max_growth_mib"] <= 8 and g["failed"] == 0
                   and tput is not None and tput >= 1.0)
            goals.append((met, f"{d}: RSS growth <= 8 MiB (max {fmt(g['max_growth_mib'], 1)} MiB) and"
                               f" throughput >= nginx's ({x(tput)}, median of per-round ratios)"))
        else:
            tput = None
        # The chart: throughput with portico's ratio to nginx paired by round
        # (its goal), CPU with its ratio to the best peer's median (the table's).
        gib = size / (1 << 30)
        size_text = f"{gib:g} GiB" if gib >= 1 else f"{size:,} bytes"
        panels[d] = [
            charts.Panel(f"{size_text} {d}: throughput (higher is better)", [
                bar(s, med[s]["mib_per_s"], fmt(med[s]["mib_per_s"])
                    + (f" · {x(tput)} nginx" if s == GATEWAY and tput is not None else ""))
                for s in proxies], unit="MiB/s"),
            charts.Panel(f"{size_text} {d}: proxy CPU (lower is better)", [
                bar(s, med[s]["cpu"], fmt(med[s]["cpu"], 2)
                    + (f" · {ratio(med[s]['cpu'], best['cpu'])}x the best peer"
                       if s == GATEWAY and med[s]["cpu"] is not None and best["cpu"] else ""))
                for s in proxies], unit="CPU seconds per GiB"),
        ]
    return goals, panels


def callgrind(rows, peers):
    per = {r["proxy"]: float(r["instructions_per_request"]) for r in rows}
    best = best_peer(per, peers, False)
    print("Instructions per proxied request (callgrind, user space only: wrk -t1 to /plaintext,"
          " minus a run with no load):")
    print()
    print("| proxy | requests | instructions/request | × best |")
    print("|---|---:|---:|---:|")
    for s in ordered(per):
        r = next(r for r in rows if r["proxy"] == s)
        print(f"| {s} | {fmt(float(r['requests']))} | {fmt(per[s])} | {ratio(per[s], best)} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", required=True)
    ap.add_argument("--keepalive")
    ap.add_argument("--bulk")
    ap.add_argument("--callgrind")
    ap.add_argument("--charts", help="directory for the SVG charts")
    ap.add_argument("--run", default="", help="the run, as the charts name it")
    args = ap.parse_args()
    peers = args.peers.split(",")
    goals = []
    ka_panels, bulk_panels = None, None
    if args.keepalive:
        rows = load(args.keepalive)
        if rows:
            more, ka_panels = keepalive(rows, peers)
            goals += more
            ka_rounds = len({r["round"] for r in rows})
    if args.bulk:
        rows = load(args.bulk)
        if rows:
            more, bulk_panels = bulk(rows, peers)
            goals += more
            bulk_rounds = len({r["round"] for r in rows})
    if args.callgrind:
        rows = load(args.callgrind)
        if rows:
            callgrind(rows, peers)
    if goals:
        print("Issue 14 goals (portico-gateway):")
        print()
        for ok, text in goals:
            print(f"- {'met' if ok else 'NOT met'}: {text}")
        print()
    else:
        print("No issue 14 goal checked: portico-gateway or every peer is missing from this run.")
        print()
    if args.charts and (ka_panels or bulk_panels) and charts.available():
        versus = ", ".join(LABELS.get(p, p) for p in peers)
        setup = ("each proxy pinned to one core with one worker and a keep-alive pool to one upstream"
                 " nginx; the client and the upstream on the other core")
        if ka_panels:
            charts.draw(os.path.join(args.charts, "proxies_keepalive.svg"),
                        "Reverse proxies, keep-alive GET /plaintext (13 bytes): portico vs " + versus,
                        f"{args.run}\n{setup}; medians of {ka_rounds} rounds, wrk -t1, each proxy"
                        " in turn; portico's ratios are medians of per-round ratios to the best peer."
                        "\nThe stub relays bytes between the sockets without parsing HTTP: the kernel's floor.",
                        ka_panels, columns=2)
        if bulk_panels:
            panels = [p for d in ("upload", "download") if d in bulk_panels for p in bulk_panels[d]]
            charts.draw(os.path.join(args.charts, "proxies_bulk.svg"),
                        "Reverse proxies, bulk transfers through a freshly started proxy: portico vs "
                        + versus,
                        f"{args.run}\n{setup}; medians of {bulk_rounds} rounds; throughput ratio to nginx"
                        " paired by round (the goal), CPU ratio to the best peer's median."
                        "\nThe stub relays bytes between the sockets without parsing HTTP: the kernel's floor.",
                        panels, columns=2)


if __name__ == "__main__":
    main()
