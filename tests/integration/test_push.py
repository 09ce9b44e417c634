"""Web Push to a push service on loopback: encrypted for the browser's keys (RFC 8291), signed
with VAPID (RFC 8292), dropped for a gone subscription, and not sent while a page is open."""
import base64
import os
import time

import gevent
import http_ece
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from gevent.pywsgi import WSGIServer
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.extensions import db
from app.models import PushSubscription
from tests.support.streams import open_stream
from tests.support.waits import wait_until

SUBJECT = "mailto:ops@example.com"


def _b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _private_key_b64():
    key = ec.generate_private_key(ec.SECP256R1())
    return _b64(key.private_numbers().private_value.to_bytes(32, "big"))


@pytest.fixture
def app_config():
    return {"VAPID_PRIVATE_KEY": _private_key_b64(), "VAPID_SUBJECT": SUBJECT,
            "PUSH_ALLOW_LOCAL_ENDPOINTS": True}


class PushService:
    """A push service on loopback: records each push; answers the status set for its path."""

    def __init__(self):
        self.received = []
        self.statuses = {}
        self.server = WSGIServer(("127.0.0.1", 0), self.handle, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, environ, start_response):
        body = environ["wsgi.input"].read()
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        headers["content-encoding"] = headers.get("content-encoding", "")
        self.received.append((environ["PATH_INFO"], headers, body))
        status = self.statuses.get(environ["PATH_INFO"], 201)
        start_response(f"{status} Status", [("Content-Length", "0")])
        return [b""]

    def wait(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} pushes: {self.received}"
            gevent.sleep(0.02)
        return self.received


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.server.stop()


class Browser:
    """What a browser makes for PushManager.subscribe: a P-256 key pair and an auth secret."""

    def __init__(self, endpoint):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.subscription = {"endpoint": endpoint, "expirationTime": None,
                             "keys": {"p256dh": _b64(public), "auth": _b64(self.auth)}}

    def decrypt(self, body):
        return orjson.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                             version="aes128gcm"))


def _pushes(outcome):
    return REGISTRY.get_sample_value("feed_web_pushes_total", {"outcome": outcome}) or 0


def _subscribe(user, browser):
    response = user.call("POST", "/api/push/subscriptions", json=browser.subscription)
    assert response.status_code == 201, response.get_json()


def _subscriptions(app):
    with app.app_context():
        return db.session.scalars(select(PushSubscription.endpoint)).all()


def test_a_push_is_encrypted_for_the_browser_and_signed_by_the_server(app, api, push_service):
    alice, bob = api.user("alice"), api.user("bob")
    browser = Browser(push_service.url + "/push/alice-laptop")
    _subscribe(alice, browser)
    _subscribe(alice, browser)  # idempotent per endpoint
    assert len(_subscriptions(app)) == 1
    public_key = alice.call("GET", "/api/push/public-key").get_json()["public_key"]

    bob.follow(alice)
    [(path, headers, body)] = push_service.wait(1)
    assert path == "/push/alice-laptop"
    assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) > 0
    message = browser.decrypt(body)
    [notification] = alice.call("GET", "/api/notifications").get_json()["notifications"]
    assert message["notification"] == notification and message["unread"] == 1
    assert message["url"] == "/u/bob" and "bob (@bob) started following you" == message["body"]

    scheme, _, params = headers["authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == public_key
    point = base64.urlsafe_b64decode(public_key + "=" * (-len(public_key) % 4))
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    claims = jwt.decode(fields["t"], verifier, algorithms=["ES256"], audience=push_service.url)
    assert claims["sub"] == SUBJECT and claims["exp"] > time.time()


def test_a_subscription_whose_service_says_gone_is_deleted(app, api, push_service):
    alice, bob = api.user("alice"), api.user("bob")
    for name, status in (("gone", 410), ("unknown", 404), ("busy", 503), ("fine", 201)):
        push_service.statuses[f"/push/{name}"] = status
        _subscribe(alice, Browser(f"{push_service.url}/push/{name}"))
    bob.follow(alice)
    push_service.wait(4)
    wait_until(lambda: len(_subscriptions(app)) == 2)
    assert sorted(_subscriptions(app)) == [f"{push_service.url}/push/busy",
                                           f"{push_service.url}/push/fine"]


def test_no_push_while_the_user_has_a_stream_open(app, client, api, push_service):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    browser = Browser(push_service.url + "/push/alice")
    _subscribe(alice, browser)
    stream = open_stream(client, "/stream/feed", headers=alice.headers)
    stream.until("connection_established")
    online = _pushes("online")
    bob.follow(alice)
    stream.until("notification")  # she heard it on her open page
    wait_until(lambda: _pushes("online") == online + 1)  # so no push was sent
    stream.close()
    wait_until(lambda: not app.extensions["stream_quota"].has_streams(alice.id))
    carol.follow(alice)
    [(_, _, body)] = push_service.wait(1)
    assert browser.decrypt(body)["notification"]["actor"]["username"] == "carol"


def test_subscriptions_are_checked_and_removed_per_endpoint(app, api, push_service):
    app.config["PUSH_ALLOW_LOCAL_ENDPOINTS"] = False
    alice, bob = api.user("alice"), api.user("bob")
    good = Browser("https://push.example.com/send/abc").subscription
    bad_endpoints = ["http://push.example.com/x", "https://127.0.0.1/x", "https://[::1]/x",
                     "https://10.1.2.3/x", "https://localhost:8000/x", "ftp://push.example.com",
                     "not a url", "https:///x"]
    for endpoint in bad_endpoints:
        response = alice.call("POST", "/api/push/subscriptions", json={**good, "endpoint": endpoint})
        assert response.status_code == 422, endpoint
        assert response.get_json()["error"]["fields"] == {"endpoint": "invalid value"}
    for keys in ({"p256dh": "AAAA", "auth": good["keys"]["auth"]},
                 {"p256dh": good["keys"]["p256dh"], "auth": _b64(b"short")},
                 {"p256dh": good["keys"]["p256dh"]}):
        response = alice.call("POST", "/api/push/subscriptions", json={**good, "keys": keys})
        assert response.status_code == 422, keys
    assert _subscriptions(app) == []
    assert alice.call("POST", "/api/push/subscriptions", json=good).status_code == 201
    # Someone else cannot remove it; its owner can, as often as she likes.
    assert bob.call("DELETE", "/api/push/subscriptions", json={"endpoint": good["endpoint"]}
                    ).status_code == 204
    assert _subscriptions(app) == [good["endpoint"]]
    for _ in range(2):
        assert alice.call("DELETE", "/api/push/subscriptions",
                          json={"endpoint": good["endpoint"]}).status_code == 204
    assert _subscriptions(app) == []
    assert alice.call("DELETE", "/api/push/subscriptions", json={}).status_code == 422
