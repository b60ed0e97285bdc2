"""Devices that signed in before: the way in while an account is under a guessing attack.

Each successful sign-in answers a device token, which the client keeps and sends
with its next sign-in. While failures for one account from many addresses
exceed `login_failures_per_account_total` (someone guessing with a botnet), only
sign-ins from such a device are let through to the password check, so the
attack cannot lock the owner out. A token is an HMAC over the account's email
and a random nonce: nothing is stored, and it opens nothing by itself (the
password is still checked, and the per-address limits still count).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "dv1"


class KnownDevices:
    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the access service's key-encryption secret.
        self._key = hmac.new(secret.encode(), b"stories known-device tokens v1", "sha256").digest()

    def issue(self, email: str) -> str:
        nonce = secrets.token_urlsafe(12)
        return f"{PREFIX}.{nonce}.{self._sign(email, nonce)}"

    def recognises(self, token: str | None, email: str) -> bool:
        """Whether `token` was issued by this service at a sign-in to `email`."""
        if not token:
            return False
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            return False
        return hmac.compare_digest(parts[2], self._sign(email, parts[1]))

    def _sign(self, email: str, nonce: str) -> str:
        digest = hmac.new(self._key, f"{email}\0{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode()
