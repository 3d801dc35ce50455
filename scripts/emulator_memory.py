#!/usr/bin/env python3
"""Peak memory of an emulator process while clients POST large bodies at it (issue 8).

    .venv/bin/python scripts/emulator_memory.py                       # VideoOS login, 10 x 100 MB
    .venv/bin/python scripts/emulator_memory.py --family polyuc --path /api/v1/mgmt/config/set

The emulator runs in a child process (one device over plain HTTP on 127.0.0.1); the clients send a
`Content-Length` of SIZE and then the bytes, 1 MiB at a time, from threads of this process. The
child reports its peak RSS (ru_maxrss) and what it still holds once the clients are gone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading

CHILD = r"""
import gc, os, resource, sys
from avctl.emulator.core import EmulatorThread, emulator_class
with EmulatorThread() as emu:
    dev = emu.add(emulator_class(sys.argv[1])("mem", scheme="http"))
    print(dev.port, flush=True)
    sys.stdin.read()
    gc.collect()
    with open(f"/proc/{os.getpid()}/statm") as fh:
        now = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {peak // 1024} MiB, held afterwards {now // 1024} MiB, "
          f"request log {len(dev.requests)} of {getattr(dev.requests, 'total', len(dev.requests))}", flush=True)
"""


def client(port: int, path: str, size: int, answers: list[str]) -> None:
    import socket

    chunk = b"x" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        sock.sendall(head.encode())
        sent = 0
        try:
            while sent < size:
                sock.sendall(chunk[: size - sent])
                sent += min(len(chunk), size - sent)
        except OSError:
            pass  # the emulator refused the body and closed the connection
        sock.settimeout(60)
        try:
            answers.append(sock.recv(200).split(b"\r\n")[0].decode() or "closed")
        except OSError as exc:
            answers.append(f"no answer ({exc.strerror})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="videoos")
    parser.add_argument("--path", default="/rest/session")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    child = subprocess.Popen([sys.executable, "-c", CHILD, args.family], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())
    answers: list[str] = []
    threads = [threading.Thread(target=client, args=(port, args.path, args.mb * 1024 * 1024, answers))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    child.stdin.close()
    print(f"{args.clients} x {args.mb} MB POST {args.family} {args.path}: {sorted(set(answers))}")
    print(child.stdout.read().strip())
    child.wait()


if __name__ == "__main__":
    main()
