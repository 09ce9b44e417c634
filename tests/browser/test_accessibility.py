"""axe-core finds no accessibility violation on any page, in light and dark mode and on a phone.

axe-core 4.14.1 is vendored (tests/browser/vendor/axe-core, MPL-2.0). It is loaded as an init
script, which the pages' Content-Security-Policy (script-src 'self') does not apply to.
"""
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.people import Person
from tests.support.waits import wait_for_page

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
PHONE = {"width": 375, "height": 740}


def violations(page):
    """Run axe-core on *page*; return its violations as short, readable lines."""
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
                          ".then(r => r.violations.map(v => `${v.id}: ${v.help} at `"
                          " + v.nodes.map(n => n.target.join(' ')).join(', ')))", TAGS)
    return found


@pytest.fixture(scope="module")
def site(browser, server):
    """Alice (display name set) and Bob, who follows her; a post of hers with a comment."""
    alice = Person(browser, server.url, f"alice_{uuid.uuid4().hex[:6]}", display_name="Alice A.")
    bob = Person(browser, server.url, f"bob_{uuid.uuid4().hex[:6]}")
    bob.follow(alice)
    alice.api("POST", "/api/posts", {"content": "A feed has more than one post"})
    post = alice.api("POST", "/api/posts", {"content": "Accessible, I hope"})
    bob.api("PUT", f"/api/posts/{post['id']}/reaction", {"type": "love"})
    bob.api("POST", f"/api/posts/{post['id']}/comments", {"content": "Looks fine"})
    yield {"alice": alice, "bob": bob, "post": post}
    alice.close()
    bob.close()


def signed_in_pages(site):
    post, alice = site["post"], site["alice"]
    return ["/", f"/post/{post['id']}", f"/u/{alice.username}", "/realtime", "/logout"]


SIGNED_OUT_PAGES = ["/", "/login", "/register", "/realtime"]  # an unknown URL answers JSON


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_every_page_is_clean_under_axe(browser, server, site, scheme, viewport):
    bob = site["bob"]
    options = {"base_url": server.url, "color_scheme": scheme,
               "viewport": viewport or {"width": 1000, "height": 760}}
    signed_in = browser.new_context(storage_state=bob.context.storage_state(), **options)
    signed_out = browser.new_context(**options)
    found = {}
    try:
        for context, paths in ((signed_in, signed_in_pages(site)), (signed_out, SIGNED_OUT_PAGES)):
            context.add_init_script(script=AXE)
            page = context.new_page()
            for path in paths:
                page.goto(path)
                if path in ("/", f"/post/{site['post']['id']}") and context is signed_in:
                    expect(page.locator("[data-role=connection]")).to_have_attribute(
                        "data-connection-state", "connected")
                found[f"{path} ({'in' if context is signed_in else 'out'})"] = violations(page)
    finally:
        signed_in.close()
        signed_out.close()
    assert {path: v for path, v in found.items() if v} == {}


def test_pending_writes_and_the_pill_are_clean_under_axe(browser, server, site):
    bob = Person(browser, server.url, f"carol_{uuid.uuid4().hex[:6]}")
    try:
        bob.follow(site["alice"])
        bob.context.add_init_script(script=AXE)
        for n in range(6):
            site["alice"].api("POST", "/api/posts", {"content": f"Filler {n} " + "text " * 60})
        page = bob.open("/")
        page.evaluate("window.scrollTo(0, 900)")
        wait_for_page(page, "window.scrollY > 100")
        site["alice"].api("POST", "/api/posts", {"content": "Behind the pill"})
        expect(page.locator("[data-role=new-posts]")).to_be_visible()
        page.evaluate("window.scrollTo(0, 0)")
        bob.context.set_offline(True)
        page.fill("[data-role=composer] textarea[name=content]", "Waiting to be sent")
        page.click("[data-role=composer] button[type=submit]")
        expect(page.locator("[data-outbox-key]")).to_have_count(1)
        page.locator("[data-outbox-key]").evaluate(  # axe measures colours, not fades
            "e => Promise.all(e.getAnimations().map(a => a.finished))")
        assert violations(page) == []
    finally:
        bob.context.set_offline(False)
        bob.close()
