"""How alike books' texts are (#42): character n-grams find a story's easier
telling in any language, and leave unrelated texts apart."""

from __future__ import annotations

from services.content.text_likeness import FLOOR, text_likeness
from stories.demo.library import stories


def test_each_easier_telling_is_nearest_to_its_original_in_every_language() -> None:
    library = stories()
    likeness = text_likeness({s.title: "\n".join(s.page_texts) for s in library})
    adaptations = [s for s in library if s.adaptation]
    assert {s.language for s in adaptations} == {"en", "fr", "es", "sw", "pt"}
    for easier in adaptations:
        assert easier.source is not None
        nearest = next(iter(likeness[easier.title]))
        assert nearest == easier.source.title
        # Symmetric: the original's nearest is its easier telling too.
        assert likeness[easier.source.title][easier.title] == likeness[easier.title][nearest]


def test_unrelated_texts_share_nothing_worth_keeping_and_empty_texts_are_left_out() -> None:
    likeness = text_likeness(
        {
            "frogs": "The green frog jumped into the pond and sang to the moon.",
            "frogs-again": "A green frog jumped in the pond, and sang at the moon.",
            "numbers": "Zero, one, two: quantities xyz qwv.",
            "scan": "   ",
        }
    )
    assert "scan" not in likeness
    assert next(iter(likeness["frogs"])) == "frogs-again"
    assert all(value > FLOOR for others in likeness.values() for value in others.values())
    assert "numbers" not in likeness["frogs"]
