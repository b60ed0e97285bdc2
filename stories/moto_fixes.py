"""moto's server with two fixes: receiving from a long queue no longer costs O(n) per
message, and deleting a message no longer loses one sent at the same moment.

moto 5.x checks each message it is about to deliver against the queue's
retention period by computing *all* the queue's attributes, approximate counts
included, which walk every message: a receive of ten messages from a queue of
n walks it ten times over. Once a burst leaves a few thousand events waiting
(the load test seeds 5,000 in a minute), consumers fall behind faster than they
catch up and the emulator spends its time counting. Reading the retention
period directly gives the same answer in O(1).

moto 5.x deletes a message by rebuilding the queue's list without holding the
lock that sending takes: a message SNS appends to the queue (another server
thread) while the list is being rebuilt is dropped from it, never delivered.
The platform fault suite lost four sign-in events that way in one run. The
delete now holds the queue's lock (a reentrant one, which sending already uses).

These change only how moto computes, never what it answers; they are applied
wherever this repo starts moto (the tests, benchmarks, the load test and
`stories up`). Run `python -m stories.moto_fixes -H HOST -p PORT` in place of
`python -m moto.server`.
"""

from __future__ import annotations

from typing import Any


def apply() -> None:
    from moto.core.utils import unix_time
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend, "_stories_fixed", False):
        return

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > unix_time())

    # moto's own, kept for the test that compares the two answers.
    SQSBackend._stories_original_retention = (  # type: ignore[attr-defined]
        SQSBackend.is_message_valid_based_on_retention_period
    )
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    unlocked_delete = Queue.delete_message

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            unlocked_delete(self, receipt_handle)

    Queue.delete_message = delete_message  # type: ignore[method-assign]
    SQSBackend._stories_fixed = True  # type: ignore[attr-defined]


def main() -> None:
    apply()
    from moto.server import main as serve

    serve()


if __name__ == "__main__":
    main()
