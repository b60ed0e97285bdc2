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
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import DateTime, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import EventBusBase
from shared.events import Envelope, EventData, UnknownEventError
from shared.telemetry import Telemetry

log = structlog.get_logger(__name__)


class InboxEntry(EventBusBase):
    __tablename__ = "inbox"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def claim_event(session: AsyncSession, envelope: Envelope) -> bool:
    """Record the event as processed in this transaction; False if it already was.

    On PostgreSQL a concurrent claim of the same id waits on the primary key
    until the first transaction ends, so two deliveries racing each other still
    apply the event once.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(InboxEntry)
        .values(event_id=envelope.id, event_type=envelope.type, processed_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    return bool(getattr(result, "rowcount", 0) == 1)


@dataclass
class EventContext:
    """What a handler gets besides the event: its transaction and the app's clients."""

    session: AsyncSession
    envelope: Envelope
    resources: Any
    _after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def after_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` once the handler's transaction has committed (e.g. a cache nudge)."""
        self._after_commit.append(action)


EventHandler = Callable[[EventContext, Any], Awaitable[None]]
Handlers = Mapping[type[EventData], EventHandler]


class PoisonMessageError(Exception):
    """The message can never be handled; it goes straight to the DLQ."""


@dataclass(frozen=True)
class ConsumerConfig:
    batch_size: int = 10
    concurrency: int = 10
    wait_seconds: int = 20
    visibility_seconds: int = 30
    retry_base_seconds: float = 1.0
    # On shutdown, how long an in-progress long poll may finish before it is cut.
    receive_grace_seconds: float = 1.0


class SqsConsumer:
    def __init__(
        self,
        *,
        queue_name: str,
        queue_url: str,
        sqs: Any,
        handlers: Handlers,
        session_factory: async_sessionmaker[AsyncSession],
        telemetry: Telemetry,
        resources: Any = None,
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
        self._capacity = asyncio.Semaphore(self._config.concurrency)
        self.released_on_shutdown = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and handle until `stop` is set, then drain and return."""
        if self._dlq_url is None:
            self._dlq_url = await self._find_dead_letter_queue()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._capacity.acquire()
                self._capacity.release()
                free = self._free_slots()
                receive = asyncio.create_task(self._receive(min(free, self._config.batch_size)))
                done, _ = await asyncio.wait(
                    {receive, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if receive not in done:
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
                for message in messages:
                    await self._capacity.acquire()
                    task = asyncio.create_task(self._handle_and_release_slot(message))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        finally:
            stopping.cancel()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _free_slots(self) -> int:
        return max(1, self._config.concurrency - len(self._in_flight))

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
        for message in messages:
            await self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )
            self.released_on_shutdown += 1

    async def _handle_and_release_slot(self, message: dict[str, Any]) -> None:
        gauge = self._telemetry.consumer_in_flight.labels(self.queue_name)
        gauge.inc()
        started = time.perf_counter()
        try:
            outcome = await self.handle(message)
            self._telemetry.consumer_messages.labels(self.queue_name, outcome).inc()
        finally:
            gauge.dec()
            self._telemetry.consumer_handle_seconds.labels(self.queue_name).observe(
                time.perf_counter() - started
            )
            self._capacity.release()

    async def handle(self, message: dict[str, Any]) -> str:
        """Handle one message; returns the outcome label."""
        heartbeat = asyncio.create_task(self._keep_invisible(message))
        try:
            try:
                envelope, data, handler = self._parse(message)
            except PoisonMessageError as exc:
                await self._dead_letter(message, str(exc))
                return "dead_lettered"
            try:
                applied = await self._apply(envelope, data, handler)
            except Exception as exc:  # left on the queue: retried, then redriven to the DLQ
                log.exception(
                    "event handler failed",
                    queue=self.queue_name,
                    event_id=str(envelope.id),
                    event_type=envelope.type,
                    receive_count=_receive_count(message),
                    error=str(exc),
                )
                await self._retry_later(message)
                return "failed"
        finally:
            heartbeat.cancel()
        await self._sqs.delete_message(
            QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
        return "applied" if applied else "duplicate"

    def _parse(self, message: dict[str, Any]) -> tuple[Envelope, EventData, EventHandler]:
        try:
            envelope = Envelope.model_validate_json(message["Body"])
            data = envelope.contract()
        except (ValidationError, UnknownEventError, ValueError) as exc:
            raise PoisonMessageError(f"not a valid event: {exc}") from exc
        handler = self._handlers.get(envelope.type)
        if handler is None:
            raise PoisonMessageError(f"no handler for {envelope.type} on {self.queue_name}")
        return envelope, data, handler

    async def _apply(self, envelope: Envelope, data: EventData, handler: EventHandler) -> bool:
        async with self._factory() as session:
            context = EventContext(session=session, envelope=envelope, resources=self._resources)
            try:
                if not await claim_event(session, envelope):
                    await session.rollback()
                    return False
                await handler(context, data)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        for action in context._after_commit:
            try:
                await action()
            except Exception:  # the state is committed; a missed nudge only delays a cache
                log.exception("after-commit action failed", event_id=str(envelope.id))
        return True

    async def _keep_invisible(self, message: dict[str, Any]) -> None:
        """Extend the visibility timeout while a slow handler is still working."""
        period = self._config.visibility_seconds / 2
        while True:
            await asyncio.sleep(period)
            try:
                await self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self._config.visibility_seconds,
                )
            except Exception:  # best effort: worst case the message is delivered again
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
