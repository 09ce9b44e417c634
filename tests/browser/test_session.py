"""Short-lived access tokens: the client renews the session and its streams by itself."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def server_overrides():
    return {"ACCESS_TOKEN_SECONDS": "5"}


def test_streams_survive_token_expiry(own_server, people):
    alice, bob = people(own_server, "alice"), people(own_server, "bob")
    bob.follow(alice)
    bob.open("/")
    alice.open("/")
    refreshes = []
    bob.context.on("request", lambda r: r.url.endswith("/api/auth/refresh") and refreshes.append(r))

    bob.page.wait_for_timeout(6_500)  # the stream's token expired: token_expired, then refresh
    assert refreshes
    bob.expect_state("connected")
    alice.post("After the first token expired")
    bob.post_id("After the first token expired", timeout=2_000)
    assert bob.errors == [] and alice.errors == []


def test_a_page_opened_after_expiry_renews_the_session(own_server, people):
    bob = people(own_server, "bob")
    bob.page.close()
    page = bob.new_page()
    page.wait_for_timeout(5_500)  # the browser drops the expired access cookie
    page.goto("/")
    # Rendered signed out, then renewed with the refresh cookie and reloaded.
    expect(page.locator("[data-role=composer]")).to_be_visible()
    bob.expect_state("connected", page=page)
