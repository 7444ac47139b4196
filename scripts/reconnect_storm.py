#!/usr/bin/env python3
"""N clients reconnect to one log's stream at once, each with a
`Last-Event-ID`, as EventSource clients do after a daemon restart. The
connections are opened first; then every request is sent in one burst, and
each client reads its stream for --seconds (slowly, with small receive
buffers, so the daemon has catch-up work left for many turns).

    reconnect_storm.py --port 5000 --log big --clients 10000 --from 1000 \
        [--source-addrs 16] [--seconds 10]

Prints how many got `200` and how many bytes they read in all.
"""
import argparse
import selectors
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--from", dest="offset", type=int, default=0)
    ap.add_argument("--source-addrs", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    socks = []
    for i in range(args.clients):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.bind((f"127.0.{1 + i % args.source_addrs}.{1 + (i // args.source_addrs) % 200}", 0))
        s.connect((args.host, args.port))
        s.setblocking(False)
        socks.append(s)
    req = (f"GET /api/logs/{args.log}/stream HTTP/1.1\r\nHost: storm\r\n"
           f"Last-Event-ID: {args.offset}\r\n\r\n").encode()
    t0 = time.monotonic()
    for s in socks:
        s.send(req)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    got = 0
    ok = 0
    seen = set()
    end = t0 + args.seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                continue
            if key.fileobj not in seen:
                seen.add(key.fileobj)
                if data.startswith(b"HTTP/1.1 200"):
                    ok += 1
            got += len(data)
        time.sleep(0.01)
    print(f"storm: {args.clients} clients, {ok} answered 200, {got} bytes read in {args.seconds:.0f} s")
    for s in socks:
        s.close()
    sys.exit(0 if ok == args.clients else 1)


if __name__ == "__main__":
    main()
