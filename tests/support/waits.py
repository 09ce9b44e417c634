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


def wait_for_page(page, expression, timeout=10):
    """Wait until the JavaScript *expression* is truthy on the Playwright *page*.

    Polled from here: the pages' CSP forbids the eval that Playwright's ``wait_for_function``
    polls with, so there a condition not already true at the first look fails instead of
    being waited for.
    """
    return wait_until(lambda: page.evaluate(expression), timeout=timeout,
                      message=f"{expression} not true on the page in time")
