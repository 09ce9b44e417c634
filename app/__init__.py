"""The real-time social feed server: ``create_app()`` builds the Flask application."""
from pathlib import Path

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import load_config
from app.errors import ApiError, register_error_handlers

ROOT = Path(__file__).resolve().parent.parent


def create_app(config=None):
    """Build the app from the environment, then apply *config* (a mapping, for tests)."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"), instance_path=str(ROOT / "instance"))
    app.config.from_mapping(load_config(app.instance_path))
    app.config.from_mapping(config or {})
    app.url_map.strict_slashes = False  # /ws/feed/ works as well as /ws/feed

    from app import database, ratelimit, redis_client, security, stream_quota
    from app.auth import signout, tokens
    from app.broker import extension as broker
    from app.push import keys as push_keys
    from app.services import conflation, outbox
    from app.transports import sse, websocket

    database.init_app(app)
    tokens.init_app(app)
    redis_client.init_app(app)
    broker.init_app(app)
    signout.init_app(app)
    stream_quota.init_app(app)
    conflation.init_app(app)
    outbox.init_app(app)
    ratelimit.init_app(app)
    websocket.init_app(app)
    sse.init_app(app)
    security.init_app(app)
    push_keys.init_app(app)
    register_blueprints(app)
    register_error_handlers(app)
    app.before_request(_refuse_large_bodies)
    if app.config["PROXY_COUNT"]:
        # Behind nginx: trust X-Forwarded-For/-Proto/-Host from that many proxies, no more.
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    return app


def register_blueprints(app):
    """Attach every area of the app."""
    from app.api import bp as api
    from app.api.auth import bp as auth
    from app.ops.routes import bp as ops
    from app.pages import bp as pages
    from app.transports.longpoll import bp as poll
    from app.transports.sse import bp as sse
    from app.transports.websocket import bp as ws

    for blueprint in (auth, api, sse, poll, ws, ops, pages):
        app.register_blueprint(blueprint)


def _refuse_large_bodies():
    """Answer 413 before routing work when the declared body is over the limit."""
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise ApiError("request body over 64 KiB", code="too_large", status=413)
