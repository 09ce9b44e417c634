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


def login_token(person):
    """Return an access token of a new sign-in of *person* (its own login session)."""
    return person.context.request.post("/api/auth/login", data={
        "username": person.username, "password": person.password}).json()["access_token"]


def connect(page, channel="feed", transport="sse", token="", post_id="", last_event_id=""):
    page.check(f"input[name=channel][value={channel}]")
    page.fill("input[name=post_id]", post_id)
    page.check(f"input[name=transport][value={transport}]")
    page.check(f"input[name=auth][value={'token' if token else 'session'}]")
    page.fill("textarea[name=token]", token)
    page.fill("input[name=last_event_id]", last_event_id)
    page.click("[data-action=connect]")


def test_a_pasted_token_wins_over_the_session_and_resumes_after_an_event_id(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    alice_id = alice.api("GET", "/api/me")["id"]
    page = bob.page
    page.goto("/realtime")
    connect(page, token=login_token(alice))  # Bob is signed in: Alice's token still counts
    expect(page.locator(LOG, has_text=f"feed:{alice_id}")).to_have_count(1)
    alice.api("POST", "/api/posts", {"content": "first of two"})
    alice.api("POST", "/api/posts", {"content": "second of two"})
    second = page.locator(LOG, has_text="second of two")
    expect(second).to_have_count(1, timeout=2_000)
    first_id = page.evaluate("""() => [...document.querySelectorAll('[data-role=console-log] code')]
        .map((c) => { try { return JSON.parse(c.textContent); } catch { return {}; } })
        .find((m) => m.type === 'new_post' && m.post.content === 'first of two').id""")
    page.click("[data-action=disconnect]")
    page.click("[data-action=clear]")
    connect(page, transport="poll", token=login_token(alice), last_event_id=first_id)
    expect(second).to_have_count(1, timeout=5_000)
    expect(page.locator(LOG, has_text="first of two")).to_have_count(0)
    assert bob.errors == []


def test_any_frame_on_a_websocket_and_how_it_ends(server, people):
    alice = people(server, "alice")
    post_id = alice.post("Frames")
    page = alice.page
    page.goto("/realtime")
    # Refused before the stream opens, with the reason from the JSON error.
    connect(page, "post", "sse", post_id="00000000-0000-4000-8000-000000000000")
    expect(page.locator(LOG, has_text="HTTP 404 not_found")).to_have_count(1, timeout=5_000)
    token = login_token(alice)
    connect(page, "post", "ws", token=token, post_id=post_id)
    alice.expect_state("connected")
    page.click("[data-action=typing]")
    # What was sent is logged, and the typing event it caused comes back.
    expect(page.locator(LOG, has_text='"type":"typing"')).to_have_count(2, timeout=2_000)
    page.fill("textarea[name=frame]", "not json")
    page.click("[data-action=send]")
    expect(page.locator(LOG, has_text='"code":"bad_json"')).to_have_count(1, timeout=2_000)
    page.fill("textarea[name=frame]", '{"type":"ping","timestamp":42}')
    page.click("[data-action=send]")
    expect(page.locator(LOG, has_text='"timestamp":42')).to_have_count(2, timeout=2_000)
    # Signing that token's session out ends the socket with token_expired, then 4401.
    alice.context.request.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    expect(page.locator(LOG, has_text="code 4401")).to_have_count(1, timeout=5_000)

    connect(page, "post", "ws", token=token, post_id=post_id)
    expect(page.locator(LOG, has_text="HTTP 401 token_invalid")).to_have_count(1, timeout=5_000)
    connect(page, "feed", "poll", token="not-a-token")
    expect(page.locator(LOG, has_text="HTTP 401 token_invalid")).to_have_count(2, timeout=5_000)
    assert alice.errors == []
