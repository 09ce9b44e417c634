"""The /realtime console shows every raw message of the chosen channel and transport."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LOG = "[data-role=console-log] li"


def test_console_shows_raw_events(server, people, screenshots):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    alice.open("/")
    post_id = alice.post("A post to watch")

    page = bob.page
    page.goto("/realtime")
    page.check("input[name=channel][value=feed]")
    page.check("input[name=transport][value=sse]")
    page.click("[data-action=connect]")
    bob.expect_state("connected")
    expect(page.locator(LOG, has_text="connection_established")).to_have_count(1)

    alice.post("Watched in the console")
    expect(page.locator(LOG, has_text='"type":"new_post"')).to_have_count(1, timeout=2_000)
    page.screenshot(path=str(screenshots / "realtime.png"), animations="disabled")

    page.click("[data-action=clear]")
    expect(page.locator(LOG)).to_have_count(0)
    page.click("[data-action=disconnect]")
    bob.expect_state("offline")

    # A post's channel with a pasted token (here: one of Alice's, from the API).
    token = alice.context.request.post("/api/auth/login", data={
        "username": alice.username, "password": alice.password}).json()["access_token"]
    page.check("input[name=channel][value=post]")
    page.fill("input[name=post_id]", post_id)
    page.check("input[name=auth][value=token]")
    page.fill("textarea[name=token]", token)
    page.click("[data-action=connect]")
    expect(page.locator(LOG, has_text=f"post:{post_id}")).to_have_count(1)
    alice.api("PUT", f"/api/posts/{post_id}/reaction", {"type": "haha"})
    expect(page.locator(LOG, has_text='"type":"post_reaction"')).to_have_count(1, timeout=2_000)
    assert bob.errors == []


def test_console_pings_over_websocket(server, people):
    bob = people(server, "bob")
    page = bob.page
    page.goto("/realtime?transport=ws")
    page.click("[data-action=connect]")
    bob.expect_state("connected")
    expect(bob.connection()).to_have_attribute("data-transport", "ws")
    page.click("[data-action=ping]")
    expect(page.locator(LOG, has_text='"type":"pong"')).to_have_count(1, timeout=2_000)
