"""The deep check of a manuscript: is this PDF safe to give to children?

Parsed and inspected with qpdf (pikepdf), its first page rendered with PDFium
(pypdfium2). Refused: what does not parse, encryption, JavaScript, Launch and
other actions that run something, embedded files, rich media, XFA forms, image
streams too large to decode safely, no pages or more than the limit, pages of
impossible size, and a first page that does not render.

A hostile file may try to exhaust whatever parses it, so the check never runs in
the service's own process: `check_manuscript_file` starts this module as a child
(`python -m services.content.pdfcheck`) under hard limits on CPU time, memory
and wall time, and a child that dies or overruns is a refusal, never a crash of
the service. The child prints one JSON verdict on stdout.

A file that passes is also read, in the same child and under the same limits:
each page's text layer, analysed as services/content/manuscript_analysis.py
does (the language, the reading level), so a reviewer sees what a careful first
reader would have noticed. The analysis never refuses a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
from dataclasses import dataclass
from typing import Any

# Names that make a PDF do something rather than show something.
ACTIVE_ACTIONS = {"/JavaScript": "JavaScript", "/Launch": "a Launch action (runs a program)"}
# GoToR and GoToE open another file, on the reader's machine or in the PDF.
ALSO_REFUSED_ACTIONS = {"/ImportData", "/SubmitForm", "/Rendition", "/GoToE", "/GoToR"}
# A link in a children's book goes to a web page, nowhere else (no javascript:,
# file:, data: or an app's own scheme).
LINK_SCHEMES = ("http://", "https://")
# After the header, a PDF holds only comments and white space before its first
# object; anything else is another file the parser would "repair" its way past
# (a ZIP after "%PDF-1.7" opened as a PDF).
_HEADER_THEN_OBJECT = re.compile(rb"\A%PDF-[^\r\n]*[\r\n](?:\s|%[^\r\n]*[\r\n])*\d+\s+\d+\s+obj\b")
# Images above this many pixels could decompress to gigabytes (an image bomb).
MAX_IMAGE_PIXELS = 50_000_000
# Pictures hashed for near-duplicates: up to MAX_ILLUSTRATIONS distinct ones, each
# at least MIN_ILLUSTRATION_SIDE pixels a side (not an ornament), as a THUMBNAIL-pixel
# grey square (what imagehash's phash reads: 32 x 32).
MAX_ILLUSTRATIONS = 200
MIN_ILLUSTRATION_SIDE = 24
THUMBNAIL = 32
# PDF's own bounds on a page's side, in points (ISO 32000 annex C): 3 to 14,400.
MIN_PAGE_SIDE, MAX_PAGE_SIDE = 3.0, 14_400.0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    code: str = ""
    reason: str = ""
    pages: int = 0
    # What a first reader notices (services/content/manuscript_analysis.py): only on
    # a file that passed; None where the analysis itself failed (never a refusal).
    analysis: dict[str, Any] | None = None


@dataclass(frozen=True)
class Limits:
    max_pages: int
    cpu_seconds: int
    memory_bytes: int
    wall_seconds: float


def refuse(code: str, reason: str) -> Verdict:
    return Verdict(ok=False, code=code, reason=reason)


def _name(value: Any) -> str | None:
    import pikepdf

    return str(value) if isinstance(value, pikepdf.Name) else None


def inspect(path: str, max_pages: int, language: str | None = None) -> Verdict:
    """The verdict on one file (runs in the child: may be slow or die on hostile input),
    with the analysis of its text as written in `language` (the declared one)."""
    import pikepdf
    import pypdfium2

    with open(path, "rb") as file:
        # Viewers forgive junk before the header; a manuscript has none (a PDF
        # inside a ZIP named .pdf would otherwise parse).
        start = file.read(4096)
    if not start.startswith(b"%PDF-"):
        return refuse("manuscript-unreadable", "The file does not start as a PDF does.")
    if _HEADER_THEN_OBJECT.match(start) is None:
        return refuse(
            "manuscript-unreadable",
            "Something other than a PDF follows the header (another file inside this one).",
        )
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        return refuse("manuscript-encrypted", "The PDF is password-protected.")
    except pikepdf.PdfError as error:
        return refuse("manuscript-unreadable", f"The file is not a readable PDF ({error}).")
    with pdf:
        if pdf.is_encrypted:
            return refuse("manuscript-encrypted", "The PDF is encrypted.")
        root = pdf.Root
        names = root.get("/Names")
        if isinstance(names, pikepdf.Dictionary):
            if "/JavaScript" in names:
                return refuse("manuscript-active-content", "The PDF carries JavaScript.")
            if "/EmbeddedFiles" in names:
                return refuse("manuscript-active-content", "The PDF carries embedded files.")
        if "/AA" in root:
            return refuse("manuscript-active-content", "The PDF runs actions when opened.")
        form = root.get("/AcroForm")
        if isinstance(form, pikepdf.Dictionary) and "/XFA" in form:
            return refuse("manuscript-active-content", "The PDF holds an XFA form.")
        found = _scan_objects(pdf)
        if found is not None:
            return found
        pages = len(pdf.pages)
        if pages == 0:
            return refuse("manuscript-no-pages", "The PDF has no pages.")
        if pages > max_pages:
            return refuse(
                "manuscript-too-many-pages",
                f"The PDF has {pages} pages; a book may have at most {max_pages}.",
            )
        for number, page in enumerate(pdf.pages, start=1):
            box = [float(v) for v in page.mediabox]
            width, height = abs(box[2] - box[0]), abs(box[3] - box[1])
            if not (
                MIN_PAGE_SIDE <= width <= MAX_PAGE_SIDE and MIN_PAGE_SIDE <= height <= MAX_PAGE_SIDE
            ):
                return refuse(
                    "manuscript-bad-page-size",
                    f"Page {number} is {width:.0f} x {height:.0f} points, not a page size.",
                )
        illustrations = _illustrations(pdf)
    try:
        document = pypdfium2.PdfDocument(path)
        try:
            first = document[0]
            # About 200 pixels wide: enough to prove it draws, cheap for any page size.
            scale = 200 / max(first.get_width(), 1.0)
            first.render(scale=scale).close()
            text = _page_texts(document)
        finally:
            document.close()
    except pypdfium2.PdfiumError as error:
        return refuse("manuscript-unrenderable", f"The first page does not render ({error}).")
    return Verdict(ok=True, pages=pages, analysis=_analysis(text, language, illustrations))


def _page_texts(document: Any) -> list[str]:
    """Each page's text layer, up to the analysis's bound (a page without one, or
    whose text PDFium cannot read, is an empty page: that is what a reader sees)."""
    import pypdfium2

    from services.content.manuscript_analysis import MAX_TEXT_PER_PAGE

    texts: list[str] = []
    for index in range(len(document)):
        try:
            page = document[index]
            textpage = page.get_textpage()
            try:
                texts.append(textpage.get_text_bounded()[:MAX_TEXT_PER_PAGE])
            finally:
                textpage.close()
                page.close()
        except pypdfium2.PdfiumError:
            texts.append("")
    return texts


def _analysis(
    text: list[str], language: str | None, illustrations: list[list[Any]]
) -> dict[str, Any] | None:
    from services.content.manuscript_analysis import analyse_pages

    try:
        # The illustrations' thumbnails, like the shingles, are taken out by the
        # service, which hashes them (services/content/duplicates.py).
        return analyse_pages(text, language) | {"illustrations": illustrations}
    except Exception:  # a bug in the analysis must not refuse a safe book
        return None


def _illustrations(pdf: Any) -> list[list[Any]]:
    """Each distinct picture on the pages, with the page it is first on, as a
    THUMBNAIL-square grey thumbnail (base64): what a perceptual hash is computed
    from. An image too small to be an illustration, or one that does not decode,
    is left out (never a refusal)."""
    import base64
    import hashlib

    import pikepdf
    from PIL.Image import Resampling

    BILINEAR = Resampling.BILINEAR  # noqa: N806
    seen: set[bytes] = set()
    thumbnails: list[list[Any]] = []  # [page, thumbnail]
    for number, page in enumerate(pdf.pages, start=1):
        for raw in page.images.values():
            try:
                image = pikepdf.PdfImage(raw)
                if min(image.width, image.height) < MIN_ILLUSTRATION_SIDE:
                    continue
                digest = hashlib.blake2b(raw.read_raw_bytes(), digest_size=16).digest()
                if digest in seen:
                    continue
                seen.add(digest)
                with image.as_pil_image() as picture:
                    picture.draft("L", (THUMBNAIL, THUMBNAIL))  # a JPEG decodes smaller
                    grey = picture.convert("L").resize((THUMBNAIL, THUMBNAIL), BILINEAR)
                thumbnails.append([number, base64.b64encode(grey.tobytes()).decode()])
            except Exception:  # noqa: S112 - an image pikepdf cannot decode is not hashed
                continue
            if len(thumbnails) >= MAX_ILLUSTRATIONS:
                return thumbnails
    return thumbnails


def _scan_objects(pdf: Any) -> Verdict | None:
    """Actions, embedded files, rich media and oversized images wherever they hide:
    every object, and every dictionary nested directly inside one (an /OpenAction
    or a link's /A is often not an object of its own)."""
    import pikepdf

    for obj in pdf.objects:
        pending = [obj]
        while pending:
            item = pending.pop()
            if isinstance(item, pikepdf.Dictionary | pikepdf.Stream):
                found = _judge(item)
                if found is not None:
                    return found
                children = list(item.values())
            elif isinstance(item, pikepdf.Array):
                children = list(item)
            else:
                continue
            # Indirect children are objects of their own: the outer loop gets them.
            pending.extend(
                c
                for c in children
                if isinstance(c, pikepdf.Dictionary | pikepdf.Array) and not c.is_indirect
            )
    return None


def _judge(obj: Any) -> Verdict | None:
    import pikepdf

    action = _name(obj.get("/S"))
    if action in ACTIVE_ACTIONS:
        return refuse("manuscript-active-content", f"The PDF carries {ACTIVE_ACTIONS[action]}.")
    if action in ALSO_REFUSED_ACTIONS:
        return refuse("manuscript-active-content", f"The PDF carries a {action[1:]} action.")
    if action == "/URI":
        target = str(obj.get("/URI", "")).strip().lower()
        if not target.startswith(LINK_SCHEMES):
            return refuse(
                "manuscript-active-content",
                "The PDF links somewhere other than a web page (only http and https links).",
            )
    if "/JS" in obj:
        return refuse("manuscript-active-content", "The PDF carries JavaScript.")
    if "/AA" in obj:
        return refuse("manuscript-active-content", "The PDF runs actions on events.")
    kind, subtype = _name(obj.get("/Type")), _name(obj.get("/Subtype"))
    if kind == "/EmbeddedFile" or "/EF" in obj or subtype == "/FileAttachment":
        return refuse("manuscript-active-content", "The PDF carries embedded files.")
    if subtype in ("/RichMedia", "/Movie", "/Sound", "/Screen", "/3D"):
        return refuse("manuscript-active-content", "The PDF carries rich media.")
    if "/XFA" in obj:
        return refuse("manuscript-active-content", "The PDF holds an XFA form.")
    if subtype == "/Image" and isinstance(obj, pikepdf.Stream):
        width, height = int(obj.get("/Width", 0)), int(obj.get("/Height", 0))
        if width * height > MAX_IMAGE_PIXELS:
            return refuse(
                "manuscript-image-too-large",
                f"An image of {width} x {height} pixels is too large to show safely.",
            )
    return None


def limit_this_process(limits: Limits, *, may_write: int = 0) -> None:
    """Hard limits on the child itself: what a hostile file can cost at most."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (may_write, may_write))


async def run_child(module: str, args: list[str], limits: Limits) -> dict[str, Any] | None:
    """`python -m module *args limits` in a child; its one JSON answer, or None when
    it overran `limits.wall_seconds` (then killed), died of its own limits or crashed
    in a parser, and so printed nothing readable."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        json.dumps(limits.__dict__),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        async with asyncio.timeout(limits.wall_seconds):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    try:
        answer = json.loads(output)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


async def check_manuscript_file(path: str, limits: Limits, language: str | None = None) -> Verdict:
    """The verdict on a file, from a child process held to `limits`; its text is
    analysed as written in `language` (the declared one; else the one detected)."""
    verdict = await run_child("services.content.pdfcheck", [path, language or ""], limits)
    try:
        return Verdict(**verdict) if verdict is not None else _too_complex(limits)
    except TypeError:
        return _too_complex(limits)


def _too_complex(limits: Limits) -> Verdict:
    # Killed by its CPU, memory or time limit, or crashed in a parser: what a file
    # that needs more than the limits gets, never a guess that it is fine.
    return refuse(
        "manuscript-too-complex",
        f"The PDF could not be checked within the limits ({limits.wall_seconds:.0f} s, "
        f"{limits.memory_bytes // 2**20} MiB).",
    )


def main() -> None:
    path, language, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    limits = Limits(**json.loads(raw))
    limit_this_process(limits)  # it reads; it never writes a file
    try:
        verdict = inspect(path, limits.max_pages, language or None)
    except MemoryError:
        verdict = refuse("manuscript-too-complex", "The PDF needs more memory than allowed.")
    except Exception as error:  # a parser's own failure, or the limits, on a hostile file
        verdict = refuse(
            "manuscript-too-complex", f"The PDF could not be checked ({type(error).__name__})."
        )
    sys.stdout.write(json.dumps(verdict.__dict__))


if __name__ == "__main__":
    main()
