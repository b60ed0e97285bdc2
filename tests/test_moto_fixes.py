"""The emulator fix changes how moto computes a message's retention, never the answer."""

from __future__ import annotations

import boto3  # type: ignore[import-untyped]
from moto import mock_aws
from moto.sqs.models import SQSBackend, sqs_backends

from stories import moto_fixes


def test_retention_is_judged_as_moto_judges_it() -> None:
    original = SQSBackend.is_message_valid_based_on_retention_period
    moto_fixes.apply()
    fixed = SQSBackend.is_message_valid_based_on_retention_period
    assert fixed is not original
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})
        url = sqs.get_queue_url(QueueName="short")["QueueUrl"]
        for _ in range(3):
            sqs.send_message(QueueUrl=url, MessageBody="x")
        backend = sqs_backends["123456789012"]["us-east-1"]
        queue = backend.get_queue("short")
        fresh, *_ = queue._messages
        old = queue._messages[1]
        old.sent_timestamp = int(old.sent_timestamp or 0) - 61_000  # type: ignore[assignment]  # sent 61 s ago
        for message in (fresh, old):
            assert fixed(backend, "short", message) == original(backend, "short", message)
        assert fixed(backend, "short", fresh)
        assert not fixed(backend, "short", old)
        sent = {m.id for m in queue._messages}
        received: set[str] = set()
        for _ in range(5):  # moto may answer fewer than asked for: ask until none come
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            received |= {m["MessageId"] for m in answer.get("Messages", [])}
        assert received == sent - {old.id}  # the expired one is never delivered
