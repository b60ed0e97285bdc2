"""The raw cost of one signature of each kind, in a loop: the ceiling a signing
endpoint is measured against. Run pinned to the server's core by `stories bench`;
prints JSON."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.delivery.presign import Credentials, S3Presigner
from services.delivery.signing import CloudFrontSigner


def rate(action: object, seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            action()  # type: ignore[operator]
        count += 50
    return count / (time.perf_counter() - started)


def main(seconds: float = 3.0) -> None:
    s3: Any = botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - a throwaway credential
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    key = f"books/{uuid.uuid4()}/1-abcdefghijklmnop.pdf"

    def presign() -> None:
        s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": "stories-published",
                "Key": key,
                "VersionId": "v1",
                "ResponseContentType": "application/pdf",
            },
            ExpiresIn=300,
        )

    ours = S3Presigner(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    credentials = Credentials("bench", "bench")

    def presign_ours() -> None:
        ours.presigned_get(
            credentials,
            "stories-published",
            key,
            expires_in=300,
            params={
                "versionId": "v1",
                "response-content-type": "application/pdf",
            },
        )

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    signer = CloudFrontSigner("https://books.example", {"K": pem})
    expires = datetime.now(UTC) + timedelta(minutes=5)
    second = timedelta(seconds=1)
    count = 0

    def cloudfront() -> None:
        # A new expiry each time: every call really signs (no memo hit).
        nonlocal count
        count += 1
        signer.signed_url(key, "v1", expires_at=expires + count * second)

    print(
        json.dumps(
            {
                "sigv4_botocore": rate(presign, seconds),
                "sigv4_ours": rate(presign_ours, seconds),
                "rsa2048_cloudfront": rate(cloudfront, seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
