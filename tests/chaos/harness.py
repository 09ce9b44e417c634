"""Scale, results and deployments of the chaos suite (tests/chaos), shared by its modules.

One setting scales the suite: ``CHAOS_SCALE`` (default 0.2, the CI tier that ``make test`` runs:
a fifth of the clients and of the time; ``make chaos`` runs 1.0, the full tier). Pass rules are
the same in both tiers. Every test records its figures with :func:`record`; conftest.py prints
them at the end of the run and, when ``CHAOS_REPORT`` names a file (``make chaos`` sets
``docs/reliability.md``), writes them there with the date and the machine.
"""
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from tests.support.servers import ROOT

SCALE = float(os.environ.get("CHAOS_SCALE", "0.2"))
FULL = SCALE >= 1.0
TIER = "full" if FULL else f"CI (scale {SCALE:g})"

#: Every token and ticket this run handed out: no server log may contain one.
SECRETS = set()
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
QUERY_SECRET = re.compile(r"(?:token|ticket)=(?!\*\*\*)[^&\s\"]+")
#: row id -> list of result dicts.
RESULTS = {}
#: What each scenario checks, in the report's order: a topic's row id (the ``#`` column of
#: docs/reliability.md) is its place here, so rows keep their ids from one report to the next.
TOPICS = ("steady load", "churn and resume", "resume property", "Redis outages", "hung Redis", "slow consumers", "worker signals", "long-poll chains", "origins", "CSRF", "secrets in logs", "expiry and logout", "spoofing", "fuzzing", "SSE injection", "caps", "stream release", "write races", "sign-in storm", "password guessing", "refresh token reuse")


def scaled(full, minimum=1):
    """Return *full* (the full tier's count) times the scale, at least *minimum*."""
    return max(minimum, int(round(full * SCALE)))


def seconds(full, minimum=1.0):
    """Return *full* seconds times the scale, at least *minimum*."""
    return max(minimum, full * SCALE)


def record(topic, test, scenario, figures, target, met=True):
    """Keep one scenario's figures for the report.

    :param topic: one of :data:`TOPICS`.
    :param figures: measured values, e.g. ``{"gaps": 0, "p99 ms": 41.2}``.
    :param target: the pass rule, in words.
    """
    RESULTS.setdefault(TOPICS.index(topic) + 1, []).append({"test": test, "scenario": scenario, "figures": figures,
                                         "target": target, "met": met})


def scan_logs(paths):
    """Return ``{"files", "lines", "leaks"}`` of the logs at *paths*: a leak is a JWT, a
    ``token=``/``ticket=`` value not masked as ``***``, or any of :data:`SECRETS`."""
    leaks, lines, files = [], 0, 0
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        files += 1
        lines += text.count("\n")
        leaks += [(path.name, m.group(0)[:40]) for m in JWT.finditer(text)]
        leaks += [(path.name, m.group(0)[:40]) for m in QUERY_SECRET.finditer(text)]
        leaks += [(path.name, secret[:12]) for secret in SECRETS if secret and secret in text]
    return {"files": files, "lines": lines, "leaks": leaks}


def remember(user):
    """Note the tokens of a :class:`~tests.support.clients.RestUser` for the log scan."""
    SECRETS.update({user.token, user.refresh_token})
    return user


# -- the report ------------------------------------------------------------------------------


def _run(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine():
    """Return facts about this machine, for the report."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = _run(["free", "-h"]).splitlines()
    total = memory[1].split()[1] if len(memory) > 1 else "unknown"
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain"])
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": total,
        "python": sys.version.split()[0],
        "redis": _run(["redis-server", "--version"]).split(" v=")[-1].split()[0],
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
    }


def _format(value):
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


ROW = re.compile(r"^\| (\d+) \| .*\(`([^`]+)`\)")
RUN_DATE = re.compile(r"on (\d{4}-\d\d-\d\d \d\d:\d\d UTC)")


def kept_rows(previous):
    """Return ``(rows, date)`` of an earlier report whose tests this run did not repeat.

    A partial run (``make chaos PYTEST_ARGS="-k fuzz"``) thus updates its own rows only.
    """
    if not previous:
        return [], None
    ran = {result["test"] for results in RESULTS.values() for result in results}
    rows = []
    for line in previous.splitlines():
        match = ROW.match(line)
        if match and match.group(2).rstrip(" †") not in ran:
            rows.append((int(match.group(1)), line if "†" in line else line.replace(
                "`) |", " †`) |", 1)))
    date = RUN_DATE.search(previous)
    return rows, date.group(1) if date else "an earlier run"


def render_report(elapsed, previous=None):
    """Return the Markdown of docs/reliability.md (keeping rows of *previous* not re-run)."""
    facts = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kept, kept_date = kept_rows(previous)
    lines = [
        "# Reliability: faults, fuzzing and security checks",
        "",
        f"Generated by `make chaos` (tests/chaos, `CHAOS_SCALE={SCALE:g}`, tier: {TIER}) "
        f"on {now}, in {elapsed / 60:.1f} minutes. Do not edit by hand: run `make chaos`.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in facts.items()) + ".",
        "",
        "Every figure below was measured by this run against real gunicorn servers (gevent "
        "workers), real Redis and real PostgreSQL/SQLite on this machine, with faults injected "
        "by Redis admin commands, signals and a user-space TCP proxy (tests/support/tcpproxy.py). "
        "The load clients run in the same machine's test process, so latencies include their "
        "own scheduling. Latency is the receive time minus the event's `ts`; gaps, reorders and "
        "duplicates are counted per stream by event id (`<epoch>-<seq>`).",
    ]
    if kept:
        lines += ["", f"Rows marked † are from the run of {kept_date} on the same machine "
                      "(this run repeated only the others)."]
    lines += ["", "| # | scenario | figures | rule | met |", "|---|---|---|---|---|"]
    rows = list(kept)
    for item in RESULTS:
        for result in RESULTS[item]:
            figures = ", ".join(f"{k}: {_format(v)}" for k, v in result["figures"].items())
            rows.append((item, f"| {item} | {TOPICS[item - 1]}: {result['scenario']} "
                               f"(`{result['test']}`) | "
                               f"{figures} | {result['target']} | "
                               f"{'yes' if result['met'] else '**no**'} |"))
    lines += [row for _, row in sorted(rows, key=lambda row: row[0])]
    present = {item for item, _ in rows}
    missing = [f"{n} ({topic})" for n, topic in enumerate(TOPICS, 1) if n not in present]
    if missing:
        lines += ["", f"Topics without figures: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


STARTED = datetime.datetime.now()
