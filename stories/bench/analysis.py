"""`stories bench analysis`: what reading a manuscript at submit costs (#40).

Each figure is CPU time on one core, of a fresh check child as submit starts it
(interpreter, imports, the deep check, the text layer and, with analysis, the
language, the reading level, the personal-data and offensive-word findings, the
shingles and the illustrations' thumbnails), beside the same
child with the analysis left out, in the same run: the difference is what #40
added to a submission. A warm row gives the analysis alone, already imported.
Targets: the analysis of a 40-page illustrated book under 1 s of CPU.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stories.bench.harness import Figure
from stories.samples import text_pdf

ROUNDS = 5
TARGET_MS = 1000.0  # a 40-page illustrated book's analysis, everything included
# A picture book's page (about 40 words) and a text book's (about 250).
PICTURE_PAGE = (
    "Amara ran down to the river with her little brother. The water was high and "
    "brown after the rain, and a small green frog sat on a stone in the middle. "
    "Will you jump, frog? asked Amara. The frog only blinked."
)
TEXT_PAGE = " ".join(
    [
        "On the morning the river flooded, the old grey cat climbed onto the roof of the "
        "bakery and watched, with enormous patience, as the villagers carried their "
        "furniture towards the hill.",
        "They argued about whether the bridge would survive another night of relentless "
        "rain, and whether the mill, which had stood for a hundred years, would stand "
        "for one more.",
        "A small dog, trembling and soaked, paddled past on a wooden crate; the cat, "
        "forgetting every ancient quarrel between their families, leapt down to rescue "
        "him, and the two of them drifted together towards the reeds.",
    ]
    * 3
)
CHILD_PROGRAM = """
import json, resource, sys
mode, path, language = sys.argv[1:4]
from services.content import pdfcheck
if mode == "without":  # the check as it was before #40: no text read, nothing imported
    pdfcheck._page_texts = lambda document: []
    pdfcheck._illustrations = lambda pdf: []
    pdfcheck._analysis = lambda *args: None
verdict = pdfcheck.inspect(path, 300, language)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "ok": verdict.ok,
                  "analysed": verdict.analysis is not None}))
"""


def _child_cpu(mode: str, path: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD_PROGRAM, mode, str(path), "en"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    answer = json.loads(done.stdout)
    assert answer["ok"], answer
    assert answer["analysed"] == (mode == "with"), answer
    return float(answer["cpu"])


def _warm_cpu(path: Path, rounds: int) -> list[float]:
    import pypdfium2

    from services.content.manuscript_analysis import analyse_pages
    from services.content.pdfcheck import _page_texts

    document = pypdfium2.PdfDocument(str(path))
    try:
        pages = _page_texts(document)
    finally:
        document.close()
    analyse_pages(pages, "en")  # imports and lists loaded: warm from here
    taken = []
    for _ in range(rounds):
        started = time.process_time()
        analyse_pages(pages, "en")
        taken.append(time.process_time() - started)
    return taken


def _figure(
    row: str, taken: list[float], baseline: str | None = None, target_ms: float | None = None
) -> Figure:
    median = max(statistics.median(taken), 1e-4)  # a difference may be noise
    return Figure(
        benchmark="analysis",
        row=row,
        throughput=60 / median,
        unit="/min",
        p50_ms=median * 1000,
        p99_ms=max(taken) * 1000,
        baseline_of=baseline,
        target_p99_ms=target_ms,
    )


def bench_analysis(rounds: int = ROUNDS) -> list[Figure]:
    books = {
        "40-page illustrated": text_pdf([PICTURE_PAGE] * 40, illustrated=True),
        "300-page text": text_pdf([TEXT_PAGE] * 300),
    }
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as folder:
        for name, data in books.items():
            path = Path(folder) / "book.pdf"
            path.write_bytes(data)
            without: list[float] = []
            with_analysis: list[float] = []
            for _ in range(rounds):  # turn about, so the machine's noise hits both
                without.append(_child_cpu("without", path))
                with_analysis.append(_child_cpu("with", path))
            alone = f"{name}: check child, no analysis (CPU)"
            figures.append(_figure(alone, without))
            figures.append(_figure(f"{name}: check child + analysis (CPU)", with_analysis, alone))
            added = [w - o for w, o in zip(with_analysis, without, strict=True)]
            target = TARGET_MS if name == "40-page illustrated" else None
            figures.append(_figure(f"{name}: what the analysis adds (CPU)", added, None, target))
            figures.append(_figure(f"{name}: analysis alone, warm (CPU)", _warm_cpu(path, rounds)))
    return figures
