"""Near-duplicates of published books and of other submissions (#40).

At submit, the check's child hands over the text's three-word shingles (hashed)
and a grey thumbnail of each distinct illustration (pdfcheck.py). Here, in the
service, they become a fingerprint: a MinHash signature of the shingles
(`datasketch`, NUM_PERM permutations) and a perceptual hash of each illustration
(`imagehash`'s pHash). Both libraries are imported here, never in the child:
datasketch's import alone (scipy) cost 2.5 s of CPU, more than the whole check.

Look-alikes are found by LSH bands, without reading every other fingerprint: the
signature cut into BANDS slices of ROWS_PER_BAND values, each pHash into four
16-bit quarters, each slice hashed to a band. A manuscript that shares a band is
compared in full: texts whose estimated Jaccard similarity is at least
SAME_TEXT, illustrations within MAX_HAMMING bits of each other.

A look-alike in the same story family is never a finding: a translation or an
adaptation is meant to be like its original. Outside the family:

- the text of a published book: `copied-book`, severe (it holds the submission
  until a CONTENT_ADMIN clears it);
- the text of another submission: `duplicate-submission`, a warning;
- an illustration of either: `copied-illustration`, a warning (libraries such as
  StoryWeaver's share illustrations on purpose; a reviewer checks the licence).

Findings name the other book or submission by id and title, never its text.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.content.models import ManuscriptFingerprint, Submission

if TYPE_CHECKING:
    from services.content.repository import ContentRepository

NUM_PERM = 64
SEED = 40
# datasketch 2's 32-bit affine permutations: stored signatures are read back with
# the scheme they were made with.
SCHEME = "affine32"
ROWS_PER_BAND = 2
BANDS = NUM_PERM // ROWS_PER_BAND
# Fewer shingles than this (a few lines of text) make no signature to trust.
MIN_SHINGLES = 20
SAME_TEXT = 0.5
MAX_HAMMING = 6
THUMBNAIL = 32  # pdfcheck.THUMBNAIL: the child's thumbnails are this square
MOST_FINDINGS = 5  # of each kind, the closest first


@dataclass(frozen=True)
class Fingerprint:
    signature: list[int] | None
    illustrations: list[tuple[int, str]]  # (page, pHash as 16 hex digits)


def load_libraries() -> None:
    import datasketch  # noqa: F401
    import imagehash  # noqa: F401


def fingerprint(shingles: list[int], thumbnails: list[list[Any]]) -> Fingerprint:
    """CPU work (and the libraries' first import): run it off the event loop."""
    import imagehash
    from datasketch import MinHash
    from PIL import Image

    signature = None
    if len(shingles) >= MIN_SHINGLES:
        minhash = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=int, scheme=SCHEME)
        minhash.update_batch(shingles)
        signature = [int(v) for v in minhash.hashvalues]
    illustrations = []
    for page, thumbnail in thumbnails:
        grey = Image.frombytes("L", (THUMBNAIL, THUMBNAIL), base64.b64decode(thumbnail))
        illustrations.append((int(page), str(imagehash.phash(grey))))
    return Fingerprint(signature, illustrations)


def _band(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits a signed 64-bit column


def bands(found: Fingerprint) -> list[int]:
    out = []
    if found.signature is not None:
        for b in range(BANDS):
            out.append(
                _band("text", b, *found.signature[b * ROWS_PER_BAND : (b + 1) * ROWS_PER_BAND])
            )
    for _, phash in found.illustrations:
        out += [_band("picture", q, phash[q * 4 : (q + 1) * 4]) for q in range(4)]
    return out


def similarity(one: list[int], other: list[int]) -> float:
    """The share of equal MinHash values: an estimate of the Jaccard similarity."""
    from datasketch import MinHash

    def lean(values: list[int]) -> MinHash:
        return MinHash(seed=SEED, hashvalues=values, scheme=SCHEME)

    return float(lean(one).jaccard(lean(other)))


def hamming(one: str, other: str) -> int:
    return (int(one, 16) ^ int(other, 16)).bit_count()


async def checked(
    repository: ContentRepository, submission: Submission, analysis: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The analysis with its near-duplicates among the findings, the child's
    shingles and thumbnails taken out; the fingerprint stored in their place."""
    if analysis is None:
        return None
    analysis = dict(analysis)
    shingles, thumbnails = analysis.pop("shingles", []), analysis.pop("illustrations", [])
    found = await asyncio.to_thread(fingerprint, shingles, thumbnails)
    own = bands(found)
    findings = list(analysis.get("findings") or [])
    texts: list[tuple[float, dict[str, Any]]] = []
    pictures: list[tuple[int, dict[str, Any]]] = []
    for other, book in await repository.look_alikes(own, submission.id, submission.family_id):
        where = (
            f"the published book {book.title!r} ({book.id})"
            if book is not None
            else f"submission {other.submission_id}"
        )
        if found.signature is not None and other.signature is not None:
            share = similarity(found.signature, other.signature)
            if share >= SAME_TEXT:
                texts.append((share, _text_finding(share, where, published=book is not None)))
        for page, phash in found.illustrations:
            close = min((hamming(phash, theirs) for theirs in other.illustrations), default=99)
            if close <= MAX_HAMMING:
                pictures.append((close, _picture_finding(page, where)))
                break  # one finding a look-alike book is enough
    texts.sort(key=lambda t: -t[0])
    pictures.sort(key=lambda t: t[0])
    findings += [f for _, f in texts[:MOST_FINDINGS]] + [f for _, f in pictures[:MOST_FINDINGS]]
    await repository.replace_fingerprint(
        ManuscriptFingerprint(
            submission_id=submission.id,
            family_id=submission.family_id,
            signature=found.signature,
            illustrations=[phash for _, phash in found.illustrations],
        ),
        own,
    )
    return analysis | {"findings": findings}


def _text_finding(share: float, where: str, *, published: bool) -> dict[str, Any]:
    return {
        "kind": "copied-book" if published else "duplicate-submission",
        "severity": "severe" if published else "warning",
        "page": None,
        "excerpt": None,
        "detail": f"About {share:.0%} of its three-word phrases are also in {where}, "
        "outside this story's family.",
    }


def _picture_finding(page: int, where: str) -> dict[str, Any]:
    return {
        "kind": "copied-illustration",
        "severity": "warning",
        "page": page,
        "excerpt": None,
        "detail": f"An illustration looks like one in {where}: is it shared under its licence?",
    }
