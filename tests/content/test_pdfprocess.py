"""What processing makes of the pictures a volunteer's PDF may hold (made here in
code): each kind comes out smaller where it can, and every page still looks as it
did and keeps its text. A child over its limits is a failure with a reason."""

from __future__ import annotations

import io
import random
import zlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from services.content.pdfcheck import Limits
from services.content.pdfprocess import LITE_MAX_SIDE, THUMBNAIL_WIDTHS, process_book_file

LIMITS = Limits(max_pages=300, cpu_seconds=60, memory_bytes=1536 * 2**20, wall_seconds=60)


def _painting(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Shapes of paint with a paper's grain: what a scan looks like."""
    image = Image.new("RGB", size, (235, 225, 200))
    draw = ImageDraw.Draw(image)
    width, height = size
    for n in range(6):
        left, top = n * width // 7, n * height // 9
        box = (left, top, left + width // 3, top + height // 3)
        draw.ellipse(box, fill=(40 * n, 200 - 25 * n, 90 + 20 * n))
    grain = Image.frombytes(
        "RGB", size, random.Random(size[0]).randbytes(size[0] * size[1] * 3)
    ).point(lambda v: v & 15)
    return ImageChops.add(image, grain).convert(mode)


def _image_stream(pdf: pikepdf.Pdf, image: Image.Image, **extra: object) -> pikepdf.Stream:
    colour = {"RGB": pikepdf.Name.DeviceRGB, "L": pikepdf.Name.DeviceGray}
    stream = pdf.make_stream(zlib.compress(image.tobytes()))
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height = image.size
    stream.BitsPerComponent = 8
    stream.Filter = pikepdf.Name.FlateDecode
    if image.mode in colour:
        stream.ColorSpace = colour[image.mode]
    for key, value in extra.items():
        stream[f"/{key}"] = value
    return stream


def _book(pictures: Callable[[pikepdf.Pdf], pikepdf.Stream]) -> bytes:
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    page = pdf.add_blank_page(page_size=(420, 595))
    page.Resources = pikepdf.Dictionary(
        Font=pikepdf.Dictionary(F1=font), XObject=pikepdf.Dictionary(Im1=pictures(pdf))
    )
    page.Contents = pdf.make_stream(
        b"BT /F1 18 Tf 40 540 Td (The heron waits) Tj ET q 340 0 0 300 40 180 cm /Im1 Do Q"
    )
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _with_alpha(pdf: pikepdf.Pdf) -> pikepdf.Stream:
    alpha = Image.new("L", (1600, 1400), 0)
    ImageDraw.Draw(alpha).ellipse((100, 100, 1500, 1300), fill=255)
    return _image_stream(
        pdf, _painting((1600, 1400)), SMask=pdf.make_indirect(_image_stream(pdf, alpha))
    )


def _indexed(pdf: pikepdf.Pdf) -> pikepdf.Stream:
    picture = _painting((1400, 1200)).quantize(64)
    palette = bytes(picture.getpalette()[: 64 * 3])  # type: ignore[index]
    stream = _image_stream(pdf, picture)
    stream.ColorSpace = pikepdf.Array(
        [pikepdf.Name.Indexed, pikepdf.Name.DeviceRGB, 63, pikepdf.String(palette)]
    )
    return stream


def _grey(pdf: pikepdf.Pdf) -> pikepdf.Stream:
    return _image_stream(pdf, _painting((1500, 1300), "L"))


def _small_jpeg(pdf: pikepdf.Pdf) -> pikepdf.Stream:
    encoded = io.BytesIO()
    _painting((400, 350)).save(encoded, "JPEG", quality=70)
    stream = pdf.make_stream(encoded.getvalue())
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height = 400, 350
    stream.ColorSpace, stream.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
    stream.Filter = pikepdf.Name.DCTDecode
    return stream


def _stencil(pdf: pikepdf.Pdf) -> pikepdf.Stream:
    mask = Image.new("1", (1200, 1000), 0)
    ImageDraw.Draw(mask).rectangle((200, 200, 1000, 800), fill=1)
    stream = pdf.make_stream(zlib.compress(mask.tobytes()))
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height = 1200, 1000
    stream.ImageMask, stream.BitsPerComponent = True, 1
    stream.Filter = pikepdf.Name.FlateDecode
    return stream


# kind -> (its picture, how many times smaller the file must get at least)
KINDS: dict[str, tuple[Callable[[pikepdf.Pdf], pikepdf.Stream], float]] = {
    "rgb with a soft mask": (_with_alpha, 3),
    "indexed colours": (_indexed, 1.5),
    "greyscale": (_grey, 3),
    "a small JPEG (left alone)": (_small_jpeg, 0.95),
    "a 1-bit stencil mask (left alone)": (_stencil, 0.95),
}


def _render(pdf: bytes) -> Image.Image:
    document = pypdfium2.PdfDocument(pdf)
    try:
        image: Image.Image = document[0].render(scale=1).to_pil().convert("RGB")
        return image
    finally:
        document.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_each_kind_of_picture_comes_out_lighter_and_looking_the_same(
    kind: str, tmp_path: Path
) -> None:
    make, at_least = KINDS[kind]
    original = _book(make)
    source = tmp_path / "book.pdf"
    source.write_bytes(original)
    out = tmp_path / "out"
    out.mkdir()
    result = await process_book_file(str(source), str(out), LIMITS)
    assert result.ok, result.reason
    lite = (out / result.lite).read_bytes()
    assert result.original_bytes == len(original)
    assert result.lite_bytes == len(lite)
    assert len(original) / len(lite) >= at_least, (kind, len(original), len(lite))
    assert result.text == ["The heron waits"]
    difference = ImageChops.difference(_render(original), _render(lite))
    assert max(ImageStat.Stat(difference).mean) < 8, kind
    with pikepdf.open(io.BytesIO(lite)) as pdf:
        for raw in pdf.pages[0].get_images().values():
            assert max(int(raw.Width), int(raw.Height)) <= max(LITE_MAX_SIDE, 1200)
    for width in THUMBNAIL_WIDTHS:
        with Image.open(out / result.thumbnails[str(width)]) as thumbnail:
            assert (thumbnail.format, thumbnail.width) == ("WEBP", width)


async def test_a_book_beyond_the_limits_fails_with_a_reason(tmp_path: Path) -> None:
    source = tmp_path / "book.pdf"
    source.write_bytes(_book(_with_alpha))
    (tmp_path / "out").mkdir()
    starved = Limits(max_pages=300, cpu_seconds=60, memory_bytes=1536 * 2**20, wall_seconds=0.05)
    result = await process_book_file(str(source), str(tmp_path / "out"), starved)
    assert not result.ok
    assert "within the limits" in result.reason
