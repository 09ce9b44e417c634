"""The JSON API under ``/api``: users, follows, the feed, posts, reactions, comments,
notifications and Web Push subscriptions."""
from flask import Blueprint

from app.api import idempotency

bp = Blueprint("api", __name__, url_prefix="/api")
# Every write route honours Idempotency-Key, here in one place rather than per route.
bp.record_once(lambda state: idempotency.init_app(state.app))
bp.before_request(idempotency.claim_key)
bp.after_request(idempotency.keep_answer)

from app.api import comments, docs, notifications, posts, users  # noqa: E402,F401  (routes)
