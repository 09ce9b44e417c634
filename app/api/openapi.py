"""The OpenAPI 3.1 document, generated from the routes and the schemas that validate them.

A view declares what it takes and returns with :func:`documented`; the document is built from
the app's URL map, so a route cannot exist without appearing in it.
"""
from flask import current_app

from app.api import idempotency
from app.inputs import schemas

_ERROR_STATUSES = {"400": "bad JSON", "401": "not authenticated", "403": "not allowed",
                   "404": "not found", "413": "body over 64 KiB", "422": "validation error",
                   "429": "rate limited"}


def documented(summary, *, body=None, query=None, response=None, status=200, auth=True):
    """Attach the OpenAPI description of a view: its body and query schemas and its answer."""
    def decorate(view):
        view.openapi = {"summary": summary, "body": body, "query": query, "response": response,
                        "status": status, "auth": auth}
        return view
    return decorate


def _schema_ref(model, components):
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "Makes the write safe to retry: the first answer is kept for 24 hours (per "
                   "user) and returned to a retry with the same key, marked "
                   "`Idempotent-Replayed: true`, without doing the write again. The same key "
                   "with another method, path or body is a 422; a retry while the first is "
                   "still running waits for its answer, or gets a 409 after a few seconds."}


def _operation(doc, rule, method, components):
    operation = {"summary": doc["summary"], "responses": {}}
    params = [{"name": arg, "in": "path", "required": True, "schema": {"type": "string"}}
              for arg in rule.arguments]
    if method in idempotency.WRITE_METHODS and rule.endpoint.startswith("api."):
        params.append(_IDEMPOTENCY_KEY)
    if doc["query"] is not None:
        for name, field in doc["query"].model_fields.items():
            schema = doc["query"].model_json_schema()["properties"][name]
            params.append({"name": name, "in": "query", "required": field.is_required(),
                           "schema": schema})
    if params:
        operation["parameters"] = params
    if doc["body"] is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _schema_ref(doc["body"], components)}}}
    success = {"description": "success"}
    if doc["response"] is not None:
        success["content"] = {"application/json": {"schema": _schema_ref(doc["response"], components)}}
    operation["responses"][str(doc["status"])] = success
    error = {"content": {"application/json": {"schema": _schema_ref(schemas.ErrorOut, components)}}}
    for status, description in _ERROR_STATUSES.items():
        operation["responses"][status] = {"description": description, **error}
    if any(p["in"] == "header" for p in params):
        operation["responses"]["409"] = {"description": "a request with this Idempotency-Key "
                                                        "is still in progress", **error}
    if doc["auth"]:
        operation["security"] = [{"bearer": []}]
    return operation


def build_document():
    """Return the OpenAPI document of every documented JSON route of the current app."""
    components, paths = {}, {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        view = current_app.view_functions.get(rule.endpoint)
        doc = getattr(view, "openapi", None)
        if doc is None:
            continue
        path = rule.rule.replace("<", "{").replace(">", "}").rstrip("/") or "/"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(doc, rule, method, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Realtime social feed", "version": "1.0.0",
                 "description": "The JSON API of ../shared/CONTRACT.md."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
