"""Signed links to published PDFs: S3 presigned GETs, CloudFront signed URLs and cookies.

S3 links are SigV4 presigned GETs bound to the object's version, with the
response's content type and disposition fixed by the signature. CloudFront
links are signed with RSA-SHA1 over a policy (AWS's scheme): a canned policy
(resource and expiry) or a custom one that can also bind the client's address
and a not-before time. Several CloudFront keys may be configured so a new one
can be rolled in while links signed with the old one still work.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services.delivery.presign import CredentialsFromClient, S3Presigner

PDF_CONTENT_TYPE = "application/pdf"
SignerName = Literal["s3", "cloudfront"]
SIGNATURE_MEMO_SIZE = 10_000


def cloudfront_b64(data: bytes) -> str:
    """CloudFront's URL-safe base64: + becomes -, = becomes _, / becomes ~."""
    return base64.b64encode(data).decode().replace("+", "-").replace("=", "_").replace("/", "~")


def policy_document(
    resource: str,
    *,
    expires: int,
    not_before: int | None = None,
    client_cidr: str | None = None,
) -> bytes:
    condition: dict[str, Any] = {"DateLessThan": {"AWS:EpochTime": expires}}
    if not_before is not None:
        condition["DateGreaterThan"] = {"AWS:EpochTime": not_before}
    if client_cidr is not None:
        condition["IpAddress"] = {"AWS:SourceIp": client_cidr}
    statement = {"Statement": [{"Resource": resource, "Condition": condition}]}
    # No whitespace: for a canned policy CloudFront rebuilds this exact text.
    return json.dumps(statement, separators=(",", ":")).encode()


def client_cidr(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


@dataclass(frozen=True)
class SignedCookies:
    resource: str
    values: dict[str, str]


class CloudFrontSigner:
    def __init__(self, domain: str, keys: dict[str, str], active_key_id: str | None = None):
        if not keys:
            raise ValueError("no CloudFront keys")
        self.domain = domain.rstrip("/")
        if "://" not in self.domain:
            self.domain = f"https://{self.domain}"
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        for key_id, pem in keys.items():
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"CloudFront key {key_id} is not an RSA key")
            self._keys[key_id] = key
        # By default the last key listed signs: add a new key at the end to rotate.
        self.active_key_id = active_key_id or list(keys)[-1]
        self._memo: dict[tuple[str, bytes], str] = {}

    def resource(self, object_key: str, version: str | None = None) -> str:
        url = f"{self.domain}/{quote(object_key)}"
        # The version is part of the signed resource, so it cannot be changed.
        return f"{url}?versionId={quote(version, safe='')}" if version else url

    def _sign(self, policy: bytes) -> str:
        # RSA PKCS#1 v1.5 is deterministic: the same policy (same resource, same
        # expiry second, same address) always has the same signature. Readers of
        # one book within the same second (a class opening its assignment) share
        # one signature instead of paying ~0.5 ms each for identical bytes.
        memo_key = (self.active_key_id, policy)
        signature = self._memo.get(memo_key)
        if signature is None:
            key = self._keys[self.active_key_id]
            signature = cloudfront_b64(key.sign(policy, padding.PKCS1v15(), hashes.SHA1()))  # noqa: S303 - CloudFront's scheme
            if len(self._memo) >= SIGNATURE_MEMO_SIZE:
                self._memo.clear()  # policies expire within minutes: no need to be clever
            self._memo[memo_key] = signature
        return signature

    def signed_url(
        self,
        object_key: str,
        version: str | None,
        *,
        expires_at: datetime,
        client_ip: str | None = None,
        not_before: datetime | None = None,
    ) -> str:
        resource = self.resource(object_key, version)
        expires = int(expires_at.timestamp())
        separator = "&" if "?" in resource else "?"
        if client_ip is None and not_before is None:
            policy = policy_document(resource, expires=expires)
            query = f"Expires={expires}&Signature={self._sign(policy)}"
        else:
            policy = policy_document(
                resource,
                expires=expires,
                not_before=int(not_before.timestamp()) if not_before else None,
                client_cidr=client_cidr(client_ip) if client_ip else None,
            )
            query = f"Policy={cloudfront_b64(policy)}&Signature={self._sign(policy)}"
        return f"{resource}{separator}{query}&Key-Pair-Id={self.active_key_id}"

    def signed_cookies(
        self, path_prefix: str, *, expires_at: datetime, client_ip: str | None = None
    ) -> SignedCookies:
        """Cookies that open every object under `path_prefix` (a whole book's assets)."""
        resource = f"{self.domain}/{path_prefix.strip('/')}/*"
        policy = policy_document(
            resource,
            expires=int(expires_at.timestamp()),
            client_cidr=client_cidr(client_ip) if client_ip else None,
        )
        return SignedCookies(
            resource,
            {
                "CloudFront-Policy": cloudfront_b64(policy),
                "CloudFront-Signature": self._sign(policy),
                "CloudFront-Key-Pair-Id": self.active_key_id,
            },
        )


class S3LinkSigner:
    """SigV4 presigned GETs of the published bucket (a local computation: no network).

    A link is signed as of `expires_at - link_seconds`, a time already past, so
    everything in it follows from its (step-aligned) expiry: readers of one book
    within one step get the same URL, signed once and then served from memory,
    and the link still ends exactly at `expires_at`.
    """

    def __init__(
        self, s3: Any, bucket: str, *, region: str, endpoint_url: str | None, link_seconds: int
    ) -> None:
        self.bucket = bucket
        self.link_seconds = link_seconds
        self._credentials = CredentialsFromClient(s3)
        self._presigner = S3Presigner(region=region, endpoint_url=endpoint_url)
        self._memo: dict[tuple[Any, ...], str] = {}

    async def signed_url(
        self, object_key: str, version: str | None, *, expires_at: datetime
    ) -> str:
        credentials = await self._credentials.current()
        memo_key = (object_key, version, expires_at, credentials)
        url = self._memo.get(memo_key)
        if url is not None:
            return url
        # No Content-Disposition override: the object carries the one content stored at
        # publication (the uploader's file name), which CloudFront links serve as well.
        params = {"response-content-type": PDF_CONTENT_TYPE}
        if version and version != "null":
            params["versionId"] = version
        url = self._presigner.presigned_get(
            credentials,
            self.bucket,
            object_key,
            expires_in=self.link_seconds,
            params=params,
            now=expires_at - timedelta(seconds=self.link_seconds),
        )
        if len(self._memo) >= SIGNATURE_MEMO_SIZE:
            self._memo.clear()  # links expire within minutes: no need to be clever
        self._memo[memo_key] = url
        return url
