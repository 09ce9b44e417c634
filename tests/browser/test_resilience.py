"""The connection survives what networks and servers do: offline spells, restarts, tabs."""
import pytest
from playwright.sync_api import expect

from tests.support.servers import Server

pytestmark = pytest.mark.browser


def test_offline_and_back_catches_up(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    bob.open("/")
    alice.open("/")

    bob.context.set_offline(True)
    bob.expect_state("offline")
    alice.post("Posted while Bob was offline")
    bob.page.wait_for_timeout(300)
    expect(bob.page.locator("[data-post-id]", has_text="while Bob")).to_have_count(0)

    bob.context.set_offline(False)
    bob.expect_state("connected", timeout=5_000)
    # Resumed from the last event id: the post made meanwhile arrives, once.
    bob.post_id("Posted while Bob was offline", timeout=3_000)
    assert bob.errors == []


def test_server_restart_loses_no_post(own_server, server_env, people, tmp_path):
    alice, bob = people(own_server, "alice"), people(own_server, "bob")
    bob.follow(alice)
    bob.open("/")
    alice.open("/")
    alice.post("Before the restart")
    bob.post_id("Before the restart")

    own_server.stop()
    alice.expect_state("reconnecting")
    bob.expect_state("reconnecting")
    restarted = Server(server_env, log_dir=tmp_path, port=own_server.port).start()
    try:
        # Published before the pages are back: they must replay it from the history.
        alice.api("POST", "/api/posts", {"content": "Right after the restart"})
        for person in (alice, bob):
            person.expect_state("connected", timeout=20_000)
            person.post_id("Right after the restart", timeout=3_000)
        alice.post("Once everyone is back")
        bob.post_id("Once everyone is back", timeout=2_000)
        expect(bob.connection()).to_have_attribute("data-transport", "sse")  # not demoted
    finally:
        restarted.stop()


def test_tabs_share_one_connection(server, people):
    alice, bob = people(server, "alice"), people(server, "bob")
    bob.follow(alice)
    streams = []  # the tabs that opened a feed stream
    bob.context.on("request", lambda r: "/stream/feed" in r.url and streams.append(r.frame.page))
    first = bob.open("/")
    second = bob.open("/", page=bob.new_page())
    assert second not in streams  # it joined the first tab's connection

    alice.open("/")
    alice.post("Seen in both tabs")
    bob.post_id("Seen in both tabs", page=first, timeout=2_000)
    bob.post_id("Seen in both tabs", page=second, timeout=2_000)

    first.close()  # the tab holding the connection goes away: the other takes over
    alice.post("Seen after the takeover")
    bob.post_id("Seen after the takeover", page=second, timeout=3_000)
    assert second in streams
    expect(second.locator("[data-role=connection]")).to_have_attribute(
        "data-connection-state", "connected")
    assert bob.errors == []


class TestHistoryLost:
    """When the resume point is gone, resync_required makes the page refetch over REST."""

    @pytest.fixture
    def server_overrides(self):
        return {"HISTORY_MAX_EVENTS": "1"}

    def test_offline_too_long_resyncs(self, own_server, people):
        alice, bob = people(own_server, "alice"), people(own_server, "bob")
        bob.follow(alice)
        bob.open("/")
        alice.open("/")
        alice.post("Seen live")
        bob.post_id("Seen live")

        bob.context.set_offline(True)
        bob.expect_state("offline")
        gone = alice.post("Deleted while Bob was away")
        for n in range(3):  # more than the channel's history keeps
            alice.post(f"Missed post {n}")
        alice.api("DELETE", f"/api/posts/{gone}")

        refetched = []
        bob.context.on("request", lambda r: "/api/feed" in r.url and refetched.append(r.url))
        bob.context.set_offline(False)
        bob.expect_state("connected", timeout=5_000)
        for n in range(3):
            bob.post_id(f"Missed post {n}", timeout=3_000)
        expect(bob.page.locator("[data-post-id]", has_text="Deleted while")).to_have_count(0)
        assert refetched  # the posts came from the REST refetch, not a replay
        assert bob.errors == []
