"""#37 F15: the embedded run's AWS emulator refuses what AWS would refuse: unknown
credentials, bad or expired signatures, and presigned POSTs outside their policy
(key, content type, size, extra fields). Real HTTP, boto3 as the services sign."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from stories.emulator import free_port
from stories.emulator_guard import Credentials, start_guarded_moto

CREDENTIALS = Credentials("embedded", secrets.token_urlsafe(24))
BUCKET = "stories-guard-uploads"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    port = free_port()
    server = start_guarded_moto("127.0.0.1", port, CREDENTIALS)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def client(url: str, service: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


@pytest.fixture(scope="module")
def s3(emulator: str) -> Any:
    s3 = client(emulator, "s3", CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return str(raised.value.response["Error"]["Code"])


def test_the_platforms_own_credentials_work_for_s3_sqs_and_sns(emulator: str, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="a/b c=d.txt", Body=b"hello")
    assert s3.get_object(Bucket=BUCKET, Key="a/b c=d.txt")["Body"].read() == b"hello"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="a/")["Contents"]] == [
        "a/b c=d.txt"
    ]
    sqs = client(emulator, "sqs", CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key)
    queue = sqs.create_queue(QueueName="guard-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="one")
    received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    assert [m["Body"] for m in received["Messages"]] == ["one"]
    sns = client(emulator, "sns", CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key)
    assert sns.create_topic(Name="guard-topic")["TopicArn"].endswith(":guard-topic")


def test_made_up_credentials_and_wrong_secrets_are_refused(emulator: str, s3: Any) -> None:
    stranger = client(emulator, "s3", "AKIAMADEUP", "anything")
    assert error_code(stranger.list_buckets) == "InvalidAccessKeyId"
    assert (
        error_code(lambda: stranger.put_object(Bucket=BUCKET, Key="x", Body=b"x"))
        == "InvalidAccessKeyId"
    )
    guesser = client(emulator, "s3", CREDENTIALS.access_key_id, "a guessed secret")
    assert error_code(guesser.list_buckets) == "SignatureDoesNotMatch"
    sqs = client(emulator, "sqs", CREDENTIALS.access_key_id, "a guessed secret")
    with pytest.raises(ClientError):
        sqs.list_queues()


def test_anonymous_requests_and_the_control_api_are_refused(emulator: str, s3: Any) -> None:
    assert httpx.get(f"{emulator}/{BUCKET}").status_code == 403
    assert httpx.get(f"{emulator}/").status_code == 403
    assert httpx.post(f"{emulator}/moto-api/reset").status_code == 403
    assert httpx.get(f"{emulator}/moto-api/").status_code == 403


def test_a_presigned_link_works_until_it_expires_and_cannot_be_stretched_or_moved(
    s3: Any,
) -> None:
    s3.put_object(Bucket=BUCKET, Key="books/one.pdf", Body=b"%PDF-one")
    s3.put_object(Bucket=BUCKET, Key="books/two.pdf", Body=b"%PDF-two")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "books/one.pdf"}, ExpiresIn=5
    )
    assert httpx.get(url).content == b"%PDF-one"
    stretched = url.replace("X-Amz-Expires=5", "X-Amz-Expires=3600")
    assert httpx.get(stretched).status_code == 403
    moved = url.replace("books/one.pdf", "books/two.pdf")
    assert httpx.get(moved).status_code == 403
    time.sleep(6)
    expired = httpx.get(url)
    assert expired.status_code == 403
    assert b"expired" in expired.content


def presigned_post(s3: Any, key: str, *, max_bytes: int = 100) -> dict[str, Any]:
    form: dict[str, Any] = s3.generate_presigned_post(
        Bucket=BUCKET,
        Key=key,
        Fields={"Content-Type": "application/pdf"},
        Conditions=[{"Content-Type": "application/pdf"}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=60,
    )
    return form


def post(form: dict[str, Any], data: bytes, **changes: str) -> httpx.Response:
    fields = {**form["fields"], **changes}
    return httpx.post(form["url"], data=fields, files={"file": ("f.pdf", data, "application/pdf")})


def test_a_presigned_post_within_its_policy_is_taken(s3: Any) -> None:
    form = presigned_post(s3, "manuscripts/s1/abc.pdf")
    assert post(form, b"%PDF-1.7 fine").status_code in (200, 201, 204)
    stored = s3.get_object(Bucket=BUCKET, Key="manuscripts/s1/abc.pdf")
    assert stored["Body"].read() == b"%PDF-1.7 fine"
    assert stored["ContentType"] == "application/pdf"


@pytest.mark.parametrize(
    ("change", "data"),
    [
        ({"key": "checked/manuscripts/s1/abc.pdf"}, b"%PDF-evil"),
        ({"Content-Type": "text/html"}, b"<script>"),
        ({}, b"%PDF-" + b"x" * 200),
        ({"x-amz-meta-extra": "1"}, b"%PDF-ok"),
        ({"x-amz-signature": "0" * 64}, b"%PDF-ok"),
    ],
    ids=["another key", "another type", "too large", "an extra field", "a forged signature"],
)
def test_a_presigned_post_outside_its_policy_is_refused(
    s3: Any, change: dict[str, str], data: bytes
) -> None:
    form = presigned_post(s3, "manuscripts/s2/def.pdf")
    answer = post(form, data, **change)
    assert answer.status_code in (400, 403), answer.text
    for key in ("manuscripts/s2/def.pdf", "checked/manuscripts/s1/abc.pdf"):
        assert error_code(lambda k=key: s3.head_object(Bucket=BUCKET, Key=k)) in (
            "404",
            "NoSuchKey",
        )


def test_a_policy_edited_to_allow_more_is_refused(s3: Any) -> None:
    import base64
    import json

    form = presigned_post(s3, "manuscripts/s3/ghi.pdf", max_bytes=10)
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    policy["conditions"] = [
        c
        for c in policy["conditions"]
        if not (isinstance(c, list) and c[0] == "content-length-range")
    ]
    edited = base64.b64encode(json.dumps(policy).encode()).decode()
    assert post(form, b"%PDF-" + b"x" * 50, policy=edited).status_code == 403
