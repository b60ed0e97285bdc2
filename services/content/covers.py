"""A book's picture as every reading app and validator takes it: a JPEG (#38).

A cover may be uploaded as PNG, JPEG or WebP, and the first page is rendered as
WebP at processing; OPDS 2.0 asks each publication for a JPEG, PNG, GIF or AVIF.
So each book also has a JPEG rendition: its cover, else its first page, else (not
processed yet) a drawn title card. Pure (bytes in, bytes out; Pillow does the
drawing): the endpoint loads what there is and runs this in a thread.
"""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

# Wide enough for a reading app's shelf and detail views; a rendition is small.
MAX_WIDTH, MAX_HEIGHT = 600, 900
JPEG_QUALITY = 82
# A picture larger than this is not decoded (a decompression bomb): the card instead.
MAX_PIXELS = 50_000_000
CARD_SIZE = (300, 450)
CARD_BLUE, WHITE = (47, 111, 222), (255, 255, 255)


def jpeg_rendition(picture: bytes | None, title: str) -> bytes:
    """`picture` (PNG, JPEG or WebP) as a JPEG at most MAX_WIDTH x MAX_HEIGHT; the
    drawn title card where there is none or it cannot be read."""
    if picture is not None:
        try:
            with Image.open(io.BytesIO(picture)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise ValueError("too many pixels to decode safely")
                opened.draft("RGB", (MAX_WIDTH, MAX_HEIGHT))
                image = opened.convert("RGB")
            image.thumbnail((MAX_WIDTH, MAX_HEIGHT), Image.Resampling.LANCZOS)
            return _jpeg(image)
        except (OSError, ValueError, Image.DecompressionBombError):
            pass  # an unreadable picture: the card says what the book is instead
    return _jpeg(title_card_image(title))


def title_card_image(title: str) -> Image.Image:
    """The cover drawn from the title: the title in white on blue, a frame, the
    platform's name (the raster twin of opds.title_card)."""
    card = Image.new("RGB", CARD_SIZE, CARD_BLUE)
    draw = ImageDraw.Draw(card)
    width, height = CARD_SIZE
    draw.rectangle((16, 16, width - 17, height - 17), outline=WHITE, width=3)
    font = ImageFont.load_default(size=26)
    lines = textwrap.wrap(title, width=18)[:6] or [""]
    for number, line in enumerate(lines):
        draw.text((width / 2, 170 + 34 * number), line, fill=WHITE, font=font, anchor="ms")
    small = ImageFont.load_default(size=14)
    draw.text((width / 2, 410), "1001 Stories", fill=WHITE, font=small, anchor="ms")
    return card


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
