"""The SQS consumer runner and the inbox that makes redelivery harmless.

Per message: parse the envelope, claim its id in the inbox and run the handler
in one transaction, commit, and only then delete the message. A crash anywhere
before the delete means SQS delivers it again, and the inbox makes the second
delivery a no-op. Handler failures go back to the queue with a growing delay;
after the queue's maxReceiveCount the redrive policy moves them to the DLQ.
Messages that can never succeed (not an envelope, unknown type, payload that
breaks its contract) go to the DLQ at once, with the reason, so they never
hold up the queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.inbox import claim_events
from shared.contracts.envelope import Envelope, UnknownEventError
from shared.contracts.events import EventData
from shared.observe.propagation import event_span
from shared.observe.telemetry import Telemetry

if TYPE_CHECKING:  # the app builds the consumer: no import back at run time
    from shared.resources import Resources

log = structlog.get_logger(__name__)


@dataclass
class BatchScope:
    """What the handlers of one batch share: a scratch space (to gather writes and
    make them once per batch), and what to run just before and just after its commit."""

    scratch: dict[str, Any] = field(default_factory=dict)
    before_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def run_after_commit(self) -> None:
        for action in self.after_commit:
            try:
                await action()
            except Exception:  # the state is committed; a missed nudge only delays a cache
                log.exception("after-commit action failed")


@dataclass
class EventContext:
    """What a handler gets besides the event: its transaction and the app's clients."""

    session: AsyncSession
    envelope: Envelope
    resources: Resources
    batch: BatchScope = field(default_factory=BatchScope)

    def after_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` once the handler's transaction has committed (e.g. a cache nudge)."""
        self.batch.after_commit.append(action)

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` in the transaction, after every handler of the batch (e.g. to
        write what the batch's handlers gathered in `batch.scratch`, once)."""
        self.batch.before_commit.append(action)


EventHandler = Callable[[EventContext, Any], Awaitable[None]]
Handlers = Mapping[type[EventData], EventHandler]


class PoisonMessageError(Exception):
    """The message can never be handled; it goes straight to the DLQ."""


@dataclass(frozen=True)
class ConsumerConfig:
    batch_size: int = 10
    # Messages in flight; above batch_size, the next batch is received while
    # the previous one is being applied.
    concurrency: int = 20
    wait_seconds: int = 20
    visibility_seconds: int = 30
    retry_base_seconds: float = 1.0
    # On shutdown, how long an in-progress long poll may finish before it is cut.
    receive_grace_seconds: float = 1.0


@dataclass
class _ReceivedMessage:
    """One SQS message as received, and the event parsed from it."""

    sqs_message: dict[str, Any]
    envelope: Envelope
    data: EventData
    handler: EventHandler


class _HandlerFailedError(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(f"handler of message {index} failed")
        self.index = index


class SqsConsumer:
    """Receives batches from one queue and applies each batch in one transaction.

    One commit per batch (not per message) is what lets a consumer keep up with
    the queue; if any handler in the batch fails, the batch is rolled back, the
    failing message is scheduled for retry, and the rest are applied again
    without it, so one bad event never holds back the others.
    """

    def __init__(
        self,
        *,
        queue_name: str,
        queue_url: str,
        sqs: Any,
        handlers: Handlers,
        session_factory: async_sessionmaker[AsyncSession],
        telemetry: Telemetry,
        resources: Resources,
        config: ConsumerConfig | None = None,
        dead_letter_queue_url: str | None = None,
    ) -> None:
        self.queue_name = queue_name
        self._queue_url = queue_url
        self._sqs = sqs
        self._handlers = {contract.type: handler for contract, handler in handlers.items()}
        self._factory = session_factory
        self._telemetry = telemetry
        self._resources = resources
        self._config = config or ConsumerConfig()
        self._dlq_url = dead_letter_queue_url
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy = 0  # messages being handled
        self._slot_freed = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and handle until `stop` is set, then drain and return."""
        if self._dlq_url is None:
            self._dlq_url = await self._find_dead_letter_queue()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                while self._busy >= self._config.concurrency and not stop.is_set():
                    self._slot_freed.clear()
                    freed = asyncio.create_task(self._slot_freed.wait())
                    await asyncio.wait({freed, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    freed.cancel()
                if stop.is_set():
                    break
                free = self._config.concurrency - self._busy
                receive = asyncio.create_task(self._receive(min(free, self._config.batch_size)))
                await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receive.done():
                    # Shutting down mid long-poll: let it finish briefly so any
                    # messages SQS already handed out are released, not hidden.
                    await asyncio.wait({receive}, timeout=self._config.receive_grace_seconds)
                    if not receive.done():
                        receive.cancel()
                        continue
                try:
                    messages = receive.result()
                except asyncio.CancelledError:
                    raise
                except Exception:  # SQS unreachable: wait and poll again
                    log.exception("sqs receive failed", queue=self.queue_name)
                    await asyncio.wait({stopping}, timeout=1.0)
                    continue
                if stop.is_set():
                    await self._release(messages)
                    break
                if messages:
                    self._busy += len(messages)
                    task = asyncio.create_task(self._handle_batch_and_free_slots(messages))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        finally:
            stopping.cancel()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _receive(self, count: int) -> list[dict[str, Any]]:
        response = await self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=self._config.wait_seconds,
            VisibilityTimeout=self._config.visibility_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def _release(self, messages: list[dict[str, Any]]) -> None:
        """Hand unstarted messages straight back to the queue for another consumer."""
        if not messages:
            return
        await self._sqs.change_message_visibility_batch(
            QueueUrl=self._queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )

    async def _handle_batch_and_free_slots(self, messages: list[dict[str, Any]]) -> None:
        gauge = self._telemetry.consumer_in_flight.labels(self.queue_name)
        gauge.inc(len(messages))
        started = time.perf_counter()
        try:
            outcomes = await self.handle_batch(messages)
            for outcome in outcomes:
                self._telemetry.consumer_messages.labels(self.queue_name, outcome).inc()
        except Exception:  # never lose the runner to one batch; the messages come back
            log.exception("batch handling failed", queue=self.queue_name)
        finally:
            gauge.dec(len(messages))
            elapsed = time.perf_counter() - started
            for _ in messages:
                self._telemetry.consumer_handle_seconds.labels(self.queue_name).observe(elapsed)
            self._busy -= len(messages)
            self._slot_freed.set()

    async def handle_batch(self, messages: list[dict[str, Any]]) -> list[str]:
        """Handle received messages; returns one outcome label per message."""
        heartbeat = asyncio.create_task(self._keep_invisible(messages))
        outcomes: list[str] = []
        received: list[_ReceivedMessage] = []
        try:
            for message in messages:
                try:
                    received.append(self._parse(message))
                except PoisonMessageError as exc:
                    await self._dead_letter(message, str(exc))
                    outcomes.append("dead_lettered")
            done: list[_ReceivedMessage] = []
            while received:
                try:
                    applied = await self._apply(received)
                except _HandlerFailedError as failure:
                    failed = received.pop(failure.index)
                    if isinstance(failure.__cause__, PoisonMessageError):
                        # The handler knows retrying cannot help (a book that
                        # cannot be processed within the limits): to the DLQ now,
                        # with its reason, instead of five tries first.
                        await self._dead_letter(failed.sqs_message, str(failure.__cause__))
                        outcomes.append("dead_lettered")
                        continue
                    log.exception(
                        "event handler failed",
                        queue=self.queue_name,
                        event_id=str(failed.envelope.id),
                        event_type=failed.envelope.type,
                        receive_count=_receive_count(failed.sqs_message),
                    )
                    await self._retry_later(failed.sqs_message)
                    outcomes.append("failed")
                    continue
                outcomes += ["applied" if a else "duplicate" for a in applied]
                done = received
                break
        finally:
            heartbeat.cancel()
        if done:
            await self._delete([d.sqs_message for d in done])
        return outcomes

    def _parse(self, message: dict[str, Any]) -> _ReceivedMessage:
        try:
            envelope = Envelope.model_validate_json(message["Body"])
            data = envelope.contract()
        except (ValidationError, UnknownEventError, ValueError) as exc:
            raise PoisonMessageError(f"not a valid event: {exc}") from exc
        handler = self._handlers.get(envelope.type)
        if handler is None:
            raise PoisonMessageError(f"no handler for {envelope.type} on {self.queue_name}")
        return _ReceivedMessage(message, envelope, data, handler)

    async def _apply(self, received: list[_ReceivedMessage]) -> list[bool]:
        """Apply every message in one transaction; which were new (not duplicates)."""
        batch = BatchScope()
        async with self._factory() as session:
            try:
                claimed = await claim_events(session, [r.envelope for r in received])
                applied = []
                for index, parsed in enumerate(received):
                    event_id = parsed.envelope.id
                    if event_id not in claimed:
                        applied.append(False)
                        continue
                    claimed.discard(event_id)  # a second copy in this batch is a duplicate
                    context = EventContext(
                        session=session,
                        envelope=parsed.envelope,
                        resources=self._resources,
                        batch=batch,
                    )
                    try:
                        with event_span(
                            f"process {parsed.envelope.type}",
                            SpanKind.CONSUMER,
                            {
                                "traceparent": parsed.envelope.traceparent,
                                "tracestate": parsed.envelope.tracestate,
                            },
                            **{
                                "messaging.system": "aws_sqs",
                                "messaging.operation.type": "process",
                                "messaging.destination.name": self.queue_name,
                                "messaging.parsed.id": str(event_id),
                            },
                        ):
                            await parsed.handler(context, parsed.data)
                    except Exception as exc:
                        raise _HandlerFailedError(index) from exc
                    applied.append(True)
                for action in batch.before_commit:
                    await action()
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        await batch.run_after_commit()
        return applied

    async def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = await self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                # Applied and committed; a redelivery will be absorbed by the inbox.
                log.warning("delete failed", queue=self.queue_name, error=failure.get("Message"))

    async def _keep_invisible(self, messages: list[dict[str, Any]]) -> None:
        """Extend the visibility timeout while a slow batch is still being handled."""
        period = self._config.visibility_seconds / 2
        while True:
            await asyncio.sleep(period)
            try:
                await self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {
                            "Id": str(i),
                            "ReceiptHandle": m["ReceiptHandle"],
                            "VisibilityTimeout": self._config.visibility_seconds,
                        }
                        for i, m in enumerate(messages)
                    ],
                )
            except Exception:  # best effort: worst case a message is delivered again
                log.warning("could not extend visibility", queue=self.queue_name)

    async def _retry_later(self, message: dict[str, Any]) -> None:
        attempt = _receive_count(message)
        delay = min(900, int(self._config.retry_base_seconds * 2 ** (attempt - 1)))
        try:
            await self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=delay,
            )
        except Exception:  # the visibility timeout expires on its own anyway
            log.warning("could not schedule retry", queue=self.queue_name)

    async def _dead_letter(self, message: dict[str, Any], reason: str) -> None:
        log.error(
            "dead-lettering message",
            queue=self.queue_name,
            message_id=message.get("MessageId"),
            reason=reason,
        )
        if self._dlq_url is None:
            # No DLQ known: leave it to the redrive policy (it will fail again).
            await self._retry_later(message)
            return
        attributes = dict(message.get("MessageAttributes", {}))
        attributes["dead_letter_reason"] = {"DataType": "String", "StringValue": reason[:1000]}
        await self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=message["Body"],
            MessageAttributes=_sendable_attributes(attributes),
        )
        await self._sqs.delete_message(
            QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
        )

    async def _find_dead_letter_queue(self) -> str | None:
        response = await self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["RedrivePolicy"]
        )
        policy = response.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        dlq_name = json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[-1]
        found = await self._sqs.get_queue_url(QueueName=dlq_name)
        url: str = found["QueueUrl"]
        return url


def _receive_count(message: dict[str, Any]) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))


def _sendable_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Received message attributes carry list fields SendMessage refuses; keep the values."""
    sendable: dict[str, Any] = {}
    for name, value in attributes.items():
        kept = {"DataType": value["DataType"]}
        if "StringValue" in value:
            kept["StringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            kept["BinaryValue"] = value["BinaryValue"]
        sendable[name] = kept
    return sendable
