"""`stories bench recommendations` (#42): how well the next-book recommender guesses
what a learner read next, on the demo library's month of reading.

The history is the one `stories demo` sends (stories/demo/history.py: each learner's
shelf and month, drawn the same way every run), rebuilt here without a platform.
Each learner's last new book (the one they opened for the first time last) is held
out; everything they read before it, and every other learner's month, is what the
model learns from. Each method ranks ten books the learner can open (free books and
the class's assigned ones) and has not read; a hit is the held-out book among them.
HR@10 is the share of learners with a hit, NDCG@10 rewards a hit by its place
(1 at the top, 1/log2(rank + 1) below). The methods, in the same run:

- most read: the books most learners read, the baseline the issue names;
- most read in their languages: the same, in the languages the learner reads;
- co-reading alone, as `stories recommend batch` ranks a bare log;
- the recommender as the service runs it: co-reading, the texts' likeness, the
  books' facts, and the rules (languages, level, one version of a story).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from services.access.recommender import BookFacts, Learner, Model, Read, fit, recommend
from services.content.text_likeness import text_likeness
from stories.bench.harness import Figure
from stories.demo.history import demo_assignments, learner_shelf, reading_history
from stories.demo.library import CATEGORIES, LEARNERS, stories

K = 10
# A fixed day, so every run measures the same month.
DEMO_DAY = datetime(2026, 12, 1, tzinfo=UTC)

Ranker = Callable[[str, list[Read], set[str]], list[str]]


def demo_history() -> tuple[list[Read], dict[str, BookFacts], dict[str, str], list[str], list[str]]:
    """The demo month's reads (reader = the learner's index), every book's facts and
    text, and the class's assigned books; a book's id is its title."""
    library = stories()
    assigned = demo_assignments(library)
    reads = []
    for index in range(len(LEARNERS)):
        shelf = [s.title for s in learner_shelf(index, library, assigned)]
        for event in reading_history(index, shelf, DEMO_DAY):
            at = datetime.fromisoformat(event["at"]).timestamp()
            completed = event["type"] == "complete"
            if event["type"] in ("open", "complete"):
                reads.append(Read(str(index), event["book_id"], at, completed))
    facts = {
        s.title: BookFacts(
            s.title, s.title, s.language, s.reading_level, str(s.number),
            CATEGORIES[s.number % len(CATEGORIES)],
        )
        for s in library
    }  # fmt: skip
    texts = {s.title: "\n".join(s.page_texts) for s in library}
    readable = [s.title for s in library if s.access == "free"] + [s.title for s in assigned]
    return reads, facts, texts, readable, [s.title for s in assigned]


def held_out(reads: list[Read]) -> tuple[list[Read], dict[str, Read]]:
    """(what the model may learn from, each learner's held-out first read)."""
    first: dict[tuple[str, str], Read] = {}
    for read in sorted(reads, key=lambda r: r.at):
        first.setdefault((read.reader, read.book), read)
    last: dict[str, Read] = {}
    for read in first.values():
        if read.reader not in last or read.at > last[read.reader].at:
            last[read.reader] = read
    train = [r for r in reads if r.at < last[r.reader].at]
    return train, last


def scores(ranker: Ranker, train: list[Read], last: dict[str, Read]) -> tuple[float, float]:
    history: dict[str, list[Read]] = {}
    for read in train:
        history.setdefault(read.reader, []).append(read)
    hits, gain = 0, 0.0
    for reader, target in last.items():
        ranked = ranker(reader, history.get(reader, []), {r.book for r in history.get(reader, [])})
        if target.book in ranked[:K]:
            hits += 1
            gain += 1 / math.log2(ranked.index(target.book) + 2)
    return hits / len(last), gain / len(last)


def bench_recommendations() -> list[Figure]:
    reads, facts, texts, readable, assigned = demo_history()
    train, last = held_out(reads)
    now = max(r.at for r in train)
    started = time.process_time()
    likeness = text_likeness(texts)
    model = fit(train, now=now, text_likeness=likeness, facts=facts)
    refit_seconds = time.process_time() - started
    bare = fit(train, now=now)
    counts: dict[str, int] = {}
    for _reader, book in {(r.reader, r.book) for r in train}:
        counts[book] = counts.get(book, 0) + 1

    def most_read(languages: bool) -> Ranker:
        def rank(reader: str, history: list[Read], seen: set[str]) -> list[str]:
            spoken = {facts[r.book].language for r in history if r.book not in assigned}
            books = [
                b for b in readable
                if b not in seen and (not languages or not spoken or facts[b].language in spoken)
            ]  # fmt: skip
            return sorted(books, key=lambda b: (-counts.get(b, 0), b))

        return rank

    def recommender(chosen: Model, rules: bool) -> Ranker:
        def rank(reader: str, history: list[Read], seen: set[str]) -> list[str]:
            picks = recommend(
                chosen, Learner(history), catalog=facts if rules else {},
                readable=readable, assigned=assigned if rules else (), now=now, limit=K,
            ).picks  # fmt: skip
            return [p.book for p in picks]

        return rank

    methods = {
        "most read (baseline)": most_read(False),
        "most read in their languages": most_read(True),
        "co-reading alone (recommend batch)": recommender(bare, False),
        "the recommender, as the service runs it": recommender(model, True),
    }
    figures = []
    for name, ranker in methods.items():
        hit_rate, ndcg = scores(ranker, train, last)
        figures.append(Figure(
            "recommend", f"{name}: HR@{K}", hit_rate * 100, "%",
            baseline_of=None if name.startswith("most read (") else "most read (baseline): HR@10",
        ))  # fmt: skip
        figures.append(Figure(
            "recommend", f"{name}: NDCG@{K}", ndcg * 100, "%",
            baseline_of=None if name.startswith("most read (") else "most read (baseline): NDCG@10",
        ))  # fmt: skip
    figures.append(Figure(
        "recommend", f"refit: {len(texts)} texts' likeness + {len(train)} reads (CPU)",
        refit_seconds * 1000, "ms",
    ))  # fmt: skip
    return figures
