"""Screenshots compared with the expected layout (tests/platform/screenshots/*.png).

What changes from run to run (figures, charts, the time) is masked before the
shot, so what is compared is the layout: what is shown, where, how big. The
comparison forgives anti-aliasing (both images at a quarter of their size, a
pixel counts as changed only when its grey level moves by more than 32 of 255)
but not a form left on screen, a tile moved or a panel gone (more than 1 % of
the pixels changed).

`UPDATE_SCREENSHOTS=1 pytest tests/platform/test_embedded.py` writes the references anew;
look at them before committing. A mismatch writes the shot and the difference
beside the test's temporary files, and the message says where.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageChops

REFERENCES = Path(__file__).with_name("screenshots")
CHANGED_LEVEL = 32
CHANGED_SHARE = 0.01


def layout_mismatch(shot: bytes, name: str, out_dir: Path) -> str | None:
    """None when `shot` matches the reference `name`; else what differs, and where
    the shot and the difference were written."""
    reference = REFERENCES / f"{name}.png"
    if os.environ.get("UPDATE_SCREENSHOTS"):
        REFERENCES.mkdir(exist_ok=True)
        reference.write_bytes(shot)
        return None
    if not reference.exists():
        return f"no reference {reference}: run with UPDATE_SCREENSHOTS=1, then look at it"
    actual = Image.open(io.BytesIO(shot)).convert("L")
    expected = Image.open(reference).convert("L")
    if actual.size != expected.size:
        return f"{name}: {actual.size} where the reference is {expected.size}"
    small = (max(1, actual.width // 4), max(1, actual.height // 4))
    difference = ImageChops.difference(
        actual.resize(small, Image.Resampling.BOX), expected.resize(small, Image.Resampling.BOX)
    )
    histogram = difference.histogram()
    share = sum(histogram[CHANGED_LEVEL + 1 :]) / (small[0] * small[1])
    if share <= CHANGED_SHARE:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.actual.png").write_bytes(shot)
    difference.point(lambda level: 255 if level > CHANGED_LEVEL else 0).save(
        out_dir / f"{name}.difference.png"
    )
    return (
        f"{name}: {share:.1%} of the layout changed (at most {CHANGED_SHARE:.0%}); "
        f"see {out_dir}/{name}.actual.png and .difference.png"
    )
