"""A verifier of CloudFront signed URLs and cookies, as CloudFront checks them.

No emulator verifies CloudFront signatures, so the tests carry this one, written
from AWS's documented scheme and independent of the signer: RSA-SHA1 over the
policy with the key group's public key, then the policy's resource, time and
address conditions.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNING_PARAMS = {"Expires", "Policy", "Signature", "Key-Pair-Id"}


class Refused(Exception):  # noqa: N818 - what CloudFront answers: 403
    pass


def _unsafe_b64(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


class CloudFrontVerifier:
    def __init__(self, public_keys: dict[str, rsa.RSAPublicKey]) -> None:
        self._keys = public_keys

    def verify_url(self, url: str, *, now: datetime, client_ip: str) -> None:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        # The resource is the URL as sent, less the signing parameters.
        kept = [p for p in parts.query.split("&") if p and p.split("=")[0] not in SIGNING_PARAMS]
        resource = urlunsplit(parts._replace(query="&".join(kept)))
        if "Signature" not in params or "Key-Pair-Id" not in params:
            raise Refused("missing signature")
        if "Policy" in params:
            policy = _unsafe_b64(params["Policy"])
        elif "Expires" in params:
            # A canned policy is rebuilt from the URL itself, exactly as AWS does.
            policy = json.dumps(
                {
                    "Statement": [
                        {
                            "Resource": resource,
                            "Condition": {
                                "DateLessThan": {"AWS:EpochTime": int(params["Expires"])}
                            },
                        }
                    ]
                },
                separators=(",", ":"),
            ).encode()
        else:
            raise Refused("no policy")
        self._check(policy, params["Signature"], params["Key-Pair-Id"], resource, now, client_ip)

    def verify_cookies(
        self, url: str, cookies: dict[str, str], *, now: datetime, client_ip: str
    ) -> None:
        try:
            policy = _unsafe_b64(cookies["CloudFront-Policy"])
            signature = cookies["CloudFront-Signature"]
            key_id = cookies["CloudFront-Key-Pair-Id"]
        except KeyError as exc:
            raise Refused(f"missing cookie {exc}") from exc
        self._check(policy, signature, key_id, url, now, client_ip)

    def _check(
        self,
        policy: bytes,
        signature: str,
        key_id: str,
        resource: str,
        now: datetime,
        client_ip: str,
    ) -> None:
        key = self._keys.get(key_id)
        if key is None:
            raise Refused("unknown key pair id")
        try:
            key.verify(_unsafe_b64(signature), policy, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
        except InvalidSignature as exc:
            raise Refused("bad signature") from exc
        [statement] = json.loads(policy)["Statement"]
        if not fnmatch.fnmatchcase(resource, statement["Resource"]):
            raise Refused("resource does not match the policy")
        condition: dict[str, Any] = statement["Condition"]
        if now.timestamp() >= condition["DateLessThan"]["AWS:EpochTime"]:
            raise Refused("expired")
        not_before = condition.get("DateGreaterThan")
        if not_before and now.timestamp() <= not_before["AWS:EpochTime"]:
            raise Refused("not yet valid")
        source = condition.get("IpAddress")
        if source and ipaddress.ip_address(client_ip) not in ipaddress.ip_network(
            source["AWS:SourceIp"]
        ):
            raise Refused("wrong client address")
