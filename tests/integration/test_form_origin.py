"""Sign-in, sign-up and sign-out forms refuse posts from other sites (login CSRF)."""
import re
import uuid

import pytest

from tests.support.pageforms import (
    HTML,
    ORIGIN,
    access_csrf,
    fresh_client,
    set_cookies,
    sign_up,
    signed_in_as,
)

CROSS_SITE = [{"Origin": "https://evil.example"}, {"Origin": "null"},
              {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
              {"Origin": "http://localhost:8001", "Sec-Fetch-Site": "same-site"}]
REFUSED = "This form was refused"


def form_token(html):
    """Return the sign-in forms' hidden login_csrf value."""
    return re.search(r'name="login_csrf" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_sign_in_from_another_site_is_refused(client, headers):
    username = sign_up(fresh_client(client))
    response = client.post("/login", data={"username": username, "password": "password123"},
                           headers={**HTML, **headers})
    assert response.status_code == 403 and REFUSED in response.text
    assert set_cookies(response) == {} and signed_in_as(client) is None


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_sign_up_from_another_site_is_refused(client, api, headers):
    username = f"u_{uuid.uuid4().hex[:8]}"
    response = client.post("/register", data={"username": username, "password": "password123"},
                           headers={**HTML, **headers})
    assert response.status_code == 403 and REFUSED in response.text
    assert set_cookies(response) == {}
    assert api.user("someone").call("GET", f"/api/users/{username}").status_code == 404


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_sign_out_from_another_site_is_refused(client, headers):
    username = sign_up(client)
    # Even with the right CSRF token: a page on another port of this host can read the cookie.
    response = client.post("/logout", data={"csrf_token": access_csrf(client)},
                           headers={**HTML, **headers})
    assert response.status_code == 403 and REFUSED in response.text
    assert set_cookies(response) == {} and signed_in_as(client) == username
    assert client.get("/api/me").get_json()["username"] == username


def test_a_sign_out_with_a_stale_form_token_explains_and_keeps_the_session(client):
    username = sign_up(client)
    # An old tab's form (its token from a session since refreshed): the page says why, and its
    # header must not check the same token again while it renders (that was a 500).
    response = client.post("/logout", data={"csrf_token": "stale"},
                           headers={**HTML, "Origin": ORIGIN})
    assert response.status_code == 403 and "This form has expired" in response.text
    assert signed_in_as(client) == username


def test_refused_forms_answer_json_to_scripts(client):
    response = client.post("/login", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_same_origin_sign_up_sign_out_and_sign_in_are_accepted(client):
    username = sign_up(client, **{"Sec-Fetch-Site": "same-origin"})
    assert signed_in_as(client) == username
    same_origin = {**HTML, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    response = client.post("/logout", data={"csrf_token": access_csrf(client)},
                           headers=same_origin)
    assert response.status_code == 302 and signed_in_as(client) is None
    response = client.post("/login", data={"username": username, "password": "password123"},
                           headers=same_origin)
    assert response.status_code == 302 and signed_in_as(client) == username
    # A bookmark or a typed URL: Sec-Fetch-Site none, no cross-site Origin.
    client.post("/logout", data={"csrf_token": access_csrf(client)},
                headers={**HTML, "Sec-Fetch-Site": "none"})
    assert signed_in_as(client) is None


def test_without_origin_headers_the_sign_in_forms_need_their_token(client):
    username = sign_up(fresh_client(client))
    data = {"username": username, "password": "password123"}
    for path in ("/login", "/register"):
        refused = client.post(path, data=data, headers=HTML)  # an old browser, or a script
        assert refused.status_code == 403 and "reload the page" in refused.text
    assert signed_in_as(client) is None
    token = form_token(client.get("/login", headers=HTML).text)
    assert form_token(client.get("/register", headers=HTML).text) == token  # one per browser
    assert client.post("/login", data={**data, "login_csrf": "x" * 43},
                       headers=HTML).status_code == 403
    assert client.post("/login", data={**data, "login_csrf": token},
                       headers=HTML).status_code == 302
    assert signed_in_as(client) == username


def test_the_form_token_cookie_is_secure_and_host_only_in_production(client):
    [(name, attributes)] = set_cookies(client.get("/login", headers=HTML)).items()
    assert name == "__Host-login_csrf" and attributes["path"] == "/"
    assert attributes["secure"] is True and attributes["httponly"] is True
    assert "domain" not in attributes and attributes["samesite"] == "Lax"
    assert set_cookies(client.get("/register", headers=HTML)) == {}  # kept, not replaced


class TestDevelopment:
    @pytest.fixture
    def app_config(self):
        return {"COOKIE_SECURE": False}

    def test_the_form_token_cookie_is_plain_over_http(self, client):
        [(name, attributes)] = set_cookies(client.get("/login", headers=HTML)).items()
        assert name == "login_csrf" and "secure" not in attributes


def test_get_logout_asks_before_signing_out(client):
    assert client.get("/logout", headers=HTML).headers["Location"] == "/"
    username = sign_up(client)
    page = client.get("/logout", headers=HTML)
    assert page.status_code == 200 and 'action="/logout"' in page.text
    assert f'name="csrf_token" value="{access_csrf(client)}"' in page.text
    assert signed_in_as(client) == username


class TestBehindAProxy:
    """Behind nginx the server's origin is the one the proxy forwards (ProxyFix)."""

    @pytest.fixture
    def app_config(self):
        return {"PROXY_COUNT": 1}

    def test_the_forwarded_origin_is_ours(self, client):
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "feed.example",
                     "X-Forwarded-For": "203.0.113.9"}
        data = {"username": "proxied_user", "password": "password123"}
        refused = client.post("/register", data=data,
                              headers={**HTML, **forwarded, "Origin": "http://localhost"})
        assert refused.status_code == 403 and REFUSED in refused.text
        accepted = client.post("/register", data=data,
                               headers={**HTML, **forwarded, "Origin": "https://feed.example"})
        assert accepted.status_code == 302
