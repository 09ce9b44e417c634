"""The one way tests wait for something to happen: poll a predicate with a generous timeout."""
import time

import gevent


def wait_until(predicate, timeout=10, interval=0.05, message="condition not met in time"):
    """Wait until *predicate()* is truthy; return its value, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        gevent.sleep(interval)
