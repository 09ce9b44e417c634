"""The server's VAPID key pair (RFC 8292): from the environment, or made once in development."""
import base64
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from app.config import ConfigError, development_file

log = logging.getLogger(__name__)
DEVELOPMENT_SUBJECT = "mailto:webpush@localhost"


@dataclass(frozen=True)
class VapidKeys:
    """What signs the pushes: the private key, its public key as browsers take it
    (``applicationServerKey``: the uncompressed P-256 point, base64url), and the contact."""

    vapid: Vapid02
    public_key: str
    subject: str


def b64url(raw):
    """Return *raw* bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _new_private_key():
    vapid = Vapid02()
    vapid.generate_keys()
    return b64url(vapid.private_key.private_numbers().private_value.to_bytes(32, "big"))


def init_app(app):
    """Store the app's :class:`VapidKeys` in ``app.extensions["vapid"]`` (None: push is off).

    Reads ``VAPID_PRIVATE_KEY`` (base64url: the raw 32-byte key, as ``web-push
    generate-vapid-keys`` prints it, or DER), ``VAPID_PUBLIC_KEY`` (optional; checked against
    the private key) and ``VAPID_SUBJECT`` (``mailto:`` or ``https:``, required with a key).
    In development, a key pair is made once in ``instance/dev-vapid-private-key`` (0600).

    :raises ConfigError: for a key that does not parse or match, or a missing subject.
    """
    config = app.config
    private = config.get("VAPID_PRIVATE_KEY")
    subject = config.get("VAPID_SUBJECT")
    if private is None and config["APP_ENV"] == "development":
        private = development_file(app.instance_path, "dev-vapid-private-key", _new_private_key)
        subject = subject or DEVELOPMENT_SUBJECT
    if private is None:
        log.info("Web Push is off: VAPID_PRIVATE_KEY is not set")
        app.extensions["vapid"] = None
        return
    try:
        vapid = Vapid02.from_string(private)
    except Exception as exc:  # py_vapid raises whatever its decoders do
        raise ConfigError(f"VAPID_PRIVATE_KEY is not a P-256 private key: {exc}") from None
    public = b64url(vapid.public_key.public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint))
    given = config.get("VAPID_PUBLIC_KEY")
    if given is not None and given.rstrip("=") != public:
        raise ConfigError("VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY")
    if not subject or not subject.startswith(("mailto:", "https:")):
        raise ConfigError("VAPID_SUBJECT must be set to a mailto: or https: URL that push "
                          "services can contact about this server's pushes")
    app.extensions["vapid"] = VapidKeys(vapid, public, subject)
