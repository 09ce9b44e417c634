"""The unread badge goes up live, the notifications page groups and reads them, and the
service worker shows a push (driven through the DevTools protocol: headless Chromium has no
push service of its own)."""
import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect

from tests.support.servers import Server

BADGE = "[data-role=unread-count]"


@pytest.fixture(scope="module")
def push_server(server_env, tmp_path_factory):
    """A server with Web Push configured (a VAPID key of its own)."""
    key = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    env = {**server_env, "VAPID_SUBJECT": "mailto:ops@example.com",
           "VAPID_PRIVATE_KEY": base64.urlsafe_b64encode(key.to_bytes(32, "big")).decode()}
    running = Server(env, log_dir=tmp_path_factory.mktemp("push-logs")).start()
    yield running
    running.stop()


def test_badge_inbox_and_service_worker(push_server, people, screenshots):
    alice, bob, carol = (people(push_server, name, display_name=name.title())
                         for name in ("alice", "bob", "carol"))
    post = alice.post("Who likes this?")
    alice.open(f"/post/{post}")  # not her feed: the badge listens to the feed on its own
    expect(alice.page.locator(BADGE)).to_be_hidden()
    bob.follow(alice)
    expect(alice.page.locator(BADGE)).to_have_text("1")
    for person in (bob, carol):
        person.api("PUT", f"/api/posts/{post}/reaction", {"type": "love"})
    carol.api("POST", "/api/posts", {"content": f"Lunch, @{alice.username}?"})
    expect(alice.page.locator(BADGE)).to_have_text("4")

    # Watch for the service worker before the page that registers it opens.
    page = alice.page
    cdp = alice.context.new_cdp_session(page)
    registrations = {}
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.update(
        {r["scopeURL"]: r["registrationId"] for r in event["registrations"]}))
    cdp.send("ServiceWorker.enable")
    alice.open("/notifications")
    lines = page.locator("[data-role=notifications] li")
    expect(lines).to_have_count(3)
    expect(lines.nth(1)).to_contain_text(f"@{carol.username}) and 1 other reacted to your post")
    expect(lines.nth(1).locator("a")).to_have_attribute("href", f"/post/{post}")
    expect(page.locator(BADGE)).to_be_hidden()  # read as they were shown
    expect(page.locator("[data-role=push-toggle]")).to_have_text("Enable notifications")
    page.screenshot(path=str(screenshots / "notifications.png"), animations="disabled")

    # A new one arrives on the open page: listed at the top and read at once.
    carol.follow(alice)
    expect(lines).to_have_count(4)
    expect(lines.first.locator("a")).to_have_attribute("href", f"/u/{carol.username}")
    expect(page.locator(BADGE)).to_be_hidden()

    # What the server would push while no page is open, delivered to the service worker.
    alice.context.grant_permissions(["notifications"], origin=push_server.url)
    scope = push_server.url + "/"
    deadline = time.monotonic() + 10
    while scope not in registrations:
        assert time.monotonic() < deadline, registrations
        page.wait_for_timeout(50)
    message = {"title": "Realtime feed", "body": "bob (@bob) liked your comment",
               "url": f"/post/{post}", "tag": "n-1"}
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": push_server.url, "registrationId": registrations[scope],
        "data": json.dumps(message)})
    shown = "navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((all) => " \
            "all.map((n) => ({title: n.title, body: n.body, url: n.data.url})))"
    deadline = time.monotonic() + 10
    while not (found := page.evaluate(shown)):
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    assert found == [{"title": message["title"], "body": message["body"], "url": message["url"]}]
    assert alice.errors == []
