"""Parse request bodies and query strings with the schemas; failures become 400 or 422."""
import orjson
from flask import request
from pydantic import ValidationError

from app.errors import BadJson, TooLarge, ValidationFailed

# Short words for the per-field map; the message uses the schema's "rule" where it has one.
_FIELD_PROBLEMS = {
    "missing": "required",
    "string_too_long": "too long",
    "string_too_short": "too short",
    "string_type": "must be a string",
    "string_pattern_mismatch": "invalid format",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "greater_than_equal": "too small",
    "less_than_equal": "too large",
    "literal_error": "not an allowed value",
    "value_error": "invalid value",
}


def _field_name(loc):
    return ".".join(str(part) for part in loc) or "body"


def validate(model, data):
    """Return *data* validated as *model*; raise :class:`ValidationFailed` naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
    fields = {}
    for error in errors:
        problem = _FIELD_PROBLEMS.get(error["type"], error["msg"])
        if error["type"] == "value_error":
            problem = error["msg"].removeprefix("Value error, ")
        fields.setdefault(_field_name(error["loc"]), problem)
    first = errors[0]
    name = _field_name(first["loc"])
    field = model.model_fields.get(str(first["loc"][0])) if first["loc"] else None
    extra = (field.json_schema_extra or {}) if field is not None else {}
    if first["type"] == "missing":
        message = f"{name} is required"
    elif first["type"] == "value_error":  # a validator's own sentence: "must not be blank"
        message = f"{name} {fields[name]}"
    elif "rule" in extra:
        message = f"{name} {extra['rule']}"
    else:
        message = f"{name}: {fields[name]}"
    raise ValidationFailed(message, fields=fields)


def json_body(model):
    """Return the request's JSON object validated as *model*.

    :raises BadJson: when the body is empty, not UTF-8, not JSON, or not an object.
    :raises ValidationFailed: when a field is missing, of the wrong type or out of range.
    :raises TooLarge: when a body without ``Content-Length`` (chunked) reaches the limit:
        Werkzeug stops reading there without an error, so the rest would be silently dropped.
    """
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise TooLarge("request body over 64 KiB")
    if not raw.strip():
        raise BadJson("the request body must be a JSON object")
    try:
        data = orjson.loads(raw)  # rejects invalid UTF-8 and nesting over 1024 levels
    except orjson.JSONDecodeError as exc:
        raise BadJson(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadJson("the request body must be a JSON object")
    return validate(model, data)


def query_args(model):
    """Return the query string validated as *model* (first value of each key)."""
    return validate(model, request.args.to_dict())
