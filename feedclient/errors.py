"""The error a server's answer raises."""
import json


class ApiError(Exception):
    """An error answer of the server, from the contract's JSON envelope.

    :ivar status: the HTTP status code. :ivar code: the envelope's ``code`` (e.g.
        ``token_expired``, ``not_found``). :ivar fields: per-field details, or ``{}``.
    :ivar retry_after: seconds from a ``Retry-After`` header, or None.
    """

    def __init__(self, status, code, message, fields=None, retry_after=None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.retry_after = retry_after

    @classmethod
    def from_answer(cls, status, body, headers):
        """Build the error of an answer: its status, body (bytes) and headers (a mapping)."""
        try:
            error = json.loads(body)["error"]
            code, message, fields = error["code"], error["message"], error.get("fields")
        except (ValueError, KeyError, TypeError):
            text = (body or b"")[:200].decode("utf-8", "replace")
            code, message, fields = "http_error", text, None
        retry_after = None
        for name, value in (headers or {}).items():
            if name.lower() == "retry-after":
                try:
                    retry_after = float(value)
                except ValueError:
                    pass  # an HTTP date: the backoff decides alone
        return cls(status, code, message, fields, retry_after)

    @classmethod
    def from_response(cls, response):
        """Build the error of a failed :class:`requests.Response`."""
        return cls.from_answer(response.status_code, response.content, response.headers)
