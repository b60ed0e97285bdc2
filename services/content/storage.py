"""Manuscripts and covers in S3: presigned uploads, checks, download links, publication.

Authors upload straight to the uploads bucket with a presigned POST whose
policy fixes the exact key, the content type and the size range, so neither a
big file nor a stray key ever passes through (or around) this service. Nothing
uploaded is trusted until it has been read back, and what is read back is a
copy under `checked/`, a prefix no upload ticket can name: a ticket's fields
posted again after the check (they stay valid until the ticket expires) change
an object nobody reads any more. Review and publication use only the copy.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from services.content.pdfcheck import Limits, check_manuscript_file
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, ServiceUnavailable, Unprocessable

PDF_CONTENT_TYPE = "application/pdf"
PDF_MAGIC = b"%PDF-"
SNIFF_BYTES = 12  # enough for every signature below
# A manuscript is read to its check's file in pieces of this size: never whole in memory.
STREAM_CHUNK_BYTES = 1024 * 1024


class ManuscriptRefused(Unprocessable):
    """The manuscript failed the deep check: the 422 says why, and so does its history."""


class ChecksBusy(ServiceUnavailable):
    """Every place for a deep check in this process is taken, and so is every place
    in the line for one: the author submits again in a moment."""

    code = "manuscript-checks-busy"
    RETRY_AFTER_SECONDS = 5

    def __init__(self, detail: str | None = None, **kw: object) -> None:
        super().__init__(
            detail or "Too many manuscripts are being checked right now; submit again shortly.",
            **kw,
        )


class CheckQueue:
    """At most `at_once` deep checks run in this process, and at most `waiting` more
    wait for a place; past that a submit is refused at once (503, Retry-After).

    Each check's child may use up to its memory limit (hostile files reach it), so
    an unbounded number of them would take the task down with them; Terraform sizes
    content's task for `at_once` checks beside the service itself."""

    def __init__(self, *, at_once: int, waiting: int) -> None:
        self._places = asyncio.Semaphore(at_once)
        self._admitted = 0
        self._capacity = at_once + waiting

    @property
    def admitted(self) -> int:
        """Checks running or waiting now."""
        return self._admitted

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        if self._admitted >= self._capacity:
            raise ChecksBusy()
        self._admitted += 1
        try:
            async with self._places:
                yield
        finally:
            self._admitted -= 1


@dataclass(frozen=True)
class UploadKind:
    noun: str
    # content type -> does a file of that type start with these bytes?
    signatures: dict[str, Callable[[bytes], bool]]
    impostor_code: str


MANUSCRIPT = UploadKind(
    "manuscript", {PDF_CONTENT_TYPE: lambda b: b.startswith(PDF_MAGIC)}, "manuscript-not-pdf"
)
COVER = UploadKind(
    "cover",
    {
        "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
        "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    },
    "cover-not-an-image",
)
COVER_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def upload_key(submission_id: uuid.UUID) -> str:
    # A fresh random part per ticket: an old ticket cannot overwrite what a
    # newer one uploaded, and keys cannot be guessed from the submission id.
    return f"manuscripts/{submission_id}/{secrets.token_urlsafe(16)}.pdf"


def belongs_to(key: str, submission_id: uuid.UUID) -> bool:
    prefix = f"manuscripts/{submission_id}/"
    rest = key.removeprefix(prefix)
    return key.startswith(prefix) and re.fullmatch(r"[A-Za-z0-9_-]+\.pdf", rest) is not None


CHECKED_PREFIX = "checked/"


def checked_key(upload_key: str) -> str:
    """Where the checked copy of an upload lives: only this service writes there."""
    return f"{CHECKED_PREFIX}{upload_key}"


def cover_upload_key(book_id: uuid.UUID, content_type: str) -> str:
    return f"covers/{book_id}/{secrets.token_urlsafe(16)}.{COVER_EXTENSIONS[content_type]}"


def published_cover_key(book_id: uuid.UUID, edition: int, content_type: str) -> str:
    extension = COVER_EXTENSIONS[content_type]
    return f"covers/{book_id}/{edition}-{secrets.token_urlsafe(12)}.{extension}"


def published_key(book_id: uuid.UUID, edition: int) -> str:
    # Unguessable and new for every edition: a link to one edition can never
    # serve another, and the object under a key never changes.
    return f"books/{book_id}/{edition}-{secrets.token_urlsafe(24)}.pdf"


def processed_key(book_id: uuid.UUID, edition: int, name: str) -> str:
    """Where a file made by processing goes: the lite edition under books/ (private,
    served through signed links), thumbnails under covers/ (public, as covers are).
    Unguessable and new for every edition, as the book's own key is."""
    folder = "covers" if name.endswith(".webp") else "books"
    return f"{folder}/{book_id}/{edition}-{secrets.token_urlsafe(24)}-{name}"


def content_disposition(filename: str, *, inline: bool = True) -> str:
    """The download's file name as the uploader gave it (RFC 6266): `filename*` carries
    it in UTF-8, so "Маша и медведь.pdf" or "Ngano za Sungura.pdf" arrive intact in
    every current browser; `filename` is an ASCII stand-in for older clients. Both
    are ASCII on the wire, as S3 requires of a stored header."""
    kind = "inline" if inline else "attachment"
    fallback = re.sub(r"[^A-Za-z0-9._ ()-]", "_", filename)[:150] or "book.pdf"
    if fallback == filename:
        return f'{kind}; filename="{fallback}"'
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def filename_for(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80]
    return f"{slug or 'manuscript'}.pdf"


@dataclass(frozen=True)
class UploadForm:
    url: str
    fields: dict[str, str]
    expires_at: datetime
    content_type: str
    max_bytes: int


@dataclass(frozen=True)
class CheckedUpload:
    """An upload's checked copy, whose bytes no one else can change."""

    key: str
    size: int
    content_type: str


# Covers and thumbnails only (never books/): covers/<book id>/<random name>.<ext>.
PUBLIC_PICTURE_KEY = re.compile(r"covers/[0-9a-f-]{36}/[A-Za-z0-9_.-]{1,200}\.(png|jpg|webp)")


@dataclass(frozen=True)
class PublicPicture:
    data: bytes
    content_type: str
    etag: str
    cache_control: str


@dataclass(frozen=True)
class InspectedManuscript:
    """What the deep check read: its pages, and the bytes it read, by digest and version."""

    pages: int
    sha256: str
    # The S3 version of the checked copy ("null" where the bucket keeps none).
    version: str


@dataclass(frozen=True)
class PublishedObject:
    key: str
    version: str


def sha256_base64(hex_digest: str) -> str:
    """A hex SHA-256 as S3 spells a checksum (base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


async def stream_to_file(body: Any, path: Path) -> str:
    """An S3 body (aiobotocore's StreamingBody) written to `path` piece by piece, then
    closed; the SHA-256 (hex) of what was written."""
    digest = hashlib.sha256()
    file = await asyncio.to_thread(path.open, "wb")
    try:
        async with body:
            while chunk := await body.read(STREAM_CHUNK_BYTES):
                digest.update(chunk)
                await asyncio.to_thread(file.write, chunk)
    finally:
        await asyncio.to_thread(file.close)
    return digest.hexdigest()


class ManuscriptStorage:
    def __init__(
        self,
        s3: Any,
        *,
        uploads_bucket: str,
        published_bucket: str,
        presigner: Any = None,
        checks: CheckQueue | None = None,
    ) -> None:
        self._s3 = s3
        self.checks = checks or CheckQueue(at_once=1, waiting=0)
        # Links are for browsers: signed for the address they reach S3 at.
        self._presigner = presigner or s3
        self.uploads_bucket = uploads_bucket
        self.published_bucket = published_bucket

    async def upload_form(
        self, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> UploadForm:
        post = await self._presigner.generate_presigned_post(
            Bucket=self.uploads_bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=expires_in,
        )
        return UploadForm(
            url=post["url"],
            fields={k: str(v) for k, v in post["fields"].items()},
            expires_at=now_utc() + timedelta(seconds=expires_in),
            content_type=content_type,
            max_bytes=max_bytes,
        )

    async def check_manuscript(self, upload_key: str, *, max_bytes: int) -> CheckedUpload:
        """Pin an uploaded manuscript and check it; or refuse it (422) and delete it.

        A refused upload is deleted so nothing half-done stays behind; the author
        asks for a new upload ticket and tries again.
        """
        return await self._check(upload_key, MANUSCRIPT, max_bytes=max_bytes)

    async def inspect_manuscript(self, key: str, limits: Limits) -> InspectedManuscript:
        """The deep check of a pinned manuscript (services/content/pdfcheck.py), read
        to a file piece by piece: what it read, by digest and version; or
        ManuscriptRefused, the pinned copy deleted. (Callers hold a place of
        `checks` meanwhile.)"""
        with tempfile.TemporaryDirectory(prefix="stories-manuscript-") as folder:
            path = Path(folder) / "manuscript.pdf"
            found = await self._s3.get_object(Bucket=self.uploads_bucket, Key=key)
            version = str(found.get("VersionId") or "null")
            sha256 = await stream_to_file(found["Body"], path)
            verdict = await check_manuscript_file(str(path), limits)
        if not verdict.ok:
            await self._s3.delete_object(Bucket=self.uploads_bucket, Key=key)
            raise ManuscriptRefused(verdict.reason, code=verdict.code)
        return InspectedManuscript(pages=verdict.pages, sha256=sha256, version=version)

    async def check_cover(self, upload_key: str, *, max_bytes: int) -> CheckedUpload:
        """Pin an uploaded cover image and check it; or refuse it (422) and delete it."""
        return await self._check(upload_key, COVER, max_bytes=max_bytes)

    async def _check(self, upload_key: str, kind: UploadKind, *, max_bytes: int) -> CheckedUpload:
        # Copy first, then check the copy: checking the upload and copying it
        # afterwards would leave a moment in which the ticket could replace it.
        key = checked_key(upload_key)
        try:
            await self._s3.copy_object(
                Bucket=self.uploads_bucket,
                Key=key,
                CopySource={"Bucket": self.uploads_bucket, "Key": upload_key},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
            # A retry after a failed commit finds the upload gone and its copy
            # made: check the copy again. With neither, nothing was uploaded.
            if not await self._exists(key):
                raise Unprocessable(
                    f"No {kind.noun} has been uploaded: ask for an upload ticket and POST "
                    "the file to it first.",
                    code=f"{kind.noun}-missing",
                ) from exc
        try:
            size, content_type = await self._verify(key, kind, max_bytes=max_bytes)
        finally:
            # Whatever the verdict, the ticket's object is done with.
            await self._s3.delete_object(Bucket=self.uploads_bucket, Key=upload_key)
        return CheckedUpload(key, size, content_type)

    async def _exists(self, key: str) -> bool:
        try:
            await self._s3.head_object(Bucket=self.uploads_bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def _verify(self, key: str, kind: UploadKind, *, max_bytes: int) -> tuple[int, str]:
        noun = kind.noun
        head = await self._s3.head_object(Bucket=self.uploads_bucket, Key=key)
        size = int(head["ContentLength"])
        content_type = head.get("ContentType", "").split(";")[0].strip().lower()
        problem: Unprocessable | None = None
        if size == 0:
            problem = Unprocessable(f"The uploaded {noun} is empty.", code=f"{noun}-empty")
        elif size > max_bytes:
            problem = Unprocessable(
                f"The uploaded {noun} is {size} bytes; the limit is {max_bytes}.",
                code=f"{noun}-too-large",
            )
        elif content_type not in kind.signatures:
            problem = Unprocessable(
                f"The {noun} must be uploaded as {' or '.join(kind.signatures)}.",
                code=f"{noun}-wrong-type",
            )
        else:
            start = await self._s3.get_object(
                Bucket=self.uploads_bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}"
            )
            async with start["Body"] as body:
                head_bytes = await body.read()
            if not kind.signatures[content_type](head_bytes):
                problem = Unprocessable(
                    f"The uploaded file is not really {content_type} (its first bytes say "
                    "otherwise).",
                    code=kind.impostor_code,
                )
        if problem is not None:
            await self._s3.delete_object(Bucket=self.uploads_bucket, Key=key)
            raise problem
        return size, content_type

    async def download_link(
        self, key: str, *, filename: str, expires_in: int, version: str | None = None
    ) -> str:
        """A reviewer's link to the checked copy: to the version that was checked,
        where one was pinned, so even a changed object under the key is not served."""
        params = {
            "Bucket": self.uploads_bucket,
            "Key": key,
            "ResponseContentType": PDF_CONTENT_TYPE,
            "ResponseContentDisposition": content_disposition(filename, inline=False),
        }
        if version not in (None, "null"):
            params["VersionId"] = version
        url: str = await self._presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_in
        )
        return url

    async def publish(
        self,
        source_key: str,
        *,
        key: str,
        filename: str,
        cache_seconds: int,
        source_version: str | None = None,
        source_sha256: str | None = None,
    ) -> PublishedObject:
        """Copy a verified manuscript to the published bucket (server side, no download).

        With a pinned version and digest, the copy is of that version, and S3's own
        SHA-256 of the copy must be the digest the check read: what was checked is
        what is published, whatever happened to the key since. (Rows from before the
        pin carry neither and are copied by key.)"""
        source = {"Bucket": self.uploads_bucket, "Key": source_key}
        if source_version not in (None, "null"):
            source["VersionId"] = source_version
        extra = {"ChecksumAlgorithm": "SHA256"} if source_sha256 else {}
        try:
            copied = await self._s3.copy_object(
                Bucket=self.published_bucket,
                Key=key,
                CopySource=source,
                MetadataDirective="REPLACE",
                ContentType=PDF_CONTENT_TYPE,
                ContentDisposition=content_disposition(filename),
                CacheControl=f"private, max-age={cache_seconds}, immutable",
                ServerSideEncryption="AES256",
                **extra,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                raise Conflict(
                    "The book's checked manuscript is missing from storage; "
                    "it cannot be published until it is restored.",
                    code="manuscript-gone",
                ) from exc
            raise
        if source_sha256:
            copied_sha = copied.get("CopyObjectResult", {}).get("ChecksumSHA256")
            if copied_sha != sha256_base64(source_sha256):
                # Nothing points to the copy: take it away, and refuse loudly.
                await self._s3.delete_object(
                    Bucket=self.published_bucket,
                    Key=key,
                    **({"VersionId": copied["VersionId"]} if copied.get("VersionId") else {}),
                )
                raise Conflict(
                    "The stored manuscript is not the one that was checked and reviewed; "
                    "it is not published. Submit the manuscript again.",
                    code="manuscript-changed",
                )
        # The bucket is versioned; without versioning the key alone is unique.
        return PublishedObject(key=key, version=str(copied.get("VersionId") or "null"))

    async def public_picture(self, key: str, *, max_bytes: int) -> PublicPicture | None:
        """A cover or thumbnail of the published bucket (under covers/, public by
        design: CloudFront serves them to anyone), or None where there is none (or
        it is larger than any picture the platform makes). Never a book's PDF."""
        if not PUBLIC_PICTURE_KEY.fullmatch(key):
            return None
        try:
            found = await self._s3.get_object(Bucket=self.published_bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        async with found["Body"] as body:
            if int(found.get("ContentLength", 0)) > max_bytes:
                return None
            data = await body.read()
        return PublicPicture(
            data=data,
            content_type=str(found.get("ContentType") or "application/octet-stream"),
            etag=str(found.get("ETag") or ""),
            cache_control=str(found.get("CacheControl") or "public, max-age=3600"),
        )

    async def download_published(self, key: str, version: str, target: Path) -> int:
        """The published object's bytes, that very version, into `target`; its size."""
        extra = {} if version == "null" else {"VersionId": version}
        found = await self._s3.get_object(Bucket=self.published_bucket, Key=key, **extra)
        await stream_to_file(found["Body"], target)
        return (await asyncio.to_thread(target.stat)).st_size

    async def put_processed(
        self, source: Path, *, key: str, content_type: str, cache_control: str, filename: str = ""
    ) -> PublishedObject:
        """A file made by processing, into the published bucket."""
        data = await asyncio.to_thread(source.read_bytes)
        extra = {"ContentDisposition": content_disposition(filename)} if filename else {}
        put = await self._s3.put_object(
            Bucket=self.published_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=cache_control,
            ServerSideEncryption="AES256",
            **extra,
        )
        return PublishedObject(key=key, version=str(put.get("VersionId") or "null"))

    async def publish_cover(
        self, source_key: str, *, key: str, content_type: str, cache_seconds: int
    ) -> None:
        await self._s3.copy_object(
            Bucket=self.published_bucket,
            Key=key,
            CopySource={"Bucket": self.uploads_bucket, "Key": source_key},
            MetadataDirective="REPLACE",
            ContentType=content_type,
            # Covers are public pictures under keys that never change.
            CacheControl=f"public, max-age={cache_seconds}, immutable",
            ServerSideEncryption="AES256",
        )
