"""The README's first check after ``make run``: ``python -m app.smoke``."""
import re
import subprocess
import sys

import pytest

from tests.support.nginx import Nginx
from tests.support.servers import ROOT

pytestmark = pytest.mark.e2e


def smoke(url, *options):
    return subprocess.run([sys.executable, "-m", "app.smoke", "--url", url, *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def assert_passed(result):
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK: every event type"), result.stdout
    for transport in ("sse", "ws", "poll"):
        assert f"{transport}:\n" in result.stdout
    assert "resume: the feed reopened with its last id gets the missed post once ... ok" in (
        result.stdout)


def test_smoke_check_passes_on_one_worker_with_the_in_process_broker(deploy):
    [server] = deploy(redis=False)
    assert_passed(smoke(server.url))


@pytest.mark.redis
def test_smoke_check_passes_on_two_workers_on_redis_directly_and_behind_nginx_over_https(
        deploy, tmp_path):
    [server] = deploy(workers=2, redis=True, PROXY_COUNT=1)
    assert_passed(smoke(server.url))
    # Each worker keeps what it loaded at its start out of the garbage collector's walks.
    frozen = re.findall(r"worker \d+: (\d+) objects of its start frozen", server.log())
    assert len(frozen) == 2 and all(int(n) > 10000 for n in frozen), frozen
    nginx = Nginx([server], tmp_path).start()
    try:
        assert_passed(smoke(nginx.https_url, "--ca-file", str(tmp_path / "feed.crt")))
        refused = smoke(nginx.https_url, "--transports", "sse")
        assert refused.returncode == 1
        assert "FAILED: GET /healthz: cannot reach" in refused.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    finally:
        nginx.stop()


def test_smoke_check_says_what_failed():
    result = smoke("http://127.0.0.1:9")
    assert result.returncode == 1
    assert "GET /healthz ... FAILED" in result.stdout
    assert "FAILED: GET /healthz: cannot reach http://127.0.0.1:9" in result.stderr
    assert "is the server running?" in result.stderr
