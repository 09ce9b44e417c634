"""What one HTTP request costs gunicorn's gevent worker before any app work: the floor under a
long-poll, which answers each delivery with a whole request.

``python -m bench.request_floor`` starts one gevent worker of gunicorn (the project's version)
on a WSGI app that answers ``{}`` at once, then on the smallest Flask app, with and without an
access log, drives each with keep-alive connections for a few seconds, and prints the server's
CPU per request (master + worker, from ``/proc``). Compare with the long-poll row of
``make bench``: CPU per delivery there is one such request plus what our poll does.
"""
import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.targets import children, cpu_seconds, free_port

APPS = '''
def bare(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


from flask import Flask

flask_app = Flask(__name__)


@flask_app.get("/")
def hello():
    return {}
'''


async def _client(port, deadline, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    while time.monotonic() < deadline:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        counts[0] += 1
    writer.close()


async def _drive(port, connections, seconds):
    counts = [0]
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, deadline, counts) for _ in range(connections)))
    return counts[0]


def measure(app, access_log, connections, seconds, workdir):
    """Return ``(requests, server CPU µs per request)`` for one gunicorn app."""
    port = free_port()
    log = str(Path(workdir) / "access.log") if access_log else None
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
               "--worker-connections", "1000", "-b", f"127.0.0.1:{port}", f"floor_apps:{app}"]
    if log:
        command += ["--access-logfile", log]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        pids = [process.pid, *children(process.pid)]
        before = cpu_seconds(pids)
        requests = asyncio.run(_drive(port, connections, seconds))
        used = cpu_seconds(pids) - before
    finally:
        process.terminate()
        process.wait(20)
    return requests, used * 1e6 / max(requests, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="request-floor-") as workdir:
        (Path(workdir) / "floor_apps.py").write_text(APPS)
        print(f"gunicorn gevent worker, {args.connections} keep-alive connections, "
              f"{args.seconds:g} s each, load generator on the same machine ({os.cpu_count()} "
              "cores)\n")
        print("| app | access log | requests | server CPU µs per request |")
        print("|---|---|---:|---:|")
        for app in ("bare", "flask_app"):
            for access_log in (False, True):
                requests, cost = measure(app, access_log, args.connections, args.seconds,
                                         workdir)
                print(f"| {'bare WSGI' if app == 'bare' else 'smallest Flask app'} | "
                      f"{'yes' if access_log else 'no'} | {requests:,} | {cost:,.1f} |")


if __name__ == "__main__":
    main()
