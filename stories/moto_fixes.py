"""moto's server with one fix: receiving from a long queue no longer costs O(n) per message.

moto 5.x checks each message it is about to deliver against the queue's
retention period by computing *all* the queue's attributes, approximate counts
included, which walk every message: a receive of ten messages from a queue of
n walks it ten times over. Once a burst leaves a few thousand events waiting
(the load test seeds 5,000 in a minute), consumers fall behind faster than they
catch up and the emulator spends its time counting. Reading the retention
period directly gives the same answer in O(1).

This changes only how moto computes, never what it answers; it is applied
wherever this repo starts moto (the tests, benchmarks, the load test and
`stories up`). Run `python -m stories.moto_fixes -H HOST -p PORT` in place of
`python -m moto.server`.
"""

from __future__ import annotations

from typing import Any


def apply() -> None:
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_stories_fixed", False):
        return

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    SQSBackend._stories_fixed = True  # type: ignore[attr-defined]


def main() -> None:
    apply()
    from moto.server import main as serve

    serve()


if __name__ == "__main__":
    main()
