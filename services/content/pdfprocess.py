"""Processing a published book: what a reader on a poor connection and the catalog need.

From the published PDF (already through the deep check at submit):
- its page count;
- its first page as WebP thumbnails, `THUMBNAIL_WIDTHS` wide (the cover when the
  author uploaded none);
- a lite edition: every picture larger than `LITE_MAX_SIDE` pixels, or stored
  losslessly, downsampled and recompressed as JPEG; text, fonts and vector drawing
  untouched, so text stays text and sharp;
- the text of each page, for the catalog's full-text search.

Like the check, this never runs in the service's own process: `process_book_file`
starts this module as a child (`python -m services.content.pdfprocess`) under hard
limits on CPU time, memory, file size written and wall time. A child that dies or
overruns is a failure with a reason, never a crash of the worker. The child
writes its files into a directory it is given and prints one JSON result.
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.content.pdfcheck import Limits, limit_this_process, run_child

# Catalog list (2x for phones' dense screens) and the book's own page.
THUMBNAIL_WIDTHS = (200, 600)
THUMBNAIL_QUALITY = 80
# About 130 dpi across an A5 page: sharp on a phone, a fraction of a scan's bytes.
LITE_MAX_SIDE = 800
LITE_JPEG_QUALITY = 60
# Text kept for search: enough for any picture book, bounded for a hostile one.
MAX_TEXT_PER_PAGE = 20_000
MAX_TEXT = 500_000
LITE_NAME = "lite.pdf"


@dataclass(frozen=True)
class Processed:
    ok: bool
    reason: str = ""
    pages: int = 0
    # width -> file name in the output directory
    thumbnails: dict[str, str] = field(default_factory=dict)
    lite: str = ""
    lite_bytes: int = 0
    original_bytes: int = 0
    pictures_recompressed: int = 0
    text: list[str] = field(default_factory=list)


def process(source: str, out_dir: str) -> Processed:
    """Everything, in the child (may be slow or die on a file that is too much)."""
    out = Path(out_dir)
    pages, text, thumbnails = _render(source, out)
    recompressed = _lite_edition(source, out / LITE_NAME)
    return Processed(
        ok=True,
        pages=pages,
        thumbnails=thumbnails,
        lite=LITE_NAME,
        lite_bytes=(out / LITE_NAME).stat().st_size,
        original_bytes=Path(source).stat().st_size,
        pictures_recompressed=recompressed,
        text=text,
    )


def _render(source: str, out: Path) -> tuple[int, list[str], dict[str, str]]:
    import pypdfium2

    document = pypdfium2.PdfDocument(source)
    try:
        pages = len(document)
        text: list[str] = []
        kept = 0
        for index in range(pages):
            page = document[index]
            textpage = page.get_textpage()
            try:
                words = " ".join(textpage.get_text_bounded().split())[:MAX_TEXT_PER_PAGE]
            finally:
                textpage.close()
            words = words[: max(0, MAX_TEXT - kept)]
            kept += len(words)
            text.append(words)
            if index:
                page.close()
        first = document[0]
        thumbnails = {}
        for width in THUMBNAIL_WIDTHS:
            image = first.render(scale=width / max(first.get_width(), 1.0)).to_pil()
            name = f"thumbnail-{width}.webp"
            image.convert("RGB").save(out / name, "WEBP", quality=THUMBNAIL_QUALITY, method=4)
            thumbnails[str(width)] = name
        return pages, text, thumbnails
    finally:
        document.close()


def _lite_edition(source: str, target: Path) -> int:
    """Write the lite edition; how many pictures were recompressed."""
    import pikepdf

    recompressed = 0
    with pikepdf.open(source) as pdf:
        seen: set[tuple[int, int]] = set()
        for page in pdf.pages:
            for raw in page.get_images().values():
                if raw.objgen in seen:
                    continue
                seen.add(raw.objgen)
                if _recompress(pdf, raw):
                    recompressed += 1
        pdf.remove_unreferenced_resources()
        pdf.save(
            target,
            compress_streams=True,
            recompress_flate=True,
            object_stream_mode=pikepdf.ObjectStreamMode.generate,
            deterministic_id=True,
        )
    return recompressed


def _recompress(pdf: Any, raw: Any) -> bool:
    """Downsample and recompress one picture in place, when that makes it smaller."""
    import pikepdf

    if raw.get("/ImageMask", False) or (
        "/SMask" in raw and not isinstance(raw.SMask, pikepdf.Stream)
    ):
        return False  # stencil masks are 1-bit already; odd masks are left alone
    try:
        picture = pikepdf.PdfImage(raw).as_pil_image()
    except (pikepdf.PdfError, NotImplementedError, ValueError, OSError):
        return False  # a colour space or filter Pillow cannot take: kept as it is
    already_jpeg = raw.get("/Filter") == pikepdf.Name.DCTDecode
    if already_jpeg and max(picture.size) <= LITE_MAX_SIDE:
        return False
    picture = _fit(picture.convert("L" if picture.mode in ("1", "L", "LA") else "RGB"))
    encoded = io.BytesIO()
    picture.save(encoded, "JPEG", quality=LITE_JPEG_QUALITY, optimize=True)
    if encoded.tell() >= len(raw.read_raw_bytes()):
        return False
    raw.write(encoded.getvalue(), filter=pikepdf.Name.DCTDecode)
    raw.Width, raw.Height = picture.size
    raw.ColorSpace = pikepdf.Name.DeviceGray if picture.mode == "L" else pikepdf.Name.DeviceRGB
    raw.BitsPerComponent = 8
    for stale in ("/DecodeParms", "/Decode", "/Intent"):
        if stale in raw:
            del raw[stale]
    mask = raw.get("/SMask")
    if isinstance(mask, pikepdf.Stream):
        # The soft mask (transparency) is scaled to the picture by the viewer;
        # downsampled too, or it would keep most of the bytes.
        try:
            alpha = _fit(pikepdf.PdfImage(mask).as_pil_image().convert("L"))
        except (pikepdf.PdfError, NotImplementedError, ValueError, OSError):
            return True
        mask.write(_deflate(alpha), filter=pikepdf.Name.FlateDecode)
        mask.Width, mask.Height = alpha.size
        mask.BitsPerComponent = 8
        if "/DecodeParms" in mask:
            del mask["/DecodeParms"]
    return True


def _fit(picture: Any) -> Any:
    from PIL import Image

    longest = max(picture.size)
    if longest <= LITE_MAX_SIDE:
        return picture
    scale = LITE_MAX_SIDE / longest
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.LANCZOS)


def _deflate(picture: Any) -> bytes:
    import zlib

    return zlib.compress(picture.tobytes(), 9)


async def process_book_file(source: str, out_dir: str, limits: Limits) -> Processed:
    """The book processed by a child process held to `limits`."""
    result = await run_child("services.content.pdfprocess", [source, out_dir], limits)
    try:
        if result is not None:
            return Processed(**result)
    except TypeError:
        pass
    return Processed(
        ok=False,
        reason="The book could not be processed within the limits "
        f"({limits.wall_seconds:.0f} s, {limits.memory_bytes // 2**20} MiB).",
    )


def main() -> None:
    source, out_dir, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    limits = Limits(**json.loads(raw))
    # Writes what it makes: thumbnails and a lite edition no larger than the original.
    limit_this_process(limits, may_write=2 * os.path.getsize(source) + 2**20)
    try:
        result = process(source, out_dir)
    except MemoryError:
        result = Processed(ok=False, reason="The book needs more memory than allowed.")
    except Exception as error:  # a library's own failure, or the limits, on an odd file
        result = Processed(ok=False, reason=f"The book could not be processed ({error!r}).")
    sys.stdout.write(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
