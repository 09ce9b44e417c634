"""gunicorn.conf.py: the settings long-lived streams need, and the token-redacting log."""
import runpy
from pathlib import Path

CONF = runpy.run_path(str(Path(__file__).parents[2] / "gunicorn.conf.py"))


def test_streams_settings():
    assert CONF["worker_class"] == "gevent"
    assert CONF["preload_app"] is False
    assert CONF["worker_connections"] >= 10000
    assert CONF["bind"] == "127.0.0.1:8000" and CONF["workers"] == 1


def test_tokens_are_redacted_from_the_request_line():
    redact = CONF["_SECRETS"].sub
    line = "GET /stream/feed?x=1&token=eyJ.abc.def&ticket=t1 HTTP/1.1"
    assert redact(r"\1***", line) == "GET /stream/feed?x=1&token=***&ticket=*** HTTP/1.1"
    assert redact(r"\1***", "/poll/feed?token=a") == "/poll/feed?token=***"
    assert redact(r"\1***", "/x?mytoken=a") == "/x?mytoken=a"


def test_a_workers_startup_objects_are_frozen_out_of_garbage_collection():
    import gc

    try:
        frozen = CONF["freeze_startup_objects"]()
        assert frozen == gc.get_freeze_count() > 10000
    finally:
        gc.unfreeze()
