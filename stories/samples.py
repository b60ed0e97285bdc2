"""Real, small PDFs made in code, for the load test, the tests and local runs: what
an author would upload, which passes the manuscript's deep check (no downloads,
no fixtures on disk)."""

from __future__ import annotations

import functools
import io
import random
import textwrap
import zlib
from collections.abc import Sequence

import pikepdf

# A5 in points: the size of a children's picture book page.
PAGE_SIZE = (420, 595)
PICTURE_SIZE = (600, 400)
# A small drawing: what a test's manuscript (a few KiB at most) can carry.
DRAWING_SIZE = (64, 48)
# A scan at print resolution: a full-width picture at about 240 dpi on an A5 page.
SCAN_SIZE = (1200, 800)


def story_pdf(
    title: str = "A story",
    pages: int = 1,
    *,
    illustrated: bool = False,
    scanned: bool = False,
    words: str = "",
) -> bytes:
    """A PDF of `pages` pages, each with the title and its page number in Helvetica,
    and, `illustrated`, a 600 x 400 picture of its own (a gradient, as a scanned
    drawing would be compressed). `scanned` pictures are what a volunteer's scanner
    makes of a painted page instead: 1200 x 800 (240 dpi), with the paper's grain,
    stored losslessly (the heavy book a lite edition exists for). `words` (Latin-1)
    are printed under the page number on every page.

    The same arguments always give the same bytes (a fixed document id), so a test
    can compare what it uploaded with what it downloads.
    """
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    safe, body = _pdf_string(title), _pdf_string(words)
    for number in range(1, pages + 1):
        page = pdf.add_blank_page(page_size=PAGE_SIZE)
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        text = f"BT /F1 24 Tf 40 500 Td ({safe}) Tj 0 -40 Td (Page {number}) Tj"
        text += f" /F1 12 Tf 0 -30 Td ({body}) Tj ET" if words else " ET"
        if illustrated or scanned:
            picture = _scan(pdf, number) if scanned else _picture(pdf, number)
            page.Resources.XObject = pikepdf.Dictionary(Im1=picture)
            text += " q 340 0 0 227 40 180 cm /Im1 Do Q"
        page.Contents = pdf.make_stream(text.encode("latin-1"))
    out = io.BytesIO()
    pdf.save(out, deterministic_id=True)
    return out.getvalue()


def text_pdf(
    page_texts: Sequence[str], *, illustrated: bool = False, drawing: int | None = None
) -> bytes:
    """A book whose pages carry these texts (Latin-1, in Helvetica with WinAnsi's
    encoding, so accented letters read back as written), wrapped at about 55
    characters a line; an empty text is a page with no text layer at all (a scan's).
    `illustrated` adds a picture to every page; `drawing` a small drawing of its
    own instead (shapes from that seed, a few hundred bytes: the same seed, the
    same picture). Deterministic, as story_pdf is."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    for number, words in enumerate(page_texts, start=1):
        page = pdf.add_blank_page(page_size=PAGE_SIZE)
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        lines = textwrap.wrap(words, 55)
        text = "BT /F1 12 Tf 14 TL 30 560 Td" + "".join(
            f" ({_pdf_string(line)}) '" for line in lines
        )
        text += " ET"
        if illustrated or drawing is not None:
            picture = (
                _picture(pdf, number)
                if drawing is None
                else _rgb_image(pdf, _drawing_data(drawing), DRAWING_SIZE)
            )
            page.Resources.XObject = pikepdf.Dictionary(Im1=picture)
            text += " q 340 0 0 227 40 40 cm /Im1 Do Q"
        pictured = illustrated or drawing is not None
        page.Contents = pdf.make_stream(text.encode("latin-1") if lines or pictured else b"")
    out = io.BytesIO()
    pdf.save(out, deterministic_id=True)
    return out.getvalue()


def _pdf_string(text: str) -> str:
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _picture(pdf: pikepdf.Pdf, number: int) -> pikepdf.Stream:
    return _rgb_image(pdf, _picture_data(number % 4), PICTURE_SIZE)


def _scan(pdf: pikepdf.Pdf, number: int) -> pikepdf.Stream:
    return _rgb_image(pdf, _scan_data(number % 4), SCAN_SIZE)


def _rgb_image(pdf: pikepdf.Pdf, compressed: bytes, size: tuple[int, int]) -> pikepdf.Stream:
    image = pdf.make_stream(compressed)
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height = size
    image.ColorSpace, image.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
    image.Filter = pikepdf.Name.FlateDecode
    return image


@functools.lru_cache(maxsize=4)
def _picture_data(seed: int) -> bytes:
    """A compressed 600 x 400 RGB picture (four of them, reused across pages)."""
    width, height = PICTURE_SIZE
    rows = bytearray()
    for y in range(height):
        rows += bytes(
            value
            for x in range(width)
            for value in ((x + seed * 60) % 256, (y * 2) % 256, (x + y) % 256)
        )
    return zlib.compress(bytes(rows))


@functools.lru_cache(maxsize=16)
def _drawing_data(seed: int) -> bytes:
    """A compressed DRAWING_SIZE RGB drawing: a few flat shapes placed by the seed."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)  # noqa: S311 - a picture, not a secret
    width, height = DRAWING_SIZE
    picture = Image.new("RGB", DRAWING_SIZE, (250, 245, 230))
    draw = ImageDraw.Draw(picture)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(8, width // 2), rng.randrange(8, height // 2)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x - w // 2, y - h // 2, x + w // 2, y + h // 2), fill=colour)
    return zlib.compress(picture.tobytes(), 9)


@functools.lru_cache(maxsize=4)
def _scan_data(seed: int) -> bytes:
    """A compressed 1200 x 800 RGB scan: bands of paint plus the grain of the paper
    (seeded noise), which lossless compression can hardly shrink."""
    from PIL import Image, ImageChops, ImageDraw

    width, height = SCAN_SIZE
    paint = Image.new("RGB", SCAN_SIZE, (240, 230, 200))
    draw = ImageDraw.Draw(paint)
    for band in range(8):
        shade = (band * 40 + seed * 50) % 256
        draw.ellipse(
            (band * 140 - 100, band * 60, band * 140 + 300, band * 60 + 400),
            fill=(shade, 255 - shade, (shade * 3) % 256),
        )
    grain = Image.frombytes(
        "RGB",
        SCAN_SIZE,
        random.Random(seed).randbytes(width * height * 3),  # noqa: S311
    ).point(lambda v: v & 15)  # texture, not secrets; 4 bits of grain per channel
    return zlib.compress(ImageChops.add(paint, grain).tobytes(), 6)
