"""``GET /healthz`` (is the database reachable, is the broker connected) and ``GET /metrics``."""
import logging

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.broker import BrokerUnavailable
from app.broker.extension import current_broker
from app.extensions import db
from app.metrics import exposition

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database and the broker work, 503 naming what failed.

    The body says only *what* is unavailable: the error's text (hosts, ports, driver messages)
    is for the operator, so it goes to the log.
    """
    body = {"status": "ok", "database": "ok", "broker": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is "down" here
        log.warning("health: database check failed: %s", exc)
        body["database"] = "unavailable"
    finally:
        db.session.remove()
    try:
        current_broker().ping()
    except BrokerUnavailable as exc:
        log.warning("health: broker check failed: %s", exc)
        body["broker"] = "unavailable"
    if body["database"] != "ok" or body["broker"] != "ok":
        body["status"] = "degraded"
        return jsonify(body), 503
    return jsonify(body)


@bp.get("/metrics")
def metrics():
    """Serve every metric in Prometheus's text format."""
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)
