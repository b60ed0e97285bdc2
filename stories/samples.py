"""Real, small PDFs made in code, for the load test, the tests and local runs: what
an author would upload, which passes the manuscript's deep check (no downloads,
no fixtures on disk)."""

from __future__ import annotations

import functools
import io
import zlib

import pikepdf

# A5 in points: the size of a children's picture book page.
PAGE_SIZE = (420, 595)
PICTURE_SIZE = (600, 400)


def story_pdf(title: str = "A story", pages: int = 1, *, illustrated: bool = False) -> bytes:
    """A PDF of `pages` pages, each with the title and its page number in Helvetica,
    and, `illustrated`, a 600 x 400 picture of its own (a gradient, as a scanned
    drawing would be compressed).

    The same arguments always give the same bytes (a fixed document id), so a test
    can compare what it uploaded with what it downloads.
    """
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    safe = title.encode("latin-1", "replace").decode("latin-1")
    safe = safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    for number in range(1, pages + 1):
        page = pdf.add_blank_page(page_size=PAGE_SIZE)
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        text = f"BT /F1 24 Tf 40 500 Td ({safe}) Tj 0 -40 Td (Page {number}) Tj ET"
        if illustrated:
            page.Resources.XObject = pikepdf.Dictionary(Im1=_picture(pdf, number))
            text += " q 340 0 0 227 40 180 cm /Im1 Do Q"
        page.Contents = pdf.make_stream(text.encode("latin-1"))
    out = io.BytesIO()
    pdf.save(out, deterministic_id=True)
    return out.getvalue()


def _picture(pdf: pikepdf.Pdf, number: int) -> pikepdf.Stream:
    image = pdf.make_stream(_picture_data(number % 4))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height = PICTURE_SIZE
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
