"""Where every object of the content service lives in S3, and what it may be.

Keys carry a fresh random part wherever a key must not be guessed or reused: an
old upload ticket cannot overwrite a newer upload, a link to one edition can never
serve another, and the object under a key never changes. A file's type is known by
its first bytes, not by what its uploader says.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

PDF_CONTENT_TYPE = "application/pdf"
PDF_MAGIC = b"%PDF-"
SNIFF_BYTES = 12  # enough for every signature below


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


# Covers and thumbnails only (never books/): covers/<book id>/<random name>.<ext>.
PUBLIC_PICTURE_KEY = re.compile(r"covers/[0-9a-f-]{36}/[A-Za-z0-9_.-]{1,200}\.(png|jpg|webp)")
