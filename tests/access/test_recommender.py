"""The next-book rules (#42) on scripted reading histories: each rule with a history
made to need it, and the odd cases that must give a short list with a reason."""

from __future__ import annotations

from collections.abc import Sequence

from services.access.recommender import (
    BookFacts,
    Learner,
    Read,
    Recommendations,
    facts_likeness,
    fit,
    levels_for,
    recommend,
)

DAY = 86_400.0
NOW = 100 * DAY


def book(
    name: str,
    language: str = "en",
    level: str = "early",
    family: str | None = None,
    category: str | None = None,
) -> BookFacts:
    return BookFacts(name, name.title(), language, level, family or name, category)


CATALOG = {
    b.book: b
    for b in [
        book("lion"), book("zebra"), book("hippo"), book("giraffe"), book("parrot"),
        book("lion-sw", "sw", family="lion"), book("zebra-sw", "sw", family="zebra"),
        book("hippo-sw", "sw", family="hippo"), book("goat-sw", "sw"),
        book("tortoise-easy", level="emergent"), book("river", level="transitional"),
        book("novel", level="fluent"), book("lion-retold", family="lion"),
    ]
}  # fmt: skip


def reads(reader: str, *books: str, start: float = 50 * DAY, completed: bool = True) -> list[Read]:
    return [Read(reader, b, start + i * DAY, completed) for i, b in enumerate(books)]


def picks(
    learner: Learner,
    log: list[Read],
    readable: list[str] | None = None,
    assigned: Sequence[str] = (),
    limit: int = 10,
) -> Recommendations:
    model = fit(log, now=NOW, facts=CATALOG)
    return recommend(
        model, learner, catalog=CATALOG, readable=readable or list(CATALOG),
        assigned=assigned, now=NOW, limit=limit,
    )  # fmt: skip


# Others who read lion went on to zebra; giraffe readers to parrot.
CROWD = [
    *reads("a", "lion", "zebra"), *reads("b", "lion", "zebra", "hippo"),
    *reads("c", "giraffe", "parrot"), *reads("d", "lion", "zebra"),
]  # fmt: skip


def test_what_others_read_after_the_same_book_comes_first_with_its_reason() -> None:
    learner = Learner(reads("me", "lion"))
    found = picks(learner, [*CROWD, *learner.history])
    assert found.picks[0].book == "zebra"
    assert found.picks[0].reason == "because-you-read"
    assert found.picks[0].because == "lion"
    assert all(p.book != "lion" for p in found.picks), "finished books are left out"


def test_only_the_languages_they_read_and_their_declared_ones_before_any() -> None:
    swahili = Learner(reads("me", "goat-sw", "hippo-sw"))
    found = picks(swahili, [*CROWD, *swahili.history])
    assert {CATALOG[p.book].language for p in found.picks} == {"sw"}
    new = Learner(declared_languages=["sw"])
    found = picks(new, CROWD)
    assert found.note == "no-history"
    assert found.picks
    assert {CATALOG[p.book].language for p in found.picks} == {"sw"}
    assert {p.reason for p in found.picks} == {"popular"}


def test_their_level_or_one_step_up_judged_from_what_they_finished() -> None:
    learner = Learner(reads("me", "tortoise-easy"))
    assert levels_for(learner, CATALOG) == {"emergent", "early"}
    found = picks(learner, [*CROWD, *learner.history])
    levels = {CATALOG[p.book].level for p in found.picks}
    assert levels <= {"emergent", "early"}
    assert "transitional" not in levels
    assert "fluent" not in levels
    # Finishing an early book opens transitional ones, never fluent.
    onwards = Learner(reads("me", "tortoise-easy", "lion"))
    assert levels_for(onwards, CATALOG) == {"early", "transitional"}
    assert "river" in {p.book for p in picks(onwards, [*CROWD, *onwards.history]).picks}
    # Opened and left is no proof of a level: the lowest opened counts.
    opened = Learner(reads("me", "novel", "lion", completed=False))
    assert levels_for(opened, CATALOG) == {"early", "transitional"}


def test_one_version_of_a_story_and_no_second_language_of_one_read() -> None:
    english = Learner(reads("me", "lion"))
    found = {p.book for p in picks(english, [*CROWD, *english.history]).picks}
    assert "lion-sw" not in found
    # Someone who reads both languages may get a story's other telling, one at most.
    both = Learner(reads("me", "lion", "goat-sw", "giraffe", "hippo-sw"))
    ranked = [p.book for p in picks(both, [*CROWD, *both.history]).picks]
    families = [CATALOG[b].family for b in ranked]
    assert len(families) == len(set(families))
    assert "lion-sw" in ranked, "the Swahili lion, for a reader of both"
    others = [b for b in CATALOG if b != "lion-sw"]
    ranked = [p.book for p in picks(both, [*CROWD, *both.history], readable=others).picks]
    assert "lion-retold" not in ranked, "another English telling of the lion read in English"
    assert "hippo" in ranked, "the hippo read in Swahili, told in English"


def test_only_books_they_can_open_and_assigned_ones_first_whatever_their_rules() -> None:
    learner = Learner(reads("me", "lion"))
    readable = ["hippo", "parrot", "novel", "lion"]
    found = picks(learner, [*CROWD, *learner.history], readable=readable, assigned=["novel"])
    assert found.picks[0].book == "novel"
    assert found.picks[0].reason == "assigned"
    assert {p.book for p in found.picks} <= set(readable)
    assert "zebra" not in {p.book for p in found.picks}, "not entitled, however alike"


def test_a_reader_who_read_everything_and_a_language_with_no_books_get_a_reason() -> None:
    everything = Learner(reads("me", *[b for b in CATALOG if CATALOG[b].language == "sw"]))
    found = picks(everything, [*CROWD, *everything.history])
    assert found.picks == []
    assert found.note == "read-everything"
    arabic = Learner(declared_languages=["ar"])
    found = picks(arabic, CROWD)
    assert found.picks == []
    assert found.note == "no-history"
    someone = Learner(reads("me", "lion"))
    found = picks(someone, CROWD, readable=["goat-sw"])
    assert found.picks == []
    assert found.note == "no-books-in-language"


def test_a_catalog_of_one_book_and_an_empty_log_are_answers_not_errors() -> None:
    model = fit([], now=NOW)
    found = recommend(model, Learner(), catalog={}, readable=["only"], now=NOW)
    assert [p.book for p in found.picks] == ["only"]
    assert found.note == "no-history"
    assert recommend(model, Learner(), catalog={}, readable=[], now=NOW).picks == []


def test_an_erased_reader_leaves_no_trace_in_a_refit_model() -> None:
    # Only "gone" read hippo after lion: with them, hippo is lion's neighbour.
    log = [*reads("gone", "lion", "hippo"), *reads("x", "giraffe", "parrot")]
    assert "hippo" in fit(log, now=NOW).neighbours["lion"]
    kept = [r for r in log if r.reader != "gone"]
    model = fit(kept, now=NOW)
    assert "lion" not in model.neighbours
    assert "hippo" not in model.popularity


def test_recent_reading_weighs_more_than_old() -> None:
    # Long ago lion readers went on to hippo; lately they go on to zebra.
    old = [*reads("o1", "lion", "hippo", start=0), *reads("o2", "lion", "hippo", start=0)]
    new = [*reads("n1", "lion", "zebra", start=90 * DAY)]
    model = fit([*old, *new], now=NOW)
    assert model.neighbours["lion"]["zebra"] > model.neighbours["lion"]["hippo"]


def test_facts_and_texts_make_an_unread_book_findable() -> None:
    assert facts_likeness(book("a", category="animals"), book("b", category="animals")) == 1.0
    model = fit([], now=NOW, text_likeness={"lion": {"river": 0.8}})
    assert model.neighbours["river"]["lion"] == model.neighbours["lion"]["river"] > 0
