#!/usr/bin/env python3
"""charts_test.py: bench/lib/charts.py draws a tiny synthetic results table
(proxy_compare.sh's keep-alive TSV, two rounds) through proxy_summary.py
into a valid SVG: well-formed XML, text kept as text, no embedded image or
date, the same bytes when drawn twice. Needs no bench peer. Exits 77
(ctest's SKIP_RETURN_CODE) when matplotlib is not installed.

    python3 bench/lib/charts_test.py
"""

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import charts  # noqa: E402

TSV = """round\tproxy\trps\tp50_us\tp99_us\tcpu_us_per_req\trequests\terrors
1\tportico-gateway\t40000\t1000\t3000\t20.000\t320000\t0
1\tnginx\t30000\t1500\t4000\t30.000\t240000\t0
1\tstub\t38000\t1200\t2500\t18.000\t304000\t0
2\tnginx\t32000\t1400\t3900\t32.000\t256000\t0
2\tstub\t39000\t1100\t2400\t19.000\t312000\t0
2\tportico-gateway\t36000\t1100\t3100\t24.000\t288000\t0
"""


def draw(tmp, name):
    """Runs proxy_summary.py on the table; returns the SVG's bytes."""
    out = os.path.join(tmp, name)
    os.mkdir(out)
    subprocess.run([sys.executable, os.path.join(here, "..", "gateway", "proxy_summary.py"),
                    "--peers", "nginx", "--keepalive", os.path.join(tmp, "proxies.tsv"),
                    "--charts", out, "--run", "charts_test.py, synthetic"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "proxies_keepalive.svg"), "rb") as f:
        return f.read()


def main():
    if not charts.available():
        print("charts_test.py: skipped, matplotlib is not installed for", sys.executable)
        return 77
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "proxies.tsv"), "w") as f:
            f.write(TSV)
        first = draw(tmp, "a")
        second = draw(tmp, "b")

    check(first == second, "drawing the same table twice gives the same bytes")
    root = ET.fromstring(first)
    check(root.tag == "{http://www.w3.org/2000/svg}svg", f"the root is <svg> (got {root.tag})")
    texts = "".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    # Medians of the two rounds: portico 22.0 µs and 38,000 req/s against
    # nginx's 31.0 µs and 31,000; per-round ratios 20/30 and 24/32.
    for want in ("portico", "nginx", "stub (floor)", "22.0 µs", "31.0 µs", "38,000",
                 "0.71x the best peer", "charts_test.py, synthetic"):
        check(want in texts, f"the text {want!r} is drawn as text")
    check(root.find(".//{http://www.w3.org/2000/svg}image") is None, "no embedded image")
    check(b"<dc:date>" not in first, "no date in the metadata")
    check(len(first) < 60_000, f"a small file (got {len(first)} bytes)")

    for f in failures:
        print("FAILED:", f)
    print("charts_test.py:", "ok" if not failures else f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
