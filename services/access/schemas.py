"""Request and response bodies of the access API.

Every request model forbids unknown fields: a `role` slipped into a
registration is refused, never silently applied or ignored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from services.access.passwords import MAX_PASSWORD_LENGTH, password_policy
from shared.contracts.decisions import Decision, DecisionRequest
from shared.contracts.roles import Role
from shared.contracts.text import LanguageTag, PersonName, SingleLine

# A person's name, as teachers, classmates and spreadsheets show it (#37 F4: no
# zero-width or other invisible format characters).
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), PersonName
]
# The policy (length, variety...) is checked by the service, which can say what is wrong.
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Registration(StrictModel):
    email: EmailStr
    password: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)] = (
        Field(
            description="A password needs "
            + password_policy(10).replace("at least 10", "at least 10 (ACCESS_PASSWORD_MIN_LENGTH)")
            + ". A refusal (422 weak-password) lists what is missing."
        )
    )
    display_name: DisplayName
    birth_year: int = Field(
        ge=1900,
        le=2100,
        description="The year the person signing up was born: the only age question. "
        "Anyone who could still be under 13 also gives `parent_email`, and the account "
        "is `pending` until that parent agrees (README: Privacy).",
    )
    parent_email: EmailStr | None = Field(
        default=None, description="A parent's or guardian's address; required under 13."
    )


class Credentials(StrictModel):
    # Documented as an email (#38); read as any string, so a malformed one gets the
    # answer a wrong password gets, not a 422 that tells them apart.
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)] = Field(
        json_schema_extra={"format": "email"}
    )
    password: Password
    device_token: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="The device_token of this device's last sign-in to this account: while "
        "the account is under a guessing attack from many addresses, only such devices "
        "may sign in (429 new-devices-paused otherwise).",
    )


class RefreshRequest(StrictModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class LogoutRequest(StrictModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class ServiceCredentials(StrictModel):
    grant_type: Literal["client_credentials"] = "client_credentials"
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    client_secret: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")
    device_token: str | None = Field(
        default=None,
        description="Keep it on this device and send it with the next sign-in "
        "(only a sign-in answers one).",
    )


class OAuthError(BaseModel):
    """An OAuth 2.0 token endpoint's refusal (RFC 6749 5.2)."""

    error: Literal["invalid_request", "invalid_grant", "unsupported_grant_type"]
    error_description: str


class ServiceToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str | None = Field(description="Null for a class account (a child without email)")
    username: str | None = Field(
        default=None, description="A class account's name in its class; null otherwise"
    )
    display_name: str
    role: Role
    review_languages: list[str] = Field(
        default_factory=list, description="For story managers: the languages they review"
    )
    reading_languages: list[str] = Field(
        default_factory=list, description="The languages they read, as they said (#42)"
    )
    consent: str = Field(
        default="not-asked",
        description="On what ground the account's data is held: `parent` (a parent agreed), "
        "`pending` (waiting for a parent; cannot sign in), `school` (a class account, under "
        "its school's consent), `not-needed` (13 or over), `not-asked` (made before the age "
        "question, or by an ADMIN)",
    )
    created_at: datetime


class RoleChange(StrictModel):
    role: Role


class ReviewLanguages(StrictModel):
    languages: list[LanguageTag] = Field(
        max_length=30,
        description="The languages this story manager reviews; empty: every language",
    )


class EntitlementSource(StrEnum):
    TEACHER_ASSIGNMENT = "teacher_assignment"
    PURCHASE = "purchase"
    PROMOTION = "promotion"
    ADMIN_GRANT = "admin_grant"


class EntitlementGrant(StrictModel):
    user_id: uuid.UUID
    book_id: uuid.UUID
    source: EntitlementSource
    expires_at: AwareDatetime | None = None


class BulkEntitlementGrant(StrictModel):
    user_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=500)]
    book_id: uuid.UUID
    source: EntitlementSource
    expires_at: AwareDatetime | None = None


class EntitlementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    book_id: uuid.UUID
    source: str
    granted_by: uuid.UUID | None
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class BulkGrantResult(BaseModel):
    granted: list[EntitlementOut]
    already_entitled: list[uuid.UUID] = Field(
        description="Users who already had an active entitlement to the book; left unchanged"
    )


class ReadableBook(BaseModel):
    book_id: uuid.UUID
    title: str | None
    language: str | None
    reading_level: str | None = Field(default=None, description="Null until content says")
    family_id: uuid.UUID | None = Field(
        default=None, description="The story family: the book's other languages and levels"
    )
    access: Literal["free", "entitled"]
    reason: Literal["free", "entitled", "staff"]
    assigned: bool = Field(
        default=False, description="Assigned to one of the caller's classes (listed first)"
    )
    due_at: datetime | None = Field(
        default=None, description="The earliest due date among those assignments"
    )


class NextBook(BaseModel):
    """One of a reader's next books (#42), with why."""

    book_id: uuid.UUID
    title: str | None
    language: str | None
    reading_level: str | None
    family_id: uuid.UUID | None
    reason: Literal["assigned", "because-you-read", "popular"]
    reason_text: str = Field(description="The reason in words, e.g. `because you read Moon`")
    because_book_id: uuid.UUID | None = Field(description="For because-you-read: that book")
    assigned: bool
    due_at: datetime | None = Field(description="For an assigned book: its earliest due date")


class NextBooks(BaseModel):
    items: list[NextBook] = Field(description="Best first; assigned books before the rest")
    note: Literal["no-history", "no-books-in-language", "read-everything"] | None = Field(
        description="Why the list is short, empty or only popular books; null otherwise"
    )


class ReadingLanguages(StrictModel):
    languages: list[LanguageTag] = Field(max_length=10, description="Most read first")


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    actor_id: uuid.UUID | None
    action: str
    subject_type: str
    subject_id: uuid.UUID
    before: dict[str, object] | None
    after: dict[str, object] | None
    at: datetime


class DecisionBatch(StrictModel):
    requests: Annotated[list[DecisionRequest], Field(min_length=1, max_length=100)]


class DecisionBatchResult(BaseModel):
    results: list[Decision]


# --- classes (#19) ----------------------------------------------------------------------

ClassName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SingleLine
]
Grade = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30), SingleLine
]
ClassCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=4, max_length=20),
    Field(description="The class's code as the teacher gave it; case, spaces and dashes "
          "do not matter"),
]  # fmt: skip
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30)]


class ClassCreate(StrictModel):
    name: ClassName
    grade: Grade | None = None


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    grade: str | None
    teacher_id: uuid.UUID
    join_code: str = Field(description="Learners join with it, and sign in with it")
    join_code_expires_at: datetime | None = Field(
        description="Joining ends then; signing in with the code goes on"
    )
    archived_at: datetime | None
    created_at: datetime
    learner_count: int = 0


class JoinCodeRotation(StrictModel):
    expires_in_days: int | None = Field(
        default=None, ge=1, le=365, description="Default: ACCESS_JOIN_CODE_DAYS (30)"
    )


class LearnerNames(StrictModel):
    display_names: Annotated[list[DisplayName], Field(min_length=1, max_length=100)]


class NewLearnerOut(BaseModel):
    user_id: uuid.UUID
    display_name: str
    username: str
    password: str = Field(description="The first password: shown this once, never again")


class NewLearners(BaseModel):
    class_id: uuid.UUID
    join_code: str
    learners: list[NewLearnerOut]


class ClassMemberOut(BaseModel):
    user_id: uuid.UUID
    display_name: str
    username: str | None = Field(description="Set for class accounts; null for email accounts")
    joined_at: datetime


class PasswordResetOut(BaseModel):
    user_id: uuid.UUID
    username: str | None
    password: str = Field(description="The new password: shown this once, never again")


class ClassJoin(StrictModel):
    code: ClassCode


class JoinedClass(BaseModel):
    """What a learner sees of a class: never its members."""

    class_id: uuid.UUID
    name: str
    grade: str | None


class ClassRegistration(StrictModel):
    code: ClassCode
    display_name: DisplayName
    password: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)] = (
        Field(description="At least 4 characters (ACCESS_CLASS_PASSWORD_MIN_LENGTH), 3 different")
    )


class ClassAccountOut(BaseModel):
    user_id: uuid.UUID
    display_name: str
    username: str = Field(description="Sign in with the class code, this and the password")
    class_id: uuid.UUID


class ClassCredentials(StrictModel):
    code: ClassCode
    username: Username
    password: Password


class AssignmentCreate(StrictModel):
    book_id: uuid.UUID
    due_at: AwareDatetime | None = None


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    class_id: uuid.UUID
    book_id: uuid.UUID
    due_at: datetime | None
    assigned_by: uuid.UUID
    assigned_at: datetime
    granted: int | None = Field(
        default=None,
        description="On creation: learners given the book now (the others already had it)",
    )


class ConsentRequestOut(BaseModel):
    """What a parent's link asks (`purpose` give) or offers (`purpose` withdraw)."""

    purpose: Literal["give", "withdraw"]
    child: str = Field(description="The name the child signed up with")
    child_email: str | None
    requested_at: datetime
    expires_at: datetime | None = Field(description="Until when the parent may agree")
    given_at: datetime | None


class ConsentAnswer(StrictModel):
    answer: Literal["agree", "refuse"] = Field(
        description="`agree` (a give link only) or `refuse`: refusing, or withdrawing "
        "later, erases the child's account and everything it held"
    )


class ConsentOutcome(BaseModel):
    consent: Literal["parent", "erased"]


class ExportOut(BaseModel):
    """A data export (#41): `gathering` its parts, `ready` (a link), or `expired`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: Literal["gathering", "ready", "expired"]
    requested_at: datetime
    ready_at: datetime | None
    expires_at: datetime | None = Field(description="Until when the archive is kept")
    parts_ready: list[str] = Field(default_factory=list, description="While gathering")
    download_url: str | None = Field(
        default=None, description="The zip, by a signed link that lasts ACCESS_EXPORT_LINK_SECONDS"
    )
