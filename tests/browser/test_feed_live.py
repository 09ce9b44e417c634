"""Two people, two browsers: what one does on the feed shows up on the other's, live."""
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TOASTS = "[data-role=toasts] [role=status]"


def count(page, post_id, reaction):
    """Return the locator of a post's reaction count on *page*."""
    return page.locator(f"[data-post-id='{post_id}'] [data-reaction-count={reaction}]")


def check_live_post(alice, bob, transport=None):
    """Alice posts from the composer; Bob's feed shows it and a toast within 2 s."""
    bob.follow(alice)
    bob.open("/", transport)
    alice.open("/", transport)
    if transport:
        expect(bob.connection()).to_have_attribute("data-transport", transport)
    post_id = alice.post(f"Hello over {transport or 'the default transport'}")
    started = time.monotonic()
    assert bob.post_id(f"Hello over {transport or 'the default'}", timeout=2_000) == post_id
    expect(bob.page.locator(TOASTS)).to_contain_text("Hello over", timeout=2_000)
    assert time.monotonic() - started < 2
    expect(bob.page.locator("[data-role=posts] [data-post-id]").first).to_have_attribute(
        "data-post-id", post_id)
    expect(alice.page.locator(TOASTS)).to_have_count(0)  # no toast for one's own post
    assert bob.errors == [] and alice.errors == []
    return post_id


def test_post_appears_live_with_toast(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    check_live_post(alice, bob)
    expect(bob.connection()).to_have_attribute("data-transport", "sse")


@pytest.mark.parametrize("transport", ["ws", "poll"])
def test_post_appears_live_on_a_forced_transport(server, people, transport):
    alice, bob = people(server, "alice"), people(server, "bob")
    check_live_post(alice, bob, transport)


def test_reaction_updates_the_others_count(server, people, screenshots):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    alice.open("/")
    post_id = alice.post("React to this")
    bob.open("/")

    bob.page.click(f"[data-post-id='{post_id}'] button[value=love]")
    expect(count(bob.page, post_id, "love")).to_have_text("1")
    expect(count(alice.page, post_id, "love")).to_have_text("1", timeout=2_000)

    bob.page.click(f"[data-post-id='{post_id}'] button[value=wow]")  # replaces the love
    expect(count(alice.page, post_id, "wow")).to_have_text("1", timeout=2_000)
    expect(count(alice.page, post_id, "love")).to_have_text("0")
    expect(bob.page.locator(f"[data-post-id='{post_id}'] button[value=wow]")).to_have_attribute(
        "aria-pressed", "true")

    alice.post("And one more, live")
    expect(bob.page.locator(TOASTS)).to_contain_text("And one more", timeout=2_000)
    bob.page.screenshot(path=str(screenshots / "feed.png"), animations="disabled")


def test_edit_and_delete_apply_live(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    alice.open("/")
    post_id = alice.post("First draft")
    bob.open("/")

    alice.open(f"/post/{post_id}")
    alice.page.click(f"[data-post-id='{post_id}'] details.edit summary")
    alice.page.fill(f"[data-post-id='{post_id}'] [data-role=edit] textarea", "Final version")
    alice.page.click(f"[data-post-id='{post_id}'] [data-role=edit] button")
    card = bob.page.locator(f"[data-post-id='{post_id}']")
    expect(card.locator("[data-field=content]")).to_have_text("Final version", timeout=2_000)
    expect(card.locator("[data-field=edited]")).to_be_visible()

    alice.page.click(f"[data-post-id='{post_id}'] [data-role=delete] button")
    expect(card).to_have_count(0, timeout=2_000)


# Headless Chromium cannot show notifications or hide a tab: stand in for both, and record.
NOTIFICATION_STUB = """
window.__notifications = []; window.__permissionRequests = 0;
window.Notification = class {
  static permission = "default";
  static async requestPermission() {
    window.__permissionRequests += 1;
    return (window.Notification.permission = "granted");
  }
  constructor(title, options) { window.__notifications.push({title, ...options}); }
};
Object.defineProperty(document, "hidden", {get: () => window.__hidden === true});
"""


def test_notification_for_a_hidden_tab_once_allowed(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    bob.context.add_init_script(NOTIFICATION_STUB)
    bob.open("/")
    alice.open("/")
    assert bob.page.evaluate("window.__permissionRequests") == 0  # never asked on load

    alice.post("Not notified: permission not given yet")
    bob.post_id("Not notified")
    bob.page.click("[data-role=notify]")
    expect(bob.page.locator("[data-role=notify]")).to_be_hidden()

    alice.post("Not notified: Bob is looking")
    bob.post_id("Bob is looking")
    bob.page.evaluate("window.__hidden = true")
    alice.post("Notified: Bob's tab is hidden")
    bob.post_id("tab is hidden")
    notifications = bob.page.evaluate("window.__notifications")
    assert [n["body"] for n in notifications] == ["Notified: Bob's tab is hidden"]
    assert notifications[0]["title"] == f"{alice.username} (@{alice.username}) posted"


def test_notices_name_the_username_beside_a_look_alike_display_name(server, people):
    alice = people(server, "alice", display_name="Alice")
    mallory = people(server, "mallory", display_name="Alice")  # free text: anyone may pick it
    bob = people(server, "bob")
    bob.follow(alice)
    bob.follow(mallory)
    bob.context.add_init_script(NOTIFICATION_STUB + 'window.Notification.permission = "granted";')
    bob.open("/")
    mallory.open("/")
    mallory.post("Alice here: send me your password")
    toast = bob.page.locator(TOASTS, has_text="send me your password")
    expect(toast).to_contain_text(f"Alice (@{mallory.username}) posted", timeout=2_000)

    bob.page.evaluate("window.__hidden = true")
    mallory.post("Hidden tab")
    bob.post_id("Hidden tab")
    titles = [n["title"] for n in bob.page.evaluate("window.__notifications")]
    assert titles == [f"Alice (@{mallory.username}) posted"]

    post_id = alice.post("Comment on this")
    bob.open(f"/post/{post_id}")
    mallory.open(f"/post/{post_id}")
    mallory.page.fill("[data-role=comment-form] textarea[name=content]", "typing…")
    expect(bob.page.locator("[data-role=typing]")).to_have_text(
        f"Alice (@{mallory.username}) is typing…", timeout=2_000)
    assert bob.errors == [] and mallory.errors == []


def test_comment_counts_on_feed_cards_update_live(server, people):
    alice, bob, carol = people(server, "alice"), people(server, "bob"), people(server, "carol")
    bob.follow(alice)
    alice.open("/")
    post_id = alice.post("Comment on this")
    bob.open("/")
    shown = f"[data-post-id='{post_id}'] [data-field=comment_count]"
    expect(bob.page.locator(shown)).to_have_text("0")
    first = carol.api("POST", f"/api/posts/{post_id}/comments", {"content": "one"})
    for page in (alice.page, bob.page):  # no page of that post is open anywhere
        expect(page.locator(shown)).to_have_text("1", timeout=3_000)
    carol.api("POST", f"/api/posts/{post_id}/comments", {"content": "two"})
    carol.api("DELETE", f"/api/comments/{first['id']}")
    for page in (alice.page, bob.page):
        expect(page.locator(shown)).to_have_text("1", timeout=3_000)
        expect(page.locator(f"[data-post-id='{post_id}'] [data-field=comment_noun]")).to_have_text(
            "comment")
    assert alice.errors == [] and bob.errors == []
