"""The contract's error envelope, checked the same way by every test."""


def error_of(response, status, code=None):
    """Assert *response* (Flask test client) is ``{"error": {"code", "message", "fields"?}}``
    with *status* and, when given, *code*; return the ``error`` object."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json", text
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) <= {"code", "message", "fields"}
    if code is not None:
        assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in text and "<html" not in text.lower()
    return body["error"]
