#!/usr/bin/env python3
"""Polls GET /healthz on one keep-alive connection, back to back (a pause of
--gap-ms between answers), and reports how long the slowest answer took:
the worst delay any request saw while something heavy ran in the daemon.

    healthz_probe.py --port 5000 --seconds 10 [--gap-ms 1] [--json]

It stops after --seconds, or at SIGTERM/SIGINT, and prints one line:
`probe: N requests, p50 X ms, p99 Y ms, max Z ms` (or JSON with --json).
"""
import argparse
import json
import signal
import socket
import sys
import time

REQ = b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n"


def read_answer(sock, buf):
    """Reads one complete `/healthz` answer (head + 2-byte body)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(buf) >= total:
                if not head.startswith("HTTP/1.1 200"):
                    raise RuntimeError("unexpected answer: " + head.splitlines()[0])
                return buf[total:]
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--gap-ms", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    buf = b""
    end = time.monotonic() + args.seconds
    while not stop["now"] and time.monotonic() < end:
        t0 = time.perf_counter()
        sock.sendall(REQ)
        buf = read_answer(sock, buf)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if args.gap_ms > 0:
            time.sleep(args.gap_ms / 1000.0)
    lat.sort()
    if not lat:
        print("probe: no answers", file=sys.stderr)
        sys.exit(1)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    out = {"requests": len(lat), "p50_ms": round(pick(0.5), 3),
           "p99_ms": round(pick(0.99), 3), "max_ms": round(lat[-1], 3)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"probe: {out['requests']} requests, p50 {out['p50_ms']} ms, "
              f"p99 {out['p99_ms']} ms, max {out['max_ms']} ms")


if __name__ == "__main__":
    main()
