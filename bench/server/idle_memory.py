#!/usr/bin/env python3
"""idle_memory.py: what an idle keep-alive connection costs a server in memory.

    bench/server/idle_memory.py --port 8080 --pid PID [--connections 10000]
                              [--path /plaintext] [--expect 'Hello, World!']

Measures the memory of the server's processes (PID and all its descendants:
for nginx the master and its worker) from /proc/PID/smaps_rollup, then opens
N connections to 127.0.0.1:PORT, sends one GET on each and reads its whole
response, so every connection has been accepted, parsed and answered once and
then sits idle, kept alive. It measures again, checks that the server closed
none of them, and prints bytes per connection for Pss, Private (clean + dirty)
and Rss. The kernel's socket buffers are not process memory and are not
counted. Python 3 standard library only; needs an fd limit above N (it raises
its soft limit to the hard one) and so does the server.

The last line is machine readable:
    RESULT connections=N pss_per_conn=B private_per_conn=B rss_per_conn=B closed=K
"""

import argparse
import os
import resource
import select
import socket
import sys
import time


def process_tree(pid):
    """PID and its descendants, from /proc/PID/task/*/children."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return tree


def memory(pids):
    """Summed smaps_rollup fields (bytes) over pids."""
    total = {"Rss": 0, "Pss": 0, "Private": 0}
    for p in pids:
        with open(f"/proc/{p}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 2 or not parts[0].endswith(":"):
                    continue
                key, kib = parts[0][:-1], int(parts[1]) * 1024
                if key in ("Rss", "Pss"):
                    total[key] += kib
                elif key in ("Private_Clean", "Private_Dirty"):
                    total["Private"] += kib
    return total


def read_response(sock, deadline):
    """Reads one response with a Content-Length body; returns its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += recv_some(sock, deadline)
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    while len(body) < length:
        body += recv_some(sock, deadline)
    if not head.startswith(b"HTTP/1.1 200"):
        status_line = head.split(b"\r\n")[0]
        raise RuntimeError(f"unexpected status: {status_line!r}")
    return body[:length]


def recv_some(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out waiting for a response")
    sock.settimeout(remaining)
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("server closed the connection")
    return chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="server process (its descendants are summed in)")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--expect", default="Hello, World!", help="expected response body")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for opening all connections")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        sys.exit(f"idle_memory.py: fd limit {soft} < {need}; raise `ulimit -n` (hard limit {hard})")

    pids = process_tree(args.pid)
    request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    expect = args.expect.encode()

    # One request first so lazily initialised server state is not counted.
    with socket.create_connection(("127.0.0.1", args.port), timeout=5) as warm:
        warm.sendall(request)
        read_response(warm, time.monotonic() + 5)

    before = memory(pids)
    deadline = time.monotonic() + args.timeout
    socks = []
    try:
        for i in range(args.connections):
            s = socket.create_connection(("127.0.0.1", args.port), timeout=5)
            socks.append(s)
            s.sendall(request)
            body = read_response(s, deadline)
            if body != expect:
                sys.exit(f"idle_memory.py: connection {i}: body {body[:80]!r}, expected {expect!r}")
        after = memory(process_tree(args.pid))
        # A readable idle socket means the server closed (or wrote to) it.
        closed = 0
        for start in range(0, len(socks), 512):
            chunk = socks[start:start + 512]
            poller = select.poll()
            for s in chunk:
                poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
            closed += len(poller.poll(0))
    finally:
        for s in socks:
            s.close()

    n = args.connections
    per = {k: (after[k] - before[k]) / n for k in before}
    for k in ("Pss", "Private", "Rss"):
        print(f"{k:8} before {before[k] / 1024:10.0f} KiB  after {after[k] / 1024:10.0f} KiB"
              f"  = {per[k]:7.0f} B per connection")
    if closed:
        print(f"warning: the server closed {closed} of {n} idle connections before the measurement ended")
    print(f"RESULT connections={n} pss_per_conn={per['Pss']:.0f} private_per_conn={per['Private']:.0f}"
          f" rss_per_conn={per['Rss']:.0f} closed={closed}")


if __name__ == "__main__":
    main()
