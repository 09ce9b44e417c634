"""One JSON error envelope for every route: ``{"error": {"code", "message", "fields"?}}``."""
import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client caused or must handle, rendered as the contract's envelope."""

    status = 400
    code = "bad_request"

    def __init__(self, message, *, code=None, status=None, fields=None, headers=None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.fields = fields
        self.headers = headers or {}

    def to_dict(self):
        """Return the JSON body of this error."""
        body = {"code": self.code, "message": self.message}
        if self.fields is not None:
            body["fields"] = self.fields
        return {"error": body}


class BadJson(ApiError):
    status, code = 400, "bad_json"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class Unauthorized(ApiError):
    status, code = 401, "token_invalid"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, message, retry_after):
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})


class Unavailable(ApiError):
    status, code = 503, "unavailable"


# Werkzeug's exceptions mapped to the contract's codes; anything else keeps its status.
_HTTP_CODES = {
    400: "bad_request",
    401: "token_missing",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
}
_HTTP_MESSAGES = {
    404: "no such resource",
    405: "method not allowed on this route",
    413: "request body over 64 KiB",
}


def error_response(error):
    """Return the Flask response for an :class:`ApiError`."""
    response = jsonify(error.to_dict())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _http_error(exc):
    """Render a Werkzeug HTTP exception (unknown route, wrong method, 413…) as JSON."""
    status = exc.code or 500
    if status >= 500:
        return _unexpected(exc)
    message = _HTTP_MESSAGES.get(status) or (exc.description or exc.name)
    error = ApiError(message, code=_HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")),
                     status=status)
    response = error_response(error)
    if status == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def _unexpected(exc):
    """Log an unexpected exception with its traceback and answer a bare 500."""
    original = getattr(exc, "original_exception", None) or exc
    log.error("unhandled exception", exc_info=original)
    return error_response(ApiError("internal server error", code="internal_error", status=500))


def register_error_handlers(app):
    """Render every error of every route as the JSON envelope."""
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, _http_error)
    # Must be registered last: it catches whatever the handlers above did not.
    app.register_error_handler(Exception, _unexpected)
