"""A front-door flood on one tenant's port, as fast as this machine allows.

  python loadtests/flood.py HOST PORT --kind bad_key|over_limit|connect [--seconds S]
                            [--procs N] [--cpus 0,1] [--key-file F]

Kinds (what each request is):
  bad_key    - GET /v1/models with a key the gateway does not know: 401 from HAProxy
               itself. Pipelined, PIPELINE requests per write, on keep-alive connections.
  over_limit - GET /v1/models with the tenant's own key (--key-file): the first rpm_limit
               a minute reach the engine, every other one gets 429 from the gateway.
  connect    - a new TLS connection per request (Connection: close), bad key: the cost
               of accepting connections and their handshakes, not of parsing requests.
  burn       - no requests: each process keeps its core busy with arithmetic. The
               control front_door compares a flood with: what the flooded tenant may
               do with its own cores anyway.

N processes (default: one per core of --cpus), each pinned to --cpus (the flooded
tenant's cpuset: the flood's own CPU is charged to that tenant, as a client elsewhere
would be). Prints one JSON line: requests sent, answers by status, answers a second, and
"busy": the processes' CPU time over the time they could have used (procs x seconds).
Stops after --seconds, or on SIGTERM (loadtests/locustfiles/front_door.py starts and
stops it per phase).
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import signal
import socket
import ssl
import time

PIPELINE = 32

# The tenant's port speaks TLS only. The default context trusts what SSL_CERT_FILE names
# (the bundle CA, as the load tests set it) and checks the certificate's names.
TLS = ssl.create_default_context()


def request(host: str, key: str, close: bool) -> bytes:
    connection = "close" if close else "keep-alive"
    return (
        f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nConnection: {connection}\r\n\r\n"
    ).encode()


def statuses(buffer: bytearray, counts: collections.Counter) -> int:
    """Count the complete responses at the start of `buffer` (status line, headers,
    Content-Length body), remove them; return how many."""
    done = 0
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return done
        head = bytes(buffer[:end]).decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(buffer) < end + 4 + length:
            return done
        counts[head.split(" ", 2)[1]] += 1
        del buffer[: end + 4 + length]
        done += 1


def worker(args: argparse.Namespace, key: str, deadline: float, queue: multiprocessing.Queue) -> None:
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    # An ordinary client: never the raised priority of a Locust that started it.
    os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), 0))
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    counts: collections.Counter = collections.Counter()
    sent = errors = 0
    if args.kind == "burn":
        while not stop and time.monotonic() < deadline:
            sum(range(10_000))
        queue.put((0, {}, 0, time.process_time()))
        return
    close = args.kind == "connect"
    one = request(args.host, key, close)
    batch = one * (1 if close else PIPELINE)
    sock, buffer = None, bytearray()
    while not stop and time.monotonic() < deadline:
        try:
            if sock is None:
                sock = TLS.wrap_socket(
                    socket.create_connection((args.host, args.port), timeout=5), server_hostname=args.host
                )
                buffer.clear()
            sock.sendall(batch)
            wanted = 1 if close else PIPELINE
            got = 0
            while got < wanted:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                got += statuses(buffer, counts)
            sent += wanted
            if close or got < wanted:
                sock.close()
                sock = None
        except OSError:
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.01)
    queue.put((sent, dict(counts), errors, time.process_time()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--kind", choices=["bad_key", "over_limit", "connect", "burn"], default="bad_key")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--procs", type=int, default=0)
    parser.add_argument("--cpus", default="", help="cores to pin to, e.g. 0 or 0,1")
    parser.add_argument("--key-file", help="the tenant's own key (over_limit)")
    args = parser.parse_args()
    if args.kind == "over_limit":
        if not args.key_file:
            parser.error("--kind over_limit needs --key-file")
        with open(args.key_file) as handle:
            key = handle.read().strip()
    else:
        key = "not-a-key"
    procs = args.procs or (len(args.cpus.split(",")) if args.cpus else os.cpu_count() or 1)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    started = time.monotonic()
    workers = [
        multiprocessing.Process(target=worker, args=(args, key, started + args.seconds, queue)) for _ in range(procs)
    ]
    for process in workers:
        process.start()

    def forward(*_: object) -> None:
        for process in workers:
            if process.pid:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    results = [queue.get() for _ in workers]
    for process in workers:
        process.join()
    seconds = time.monotonic() - started
    counts: collections.Counter = collections.Counter()
    for _, answered, _, _ in results:
        counts.update(answered)
    sent = sum(r[0] for r in results)
    summary = {
        "kind": args.kind,
        "procs": procs,
        "cpus": args.cpus or "any",
        "sent": sent,
        "answers": dict(sorted(counts.items())),
        "errors": sum(r[2] for r in results),
        "seconds": round(seconds, 1),
        "per_second": round(sum(counts.values()) / seconds),
        "busy": round(sum(r[3] for r in results) / (procs * seconds), 2),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
