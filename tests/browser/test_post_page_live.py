"""The post page: comments, comment likes and the typing indicator, live."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TYPING = "[data-role=typing]"


def test_comment_and_typing_appear_live(server, people, screenshots):
    alice, bob = people(server, "alice"), people(server, "bob")
    alice.open("/")
    post_id = alice.post("What do you think?")
    alice.open(f"/post/{post_id}")
    bob.open(f"/post/{post_id}")
    expect(alice.page.locator(TYPING)).to_have_text("")

    bob.page.locator("[data-role=comment-form] textarea").press_sequentially("I think it")
    expect(alice.page.locator(TYPING)).to_contain_text("is typing", timeout=2_000)
    expect(alice.page.locator(TYPING)).to_contain_text(bob.username)
    expect(bob.page.locator(TYPING)).to_have_text("")  # not told about oneself

    bob.page.click("[data-role=comment-form] button[type=submit]")
    comment = alice.page.locator("[data-comment-id]", has_text="I think it")
    expect(comment).to_have_count(1, timeout=2_000)
    expect(alice.page.locator(TYPING)).to_have_text("")  # the comment ends the typing
    expect(alice.page.locator(f"[data-post-id='{post_id}'] [data-field=comment_count]")
           ).to_have_text("1")

    comment.locator("[data-role=comment-like] button").click()
    bob_comment = bob.page.locator("[data-comment-id]", has_text="I think it")
    expect(bob_comment.locator("[data-like-count]")).to_have_text("1", timeout=2_000)

    bob.page.wait_for_timeout(2_100)  # the server passes one typing announcement per 2 s
    bob.page.locator("[data-role=comment-form] textarea").press_sequentially("Also…")
    expect(alice.page.locator(TYPING)).to_contain_text("is typing", timeout=2_000)
    alice.page.screenshot(path=str(screenshots / "post.png"), animations="disabled")
    expect(alice.page.locator(TYPING)).to_have_text("", timeout=8_000)  # fades by itself
    assert alice.errors == [] and bob.errors == []
