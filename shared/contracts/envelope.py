"""The CloudEvents 1.0 envelope every event travels in, and how its typed payload is
read back: by type and `dataversion`, refusing what no contract describes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.clock import now_utc
from shared.contracts.events import ACCEPTED_LEGACY_CONTRACTS, EVENT_CONTRACTS, EventData


class UnknownEventError(ValueError):
    """The envelope names a type or version no contract describes."""


class Envelope(BaseModel):
    """A CloudEvents 1.0 structured-mode JSON event."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: now_utc())
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    dataversion: str
    traceid: str | None = None
    # CloudEvents distributed-tracing extension: the trace the event was recorded
    # in (W3C Trace Context), followed by the relay and every consumer.
    traceparent: str | None = None
    tracestate: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        data: EventData,
        *,
        trace_id: str | None = None,
        time: datetime | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Envelope:
        """`data` in its envelope. `trace` is the caller's trace context
        (`traceparent`, `tracestate`): the outbox passes the current one, so the
        contracts themselves know nothing of tracing (no import of it, #39)."""
        return cls(
            source=f"/stories/{data.producer.value}",
            type=data.type,
            time=time or now_utc(),
            subject=data.subject,
            dataversion=data.version,
            traceid=trace_id,
            data=data.model_dump(mode="json"),
            **dict(trace or {}),
        )

    def contract(self) -> EventData:
        """The typed payload; raises UnknownEventError or pydantic.ValidationError."""
        contract = EVENT_CONTRACTS.get(self.type)
        if contract is None:
            raise UnknownEventError(f"unknown event type {self.type!r}")
        if contract.version != self.dataversion:
            legacy = ACCEPTED_LEGACY_CONTRACTS.get((self.type, self.dataversion))
            if legacy is None:
                raise UnknownEventError(
                    f"{self.type} dataversion {self.dataversion!r} is not {contract.version!r}"
                )
            contract = legacy
        return contract.model_validate(self.data)
