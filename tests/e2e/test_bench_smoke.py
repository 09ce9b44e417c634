"""The benchmark harness (``make bench``) in its smoke mode, so that it cannot rot.

Timings are never asserted here: only that every scenario ran against every server (ours,
Flask-SSE, nchan), ours delivered everything it published, and the table and JSON were written.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]

OURS = {"sse_1ch_max", "sse_1ch_2eps", "sse_10ch_20eps", "sse_feed_fanout", "ws_1ch_max",
        "ws_1ch_2eps", "poll_1ch_2eps", "sse_1ch_1worker_2eps", "sse_1ch_2workers_2eps"}
PEER = {"sse_1ch_max", "sse_1ch_2eps", "sse_10ch_20eps", "sse_feed_fanout"}
NCHAN = {"sse_1ch_max", "sse_1ch_2eps", "sse_10ch_20eps", "ws_1ch_max", "ws_1ch_2eps",
         "poll_1ch_2eps"}


@pytest.mark.timeout(210)
def test_bench_smoke_runs_every_scenario_against_every_server(redis_url, pytestconfig,
                                                              tmp_path):
    from bench.targets import nchan_version
    from tests.conftest import missing_service

    if nchan_version() is None:
        missing_service(pytestconfig, "nchan is not installed (scripts/ensure-services.sh nchan)")
    env = {**os.environ, "BENCH_REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "deliveries/s" in done.stdout and "Ours compared with Flask-SSE" in done.stdout
    assert "Ours compared with nchan" in done.stdout
    [path] = tmp_path.glob("*-smoke.json")
    document = json.loads(path.read_text())
    ran = {(r["scenario"], r["target"]) for r in document["results"]}
    assert {(s, "ours") for s in OURS} | {(s, "flask_sse") for s in PEER} \
        | {(s, "nchan") for s in NCHAN} <= ran
    for result in document["results"]:
        where = f"{result['scenario']} on {result['target']}"
        assert result["deliveries"] > 0, where
        assert result["server_cpu_us_per_delivery"] is not None, where
        if result["target"] == "ours":
            assert (result["lost"], result["gaps"], result["errors"]) == (0, 0, 0), where
            assert result["deliveries"] == result["expected"], where
    # The reruns' ranges (the README's table) read what the run wrote.
    ranges = subprocess.run([sys.executable, "-m", "bench.ranges", str(path), str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert ranges.returncode == 0, ranges.stderr[-4000:]
    assert "Ours compared with nchan" in ranges.stdout and "sse_1ch_2eps" in ranges.stdout


@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_bench_fanout_smoke_measures_every_size(redis_url, pytestconfig, tmp_path):
    from tests.conftest import POSTGRES_ADMIN_URL, missing_service, port_open

    if not port_open(5432):
        missing_service(pytestconfig, "PostgreSQL is not running on 127.0.0.1:5432")
    if shutil.which("redis-server") is None:
        missing_service(pytestconfig, "redis-server is not installed")
    env = {**os.environ, "BENCH_REDIS_URL": redis_url, "BENCH_POSTGRES_URL": POSTGRES_ADMIN_URL}
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--only", "fanout",
                           "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=140)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Goals of the fan-out design" in done.stdout
    [path] = tmp_path.glob("*-fanout-smoke.json")
    document = json.loads(path.read_text())
    options = document["sizes"]["fanout"]
    assert [r["followers"] for r in document["fanout"]] == sorted(options["sizes"])
    for size in document["fanout"]:
        where = f"{size['followers']} followers"
        assert size["online"] == min(options["online"], size["followers"]), where
        for phase in ("posts", "reactions"):
            assert size[phase]["requests"] == options[phase], where
            assert size[phase]["redis_cpu_ms_per_event"] is not None, where
            assert size[phase]["redis_memory_kb_per_event"] is not None, where
            delivered = size["delivery"][phase]
            assert delivered["lost"] == 0 and size["delivery"]["streams_resynced"] == 0, where
            assert size["delivery"]["streams_losing"] == 0, where
            assert size["delivery"]["streams_ended_early"] == 0, where
            assert delivered["deliveries"] == size["online"] * options[phase], where


@pytest.mark.timeout(120)
def test_the_request_floor_measures_each_app_with_and_without_an_access_log():
    done = subprocess.run([sys.executable, "-m", "bench.request_floor", "--seconds", "0.5",
                           "--connections", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=110)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [line.split("|") for line in done.stdout.splitlines()
            if line.startswith("| bare") or line.startswith("| smallest")]
    assert [(row[1].strip(), row[2].strip()) for row in rows] == [
        ("bare WSGI", "no"), ("bare WSGI", "yes"),
        ("smallest Flask app", "no"), ("smallest Flask app", "yes")]
    assert all(int(row[3].replace(",", "")) > 0 and float(row[4].replace(",", "")) > 0
               for row in rows)
