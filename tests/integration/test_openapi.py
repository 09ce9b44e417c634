"""``GET /api/openapi.json``: an OpenAPI 3 document of every /api route, true to the validation."""
import re

import pytest

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _openapi_path(rule):
    """``/api/posts/<post_id>`` (or ``<string:post_id>``) → ``/api/posts/{post_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule).rstrip("/") or "/"


def _resolve(document, schema):
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _request_schema(document, path, method):
    operation = document["paths"][path][method]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    return _resolve(document, body)


def _query_param(document, path, name):
    params = document["paths"][path]["get"]["parameters"]
    return next(p for p in params if p["name"] == name and p["in"] == "query")


def test_is_openapi_3(document):
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert isinstance(document["paths"], dict) and document["paths"]


def test_every_api_route_is_listed(app, document):
    registered = set()
    for rule in app.url_map.iter_rules():
        if rule.rule == "/api" or rule.rule.startswith("/api/"):
            for method in rule.methods - IGNORED_METHODS:
                registered.add((_openapi_path(rule.rule), method.lower()))
    documented = {(path, method) for path, operations in document["paths"].items()
                  for method in operations}
    assert len(registered) >= 24
    assert registered - documented == set(), "routes missing from the document"
    assert documented - registered == set(), "documented routes that do not exist"


def test_path_parameters_are_declared(document):
    for path, operations in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method)
            assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")


def test_every_reference_resolves(document):
    schemas = document["components"]["schemas"]
    text = repr(document)
    for name in re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text):
        assert name in schemas, name


def test_authentication_is_declared(document):
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    open_routes = {("/api/auth/register", "post"), ("/api/auth/login", "post"),
                   ("/api/openapi.json", "get")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (path, method) in open_routes:
                assert not operation.get("security"), (path, method)
            else:
                assert operation.get("security") == [{"bearer": []}], (path, method)


def test_success_statuses_match_the_contract(document):
    expected = {("/api/auth/register", "post"): "201", ("/api/posts", "post"): "201",
                ("/api/posts/{post_id}/comments", "post"): "201",
                ("/api/posts/{post_id}", "delete"): "204",
                ("/api/comments/{comment_id}", "delete"): "204",
                ("/api/posts/{post_id}/typing", "post"): "202",
                ("/api/feed", "get"): "200", ("/api/auth/login", "post"): "200"}
    for (path, method), status in expected.items():
        responses = document["paths"][path][method]["responses"]
        assert status in responses, (path, method)
        assert not any(s.startswith("2") and s != status for s in responses), (path, method)


def test_request_schemas_match_the_contract(document):
    post_in = _request_schema(document, "/api/posts", "post")
    assert "content" in post_in["required"]
    assert post_in["properties"]["content"]["type"] == "string"
    assert post_in["properties"]["content"]["minLength"] == 1
    assert post_in["properties"]["content"]["maxLength"] == 5000
    assert _request_schema(document, "/api/posts/{post_id}", "patch") == post_in

    comment_in = _request_schema(document, "/api/posts/{post_id}/comments", "post")
    assert comment_in["properties"]["content"]["minLength"] == 1
    assert comment_in["properties"]["content"]["maxLength"] == 2000

    register = _request_schema(document, "/api/auth/register", "post")
    assert set(register["required"]) == {"username", "password"}
    assert register["properties"]["username"]["pattern"] in (r"^[A-Za-z0-9_]{3,30}$",
                                                             r"[A-Za-z0-9_]{3,30}")
    assert register["properties"]["password"]["minLength"] == 8
    assert register["properties"]["password"]["maxLength"] == 128
    assert "display_name" in register["properties"]

    login = _request_schema(document, "/api/auth/login", "post")
    assert set(login["required"]) == {"username", "password"}

    reaction = _request_schema(document, "/api/posts/{post_id}/reaction", "put")
    kinds = reaction["properties"]["type"]
    assert set(kinds["enum"]) == {"like", "love", "haha", "wow", "sad", "angry"}

    for path in ("/api/feed", "/api/users/{username}/posts"):
        limit = _query_param(document, path, "limit")["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)
        assert not _query_param(document, path, "before")["required"]
    limit = _query_param(document, "/api/posts/{post_id}/comments", "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 100)


def test_documented_bounds_are_the_enforced_bounds(document, api):
    """The numbers in the document are the ones the API enforces, at both edges."""
    alice = api.user("alice")
    content = _request_schema(document, "/api/posts", "post")["properties"]["content"]
    assert alice.call("POST", "/api/posts",
                      json={"content": "a" * content["maxLength"]}).status_code == 201
    assert alice.call("POST", "/api/posts",
                      json={"content": "a" * (content["maxLength"] + 1)}).status_code == 422
    post_id = alice.post("p")["id"]
    comment_in = _request_schema(document, "/api/posts/{post_id}/comments", "post")
    content = comment_in["properties"]["content"]
    path = f"/api/posts/{post_id}/comments"
    assert alice.call("POST", path, json={"content": "a" * content["maxLength"]}).status_code == 201
    assert alice.call("POST", path,
                      json={"content": "a" * (content["maxLength"] + 1)}).status_code == 422
    limit = _query_param(document, "/api/feed", "limit")["schema"]
    assert alice.call("GET", f"/api/feed?limit={limit['maximum']}").status_code == 200
    assert alice.call("GET", f"/api/feed?limit={limit['maximum'] + 1}").status_code == 422
    assert alice.call("GET", f"/api/feed?limit={limit['minimum'] - 1}").status_code == 422


def test_response_schemas_describe_the_answers(document, api):
    """Every key of a real Post and User answer is in its documented schema."""
    alice = api.user("alice")
    post = alice.post("documented")
    post_schema = _resolve(document, document["paths"]["/api/posts"]["post"]["responses"]["201"]
                           ["content"]["application/json"]["schema"])
    assert set(post) == set(post_schema["properties"])
    assert set(post_schema["required"]) <= set(post)
    user_schema = _resolve(document, document["paths"]["/api/me"]["get"]["responses"]["200"]
                           ["content"]["application/json"]["schema"])
    me = alice.call("GET", "/api/me").get_json()
    assert set(me) <= set(user_schema["properties"])
    assert set(user_schema["required"]) <= set(me)
    error_schema = _resolve(document, document["paths"]["/api/posts"]["post"]["responses"]["422"]
                            ["content"]["application/json"]["schema"])
    assert error_schema["required"] == ["error"]
