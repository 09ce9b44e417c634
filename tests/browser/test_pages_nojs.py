"""The pages without JavaScript: ordinary forms with the CSRF field, redirects, and every
stable hook of the contract's Pages section in the HTML. Flask's test client, no browser."""
import re
import uuid

import pytest

from tests.browser.hooks import having, parse

HTML = {"Accept": "text/html"}
ORIGIN = "http://localhost"  # the test client's server
REACTIONS = ("like", "love", "haha", "wow", "sad", "angry")


class Visitor:
    """A person with a cookie jar of their own, using only page routes."""

    def __init__(self, app):
        self.client = app.test_client()
        self.names = {kind: app.config[f"JWT_{kind.upper()}_COOKIE_NAME"]
                      for kind in ("access", "refresh", "access_csrf")}

    def cookie(self, kind):
        """Return this visitor's ``access``, ``refresh`` or ``access_csrf`` cookie, or None."""
        # Not get_cookie(): it looks at Path=/ only, and the refresh cookie's is /api/auth/.
        return next((c for c in self.client._cookies.values() if c.key == self.names[kind]),
                    None)

    def get(self, path, status=200):
        response = self.client.get(path, headers=HTML)
        assert response.status_code == status, (path, response.status_code)
        return response.get_data(as_text=True)

    def csrf(self):
        """Return the csrf_token the pages put in every form (the access CSRF cookie)."""
        return self.cookie("access_csrf").value

    def submit(self, path, status=302, **fields):
        """Post a form as a browser would, from this site's own page (its Origin), with the
        hidden CSRF field; return the response."""
        cookie = self.cookie("access_csrf")
        data = {"csrf_token": cookie.value if cookie else "", **fields}
        response = self.client.post(path, data=data, headers={**HTML, "Origin": ORIGIN})
        assert response.status_code == status, (path, response.status_code,
                                                response.get_data(as_text=True)[:500])
        return response

    def register(self, name):
        username = f"{name}_{uuid.uuid4().hex[:6]}"
        response = self.submit("/register", username=username, password="password123")
        assert response.headers["Location"] == "/"
        self.username = username
        return username


@pytest.fixture
def visitor(app):
    """Make a :class:`Visitor` of the app."""
    return lambda: Visitor(app)


def post_ids(html):
    return [e.attrs["data-post-id"] for e in having(parse(html), "data-post-id")]


def test_register_sign_out_and_sign_in_with_forms(visitor):
    alice = visitor()
    username = alice.register("alice")
    assert alice.cookie("access").http_only and alice.cookie("refresh").http_only
    assert alice.cookie("refresh").path == "/api/auth/"
    assert 'data-role="composer"' in alice.get("/")

    assert alice.submit("/logout").headers["Location"] == "/"
    assert alice.cookie("access") is None
    assert 'data-role="composer"' not in alice.get("/")

    wrong = alice.submit("/login", status=401, username=username, password="wrong-password")
    assert "wrong username or password" in wrong.get_data(as_text=True)
    back = alice.submit("/login", username=username.upper(), password="password123",
                        next="/realtime")
    assert back.headers["Location"] == "/realtime"


def test_logout_revokes_the_session_for_the_api_too(visitor):
    alice = visitor()
    alice.register("alice")
    token = alice.cookie("access").value
    alice.submit("/logout")
    response = alice.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_register_form_shows_each_problem(visitor):
    response = visitor().submit("/register", status=422, username="x", password="short")
    html = response.get_data(as_text=True)
    assert 'aria-invalid="true"' in html and 'value="x"' in html


def test_post_comment_react_and_follow_without_javascript(visitor):
    alice, bob = visitor(), visitor()
    alice.register("alice")
    bob.register("bob")

    assert bob.submit(f"/u/{alice.username}/follow").headers["Location"] == f"/u/{alice.username}"
    assert "Unfollow" in bob.get(f"/u/{alice.username}")

    assert alice.submit("/compose", content="Hello without JavaScript").headers["Location"] == "/"
    [post_id] = post_ids(bob.get("/"))

    bob.submit(f"/post/{post_id}/react", type="love", next="/")
    page = parse(bob.get("/"))
    [love] = having(page, "data-reaction-count", "love")
    assert love.text == "1"
    bob.submit(f"/post/{post_id}/react", type="love", next="/")  # the same again: undo
    assert having(parse(bob.get("/")), "data-reaction-count", "love")[0].text == "0"

    reply = bob.submit(f"/post/{post_id}/comment", content="Replying by form")
    assert reply.headers["Location"].startswith(f"/post/{post_id}#comment-")
    comments = having(parse(alice.get(f"/post/{post_id}")), "data-comment-id")
    assert [c.text.count("Replying by form") for c in comments] == [1]

    comment_id = comments[0].attrs["data-comment-id"]
    alice.submit(f"/comment/{comment_id}/like", liked="1")
    assert "Like <span class=\"count\" data-like-count>1</span>" in alice.get(f"/post/{post_id}")

    alice.submit(f"/post/{post_id}/edit", content="Edited by form")
    assert "Edited by form" in bob.get(f"/post/{post_id}")
    assert alice.submit(f"/post/{post_id}/delete").headers["Location"] == "/"
    bob.get(f"/post/{post_id}", status=404)

    bob.submit(f"/u/{alice.username}/unfollow")
    assert post_ids(bob.get("/")) == []


def test_an_empty_post_is_refused_with_a_message(visitor):
    alice = visitor()
    alice.register("alice")
    alice.submit("/compose", content="   ")
    html = alice.get("/")
    assert "content must not be blank" in html and post_ids(html) == []


def test_forms_without_the_csrf_token_are_refused(visitor):
    alice = visitor()
    alice.register("alice")
    response = alice.client.post("/compose", data={"content": "forged"}, headers=HTML)
    assert response.status_code == 403
    assert "This form has expired" in response.get_data(as_text=True)
    assert post_ids(alice.get("/")) == []


def test_signed_out_visitors_are_sent_to_sign_in(visitor):
    response = visitor().client.get("/u/someone?x=1", headers=HTML)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/u/someone?x%3D1"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                    "/\t/evil.example"])
def test_sign_in_never_redirects_off_site(visitor, target):
    alice = visitor()
    username = alice.register("alice")
    alice.submit("/logout")
    response = alice.submit("/login", username=username, password="password123", next=target)
    assert response.headers["Location"] == "/"


def test_page_errors_are_html_for_people_and_json_for_scripts(visitor):
    alice = visitor()
    alice.register("alice")
    missing = f"/post/{uuid.uuid4()}"
    page = alice.client.get(missing, headers=HTML)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "<h1>Not found</h1>" in page.get_data(as_text=True)
    script = alice.client.get(missing, headers={"Accept": "application/json"})
    assert script.status_code == 404
    assert script.get_json() == {"error": {"code": "not_found", "message": "no such post"}}
    unknown = alice.client.get("/no/such/page", headers=HTML)  # not a page: the API's envelope
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"


def test_every_stable_hook_is_in_the_html(visitor):
    alice, bob = visitor(), visitor()
    alice.register("alice")
    signed_out = visitor()
    for path in ("/login", "/register"):
        form = parse(signed_out.get(path))
        names = {e.attrs.get("name") for e in form if e.tag == "input"}
        assert {"username", "password"} <= names, path

    alice.submit("/compose", content="Hook me")
    [post_id] = post_ids(alice.get("/"))
    bob.register("bob")
    bob.submit(f"/post/{post_id}/comment", content="A comment")

    feed = parse(alice.get("/"))
    [composer] = having(feed, "data-role", "composer")
    assert composer.tag == "form"
    assert [e for e in feed if e.tag == "textarea" and e.attrs.get("name") == "content"
            and e.within(lambda p: p is composer)]
    post_page = parse(alice.get(f"/post/{post_id}"))
    for page in (feed, post_page, parse(alice.get(f"/u/{alice.username}"))):
        [card] = having(page, "data-post-id", post_id)
        counts = [e for e in having(page, "data-reaction-count")
                  if e.within(lambda p: p is card)]
        assert sorted(e.attrs["data-reaction-count"] for e in counts) == sorted(REACTIONS)
        assert all(re.fullmatch(r"\d+", e.text) for e in counts)
    assert len(having(post_page, "data-comment-id")) == 1
    [typing] = having(post_page, "data-role", "typing")
    assert typing.text == ""

    for path in ("/", f"/post/{post_id}", f"/u/{alice.username}", "/realtime", "/login"):
        page = parse((alice if path != "/login" else signed_out).get(path))
        [indicator] = having(page, "data-connection-state")
        assert indicator.attrs["data-connection-state"] in (
            "connecting", "connected", "reconnecting", "offline")
        assert indicator.attrs["data-transport"] == "sse"
        assert having(page, "data-role", "toasts")
    for transport in ("ws", "poll"):
        [indicator] = having(parse(alice.get(f"/?transport={transport}")), "data-transport")
        assert indicator.attrs["data-transport"] == transport


class TestLimits:
    """The forms share the API's rate limits: no side door for password guessing."""

    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "2/minute"}

    def test_sign_in_attempts_are_limited(self, visitor):
        guesser = visitor()
        for _ in range(2):
            guesser.submit("/login", status=401, username="nobody", password="guess-guess")
        response = guesser.submit("/login", status=429, username="nobody", password="guess-guess")
        assert "Too many attempts" in response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) >= 1
        guesser.get("/login")  # showing the form is not limited
