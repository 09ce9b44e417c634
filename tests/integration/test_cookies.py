"""The session cookies: Secure with __Host-/__Secure- names in production, plain in development."""
import pytest

from tests.support.pageforms import (
    HTML,
    ORIGIN,
    access_csrf,
    set_cookies,
    sign_up,
    signed_in_as,
)


def test_production_cookies_are_secure_with_host_and_secure_prefixes(client):
    username = "cookie_monster"
    response = client.post("/register", data={"username": username, "password": "password123"},
                           headers={**HTML, "Origin": ORIGIN})
    cookies = set_cookies(response)
    assert set(cookies) == {"__Host-access_token_cookie", "__Host-csrf_access_token",
                            "__Secure-refresh_token_cookie", "__Host-csrf_refresh_token"}
    for name, attributes in cookies.items():
        assert attributes["secure"] is True and attributes["samesite"] == "Lax", name
        assert "domain" not in attributes, name
        assert attributes["path"] == ("/api/auth/" if name.startswith("__Secure-") else "/")
    assert cookies["__Host-access_token_cookie"].get("httponly") is True
    assert cookies["__Secure-refresh_token_cookie"].get("httponly") is True
    # The CSRF cookies are read by the page's script, which finds their names on the page.
    assert "httponly" not in cookies["__Host-csrf_access_token"]
    assert signed_in_as(client) == username
    body = client.get("/", headers=HTML).text
    assert 'data-csrf-cookie="__Host-csrf_access_token"' in body
    assert 'data-refresh-csrf-cookie="__Host-csrf_refresh_token"' in body
    # Cookie authentication of the API reads the prefixed names too.
    assert client.post("/api/posts", json={"content": "by cookie"},
                       headers={"X-CSRF-TOKEN": access_csrf(client)}).status_code == 201

    signed_out = set_cookies(client.post("/logout", data={"csrf_token": access_csrf(client)},
                                         headers={**HTML, "Origin": ORIGIN}))
    assert set(signed_out) == set(cookies)  # a __Host- cookie is only replaced by a Secure one
    assert all(a["secure"] is True and a["value"] == "" for a in signed_out.values())


class TestDevelopmentCookies:
    """``make run`` serves plain HTTP: its cookies are not Secure and keep plain names."""

    @pytest.fixture
    def app_config(self):
        return {"COOKIE_SECURE": False}  # what APP_ENV=development gives (tests/unit)

    def test_plain_names_without_secure(self, client):
        username = sign_up(client)
        response = client.post("/login", data={"username": username, "password": "password123"},
                               headers={**HTML, "Origin": ORIGIN})
        cookies = set_cookies(response)
        assert set(cookies) == {"access_token_cookie", "csrf_access_token",
                                "refresh_token_cookie", "csrf_refresh_token"}
        assert not any("secure" in attributes for attributes in cookies.values())
        assert signed_in_as(client) == username
        assert 'data-csrf-cookie="csrf_access_token"' in client.get("/", headers=HTML).text
