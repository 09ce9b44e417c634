"""Fixtures and hooks of the fault, fuzz and security suite; see harness.py."""
import datetime
import os
import shutil
from pathlib import Path

import pytest

from tests.chaos.harness import RESULTS, ROOT, STARTED, TIER, _format, render_report, scan_logs
from tests.conftest import postgres_database
from tests.support.redis_server import RedisServer
from tests.support.servers import Deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, request):
    """A :class:`Deployment` whose servers live for the module; their logs must hold no secret."""
    deployment = Deployment(tmp_path_factory.mktemp("chaos"), request)
    yield deployment
    deployment.stop()  # flushes every access-log line
    leaks = scan_logs(server.log_path for server in deployment.servers)["leaks"]
    assert not leaks, f"tokens or tickets in the server logs of this module: {leaks[:10]}"


@pytest.fixture(scope="module")
def private_redis(pytestconfig):
    """A redis-server of this module alone, on a free port: tests stop, pause and restart it."""
    if shutil.which("redis-server") is None:
        if pytestconfig.getoption("--require-services"):
            pytest.fail("redis-server is not installed (make test installs it)")
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_url(private_redis):
    """Each chaos module talks to a redis-server of its own: its faults and its load stay inside
    it, and no other load on the shared Redis (benchmarks, other suites) skews its figures."""
    return private_redis.url


@pytest.fixture(scope="module")
def fresh_postgres_url(pytestconfig):
    """A throwaway PostgreSQL database for the module's servers (overrides the per-test one)."""
    yield from postgres_database(pytestconfig)


def pytest_terminal_summary(terminalreporter):
    """Print the figures; write the report when ``CHAOS_REPORT`` names a file."""
    if not RESULTS:
        return
    terminalreporter.section(f"chaos figures ({TIER})")
    for item in sorted(RESULTS):
        for result in RESULTS[item]:
            figures = ", ".join(f"{k}={_format(v)}" for k, v in result["figures"].items())
            flag = "" if result["met"] else "  [NOT MET]"
            terminalreporter.write_line(f"{item:>2} {result['test']}: {figures}{flag}")
    target = os.environ.get("CHAOS_REPORT")
    if target:
        elapsed = (datetime.datetime.now() - STARTED).total_seconds()
        path = Path(target)
        if not path.is_absolute():
            path = ROOT / path
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = path.read_text() if path.exists() else None
        path.write_text(render_report(elapsed, previous))
        terminalreporter.write_line(f"report written to {path}")
