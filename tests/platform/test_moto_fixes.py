"""The emulator fix changes how moto computes a message's retention, never the answer."""

from __future__ import annotations

import boto3  # type: ignore[import-untyped]
from moto import mock_aws
from moto.sqs.models import SQSBackend, sqs_backends

from stories import moto_fixes


def test_retention_is_judged_as_moto_judges_it() -> None:
    moto_fixes.apply()  # once per process: the embedded emulator's test may have already
    original = SQSBackend._stories_original_retention  # type: ignore[attr-defined]
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


def test_a_message_sent_while_another_is_deleted_is_kept() -> None:
    """moto rebuilt the queue's list on delete without the lock sending takes, so a
    message sent meanwhile (SNS fan-out runs on another server thread) vanished.
    The send is made to land in the narrowest window, just after the rebuild has
    walked the list and before it replaces it, so the race shows every time."""
    import threading
    from collections.abc import Callable, Iterator

    from moto.sqs.models import Queue

    def kept_after(delete: Callable[[Queue, str], None]) -> list[str]:
        fixed = Queue.delete_message
        Queue.delete_message = delete  # type: ignore[method-assign,assignment]
        try:
            with mock_aws():
                sqs = boto3.client("sqs", region_name="us-east-1")
                sqs.create_queue(QueueName="busy")
                backend = sqs_backends["123456789012"]["us-east-1"]
                backend.send_message("busy", "old")
                queue = backend.get_queue("busy")
                (received,) = backend.receive_message("busy", 1, 0, 600)
                walks = []

                class SendsOnceWalked(list):  # type: ignore[type-arg]
                    def __iter__(self) -> Iterator[object]:
                        yield from list.__iter__(self)
                        walks.append(1)
                        # The first walk to the end is the rebuild: the look before it
                        # stops at the message it finds.
                        if len(walks) == 1:
                            sender = threading.Thread(
                                target=backend.send_message, args=("busy", "new")
                            )
                            sender.start()
                            sender.join(timeout=0.5)  # blocks on the lock, if one is held

                queue._messages = SendsOnceWalked(queue._messages)
                backend.delete_message("busy", str(received.receipt_handle))
                for _ in range(50):  # a sender that waited on the lock appends now
                    if any(m.body == "new" for m in list.__iter__(queue._messages)):
                        break
                    threading.Event().wait(0.02)
                return [m.body for m in list.__iter__(queue._messages)]
        finally:
            Queue.delete_message = fixed  # type: ignore[method-assign]

    moto_fixes.apply()
    fixed = Queue.delete_message
    assert fixed.__closure__ is not None
    unlocked = fixed.__closure__[0].cell_contents  # moto's own, which the fix wraps
    assert kept_after(unlocked) == []  # moto alone: the new message is gone
    assert kept_after(fixed) == ["new"]
