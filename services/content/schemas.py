"""Request and response bodies of the content API.

Request models forbid unknown fields: a `status`, `author_id` or `version`
slipped into a body is refused, never applied or silently dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.content.families import Family, credit_name_problem
from shared.contracts.events import BookAccess, BookFormatName, ReviewDecision
from shared.contracts.text import LanguageTag, MultiLine, PersonName, SingleLine

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine
]
Summary = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), MultiLine
]
Language = LanguageTag
Category = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,49}$")]
# strict: true and "7" are not ages.
Age = Annotated[int, Field(ge=0, le=18, strict=True)]
ReadingLevel = Literal["emergent", "early", "transitional", "fluent"]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000), MultiLine]
# A file name for the download's Content-Disposition: no paths, no control characters.
FileName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, pattern=r"^[^/\\\x00-\x1f\x7f\"]{1,150}\.pdf$", max_length=150
    ),
]


Licence = Literal["CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0",
                  "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0"]  # fmt: skip


def _just_a_name(name: str) -> str:
    problem = credit_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


CreditName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    PersonName,
    AfterValidator(_just_a_name),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_ages(values: Any) -> Any:
    if isinstance(values, dict):
        low, high = values.get("age_min"), values.get("age_max")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            raise ValueError("age_min must not be above age_max")
    return values


class StoryMetadata(StrictModel):
    title: Title
    summary: Summary
    language: Language
    age_min: Age
    age_max: Age
    category: Category
    reading_level: ReadingLevel

    _ages = model_validator(mode="before")(_check_ages)


class Credit(StrictModel):
    role: Literal["author", "illustrator", "translator", "adapter"]
    name: CreditName = Field(description="As printed in the attribution")
    account_id: uuid.UUID | None = Field(
        default=None, description="The platform account of the person credited, if any"
    )


Credits = Annotated[list[Credit], Field(max_length=30)]


class SubmissionCreate(StoryMetadata):
    credits: Credits = Field(
        default_factory=list, description="Authors and illustrators, in the order shown"
    )
    licence: Licence = Field(default="CC-BY-4.0", description="A Creative Commons licence")


class DerivationRequest(StrictModel):
    """A translation names its language; an adaptation its reading level."""

    kind: Literal["translation", "adaptation"]
    language: Language | None = Field(default=None, description="For a translation")
    reading_level: ReadingLevel | None = Field(default=None, description="For an adaptation")
    credited_as: CreditName | None = Field(
        default=None, description="Your name as the attribution prints it"
    )

    @model_validator(mode="after")
    def _one_change(self) -> DerivationRequest:
        if self.kind == "translation" and (self.language is None or self.reading_level):
            raise ValueError("a translation names a language (and keeps the reading level)")
        if self.kind == "adaptation" and (self.reading_level is None or self.language):
            raise ValueError("an adaptation names a reading_level (and keeps the language)")
        return self


class MetadataChanges(StrictModel):
    """Only the fields sent change; the age range is checked as a whole by the service."""

    title: Title | None = None
    summary: Summary | None = None
    language: Language | None = None
    age_min: Age | None = None
    age_max: Age | None = None
    category: Category | None = None
    reading_level: ReadingLevel | None = None

    _ages = model_validator(mode="before")(_check_ages)


class SubmissionUpdate(MetadataChanges):
    credits: Credits | None = None
    licence: Licence | None = Field(default=None, description="An original's only")


class CreditOut(BaseModel):
    role: str
    name: str
    account_id: uuid.UUID | None = None


class Lineage(BaseModel):
    """Where a story comes from (the same on a submission and its book)."""

    model_config = ConfigDict(from_attributes=True)

    family_id: uuid.UUID = Field(description="The story family: the original and its versions")
    derived_from: uuid.UUID | None = Field(
        default=None, description="The book this one translates or adapts"
    )
    derivation: Literal["original", "translation", "adaptation"]
    credits: list[CreditOut]
    licence: str


class Finding(BaseModel):
    """A reason for a reviewer to look closer; never a refusal on its own."""

    kind: str = Field(
        description="language-mismatch, level-differs, no-text, phone-number, offensive-word…"
    )
    severity: Literal["info", "warning", "severe"]
    page: int | None = Field(default=None, description="1-based, where it has one")
    excerpt: str | None = Field(default=None, description="Masked where it is personal data")
    detail: str


class DetectedLanguage(BaseModel):
    language: str | None = Field(description="A primary subtag; null when it cannot be told")
    confidence: float = Field(description="0 to 1: the share of the text in it")
    reliable: bool


class ManuscriptAnalysis(BaseModel):
    """What a careful first reader noticed in the pinned manuscript's text, at submit."""

    detected_language: DetectedLanguage
    measured_in: str = Field(description="The language the reading features were measured in")
    estimated_level: ReadingLevel | None = Field(description="Null without a text layer")
    score: float | None = Field(description="Difficulty, higher is harder; null without text")
    method: Literal["fitted thresholds", "word-count rule", "no text"]
    features: dict[str, Any] = Field(description="And `unavailable`: what a language lacks")
    findings: list[Finding] = Field(description="The most severe first")
    checks: dict[str, Any] = Field(
        default_factory=dict, description="Per check: the languages it `checked`, `unavailable`"
    )


class SubmissionOut(Lineage):
    id: uuid.UUID
    author_id: uuid.UUID
    title: str
    summary: str
    language: str
    age_min: int
    age_max: int
    category: str
    reading_level: str
    status: str
    version: int = Field(description="Send back as `If-Match` to change this submission")
    manuscript_size: int | None = Field(
        default=None, description="Bytes of the verified manuscript; null until submitted"
    )
    manuscript_filename: str | None = None
    # Not read from the row (validation_alias): submission_out compares what was measured.
    analysis: ManuscriptAnalysis | None = Field(default=None, validation_alias="compared")
    held: bool = Field(description="A severe finding holds it until a CONTENT_ADMIN clears it")
    flagged: bool = Field(description="Its analysis found a warning or worse: first in the queue")
    confirmed_level: ReadingLevel | None = Field(description="As its reviewer confirmed it")
    level_confirmed_by: uuid.UUID | None
    level_confirmed_at: datetime | None
    reviewer_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    overdue: bool = Field(
        default=False,
        description="Waiting for review longer than CONTENT_REVIEW_OVERDUE_DAYS",
    )


class ClearanceRequest(StrictModel):
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000), MultiLine
    ] = Field(description="Why the held manuscript may go on: kept in its history")


SIZE_IF_KNOWN = "Bytes, if known: an oversized file is refused now"


class UploadRequest(StrictModel):
    filename: FileName | None = Field(
        default=None, description="Shown as the download's file name; defaults to the title"
    )
    # Documented as the one value taken (#38: a free string gave a generated client
    # no hint); another is still read, to be refused with a clear 415.
    content_type: Annotated[str, StringConstraints(max_length=100)] = Field(
        default="application/pdf",
        description="Must be application/pdf (415 otherwise)",
        json_schema_extra={"enum": ["application/pdf"]},
    )
    size: int | None = Field(default=None, gt=0, strict=True, description=SIZE_IF_KNOWN)


class CoverUploadRequest(StrictModel):
    content_type: Annotated[str, StringConstraints(max_length=100)] = Field(
        description="image/png, image/jpeg or image/webp (415 otherwise)",
        json_schema_extra={"enum": ["image/png", "image/jpeg", "image/webp"]},
    )
    size: int | None = Field(default=None, gt=0, strict=True, description=SIZE_IF_KNOWN)


class UploadTicket(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    url: str = Field(description="POST a multipart form here")
    fields: dict[str, str] = Field(description="Form fields to send before the `file` field")
    content_type: str
    max_bytes: int
    expires_at: datetime


class ClaimRequest(StrictModel):
    take_over: bool = Field(
        default=False,
        description="Take over a submission another reviewer has in review (recorded in "
        "its history); without it, another's claim is a 409",
    )


class ReviewRequest(StrictModel):
    decision: ReviewDecision
    notes: Notes | None = Field(
        default=None, description="Required when requesting changes or rejecting"
    )
    reading_level: ReadingLevel | None = Field(
        default=None,
        description="On approval: the level you confirm (the declared one) or correct it "
        "to; kept with who and when, and what the estimator's thresholds are fitted on",
    )


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: str | None
    to_status: str
    actor_id: uuid.UUID
    actor_role: str
    notes: str | None
    at: datetime


class ManuscriptLink(BaseModel):
    url: str
    expires_at: datetime


class BookCreate(MetadataChanges):
    """The book takes the submission's metadata; fields sent here override it."""

    submission_id: uuid.UUID
    access: BookAccess
    credits: Credits | None = Field(default=None, description="Defaults to the submission's")


class BookUpdate(MetadataChanges):
    access: BookAccess | None = None
    credits: Credits | None = None


class FamilyVersion(BaseModel):
    """Another published version of the same story."""

    book_id: uuid.UUID
    title: str
    language: str
    reading_level: str


class FormatOut(BaseModel):
    format: BookFormatName = Field(
        description="Ask delivery for it: `POST /v1/deliveries {book_id, format}`"
    )
    size_bytes: int


class BookOut(Lineage):
    id: uuid.UUID
    title: str
    summary: str
    language: str
    age_min: int
    age_max: int
    category: str
    reading_level: str = Field(description="As its reviewer confirmed it")
    estimated_level: str | None = Field(
        default=None, description="What the analysis of its text estimated; null without text"
    )
    access: BookAccess
    status: str
    version: int = Field(description="Send back as `If-Match` to change this book")
    edition: int = Field(description="How many times it has been published")
    published_at: datetime | None
    cover_url: str | None = Field(
        default=None, description="The published cover image, if the book has one"
    )
    superseded_by: uuid.UUID | None = Field(
        default=None, description="The newer version that took this one's place in the catalog"
    )
    page_count: int | None = Field(
        default=None, description="Known once the publication is processed (seconds after it)"
    )
    formats: list[FormatOut] = Field(
        default_factory=list,
        description="What it can be read in, with each file's size: `pdf` as published, "
        "`pdf-lite` with its pictures made light for slow connections. Empty until the "
        "publication is processed.",
    )
    thumbnails: dict[str, str] = Field(
        default_factory=dict,
        description="The first page as WebP, by width in pixels (`200`, `600`)",
    )
    attribution: str = Field(
        default="",
        description="Ready to print: who made this version, from which work, under what licence",
    )
    versions: list[FamilyVersion] = Field(
        default_factory=list,
        description="The family's other published versions (language and level → book)",
    )

    @field_validator("formats", mode="before")
    @classmethod
    def _not_processed_yet(cls, formats: Any) -> Any:
        return [] if formats is None else formats

    @classmethod
    def of(cls, book: Any, assets_url: str | None, family: Family) -> BookOut:
        out = cls.model_validate(book)
        if assets_url:
            base = assets_url.rstrip("/")
            out.thumbnails = {w: f"{base}/{k}" for w, k in (book.thumbnail_keys or {}).items()}
            if book.cover_key:
                out.cover_url = f"{base}/{book.cover_key}"
            else:  # no cover uploaded: the first page stands in for it
                out.cover_url = out.thumbnails.get("600")
        out.attribution = family.attribution(book)
        out.versions = [
            FamilyVersion(
                book_id=v.id, title=v.title, language=v.language, reading_level=v.reading_level
            )
            for v in family.published_versions(besides=book.id)
        ]
        return out


class FamilyOut(BaseModel):
    family_id: uuid.UUID
    original_id: uuid.UUID | None = Field(description="The original, if it is visible to you")
    versions: list[BookOut] = Field(description="By language, then reading level")


BookStatusFilter = Literal["DRAFT", "PUBLISHED", "UNPUBLISHED"]
