"""Credentials: tokens (header, cookie, query on streams), password hashing, the sign-in
back-off, revocation stores, sign-out and stream tickets. The ``/api/auth`` routes that use
them are in :mod:`app.api.auth`."""
