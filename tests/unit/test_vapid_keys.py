"""VAPID keys: made once (0600) in development, read and checked from the environment."""
import base64
import os
from types import SimpleNamespace

import pytest

from app.config import ConfigError
from app.push import keys


def _load(tmp_path, **config):
    app = SimpleNamespace(config={"APP_ENV": "production", **config},
                          instance_path=str(tmp_path), extensions={})
    keys.init_app(app)
    return app.extensions["vapid"]


def test_development_makes_one_private_key_readable_by_its_owner_only(tmp_path):
    first = _load(tmp_path, APP_ENV="development")
    path = tmp_path / "dev-vapid-private-key"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert _load(tmp_path, APP_ENV="development").public_key == first.public_key
    point = base64.urlsafe_b64decode(first.public_key + "=")
    assert len(point) == 65 and point[0] == 4 and first.subject.startswith("mailto:")


def test_production_reads_the_environment_and_checks_it(tmp_path):
    assert _load(tmp_path) is None  # no key: push is off
    private = tmp_path / "dev-vapid-private-key"
    made = _load(tmp_path, APP_ENV="development")
    key = private.read_text()
    found = _load(tmp_path, VAPID_PRIVATE_KEY=key, VAPID_PUBLIC_KEY=made.public_key,
                  VAPID_SUBJECT="https://example.com/contact")
    assert found.public_key == made.public_key
    other = _load(tmp_path / "elsewhere", APP_ENV="development").public_key
    for bad in ({"VAPID_PUBLIC_KEY": other}, {"VAPID_SUBJECT": None},
                {"VAPID_SUBJECT": "ops@example.com"}, {"VAPID_PRIVATE_KEY": "not-a-key"}):
        config = {"VAPID_PRIVATE_KEY": key, "VAPID_SUBJECT": "mailto:ops@example.com", **bad}
        with pytest.raises(ConfigError):
            _load(tmp_path, **config)
