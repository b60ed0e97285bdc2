"""Our SigV4 presigner gives exactly botocore's presigned URL for the same moment,
and the emulator serves the object through it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
import httpx
import pytest
from botocore.config import Config

from services.delivery.presign import Credentials, CredentialsFromClient, S3Presigner
from shared.resources import Resources
from tests.conftest import TEST_AWS

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e

PARAMS = {
    "versionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",
    "response-content-type": "application/pdf",
    "response-content-disposition": 'inline; filename="le petit prince (édition).pdf"',
}


def botocore_url(endpoint: str | None, token: str | None, key: str) -> str:
    client: Any = botocore.session.get_session().create_client(
        "s3",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint else "virtual"},
        ),
    )
    url: str = client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": "stories-published",
            "Key": key,
            "VersionId": PARAMS["versionId"],
            "ResponseContentType": PARAMS["response-content-type"],
            "ResponseContentDisposition": PARAMS["response-content-disposition"],
        },
        ExpiresIn=300,
    )
    return url


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", None], ids=["path", "virtual"])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////wEaDEXAMPLE+token=="])
@pytest.mark.parametrize("key", ["books/1f2e/1-Ab_cD-9.pdf", "books/odd key/ünï+cödé.pdf"])
def test_the_same_url_as_botocore(endpoint: str | None, token: str | None, key: str) -> None:
    expected = botocore_url(endpoint, token, key)
    moment = datetime.strptime(
        parse_qs(urlsplit(expected).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"
    ).replace(tzinfo=UTC)
    ours = S3Presigner(region="eu-west-1", endpoint_url=endpoint).presigned_get(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
        "stories-published",
        key,
        expires_in=300,
        params=PARAMS,
        now=moment,
    )
    ours_parts, expected_parts = urlsplit(ours), urlsplit(expected)
    assert ours_parts._replace(query="") == expected_parts._replace(query="")
    assert parse_qs(ours_parts.query) == parse_qs(expected_parts.query)


async def test_the_emulator_serves_an_object_through_it(resources: Resources) -> None:
    s3 = resources.aws.s3
    bucket = resources.settings.resource_names.bucket("published")
    put = await s3.put_object(Bucket=bucket, Key="books/x/1-a.pdf", Body=b"%PDF-1.4 hello")
    presigner = S3Presigner(region="us-east-1", endpoint_url=resources.settings.aws_endpoint_url)
    url = presigner.presigned_get(
        await CredentialsFromClient(s3).current(),
        bucket,
        "books/x/1-a.pdf",
        expires_in=60,
        params={"versionId": put["VersionId"], "response-content-type": "application/pdf"},
    )
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.4 hello"
    assert response.headers["content-type"] == "application/pdf"


async def test_an_emulator_that_checks_signatures_refuses_tampered_and_expired_links(
    resources: Resources,
) -> None:
    """On LocalStack (signatures enforced, like S3): a link works as signed, and not
    once its expiry, version or object is changed, nor after it expires. moto
    checks no signatures, so there this says so and stops."""
    if TEST_AWS != "localstack":
        pytest.skip("moto checks no signatures; the LocalStack lane of `make test` runs this")
    s3 = resources.aws.s3
    bucket = resources.settings.resource_names.bucket("published")
    first = await s3.put_object(Bucket=bucket, Key="books/y/1-a.pdf", Body=b"%PDF-1.4 first")
    await s3.put_object(Bucket=bucket, Key="books/y/1-a.pdf", Body=b"%PDF-1.4 second")
    await s3.put_object(Bucket=bucket, Key="books/y/2-b.pdf", Body=b"%PDF-1.4 other")
    presigner = S3Presigner(region="us-east-1", endpoint_url=resources.settings.aws_endpoint_url)
    url = presigner.presigned_get(
        await CredentialsFromClient(s3).current(),
        bucket,
        "books/y/1-a.pdf",
        expires_in=2,
        params={"versionId": first["VersionId"]},
    )
    tampered = {
        "longer": url.replace("X-Amz-Expires=2", "X-Amz-Expires=3600"),
        "other version": url.replace(first["VersionId"], "null"),
        "other book": url.replace("1-a.pdf", "2-b.pdf"),
    }
    async with httpx.AsyncClient() as http:
        signed = await http.get(url)
        assert signed.status_code == 200
        assert signed.content == b"%PDF-1.4 first"  # the version signed for, not the latest
        for what, link in tampered.items():
            assert link != url, what
            assert (await http.get(link)).status_code == 403, what
        await asyncio.sleep(3.5)
        assert (await http.get(url)).status_code == 403, "expired"
