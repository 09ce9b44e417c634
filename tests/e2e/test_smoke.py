"""The README's first check after ``make run``: ``python -m app.smoke``."""
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = pytest.mark.e2e


def smoke(url):
    return subprocess.run([sys.executable, "-m", "app.smoke", "--url", url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_smoke_check_passes_against_a_running_server(deploy):
    [server] = deploy(redis=False)
    result = smoke(server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: new_post reached the follower's feed")


def test_smoke_check_says_what_failed(tmp_path):
    result = smoke("http://127.0.0.1:9")
    assert result.returncode == 1
    assert "FAILED: GET /healthz failed" in result.stderr
