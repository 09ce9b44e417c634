"""Writes made offline, or whose answer was lost, wait in the outbox and are sent once, in order."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def record_writes(person):
    """Return the list of API writes that reach the server from *person*'s browser, in order."""
    seen = []

    def note(route):
        request = route.request
        seen.append((request.method, request.url.split("/api/", 1)[1],
                     request.headers.get("idempotency-key")))
        route.continue_()

    person.context.route("**/api/**", lambda route: note(route) if route.request.method in WRITES
                         and "/typing" not in route.request.url else route.continue_())
    return seen


def test_offline_writes_are_sent_once_in_order_when_back(server, people):
    alice = people(server, "alice")
    post = alice.api("POST", "/api/posts", {"content": "Comment on me"})
    feed = alice.open("/")
    page = alice.open(f"/post/{post['id']}", page=alice.new_page())
    seen = record_writes(alice)

    alice.context.set_offline(True)
    alice.expect_state("offline", page=feed)
    feed.fill("[data-role=composer] textarea[name=content]", "Written on a train")
    feed.click("[data-role=composer] button[type=submit]")
    pending_post = feed.locator("[data-outbox-key].pending", has_text="Written on a train")
    expect(pending_post).to_contain_text("Pending")
    page.fill("[data-role=comment-form] textarea[name=content]", "Also offline")
    page.click("[data-role=comment-form] button[type=submit]")
    expect(page.locator("[data-outbox-key].pending", has_text="Also offline")).to_have_count(1)
    page.click(f"[data-post-id='{post['id']}'] button[value=haha]")
    expect(page.locator(f"[data-post-id='{post['id']}'] button[value=haha]")).to_be_disabled()
    assert seen == []  # nothing left the browser

    alice.context.set_offline(False)
    alice.post_id("Written on a train", page=feed)
    expect(pending_post).to_have_count(0)
    expect(page.locator("[data-comment-id]", has_text="Also offline")).to_have_count(1)
    expect(page.locator("[data-outbox-key]")).to_have_count(0)
    expect(page.locator(f"[data-post-id='{post['id']}'] [data-reaction-count=haha]")).to_have_text("1")
    expect(page.locator(f"[data-post-id='{post['id']}'] button[value=haha]")).to_be_enabled()

    assert [(method, path) for method, path, _ in seen] == [
        ("POST", "posts"), ("POST", f"posts/{post['id']}/comments"),
        ("PUT", f"posts/{post['id']}/reaction")]
    assert len({key for _, _, key in seen}) == 3 and all(key for _, _, key in seen)
    mine = alice.api("GET", f"/api/users/{alice.username}/posts")["posts"]
    assert [p["content"] for p in mine] == ["Written on a train", "Comment on me"]
    comments = alice.api("GET", f"/api/posts/{post['id']}/comments")["comments"]
    assert [c["content"] for c in comments] == ["Also offline"]
    assert mine[1]["reaction_counts"]["haha"] == 1
    assert alice.errors == []


def test_a_write_whose_answer_is_lost_is_retried_and_done_once(server, people):
    alice = people(server, "alice")
    feed = alice.open("/")
    attempts = []

    def cut_after_the_server_did_it(route):
        attempts.append(route.request.headers.get("idempotency-key"))
        if len(attempts) == 1:
            route.fetch()  # the request reaches the server, which writes the post
            route.abort("connectionreset")  # and the answer never reaches the page
        else:
            route.continue_()

    alice.context.route("**/api/posts", lambda route: cut_after_the_server_did_it(route)
                        if route.request.method == "POST" else route.continue_())
    feed.fill("[data-role=composer] textarea[name=content]", "Cut off mid-answer")
    feed.click("[data-role=composer] button[type=submit]")

    alice.post_id("Cut off mid-answer", page=feed)
    expect(feed.locator("[data-outbox-key]")).to_have_count(0)
    assert len(attempts) >= 2 and len(set(attempts)) == 1  # retried, with the same key
    mine = alice.api("GET", f"/api/users/{alice.username}/posts")["posts"]
    assert [p["content"] for p in mine] == ["Cut off mid-answer"]
    feed.reload()
    alice.post_id("Cut off mid-answer", page=feed)
    assert alice.errors == []
