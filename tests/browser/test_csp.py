"""In Chromium, no page breaks its own Content-Security-Policy: signed in and out, with live
updates on every transport, the post page and the /realtime console included."""
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LOG = "[data-role=console-log] li"
# Chromium logs each violation to the console itself; the event is reported as well, in case a
# future version logs it differently.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
});
"""


def watch_csp(page):
    """Collect the CSP violations of *page* (a browser tab); return the list it fills."""
    violations = []
    page.add_init_script(REPORT_VIOLATIONS)

    def on_console(message):
        if "CSP violation" in message.text or "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return violations


def test_no_page_violates_the_content_security_policy(server, people, browser):
    alice, bob = people(server, "alice"), people(server, "bob")
    violations = watch_csp(alice.page)
    alice.follow(bob)
    post_id = bob.post("A post with live updates")

    # The feed on each transport, with a post and a reaction arriving live.
    for transport in ("sse", "ws", "poll"):
        alice.open("/", transport=transport)
        bob.post(f"Live over {transport}")
        expect(alice.page.locator("[data-post-id]", has_text=f"Live over {transport}")
               ).to_have_count(1)
    # The post page: a comment (rendered from the page's blank row), a like and typing.
    alice.open(f"/post/{post_id}")
    comment = bob.api("POST", f"/api/posts/{post_id}/comments", {"content": "Live comment"})
    expect(alice.page.locator(f"[data-comment-id='{comment['id']}']")).to_have_count(1)
    bob.api("PUT", f"/api/posts/{post_id}/reaction", {"type": "love"})
    expect(alice.page.locator(f"[data-post-id='{post_id}'] [data-reaction-count=love]")
           ).to_have_text("1")
    bob.open(f"/post/{post_id}", page=bob.new_page()).locator(
        "[data-role=comment-form] textarea").press_sequentially("Typing")
    expect(alice.page.locator("[data-role=typing]")).to_contain_text("is typing")
    # The console, on each transport.
    alice.page.goto("/realtime")
    for transport in ("sse", "ws", "poll"):
        alice.page.check(f"input[name=transport][value={transport}]")
        alice.page.click("[data-action=connect]")
        alice.expect_state("connected")
        expect(alice.page.locator(LOG, has_text="connection_established").first).to_be_visible()
        alice.page.click("[data-action=disconnect]")
        alice.expect_state("offline")
    for path in (f"/u/{bob.username}", f"/u/{alice.username}", "/logout",
                 f"/post/{uuid.uuid4()}"):
        alice.page.goto(path)
        alice.page.wait_for_load_state("networkidle")

    # Signed out: the welcome page and the forms.
    visitor = browser.new_context(base_url=server.url)
    try:
        page = visitor.new_page()
        visitor_violations, script_errors = watch_csp(page), []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        for path in ("/", "/login", "/register", "/realtime"):
            response = page.goto(path)
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_load_state("networkidle")
        assert violations == [] and visitor_violations == []
        assert alice.errors == [] and script_errors == []
        # The control: an inline style is refused, and the refusal is seen.
        page.evaluate("document.head.append(Object.assign(document.createElement('style'),"
                      " {textContent: 'p { color: red }'}))")
        expect(page.locator("p").first).not_to_have_css("color", "rgb(255, 0, 0)")
        for _ in range(100):  # console messages arrive while Playwright waits
            if any("style-src" in violation for violation in visitor_violations):
                break
            page.wait_for_timeout(50)
        assert any("style-src" in violation for violation in visitor_violations), "control unseen"
    finally:
        visitor.close()
