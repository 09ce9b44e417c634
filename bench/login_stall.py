"""How much do sign-ins stall the other streams of their worker?

``python -m bench.login_stall`` starts ``gunicorn`` with one gevent worker, Redis and the
production password hashing (Argon2id, 64 MiB, t=3), opens 1,000 SSE streams with a short
``STREAM_PING_SECONDS``, then signs in at a steady rate. A stream's ping is due
``STREAM_PING_SECONDS`` after the previous one; how much later it arrives is time the worker's
event loop could not run. The script prints p50/p99/max of that lateness over a quiet window
(no sign-ins) and over the sign-in window, and how the sign-ins themselves fared.
"""
import argparse
import asyncio
import os
import platform
import resource
import sys
import time

import orjson

from bench.client import Http, Tally, open_streams, sse_request
from bench.targets import Ours, Redis

PASSWORD = "correct horse battery"


def _percentiles(values):
    """Return p50, p99 and max of *values* in milliseconds, or Nones."""
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)  # noqa: E731
    return {"n": len(ordered), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "max_ms": round(ordered[-1] * 1000, 1)}


def ping_lateness(recorders, interval, window):
    """Return how late each ping arrived (seconds) whose arrival falls within *window*."""
    start, end = window
    late = []
    for recorder in recorders:
        previous = None
        for at, data in recorder.chunks:
            for _ in range(data.count(b"event: ping")):
                if previous is not None and start <= at < end:
                    late.append(max(0.0, at - previous - interval))
                previous = at
    return late


async def _login(host, port, username, results):
    http = Http(host, port)
    began = time.monotonic()
    try:
        status, _ = await http.call("POST", "/api/auth/login",
                                    {"username": username, "password": PASSWORD})
    except (OSError, asyncio.IncompleteReadError) as exc:
        status = repr(exc)
    finally:
        http.close()
    results.append((status, time.monotonic() - began))


async def measure(target, streams, rate, seconds, quiet, interval):
    """Open *streams* SSE streams, sit *quiet* seconds, then sign in at *rate*/s for *seconds*."""
    host, port = target.host, target.port
    http = Http(host, port)
    status, body = await http.call("POST", "/api/auth/register",
                                   {"username": "stall", "password": PASSWORD})
    assert status == 201, body
    token = orjson.loads(body)["access_token"]
    http.close()
    recorders, failed = await open_streams(host, port,
                                           [sse_request(host, port, "/stream/feed", token)] * streams,
                                           Tally())
    if failed:
        raise SystemExit(f"{len(failed)} streams did not open: {failed[:3]}")
    await asyncio.sleep(2 * interval)  # every stream has had its first ping
    quiet_window = (time.time(), time.time() + quiet)
    await asyncio.sleep(quiet)
    logins, tasks = [], []
    login_start = time.time()
    began = time.monotonic()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(_login(host, port, "stall", logins)))
    # Until the last sign-in is answered: a queue of them may outlast the firing.
    await asyncio.gather(*tasks)
    login_window = (login_start, time.time())
    for recorder in recorders:
        recorder.close()
    statuses = {}
    for status, _ in logins:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "quiet": _percentiles(ping_lateness(recorders, interval, quiet_window)),
        "logins": _percentiles(ping_lateness(recorders, interval, login_window)),
        "login_latency": _percentiles([spent for _, spent in logins]),
        "login_statuses": statuses,
        "streams_closed_early": sum(1 for r in recorders if r.error),
    }


def main():
    """Parse the options, run one measurement and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="sign-ins per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the sign-in window")
    parser.add_argument("--quiet", type=float, default=5.0, help="length of the quiet window")
    parser.add_argument("--ping", type=float, default=0.5, help="STREAM_PING_SECONDS")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # The production cost of a password hash: what this benchmark is about.
    target = Ours(args.redis, workers=1, extra_env={
        "PASSWORD_HASH_TIME_COST": "3", "PASSWORD_HASH_MEMORY_KIB": "65536",
        "STREAM_PING_SECONDS": str(args.ping), "STREAMS_PER_USER": str(args.streams + 10)})
    target.prepare()
    target.start()
    try:
        result = asyncio.run(measure(target, args.streams, args.rate, args.seconds, args.quiet,
                                     args.ping))
    finally:
        target.stop()
        Redis(args.redis).drop_prefix(target.prefix)
        target.cleanup()
    result["settings"] = {"streams": args.streams, "logins_per_second": args.rate,
                          "seconds": args.seconds, "ping_seconds": args.ping,
                          "python": platform.python_version(), "cpus": os.cpu_count()}
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
