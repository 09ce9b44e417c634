"""What the viewer does in one tab shows in their other tabs: their pressed reaction, and a
post's comment count that a tab showing the post saw change."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_own_reaction_and_comment_counts_reach_the_other_tabs(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    alice.open("/")
    post_id = alice.post("React and comment")
    first = bob.open("/")
    second = bob.open("/", page=bob.new_page())
    card = f'[data-post-id="{post_id}"]'
    first.click(f'{card} [data-role=reactions] button[value=love]')
    expect(first.locator(f"{card} button[value=love]")).to_have_attribute("aria-pressed", "true")
    expect(second.locator(f"{card} button[value=love]")).to_have_attribute("aria-pressed", "true")
    expect(second.locator(f'{card} [data-reaction-count=love]')).to_have_text("1")

    # A tab on the post sees comments; the feed tabs learn the count from it.
    bob.open(f"/post/{post_id}", page=bob.new_page())
    alice.api("POST", f"/api/posts/{post_id}/comments", {"content": "a comment"})
    for page in (first, second):
        expect(page.locator(f"{card} [data-field=comment_count]")).to_have_text("1")
    assert bob.errors == []
