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
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from services.content.check_queue import CheckQueue
from services.content.object_keys import (
    COVER,
    MANUSCRIPT,
    PDF_CONTENT_TYPE,
    PUBLIC_PICTURE_KEY,
    SNIFF_BYTES,
    UploadKind,
    checked_key,
    content_disposition,
)
from services.content.pdfcheck import Limits, check_manuscript_file
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, Unprocessable

# A manuscript is read to its check's file in pieces of this size: never whole in memory.
STREAM_CHUNK_BYTES = 1024 * 1024


class ManuscriptRefused(Unprocessable):
    """The manuscript failed the deep check: the 422 says why, and so does its history."""


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
    # What its text says (services/content/manuscript_analysis.py); None if that failed.
    analysis: dict[str, Any] | None = None


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

    async def inspect_manuscript(
        self, key: str, limits: Limits, language: str | None = None
    ) -> InspectedManuscript:
        """The deep check of a pinned manuscript (services/content/pdfcheck.py), read
        to a file piece by piece: what it read, by digest and version; or
        ManuscriptRefused, the pinned copy deleted. (Callers hold a place of
        `checks` meanwhile.)"""
        with tempfile.TemporaryDirectory(prefix="stories-manuscript-") as folder:
            path = Path(folder) / "manuscript.pdf"
            found = await self._s3.get_object(Bucket=self.uploads_bucket, Key=key)
            version = str(found.get("VersionId") or "null")
            sha256 = await stream_to_file(found["Body"], path)
            verdict = await check_manuscript_file(str(path), limits, language)
        if not verdict.ok:
            await self._s3.delete_object(Bucket=self.uploads_bucket, Key=key)
            raise ManuscriptRefused(verdict.reason, code=verdict.code)
        return InspectedManuscript(
            pages=verdict.pages, sha256=sha256, version=version, analysis=verdict.analysis
        )

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
