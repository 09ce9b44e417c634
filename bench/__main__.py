"""``python -m bench``: run the benchmark scenarios against this project, Flask-SSE and nchan,
in one run.

Prints the results table with our ratio to each peer and writes the raw JSON to
``bench/results/<date>.json``. ``--smoke`` runs every scenario small and short (CI).
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import fanout, report, scenarios
from bench.targets import ROOT, FlaskSSE, Nchan, Ours, Redis

PROFILE_DIR = None


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import redis

    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "open_files": resource.getrlimit(
                resource.RLIMIT_NOFILE)[0],
            "redis": redis.Redis.from_url(_redis_url()).info("server")["redis_version"]}


def _redis_url():
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _new_loop():
    try:
        import uvloop

        return uvloop.new_event_loop(), "uvloop"
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"


def _run_target(loop, target, redis, sizes, users=None, capacity=None,
                only=scenarios.STEPS):
    """Run the scenarios on *target*, or the one *capacity* scenario ``(name, prefix)``.

    *users* come from an earlier run on the same database, which that run migrated.
    """
    if users is None:
        target.prepare()
    target.start()
    _log(f"{target.label}: serving on {target.port} with {target.workers} worker(s)")
    run = scenarios.Run(target, redis, sizes, log=_log, profile_dir=PROFILE_DIR)
    if users:
        run.users = users
    try:
        steps = scenarios.capacity(run, *capacity) if capacity else \
            scenarios.run_all(run, only=only)
        loop.run_until_complete(steps)
    finally:
        target.halt()
        redis.drop_prefix(target.prefix)
        if not capacity and target.name != "ours":
            target.cleanup()
    return run


def _fanout_options(args):
    options = dict(fanout.SMOKE if args.smoke else fanout.FULL)
    if args.fanout_sizes:
        options["sizes"] = [int(n) for n in args.fanout_sizes.split(",")]
    if args.fanout_posts:
        options.update(posts=args.fanout_posts, reactions=args.fanout_posts)
    if args.fanout_budget:
        options["budget"] = args.fanout_budget
    if args.fanout_timeout:
        options["timeout"] = args.fanout_timeout
    return options


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small N, a few seconds each")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where the raw JSON goes")
    parser.add_argument("--targets", default="ours,flask_sse,nchan",
                        help="comma-separated: ours, flask_sse, nchan")
    parser.add_argument("--no-capacity", action="store_true",
                        help="skip the capacity scenarios (10,000 streams on one worker, "
                             "19,000 on two)")
    parser.add_argument("--capacity-only", action="store_true",
                        help="run only the capacity scenarios")
    parser.add_argument("--n", type=int, help="subscribers of the one-channel scenarios")
    parser.add_argument("--one-worker-n", type=int, metavar="N",
                        help="streams of the one-worker scenario (default 10,000)")
    parser.add_argument("--two-workers-n", type=int, metavar="N",
                        help="streams of the two-worker scenario (default 19,000)")
    parser.add_argument("--only", default=",".join(scenarios.STEPS),
                        help="comma-separated steps: " + ", ".join(scenarios.STEPS)
                        + "; and fanout (not by default: a PostgreSQL database, ~15 min)")
    parser.add_argument("--fanout-sizes", metavar="N,N,…",
                        help="follower counts of the fanout step (default 1000,100000,1000000)")
    parser.add_argument("--fanout-posts", type=int, metavar="N",
                        help="posts (and reactions) at most per size (default 40)")
    parser.add_argument("--fanout-budget", type=float, metavar="SECONDS",
                        help="time budget of each phase per size (default 150)")
    parser.add_argument("--fanout-timeout", type=float, metavar="SECONDS",
                        help="one request's timeout in the fanout step (default 120)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record every measured phase with py-spy into DIR")
    args = parser.parse_args(argv)
    global PROFILE_DIR
    PROFILE_DIR = args.profile

    sizes = dict(scenarios.SMOKE if args.smoke else scenarios.FULL)
    if args.n:
        sizes.update(n=args.n, ws_n=args.n)
    if args.one_worker_n:
        sizes.update(one_worker_n=args.one_worker_n)
    if args.two_workers_n:
        sizes.update(two_workers_n=args.two_workers_n)
    # A timeout's SIGTERM unwinds like an error: servers stop and their Redis keys go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fd_limit = _raise_fd_limit()
    loop, loop_name = _new_loop()
    asyncio.set_event_loop(loop)
    redis = Redis(_redis_url())
    only = args.only.split(",")
    # The fanout step has a server of its own; the other targets run only for their steps.
    wanted = args.targets.split(",") if set(only) & set(scenarios.STEPS) else []
    capacity = "ours" in wanted and not args.no_capacity
    if args.capacity_only:
        wanted, capacity = [], True
    started = time.time()
    results, notes, fanout_results = [], [], None
    ours = Ours(_redis_url()) if "ours" in wanted or capacity else None
    try:
        users = None
        if "ours" in wanted:
            ours_run = _run_target(loop, ours, redis, sizes, only=only)
            results += ours_run.results
            users = ours_run.users
        if "flask_sse" in wanted:
            results += _run_target(loop, FlaskSSE(_redis_url()), redis, sizes,
                                   only=only).results
            notes.append("Flask-SSE is not run with 10,000 streams on one worker: it opens one "
                         "Redis connection per stream, and Redis refuses clients beyond "
                         "maxclients (10,000 by default).")
        if "nchan" in wanted:
            results += _run_target(loop, Nchan(_redis_url()), redis, sizes, only=only).results
        for scenario, workers, prefix in scenarios.CAPACITY if capacity else ():
            box = Ours(_redis_url(), workers=workers, workdir=ours.workdir)
            run = _run_target(loop, box, redis, sizes, users=users, capacity=(scenario, prefix))
            results += run.results
            users = run.users
        if "fanout" in only:
            fan = _fanout_options(args)
            sizes["fanout"] = fan
            fanout_results = loop.run_until_complete(fanout.run(fan, _log))
    finally:
        if ours is not None:
            ours.cleanup()  # the database (the one-worker run shares it)

    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "mode": "smoke" if args.smoke else "full",
        "machine": _machine(), "loadgen": {"event_loop": loop_name, "open_files": fd_limit},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip(),
        "sizes": sizes, "seconds": round(time.time() - started, 1),
        "results": results, "notes": notes,
    }
    if fanout_results is not None:
        document["fanout"] = fanout_results
    document["comparison"] = report.compare(results)
    document["targets"] = report.check_targets(results) if not args.smoke else []
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d")
    kind = "-fanout" if only == ["fanout"] else ""
    path = args.out / f"{stamp}{kind}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(report.render(document))
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
