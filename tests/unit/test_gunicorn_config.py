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
    import weakref

    class Node:
        pass

    garbage = Node()
    garbage.me = garbage  # a cycle: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    kept = Node()
    try:
        frozen = CONF["freeze_startup_objects"]()
        # The start's garbage is collected, not frozen; what is alive is frozen.
        assert gone() is None
        assert frozen > 0 and gc.is_tracked(kept)
        assert not any(obj is kept for obj in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())
