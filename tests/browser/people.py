"""A person using the site in a browser context of their own, through its pages only."""
import re

from playwright.sync_api import expect

CONNECTION = "[data-role=connection]"


class Person:
    """Signs up through /register and then uses the pages as a person would.

    :param browser: a Playwright browser.
    :param base_url: the server's URL.
    :param username: a fresh username.
    :param display_name: what to type in the form's display name (none: the username).
    :param context_options: more options of the browser context (``timezone_id``, ``locale``).
    """

    def __init__(self, browser, base_url, username, password="password123", viewport=None,
                 display_name=None, **context_options):
        self.base_url = base_url
        self.username = username
        self.password = password
        self.context = browser.new_context(base_url=base_url,
                                           viewport=viewport or {"width": 1000, "height": 760},
                                           **context_options)
        self.context.set_default_timeout(10_000)
        self.errors = []
        self.page = self.new_page()
        self.page.goto("/register")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        if display_name:
            self.page.fill("input[name=display_name]", display_name)
        self.page.click("form[data-role=register] button[type=submit]")
        self.page.wait_for_url(f"{base_url}/")

    def new_page(self):
        """Open another tab of this person's browser; script errors are collected."""
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def open(self, path, transport=None, page=None):
        """Go to *path* (forcing *transport* if given) and wait until it is live."""
        page = page or self.page
        if transport:
            path += ("&" if "?" in path else "?") + f"transport={transport}"
        page.goto(path)
        self.expect_state("connected", page=page)
        return page

    def connection(self, page=None):
        """Return the connection indicator of *page* (default: the first tab)."""
        return (page or self.page).locator(CONNECTION)

    def expect_state(self, state, page=None, timeout=10_000):
        """Wait until the indicator shows *state*."""
        expect(self.connection(page)).to_have_attribute("data-connection-state", state,
                                                         timeout=timeout)

    def post(self, content):
        """Write a post from the composer; return its id once it shows in the feed."""
        self.page.fill("[data-role=composer] textarea[name=content]", content)
        self.page.click("[data-role=composer] button[type=submit]")
        return self.post_id(content)

    def post_id(self, content, page=None, timeout=10_000):
        """Wait for the post with *content* on *page*; return its data-post-id."""
        card = (page or self.page).locator("[data-post-id]", has_text=content)
        expect(card).to_have_count(1, timeout=timeout)
        return card.get_attribute("data-post-id")

    def follow(self, other):
        """Follow *other* from their profile page."""
        self.page.goto(f"/u/{other.username}")
        self.page.click("form[data-role=follow] button")
        expect(self.page.locator("form[data-role=follow] button")).to_have_text(
            re.compile("Unfollow"))

    def api(self, method, path, json=None):
        """Call the JSON API with this person's cookies (and CSRF header), outside the page."""
        csrf = next((c["value"] for c in self.context.cookies()
                     if c["name"] == "csrf_access_token"), "")
        response = self.context.request.fetch(path, method=method, data=json,
                                              headers={"X-CSRF-TOKEN": csrf})
        assert response.ok, f"{method} {path}: {response.status} {response.text()}"
        return response.json() if response.status != 204 else None

    def close(self):
        """Close this person's browser context."""
        self.context.close()
