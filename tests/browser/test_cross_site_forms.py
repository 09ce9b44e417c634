"""In Chromium, forms that a page of another origin posts to /login and /logout are refused.

The other origin is another port of 127.0.0.1: the same site, so the Lax cookies travel with its
posts, and cookies ignore ports, so it can even read the csrf cookie.
"""
import html

import pytest
from gevent.pywsgi import WSGIServer
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def other_origin():
    """A server on another port of 127.0.0.1 that answers every path with ``pages[path]``."""
    pages = {}

    def app(environ, start_response):
        body = pages.get(environ["PATH_INFO"], "").encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}", pages
    server.stop()


def forged_form(action, script="", **fields):
    """Return a page whose form posts *fields* to *action* as soon as it loads (after
    *script*, which may fill it in)."""
    inputs = "".join(f'<input name="{name}" value="{html.escape(value)}">'
                     for name, value in fields.items())
    return (f'<!doctype html><form method="post" action="{action}">{inputs}</form>'
            f"<script>{script}; document.forms[0].submit();</script>")


def submitted(page, url, target):
    """Open the forging page *url* and wait until its form has landed on *target*."""
    page.goto(url, wait_until="commit")
    page.wait_for_url(target)
    page.wait_for_load_state()
    return page


READ_CSRF = "document.cookie.match(/(?:^|; )csrf_access_token=([^;]*)/)[1]"


def test_forms_posted_from_another_origin_are_refused(server, people, browser, other_origin):
    base, pages = other_origin
    mallory, alice = people(server, "mallory"), people(server, "alice")

    # Sign-out: the other port can read the csrf cookie (cookies ignore ports), so only the
    # Origin check stands between its form and Alice's session.
    pages["/blank"] = "<!doctype html><p>another site</p>"
    alice.page.goto(f"{base}/blank")
    assert alice.page.evaluate(READ_CSRF)
    pages["/logout"] = forged_form(f"{server.url}/logout", csrf_token="",
                                   script=f"document.forms[0].csrf_token.value = {READ_CSRF}")
    page = submitted(alice.page, f"{base}/logout", f"{server.url}/logout")
    expect(page.locator("main")).to_contain_text("This form was refused")
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-viewer-username", alice.username)

    # Login CSRF: a visitor would be signed in, unknowingly, as Mallory.
    pages["/login"] = forged_form(f"{server.url}/login", username=mallory.username,
                                  password=mallory.password)
    visitor = browser.new_context(base_url=server.url)
    try:
        page = submitted(visitor.new_page(), f"{base}/login", f"{server.url}/login")
        expect(page.locator("main")).to_contain_text("This form was refused")
        page.goto("/")
        expect(page.locator("body")).to_have_attribute("data-session", "none")
        assert not [c for c in visitor.cookies() if "access_token" in c["name"]]
    finally:
        visitor.close()
