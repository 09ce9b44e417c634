"""A front end on another origin (examples/other-origin/) signs in over the API and follows the
feed over SSE, WebSocket and long-poll; a page from an origin not allowed is refused by CORS."""
import http.server
import threading
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT
from tests.support.clients import RestUser
from tests.support.servers import Server, free_port

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "other-origin"
CLIENT = ROOT / "static" / "js" / "client"


class FrontEnd(http.server.SimpleHTTPRequestHandler):
    """The example page, with the server's client/ as its copy of the client."""

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path.startswith("/client/"):
            return str(CLIENT / path.removeprefix("/client/"))
        return str(EXAMPLE / (path.lstrip("/") or "index.html"))

    def log_message(self, *args):
        pass


def serve_front_end(port):
    """Serve the front end on 127.0.0.1:*port* until the test module ends; return its origin."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), FrontEnd)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def sites(server_env, tmp_path_factory):
    """The API server, a front end on an allowed origin, and one on an origin not allowed."""
    allowed_port, other_port = free_port(), free_port()
    front, front_origin = serve_front_end(allowed_port)
    other, other_origin = serve_front_end(other_port)
    api = Server({**server_env, "ALLOWED_ORIGINS": front_origin},
                 log_dir=tmp_path_factory.mktemp("other-origin")).start()
    yield api, front_origin, other_origin
    api.stop()
    for httpd in (front, other):
        httpd.shutdown()


def sign_in(page, origin, api, user, transport=""):
    page.goto(f"{origin}/index.html?api={api.url}&transport={transport}")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")


@pytest.mark.parametrize("transport", ["", "ws", "poll"])
def test_a_front_end_on_an_allowed_origin_follows_the_feed(browser, sites, transport):
    api, front, _ = sites
    alice = RestUser(api.url, f"alice_{uuid.uuid4().hex[:6]}")
    bob = RestUser(api.url, f"bob_{uuid.uuid4().hex[:6]}")
    bob.follow(alice)
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        sign_in(page, front, api, bob, transport)
        indicator = page.locator("[data-role=connection]")
        expect(indicator).to_have_attribute("data-connection-state", "connected")
        expect(indicator).to_have_attribute("data-transport", transport or "sse")
        alice.post(f"live over {transport or 'sse'}")
        expect(page.locator("[data-post-id]", has_text=f"live over {transport or 'sse'}")) \
            .to_have_count(1, timeout=5_000)
        assert errors == []
    finally:
        context.close()
    # The server logged the stream, with its user and transport, and no token.
    log = api.log()
    assert f"stream open: user={bob.id} transport={transport or 'sse'}" in log
    assert bob.token not in log


def test_a_front_end_on_another_origin_is_refused(browser, sites):
    api, _, other = sites
    bob = RestUser(api.url, f"bob_{uuid.uuid4().hex[:6]}")
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, other, api, bob)
        expect(page.locator("[data-role=error]")).to_contain_text("Sign-in failed: Failed to fetch")
        expect(page.locator("[data-role=connection]")).to_have_attribute(
            "data-connection-state", "offline")
    finally:
        context.close()
