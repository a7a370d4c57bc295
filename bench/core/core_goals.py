#!/usr/bin/env python3
"""Summarises bench/core/core_goals.sh's runs: issue 3's goals as medians over
rounds of within-round ratios. Usage: core_goals.py DIR (the JSON files that
core_goals.sh wrote: queue_N.json, pair_N.json, pool_N.json)."""
import json
import statistics
import sys
from pathlib import Path


def load_round(directory, n):
    """Every benchmark of round n, by name: items/s for the throughput cases,
    nanoseconds per item or per iteration for the timed ones."""
    values = {}
    for kind in ("queue", "pair", "pool"):
        path = directory / f"{kind}_{n}.json"
        for b in json.loads(path.read_text())["benchmarks"]:
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
            values[b["name"]] = {"ips": b.get("items_per_second"),
                                 "ns": b["real_time"] * scale}
    return values


def shape(name, p, c):
    return f"{name}/P:{p}/C:{c}/iterations:1/manual_time"


def main():
    directory = Path(sys.argv[1])
    n_rounds = len(list(directory.glob("queue_*.json")))
    rounds = [load_round(directory, n) for n in range(1, n_rounds + 1)]

    # (goal text, function of a round -> value or None, bound, "<=" or ">=")
    goals = []

    def ips_ratio(a, b):
        return lambda r: (r[a]["ips"] / r[b]["ips"]) if a in r and b in r else None

    def ns_ratio(a, b):
        return lambda r: (r[a]["ns"] / r[b]["ns"]) if a in r and b in r else None

    def ns(a):
        return lambda r: r[a]["ns"] if a in r else None

    mine = shape("Transfer/portico", 2, 2)
    goals.append(("2P/2C single items: portico / moodycamel items/s",
                  ips_ratio(mine, shape("Transfer/moodycamel", 2, 2)), 2.5, ">="))
    goals.append(("2P/2C single items: portico / mutex+deque items/s",
                  ips_ratio(mine, shape("Transfer/mutex_deque", 2, 2)), 4.0, ">="))
    for p in (1, 2, 4):
        goals.append((f"{p}P/{p}C single items: portico / boost::lockfree items/s",
                      ips_ratio(shape("Transfer/portico", p, p),
                                shape("Transfer/boost_lockfree", p, p)), 1.0, ">"))
    goals.append(("push+pop pair: portico / boost::lockfree time",
                  ns_ratio("PushPopPair/portico", "PushPopPair/boost_lockfree"), 1.0, "<"))
    for p in (1, 2, 4):
        goals.append((f"{p}P/{p}C batches of 32: portico / moodycamel bulk items/s",
                      ips_ratio(shape("TransferBatch/portico", p, p),
                                shape("TransferBatch/moodycamel", p, p)), 1.0, ">="))
    goals.append(("push+pop pair: portico, ns", ns("PushPopPair/portico"), 12.0, "<="))
    goals.append(("push+pop pair: portico / the two locked ops alone",
                  ns_ratio("PushPopPair/portico", "PushPopPair/floor_two_locked_ops"),
                  None, None))
    goals.append(("the two locked ops alone (floor), ns",
                  ns("PushPopPair/floor_two_locked_ops"), None, None))
    goals.append(("16 KiB acquire+release: pool / glibc new+delete time",
                  ns_ratio("BM_AcquireRelease<PoolAlloc>/16384",
                           "BM_AcquireRelease<GlibcAlloc>/16384"), 0.5, "<="))
    goals.append(("16 KiB acquire+release: pool / mimalloc time",
                  ns_ratio("BM_AcquireRelease<PoolAlloc>/16384",
                           "BM_AcquireRelease<MimallocAlloc>/16384"), 1.0, "<="))
    goals.append(("1024 releases: cross-core / local time",
                  ns_ratio("BM_Release<PoolAlloc, true>/16384/manual_time",
                           "BM_Release<PoolAlloc, false>/16384/manual_time"), 2.0, "<="))
    # The owner's side of the same hand-back: a remote release made cheap by
    # moving work into the owner's drain would show here.
    reclaim = "BM_ReclaimRemote/16384/manual_time"
    goals.append(("reclaim() of 1024 cross-core releases (the owner's side), µs",
                  lambda r: r[reclaim]["ns"] / 1e3 if reclaim in r else None, None, None))

    meets = {"<=": lambda v, b: v <= b, ">=": lambda v, b: v >= b,
             "<": lambda v, b: v < b, ">": lambda v, b: v > b}
    print(f"# issue 3 goals: medians over {n_rounds} rounds of within-round ratios\n")
    print("| goal | median | range over rounds | bound | met |")
    print("|---|--:|---|---|---|")
    for text, fn, bound, op in goals:
        values = [v for v in (fn(r) for r in rounds) if v is not None]
        if not values:
            print(f"| {text} | n/a | a case is missing (peer not installed?) | | |")
            continue
        median = statistics.median(values)
        spread = f"{min(values):.2f}–{max(values):.2f}"
        if bound is None:
            print(f"| {text} | {median:.2f} | {spread} | (reference) | |")
        else:
            ok = "yes" if meets[op](median, bound) else "**no**"
            print(f"| {text} | {median:.2f} | {spread} | {op} {bound:g} | {ok} |")


if __name__ == "__main__":
    main()
