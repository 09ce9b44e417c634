"""Notifications (list, mark read) and Web Push subscriptions."""
import base64
import binascii
import ipaddress
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from flask_jwt_extended import current_user, jwt_required
from sqlalchemy import delete

from app.api import bp
from app.api.openapi import documented
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.inputs import schemas
from app.inputs.pagination import decode_cursor, encode_cursor
from app.inputs.validation import json_body, query_args
from app.models import PushSubscription
from app.models.base import new_id
from app.ratelimit import limit_writes
from app.services import notifications
from app.services.lookup import canonical_uuid
from app.services.upsert import insert


@bp.get("/notifications")
@jwt_required()
@documented("The viewer's notifications, newest first, and how many are unread",
            query=schemas.PageQuery, response=schemas.NotificationPage)
def list_notifications():
    """Return a page of the viewer's notifications."""
    page = query_args(schemas.PageQuery)
    rows, cursor = notifications.notifications_page(current_user.id, page.limit,
                                                    decode_cursor(page.before, "before"))
    return {"notifications": [notifications.notification_json(row) for row in rows],
            "next_before": encode_cursor(cursor),
            "unread": notifications.unread_count(current_user.id)}


@bp.post("/notifications/read")
@limit_writes
@jwt_required()
@documented("Mark some (ids) or all of the viewer's notifications read",
            body=schemas.NotificationsReadIn, response=schemas.UnreadOut)
def read_notifications():
    """Mark notifications read; return how many are still unread."""
    body = json_body(schemas.NotificationsReadIn)
    if (body.ids is None) == (body.all is not True):
        raise ValidationFailed('give either "ids": [...] or "all": true',
                               fields={"ids": "required unless all is true"})
    ids = None
    if body.ids is not None:
        ids = [canonical_uuid(value) for value in body.ids]
        if None in ids:
            raise ValidationFailed("ids must be notification ids", fields={"ids": "invalid value"})
    return {"unread": notifications.mark_read(current_user.id, ids)}


@bp.get("/push/public-key")
@jwt_required()
@documented("The VAPID application server key for PushManager.subscribe",
            response=schemas.PublicKeyOut)
def push_public_key():
    """Return the server's VAPID public key; 404 when Web Push is not configured."""
    return {"public_key": _vapid().public_key}


@bp.post("/push/subscriptions")
@limit_writes
@jwt_required()
@documented("Send the viewer's notifications to this browser while no page is open "
            "(idempotent per endpoint)", body=schemas.PushSubscriptionIn, status=201)
def subscribe_push():
    """Store a browser's push subscription for the viewer (replacing one of its endpoint)."""
    _vapid()
    body = json_body(schemas.PushSubscriptionIn)
    _check_endpoint(body.endpoint)
    _check_keys(body.keys)
    upsert = insert(PushSubscription).values(id=new_id(), user_id=current_user.id,
                                             endpoint=body.endpoint, p256dh=body.keys.p256dh,
                                             auth=body.keys.auth)
    # One row per endpoint: a browser signed in as someone else now gets their pushes.
    db.session.execute(upsert.on_conflict_do_update(
        index_elements=[PushSubscription.endpoint],
        set_={"user_id": upsert.excluded.user_id, "p256dh": upsert.excluded.p256dh,
              "auth": upsert.excluded.auth}))
    db.session.commit()
    return {"endpoint": body.endpoint}, 201


@bp.delete("/push/subscriptions")
@limit_writes
@jwt_required()
@documented("Stop pushing to this browser (idempotent)", body=schemas.PushEndpointIn,
            status=204)
def unsubscribe_push():
    """Forget the viewer's subscription of an endpoint."""
    body = json_body(schemas.PushEndpointIn)
    db.session.execute(delete(PushSubscription).where(
        PushSubscription.endpoint == body.endpoint, PushSubscription.user_id == current_user.id))
    db.session.commit()
    return "", 204


def _vapid():
    """Return the VAPID keys; a server without them has no Web Push: 404 (not a fault, as
    a 5xx would say, but a feature this server does not offer)."""
    keys = current_app.extensions.get("vapid")
    if keys is None:
        raise NotFound("Web Push is not configured on this server (no VAPID key)")
    return keys


def _check_endpoint(endpoint):
    """Refuse endpoints a push service would not have: the server will POST to this URL, so
    it must not be made to reach hosts inside its own network."""
    try:
        url = urlsplit(endpoint)
        host = url.hostname or ""
    except ValueError:
        url, host = None, ""
    if current_app.config["PUSH_ALLOW_LOCAL_ENDPOINTS"]:
        if url is not None and url.scheme in ("http", "https") and host:
            return
    elif url is not None and url.scheme == "https" and host and not _local(host):
        return
    raise ValidationFailed("endpoint must be an https URL of a push service",
                           fields={"endpoint": "invalid value"})


def _local(host):
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def _b64url(value):
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _check_keys(keys):
    """Refuse keys the pushes could not be encrypted with (RFC 8291: a P-256 point and a
    16-byte secret)."""
    fields = {}
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(keys.p256dh))
    except (ValueError, binascii.Error):
        fields["keys.p256dh"] = "must be a P-256 public key (base64url)"
    try:
        if len(_b64url(keys.auth)) != 16:
            fields["keys.auth"] = "must be 16 bytes (base64url)"
    except (ValueError, binascii.Error):
        fields["keys.auth"] = "must be 16 bytes (base64url)"
    if fields:
        raise ValidationFailed("keys are not a browser's push subscription keys", fields=fields)
