"""The event bus loses nothing and applies nothing twice: outbox -> SNS -> SQS -> inbox.

Real PostgreSQL, a real moto server process; the consumer is the metrics queue,
which takes every event the content topic carries.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, func, select
from sqlalchemy.dialects.postgresql import insert

from shared.bus.consumer import ConsumerConfig, EventContext, SqsConsumer
from shared.bus.inbox import InboxEntry, claim_events
from shared.bus.outbox import OutboxMessage, OutboxRelay, record_event
from shared.clients.aws import open_aws_clients, queue_url
from shared.clients.db import unit_of_work
from shared.contracts.envelope import Envelope
from shared.contracts.events import EVENT_CONTRACTS, BookUnpublished, EventData, Producer
from shared.resources import Resources
from shared.service.runtime import install_stop_signals
from shared.settings import ServiceSettings
from tests.support import ToggleableProxy, eventually

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e

TEST_METADATA = MetaData()
APPLICATIONS = Table(
    "applications",
    TEST_METADATA,
    Column("event_id", Uuid, primary_key=True),
    Column("times", Integer, nullable=False),
)


@dataclass
class Bus:
    resources: Resources
    settings: ServiceSettings
    queue_url: str
    dlq_url: str
    handler_calls: list[uuid.UUID] = field(default_factory=list)
    handler_delay: float = 0.0
    failing: bool = False

    async def count_application(self, context: EventContext, _data: EventData) -> None:
        """Test handler: counts how often each event's effect was applied."""
        self.handler_calls.append(context.envelope.id)
        if self.handler_delay:
            await asyncio.sleep(self.handler_delay)
        if self.failing:
            raise RuntimeError("handler failure for the test")
        await context.session.execute(
            insert(APPLICATIONS)
            .values(event_id=context.envelope.id, times=1)
            .on_conflict_do_update(
                index_elements=["event_id"], set_={"times": APPLICATIONS.c.times + 1}
            )
        )

    def relay(self, sns: Any = None, **kw: Any) -> OutboxRelay:
        return OutboxRelay(
            session_factory=self.resources.session_factory,
            sns=sns or self.resources.aws.sns,
            topic_arn=self.topic_arn,
            telemetry=self.resources.telemetry,
            poll_seconds=0.05,
            **kw,
        )

    def consumer(self, **config: Any) -> SqsConsumer:
        defaults: dict[str, Any] = {"wait_seconds": 1, "retry_base_seconds": 0}
        defaults.update(config)
        return SqsConsumer(
            queue_name="metrics",
            queue_url=self.queue_url,
            sqs=self.resources.aws.sqs,
            handlers=dict.fromkeys(EVENT_CONTRACTS.values(), self.count_application),
            session_factory=self.resources.session_factory,
            telemetry=self.resources.telemetry,
            resources=self.resources,
            config=ConsumerConfig(**defaults),
        )

    topic_arn: str = ""

    async def commit_events(self, count: int) -> list[uuid.UUID]:
        ids = []
        async with unit_of_work(self.resources.session_factory) as session:
            for _ in range(count):
                ids.append(record_event(session, BookUnpublished(book_id=uuid.uuid4())).id)
        return ids

    async def applications(self) -> dict[uuid.UUID, int]:
        async with self.resources.engine.connect() as connection:
            rows = (await connection.execute(select(APPLICATIONS))).all()
        return {row.event_id: row.times for row in rows}

    async def unpublished(self) -> int:
        async with self.resources.session_factory() as session:
            count = await session.scalar(
                select(func.count()).where(OutboxMessage.published_at.is_(None))
            )
        return int(count or 0)

    async def queue_depth(self, url: str) -> int:
        attrs = await self.resources.aws.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    async def drain_queue_ids(self) -> list[uuid.UUID]:
        """Receive everything on the queue (without deleting) and return the event ids."""
        ids: list[uuid.UUID] = []
        while True:
            response = await self.resources.aws.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = response.get("Messages", [])
            if not messages:
                return ids
            ids.extend(Envelope.model_validate_json(m["Body"]).id for m in messages)


@pytest.fixture
async def bus(resources: Resources, settings: ServiceSettings) -> Bus:
    async with resources.engine.begin() as connection:
        await connection.run_sync(TEST_METADATA.create_all)
    names = settings.resource_names
    b = Bus(
        resources=resources,
        settings=settings,
        queue_url=await queue_url(resources.aws.sqs, names.queue("metrics")),
        dlq_url=await queue_url(resources.aws.sqs, names.dead_letter_queue("metrics")),
    )
    b.topic_arn = await resources.events_topic_arn(Producer.CONTENT)
    return b


async def run_until(consumer: SqsConsumer, condition: Any, timeout: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(condition, timeout=timeout)
    finally:
        stop.set()
        await task


async def test_an_event_in_a_rolled_back_transaction_is_never_published(bus: Bus) -> None:
    async def failing_change() -> None:
        async with unit_of_work(bus.resources.session_factory) as session:
            record_event(session, BookUnpublished(book_id=uuid.uuid4()))
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    committed = await bus.commit_events(1)

    published, complete = await bus.relay().publish_pending()

    assert (published, complete) == (1, True)
    assert await bus.drain_queue_ids() == committed


async def test_a_committed_event_is_published_once_and_marked(bus: Bus) -> None:
    ids = await bus.commit_events(25)
    relay = bus.relay()

    assert await relay.publish_pending() == (25, True)
    assert await relay.publish_pending() == (0, True)
    assert await bus.unpublished() == 0
    assert sorted(await bus.drain_queue_ids()) == sorted(ids)


async def test_a_relay_crash_after_publishing_is_absorbed_by_the_inbox(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    [event_id] = await bus.commit_events(1)
    crashing = bus.relay()

    def crash(_rows: object) -> None:
        raise RuntimeError("relay died between publish and mark")

    monkeypatch.setattr(crashing, "_mark_published", crash)
    with pytest.raises(RuntimeError):
        await crashing.publish_pending()
    assert await bus.unpublished() == 1  # the mark was lost with the crash
    assert await bus.relay().publish_pending() == (1, True)  # so it goes out again

    consumer = bus.consumer()

    async def both_handled() -> bool:
        return await bus.queue_depth(bus.queue_url) == 0 and bool(await bus.applications())

    await run_until(consumer, both_handled)

    assert await bus.applications() == {event_id: 1}
    assert bus.handler_calls == [event_id]  # the duplicate never reached the handler


async def test_nothing_is_lost_while_sns_is_unreachable(
    bus: Bus, settings: ServiceSettings
) -> None:
    _, port = bus.resources.settings.aws_endpoint_url.rsplit(":", 1)  # type: ignore[union-attr]
    proxy = ToggleableProxy("127.0.0.1", int(port))
    await proxy.start()
    async with AsyncExitStack() as stack:
        via_proxy = await open_aws_clients(
            settings.model_copy(update={"aws_endpoint_url": proxy.url}), stack
        )
        proxy.cut()
        ids = await bus.commit_events(30)
        relay = bus.relay(sns=via_proxy.sns, max_backoff_seconds=0.5)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:
            await eventually(
                lambda: bus.resources.telemetry.outbox_publish_failures._value.get() >= 2,
                what="publish attempts during the outage",
            )
            assert await bus.unpublished() == 30
            proxy.restore()
            await eventually(lambda: _is_zero(bus.unpublished()), what="outbox drained")
        finally:
            stop.set()
            await running
            await proxy.stop()
    assert sorted(await bus.drain_queue_ids()) == sorted(ids)


async def _is_zero(count: Any) -> bool:
    return bool(await count == 0)


async def test_a_failing_handler_lands_in_the_dlq_and_redrive_brings_it_back(bus: Bus) -> None:
    [event_id] = await bus.commit_events(1)
    await bus.relay().publish_pending()
    bus.failing = True

    async def dead_lettered() -> bool:
        return await bus.queue_depth(bus.dlq_url) == 1

    await run_until(bus.consumer(), dead_lettered, timeout=30)
    assert bus.handler_calls == [event_id] * 5  # maxReceiveCount, then the DLQ
    assert await bus.applications() == {}

    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": bus.settings.aws_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "STORIES_RESOURCE_PREFIX": bus.settings.resource_prefix,
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stories.cli", "dlq", "redrive", "metrics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "moved 1 message" in result.stdout
    assert await bus.queue_depth(bus.dlq_url) == 0

    bus.failing = False
    await run_until(bus.consumer(), lambda: _applied(bus, event_id))
    assert await bus.applications() == {event_id: 1}


async def _applied(bus: Bus, event_id: uuid.UUID) -> bool:
    return (await bus.applications()).get(event_id) == 1


async def test_a_message_that_is_not_an_event_goes_to_the_dlq_at_once(bus: Bus) -> None:
    sqs = bus.resources.aws.sqs
    await sqs.send_message(QueueUrl=bus.queue_url, MessageBody="{not json")
    unknown = Envelope(source="/elsewhere", type="spaceship.launched", dataversion="1", data={})
    await sqs.send_message(QueueUrl=bus.queue_url, MessageBody=unknown.model_dump_json())
    [good] = await bus.commit_events(1)
    await bus.relay().publish_pending()

    async def settled() -> bool:
        return await bus.queue_depth(bus.dlq_url) == 2 and bool(await bus.applications())

    await run_until(bus.consumer(), settled)

    assert await bus.applications() == {good: 1}
    dead = await sqs.receive_message(
        QueueUrl=bus.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    reasons = sorted(
        m["MessageAttributes"]["dead_letter_reason"]["StringValue"] for m in dead["Messages"]
    )
    assert reasons[0].startswith("not a valid event")
    assert "spaceship.launched" in reasons[1]


async def test_sigterm_mid_batch_loses_nothing_and_applies_nothing_twice(bus: Bus) -> None:
    ids = await bus.commit_events(40)
    await bus.relay().publish_pending()
    bus.handler_delay = 0.3
    consumer = bus.consumer(concurrency=5, batch_size=10)
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        running = asyncio.create_task(consumer.run(stop))
        await eventually(lambda: len(bus.handler_calls) >= 3, what="handlers in flight")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, timeout=10)
    finally:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    finished_before_stop = await bus.applications()
    assert 0 < len(finished_before_stop) < 40
    # Everything started before SIGTERM finished and committed: no handler was cut short.
    assert set(bus.handler_calls) == set(finished_before_stop)

    bus.handler_delay = 0
    await run_until(bus.consumer(), lambda: _count_is(bus, 40))

    assert await bus.applications() == dict.fromkeys(ids, 1)
    assert await bus.queue_depth(bus.queue_url) == 0
    assert await bus.queue_depth(bus.dlq_url) == 0


async def _count_is(bus: Bus, n: int) -> bool:
    return len(await bus.applications()) == n


async def test_a_slow_handler_keeps_its_message_invisible(bus: Bus) -> None:
    [event_id] = await bus.commit_events(1)
    await bus.relay().publish_pending()
    bus.handler_delay = 3.5
    first = bus.consumer(visibility_seconds=2)
    second = bus.consumer(visibility_seconds=2)
    stop = asyncio.Event()
    runs = [asyncio.create_task(c.run(stop)) for c in (first, second)]
    try:
        await eventually(lambda: _applied(bus, event_id), timeout=20)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*runs)
    assert bus.handler_calls == [event_id]


async def test_two_racing_claims_of_one_event_apply_it_once(bus: Bus) -> None:
    envelope = Envelope.wrap(BookUnpublished(book_id=uuid.uuid4()))
    factory = bus.resources.session_factory
    async with factory() as first, factory() as second:
        assert await claim_events(first, [envelope]) == {envelope.id}
        racing = asyncio.create_task(claim_events(second, [envelope]))
        await asyncio.sleep(0.2)
        assert not racing.done()  # waits on the first transaction's row lock
        await first.commit()
        assert await racing == set()
        await second.rollback()
    async with factory() as session:
        assert await session.scalar(select(func.count()).select_from(InboxEntry)) == 1


async def test_published_messages_carry_the_event_type_attribute(bus: Bus) -> None:
    await bus.commit_events(1)
    await bus.relay().publish_pending()
    response = await bus.resources.aws.sqs.receive_message(
        QueueUrl=bus.queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )
    [message] = response["Messages"]
    assert message["MessageAttributes"]["type"]["StringValue"] == "book.unpublished"
    body = json.loads(message["Body"])  # raw delivery: the body is the CloudEvent itself
    assert body["specversion"] == "1.0"
    assert body["type"] == "book.unpublished"
    assert body["source"] == "/stories/content"


async def test_two_relays_on_one_outbox_publish_each_event_once(bus: Bus) -> None:
    ids = await bus.commit_events(200)
    stop = asyncio.Event()
    relays = [bus.relay(batch_size=20) for _ in range(2)]
    runs = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        await eventually(lambda: _is_zero(bus.unpublished()), what="outbox drained")
    finally:
        stop.set()
        await asyncio.gather(*runs)
    published = await bus.drain_queue_ids()
    assert sorted(published) == sorted(ids)  # every event, and none twice
