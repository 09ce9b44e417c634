"""Rate limits with Flask-Limiter: writes, refreshes, tickets, follows and long-polls per user;
sign-in and stream opens per address.

Counters live in Redis when ``REDIS_URL`` is set (every worker and machine counts together),
in memory otherwise. ``RATELIMIT_ENABLED=false`` turns them off for load tests.
"""
import time

from flask import current_app, g, request
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse

from app.errors import RateLimited, error_response


def _user_or_address():
    """Key limits by the signed-in user, or by the client's address when anonymous."""
    try:
        verify_jwt_in_request(optional=True)
        identity = get_jwt_identity()
    except Exception:  # noqa: BLE001 - a bad token is the view's business, not the limiter's
        identity = None
    return f"user:{identity}" if identity else f"ip:{request.remote_addr}"


def _refreshing_user_or_address():
    """Key limits by the refresh token's user, or by the client's address."""
    try:
        verify_jwt_in_request(optional=True, refresh=True)
        identity = get_jwt_identity()
    except Exception:  # noqa: BLE001 - a bad token is the view's business, not the limiter's
        identity = None
    return f"user:{identity}" if identity else f"ip:{request.remote_addr}"


def _streaming_user_or_address():
    """Key limits by the user of a stream's access token (header, cookie or ``?token=``).

    Only the signature is checked, which needs neither Redis nor the database; the view checks
    the rest. A ``?ticket=`` is single-use and not spent here: those requests count by address.
    """
    from app.auth.stream_auth import user_of_request

    identity = user_of_request()
    return f"user:{identity}" if identity else f"ip:{request.remote_addr}"


limiter = Limiter(key_func=_user_or_address)


@limiter.request_filter
def _preflight():
    """A CORS preflight (OPTIONS) is the browser asking, not a request: it spends no budget."""
    return request.method == "OPTIONS"

#: Posting, editing, commenting, reacting and liking share one budget per user.
limit_writes = limiter.shared_limit(lambda: current_app.config["RATELIMIT_WRITES"], scope="writes")
#: ``POST /api/posts/<id>/typing`` per user.
limit_typing = limiter.limit(lambda: current_app.config["RATELIMIT_TYPING"])
#: Registration and sign-in, by the API and by the pages' forms, share ONE budget per client
#: address against password guessing: four routes must not give four times the guesses.
#: Only POSTs count (showing a form is free).
limit_auth = limiter.shared_limit(lambda: current_app.config["RATELIMIT_AUTH"], scope="sign-in",
                                  key_func=get_remote_address, methods=["POST"])
#: Opening an SSE stream or a WebSocket, per client address, shared by both transports and by
#: every worker: a script opening sockets in a loop is refused (429, before any upgrade) instead
#: of costing a subscription each. Generous by default, as many people can share one address;
#: long-poll is left out, being a chain of requests by design. Apply it to a blueprint.
limit_stream_opens = limiter.shared_limit(lambda: current_app.config["RATELIMIT_STREAM_OPENS"],
                                          scope="stream-open", key_func=get_remote_address)


#: ``POST /api/auth/refresh`` per user (a page refreshes every few minutes; a loop does not).
limit_refresh = limiter.limit(lambda: current_app.config["RATELIMIT_REFRESH"],
                              key_func=_refreshing_user_or_address)
#: ``POST /api/auth/stream-ticket`` per user: about one per stream (re)opened.
limit_tickets = limiter.limit(lambda: current_app.config["RATELIMIT_TICKETS"])
#: Following and unfollowing per user: each follow notifies, so toggling is a way to spam.
limit_follows = limiter.shared_limit(lambda: current_app.config["RATELIMIT_FOLLOWS"],
                                     scope="follows")
#: Long-poll requests per user, feed and post together. Generous: a client polls again as soon
#: as an answer comes, which on a busy channel is several times a second, and reconnects after
#: errors. Apply it to the blueprint.
limit_longpoll = limiter.shared_limit(lambda: current_app.config["RATELIMIT_LONGPOLL"],
                                      scope="longpoll", key_func=_streaming_user_or_address)


def init_app(app):
    """Attach the limiter; reads ``RATELIMIT_ENABLED``, ``REDIS_URL`` and ``REDIS_PREFIX``."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", f"{app.config.get('REDIS_PREFIX', 'rt')}:rl")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # A Redis outage must not turn every write into an error: limits then fall back to memory.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    # Flask's after-request functions run last-registered first: at the front, this one runs
    # after Flask-Limiter's, which sets Retry-After from its own window on every response.
    app.after_request_funcs.setdefault(None, []).insert(0, keep_own_retry_after)


def keep_own_retry_after(response):
    """Restore a ``Retry-After`` the view chose (``g.retry_after``) over Flask-Limiter's, which
    would tell a user backing off for 1 s to wait out the sign-in limit's whole minute."""
    if "retry_after" in g:
        response.headers["Retry-After"] = g.retry_after
    return response


def _rate_limited(exc):
    current = limiter.current_limit
    retry_after = current.reset_at - time.time() if current is not None else 1
    return error_response(RateLimited(f"too many requests: {exc.description}", retry_after))


def allow(rate, *key):
    """Return whether one more action of *key* fits in *rate* (e.g. ``"1/2second"``) now."""
    if not limiter.enabled:
        return True
    return limiter.limiter.hit(parse(rate), "throttle", *key)
