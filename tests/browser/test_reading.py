"""What a reader sees: times in their own terms, new posts that wait for them, avatars."""
import re
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from app.pages.templating import avatar_hue, initials
from tests.support.waits import wait_for_page

pytestmark = pytest.mark.browser


def test_times_are_relative_local_and_keep_current(server, people):
    alice = people(server, "alice", timezone_id="Asia/Tokyo", locale="en-US")
    post = alice.api("POST", "/api/posts", {"content": "What time is it?"})
    created = datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))
    alice.page.clock.install(time=created + timedelta(minutes=2))
    alice.open("/")
    time = alice.page.locator(f"[data-post-id='{post['id']}'] time")
    expect(time).to_have_text("2 minutes ago")
    tokyo = created + timedelta(hours=9)
    expect(time).to_have_attribute("title", re.compile(
        rf"{tokyo:%b} {tokyo.day}, {tokyo.year}, {tokyo.hour % 12 or 12}:{tokyo:%M} "
        rf"{tokyo:%p} GMT\+9"))
    assert time.get_attribute("datetime") == post["created_at"]

    alice.page.clock.fast_forward("03:00")
    expect(time).to_have_text("5 minutes ago")
    alice.page.clock.fast_forward("01:00:00")
    expect(time).to_have_text("1 hour ago")
    assert alice.errors == []


def test_without_javascript_times_stay_utc(server, browser):
    from tests.browser.people import Person
    import uuid

    alice = Person(browser, server.url, f"nojs_{uuid.uuid4().hex[:6]}")
    try:
        post = alice.api("POST", "/api/posts", {"content": "Plain"})
        context = browser.new_context(base_url=server.url, java_script_enabled=False,
                                      storage_state=alice.context.storage_state())
        page = context.new_page()
        page.goto("/")
        expected = f"{post['created_at'][:10]} {post['created_at'][11:16]} UTC"
        expect(page.locator(f"[data-post-id='{post['id']}'] time")).to_have_text(expected)
        context.close()
    finally:
        alice.close()


def settled_top(page, locator):
    """Return *locator*'s top once it has stayed put for 100 ms (scrolling has ended)."""
    top = locator.bounding_box()["y"]
    for _ in range(50):
        page.wait_for_timeout(100)
        now = locator.bounding_box()["y"]
        if now == top:
            return top
        top = now
    raise AssertionError("the page kept scrolling for 5 s")


def test_new_posts_wait_behind_a_pill_for_a_reader_scrolled_down(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    for n in range(8):
        alice.api("POST", "/api/posts", {"content": f"Older post {n} " + "words " * 40})
    page = bob.open("/")
    reading = page.locator("[data-post-id]", has_text="Older post 3")
    reading.scroll_into_view_if_needed()
    start = page.evaluate("window.scrollY")
    page.mouse.wheel(0, 200)
    # The wheel scrolls after the call returns, and may go on for a few frames.
    wait_for_page(page, f"window.scrollY >= {start + 100}")
    before = settled_top(page, reading)

    first = alice.api("POST", "/api/posts", {"content": "Fresh one"})
    second = alice.api("POST", "/api/posts", {"content": "Fresh two"})
    pill = page.locator("[data-role=new-posts]")
    expect(pill).to_have_text(re.compile(r"^2 new posts"))
    expect(page.locator("[data-role=toasts] [role=status]").first).to_be_visible()
    expect(page.locator("[data-post-id]", has_text="Fresh")).to_have_count(0)
    assert abs(reading.bounding_box()["y"] - before) < 1  # what Bob reads did not move

    pill.click()
    expect(pill).to_be_hidden()
    cards = page.locator("[data-role=posts] [data-post-id]")
    expect(cards.nth(0)).to_have_attribute("data-post-id", second["id"])
    expect(cards.nth(1)).to_have_attribute("data-post-id", first["id"])
    wait_for_page(page, "window.scrollY < 400")

    page.evaluate("window.scrollTo(0, 0)")
    wait_for_page(page, "window.scrollY === 0")
    alice.api("POST", "/api/posts", {"content": "Seen at the top"})
    expect(cards.nth(0)).to_contain_text("Seen at the top")  # a reader at the top: at once
    expect(pill).to_be_hidden()
    assert bob.errors == []


def test_avatars_show_initials_on_the_usernames_colour(server, people):
    alice = people(server, "alice", display_name="Ada Lovelace")
    bob = people(server, "bob")
    bob.follow(alice)
    post = alice.api("POST", "/api/posts", {"content": "Avatar"})
    page = bob.open("/")
    avatar = page.locator(f"[data-post-id='{post['id']}'] .avatar")
    expect(avatar).to_have_text("AL")
    expect(avatar).to_have_attribute("aria-hidden", "true")
    expect(avatar).to_have_attribute("data-hue", str(avatar_hue(alice.username)))

    live = alice.api("POST", "/api/posts", {"content": "Live avatar"})  # rendered by render.js
    live_avatar = page.locator(f"[data-post-id='{live['id']}'] .avatar")
    expect(live_avatar).to_have_text("AL")
    expect(live_avatar).to_have_attribute("data-hue", avatar.get_attribute("data-hue"))
    colours = {avatar.evaluate("e => getComputedStyle(e).backgroundColor")}
    page.emulate_media(color_scheme="dark")
    colours.add(avatar.evaluate("e => getComputedStyle(e).backgroundColor"))
    assert len(colours) == 2  # a lighter disc in dark mode
    assert bob.errors == []


def test_the_server_and_the_page_agree_on_hues_and_initials(server, people):
    """The Jinja filters and render.js compute the same avatar for any name."""
    alice = people(server, "alice")
    page = alice.open("/")
    names = ["alice", "Bob_42", "zz", "ÅsaÖberg"]
    hues = page.evaluate("names => import('/static/js/render.js').then("
                         "m => names.map(m.avatarHue))", names)
    assert hues == [avatar_hue(name) for name in names]
    assert len({avatar_hue(f"user{n}") for n in range(200)}) == 12  # every colour is used
    displays = ["Ada Lovelace", "  grace   brewster hopper ", "émile", "", "李 小龍"]
    shown = page.evaluate("names => import('/static/js/render.js').then("
                          "m => names.map((n) => m.initials(n, 'xavier')))", displays)
    assert shown == [initials(name, "xavier") for name in displays]
