"""Request and response bodies of the delivery API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.contracts.clock import UtcInstant
from shared.contracts.events import BookFormatName
from shared.contracts.text import SingleLine


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeliveryRequest(StrictModel):
    book_id: uuid.UUID
    format: BookFormatName = Field(
        default="pdf",
        description="`pdf` as published, or `pdf-lite`: pictures made light for slow "
        "connections (content's book lists each format with its size). 409 "
        "`format-not-ready` for the minute after publishing while it is made.",
    )


class DeliveryOut(BaseModel):
    url: str = Field(description="GET this within its lifetime; it opens this book only")
    expires_at: datetime
    method: Literal["GET"] = "GET"
    signer: Literal["s3", "cloudfront"]


class CookiesOut(BaseModel):
    resource: str = Field(description="What the cookies open (every object under it)")
    expires_at: datetime
    cookies: dict[str, str] = Field(description="Also set as Set-Cookie headers")


class ProgressUpdate(StrictModel):
    # strict: true and "3" are not page numbers.
    page: int = Field(ge=0, le=100_000, strict=True)
    total_pages: int = Field(gt=0, le=100_000, strict=True)

    @model_validator(mode="after")
    def _page_within_book(self) -> ProgressUpdate:
        if self.page > self.total_pages:
            raise ValueError("page must not be above total_pages")
        return self


class ProgressOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    book_id: uuid.UUID
    page: int
    total_pages: int
    percent: int = 0
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @model_validator(mode="after")
    def _percent(self) -> ProgressOut:
        self.percent = self.page * 100 // self.total_pages
        return self


MAX_OFFLINE_EVENTS = 500

# A device's own id: letters, digits and . _ - (never a name).
DeviceId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
]


class OfflineEventIn(StrictModel):
    id: uuid.UUID = Field(description="Made by the device, once per event: a retry sends it again")
    type: Literal["open", "progress", "complete"]
    book_id: uuid.UUID
    at: UtcInstant = Field(description="When it happened, by the device's clock")
    page: int | None = Field(default=None, ge=0, le=100_000, strict=True)
    total_pages: int | None = Field(
        default=None, gt=0, le=100_000, strict=True, description="progress and complete"
    )


class OfflineBatch(StrictModel):
    device_id: DeviceId = Field(
        description="The device's own id (no personal data): which device read"
    )
    events: list[OfflineEventIn] = Field(min_length=1, max_length=MAX_OFFLINE_EVENTS)


class OfflineEventResult(BaseModel):
    id: uuid.UUID
    status: Literal["accepted", "duplicate", "refused"] = Field(
        description="`duplicate`: taken from an earlier upload (or earlier in this one)"
    )
    reason: str | None = Field(default=None, description="Why refused: a problem code")
    detail: str | None = None


class OfflineBatchOut(BaseModel):
    accepted: int
    duplicates: int
    refused: int
    results: list[OfflineEventResult] = Field(description="One per event, in the batch's order")


# --- reading apps' progression (#20, OPDS Progression) ---------------------------------


class ProgressionDevice(StrictModel):
    id: DeviceId
    # Shown to the reader ("continue where you left off on ..."): one line, no
    # control or bidi characters (#37 F11), as every name others read.
    name: Annotated[str, StringConstraints(max_length=100), SingleLine] = ""


class ProgressionLocations(BaseModel):
    # Other locations a reading app sends (progression, fragments...) are ignored.
    model_config = ConfigDict(extra="ignore")

    position: int = Field(ge=0, le=100_000, strict=True, description="The page")
    totalProgression: float | None = Field(  # noqa: N815 - the format's own name
        default=None, ge=0, le=1, description="Answered; ignored when sent"
    )


class ProgressionLocator(BaseModel):
    model_config = ConfigDict(extra="ignore")

    href: str = Field(default="", max_length=500)
    type: str = Field(default="application/pdf", max_length=100)
    locations: ProgressionLocations


class Progression(StrictModel):
    """An OPDS Progression document: where a reading app is in a book, and when."""

    modified: UtcInstant = Field(description="When the reading happened, device time")
    device: ProgressionDevice
    locator: ProgressionLocator
