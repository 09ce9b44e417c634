"""Display names are free text for people, but not a place to hide controls or bidi tricks.

A display name is shown beside other people's content: a right-to-left override (U+202E), a
zero-width character or a control could make one user's name read as another's.
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import ValidationFailed
from app.inputs import schemas
from app.inputs.validation import validate
from tests.support.pageforms import ORIGIN

REFUSED = ["evil\u202eecila", "ali\u200bce", "\u2066alice\u2069", "a\u200db", "bob\u00ad",
           "\ufeffbob", "tab\there", "new\nline", "bell\x07", "del\x7f", "c1\x85", "line\u2028sep"]
ACCEPTED = ["Alice Liddell", "Zoë", "李小龍", "محمد", "Ωmega 🚀", "O'Brien-Smith", "x"]


def _register(client, display_name, username="someone"):
    return client.post("/api/auth/register", json={
        "username": username, "password": "password123", "display_name": display_name})


@pytest.mark.parametrize("display_name", REFUSED)
def test_the_api_refuses_control_and_format_characters(client, display_name):
    response = _register(client, display_name)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "display_name" in error["fields"]
    assert client.post("/api/auth/login", json={"username": "someone",
                                                "password": "password123"}).status_code == 401


@pytest.mark.parametrize("display_name", ACCEPTED)
def test_the_api_accepts_names_in_any_script(client, display_name):
    response = _register(client, display_name)
    assert response.status_code == 201
    assert response.get_json()["user"]["display_name"] == display_name


def test_the_register_page_refuses_them_too(client):
    page = client.post("/register", data={"username": "someone", "password": "password123",
                                          "display_name": "evil\u202eecila"},
                       headers={"Origin": ORIGIN})
    assert page.status_code == 422
    assert b"display_name" in page.data or b"display name" in page.data.lower()
    assert _register(client, "fine").status_code == 201  # nothing was created by the page


@given(st.text(alphabet=st.characters(categories=["Cc", "Cf"]), min_size=1, max_size=3),
       st.text(max_size=20), st.text(max_size=20))
@settings(max_examples=200)
def test_any_control_or_format_character_anywhere_is_refused(bad, before, after):
    name = before + bad + after
    with pytest.raises(ValidationFailed) as refused:
        validate(schemas.RegisterIn, {"username": "someone", "password": "password123",
                                      "display_name": name})
    assert "display_name" in refused.value.fields


@pytest.mark.parametrize("username", ["alice\n", "ali ce", "alicé", "ａlice", "al\u200bice",
                                      "alice\u202e", "١٢٣abc"])
def test_usernames_are_ascii_letters_digits_and_underscore_only(client, username):
    response = client.post("/api/auth/register", json={"username": username,
                                                       "password": "password123"})
    assert response.status_code == 422
    assert "username" in response.get_json()["error"]["fields"]
