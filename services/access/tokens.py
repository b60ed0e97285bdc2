"""Signing keys, access tokens (RS256 JWTs) and refresh-token secrets.

RS256 because every request on every service verifies a token while only
logins sign one, and RSA verifies about twice as fast as Ed25519 here.

Keys live in the database, private halves encrypted with the key-encryption
key from settings (Secrets Manager in AWS), so every instance signs with the
same key and `stories access rotate-key` rotates them all without a restart:
the new key is published in the JWKS at once, signs only after
`key_activation_delay_seconds` (by then every verifier has fetched it), and
the old key keeps verifying until every token it signed has expired.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.access.models import SigningKey
from shared.contracts.clock import now_utc
from shared.contracts.roles import Role

ALGORITHM = "RS256"


def _fernet(key_encryption_key: str) -> Fernet:
    # Any secret string works: it is stretched to the 32 bytes Fernet wants.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key_encryption_key.encode()).digest()))


def new_signing_key(key_encryption_key: str, *, activates_at: datetime) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = f"{activates_at:%Y%m%d}-{secrets.token_hex(6)}"
    public_jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(
        private.public_key(), as_dict=True
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_jwk={**public_jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"},
        private_key_encrypted=_fernet(key_encryption_key).encrypt(pem).decode(),
        created_at=now_utc(),
        activates_at=activates_at,
        retires_at=None,
    )


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    activates_at: datetime
    retires_at: datetime | None
    public: jwt.PyJWK
    public_jwk: dict[str, Any]
    private: Any


class SigningKeyStore:
    """The keys in process, re-read from the database every few seconds."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        key_encryption_key: str,
        refresh_seconds: float = 10.0,
    ) -> None:
        # Keys are re-read in the middle of requests that hold a transaction (a
        # sign-in issues its tokens inside one). On the embedded run's SQLite every
        # transaction holds the database's write lock, so a second transaction here
        # would wait on its own request: the read runs outside any transaction.
        self._factory = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._kek = key_encryption_key
        self._refresh_seconds = refresh_seconds
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fresh(self) -> dict[str, LoadedKey]:
        if time.monotonic() - self._loaded_at >= self._refresh_seconds:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= self._refresh_seconds:
                    await self._load()
        return self._keys

    async def _load(self) -> None:
        now = now_utc()
        async with self._factory() as session:
            rows = (
                await session.scalars(
                    select(SigningKey).where(
                        or_(SigningKey.retires_at.is_(None), SigningKey.retires_at > now)
                    )
                )
            ).all()
            if not any(r.activates_at <= now for r in rows):
                # First start: nothing signs yet, so a key may sign at once.
                row = new_signing_key(self._kek, activates_at=now)
                session.add(row)
                await session.commit()
                rows = [*rows, row]
        fernet = _fernet(self._kek)
        loaded = {}
        for row in rows:
            known = self._keys.get(row.kid)
            private = (
                known.private
                if known is not None
                else serialization.load_pem_private_key(
                    fernet.decrypt(row.private_key_encrypted.encode()), password=None
                )
            )
            loaded[row.kid] = LoadedKey(
                kid=row.kid,
                activates_at=row.activates_at,
                retires_at=row.retires_at,
                public=jwt.PyJWK(row.public_jwk),
                public_jwk=row.public_jwk,
                private=private,
            )
        self._keys = loaded
        self._loaded_at = time.monotonic()

    async def signing_key(self) -> LoadedKey:
        now = now_utc()
        active = [k for k in (await self._fresh()).values() if k.activates_at <= now]
        return max(active, key=lambda k: k.activates_at)

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The KeySource the access service's own verifier uses: no HTTP to itself."""
        found = (await self._fresh()).get(kid)
        if found is None or (found.retires_at and found.retires_at <= now_utc()):
            return None
        return found.public

    async def jwks(self) -> dict[str, Any]:
        now = now_utc()
        keys = sorted((await self._fresh()).values(), key=lambda k: k.activates_at, reverse=True)
        return {"keys": [k.public_jwk for k in keys if not (k.retires_at and k.retires_at <= now)]}


async def rotate_signing_key(
    session: AsyncSession,
    *,
    key_encryption_key: str,
    activation_delay: timedelta,
    longest_token_ttl: timedelta,
) -> SigningKey:
    """Add a key that signs after `activation_delay`; schedule the current ones to retire."""
    activates_at = now_utc() + activation_delay
    new = new_signing_key(key_encryption_key, activates_at=activates_at)
    older = (await session.scalars(select(SigningKey).where(SigningKey.retires_at.is_(None)))).all()
    for key in older:
        key.retires_at = activates_at + longest_token_ttl
    session.add(new)
    return new


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: datetime


class TokenIssuer:
    def __init__(self, keys: SigningKeyStore, *, issuer: str, audience: str) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience

    async def issue(
        self,
        *,
        subject: str,
        role: Role | None,
        ttl: timedelta,
        kind: str = "user",
        session_id: str | None = None,
    ) -> IssuedToken:
        key = await self._keys.signing_key()
        now = now_utc()
        expires_at = now + ttl
        token_id = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": token_id,
            "kind": kind,
        }
        if role is not None:
            claims["role"] = role.value
        if session_id is not None:
            # The sign-in this token belongs to (its refresh chain): ending the
            # session refuses every access token of it, not only the one in hand.
            claims["sid"] = session_id
        token = jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
        return IssuedToken(token, token_id, expires_at.replace(microsecond=0))


def new_refresh_secret() -> tuple[str, str]:
    """A refresh token's secret part and the SHA-256 stored in its place."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_refresh_secret(secret)


def hash_refresh_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
