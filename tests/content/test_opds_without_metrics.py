"""#20: the OPDS root does without its "most read" group when the metrics service
cannot answer (nothing serves at this module's metrics address), at once and
without guessing."""

from __future__ import annotations

import time

from tests.harness.content import ContentHarness


async def test_the_root_feed_goes_without_the_most_read_group(content: ContentHarness) -> None:
    book = await content.book_for_readers("free")
    started = time.monotonic()
    root = await content.http.get("/opds")
    assert time.monotonic() - started < content.settings.metrics_timeout_seconds + 2
    assert root.status_code == 200, root.text
    titles = [g["metadata"]["title"] for g in root.json()["groups"]]
    assert "Most read" not in titles
    assert titles[0] == "New"
    assert f"In {book['language']}" in titles
