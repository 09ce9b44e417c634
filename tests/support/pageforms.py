"""Page forms over the Flask test client, as a browser on this site posts them."""
import re
import uuid

ORIGIN = "http://localhost"  # the test client's server
HTML = {"Accept": "text/html"}


def set_cookies(response):
    """Return the response's Set-Cookie headers as ``{name: {attribute: value}}``."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = header.split("; ")
        name, _, value = first.partition("=")
        found[name] = {"value": value}
        for attribute in attributes:
            key, _, arg = attribute.partition("=")
            found[name][key.lower()] = arg or True
    return found


def fresh_client(client):
    """Return a new test client of *client*'s app: another browser, without cookies."""
    return client.application.test_client()


def access_csrf(client):
    """Return the session's CSRF token that the pages put in their forms."""
    return client.get_cookie(client.application.config["JWT_ACCESS_CSRF_COOKIE_NAME"]).value


def sign_up(client, **headers):
    """Register a new user through the page form from this site; return the username."""
    username = f"u_{uuid.uuid4().hex[:8]}"
    response = client.post("/register", data={"username": username, "password": "password123"},
                           headers={**HTML, "Origin": ORIGIN, **headers})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return username


def signed_in_as(client):
    """Return the username the home page is rendered for, or None when signed out."""
    found = re.search(r'data-viewer-username="([^"]+)"', client.get("/", headers=HTML).text)
    return found and found.group(1)
