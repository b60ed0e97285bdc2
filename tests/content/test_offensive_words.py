"""#40: offensive words, from glin-profanity's lists (en, fr, es, pt) and the repo's
Swahili list, found on word boundaries and through disguises, never in ordinary
words that contain them, and only in the language the text is in."""

from __future__ import annotations

import pytest

from services.content.manuscript_analysis import analyse_pages
from services.content.offensive_words import (
    MAX_FINDINGS,
    WORD_LISTS,
    offensive_word_findings,
    word_list,
)

# A story line with one offensive word (the second item), per list language.
OFFENSIVE = {
    "en": ("The troll shouted shit at the goats and ran away.", "shit"),
    "fr": ("Le loup cria merde devant la maison des cochons.", "merde"),
    "es": ("El lobo gritó mierda delante de la casa.", "mierda"),
    "pt": ("O lobo gritou porra na frente da casa.", "porra"),
    "sw": ("Fisi alimwita sungura mshenzi kisha akakimbia.", "mshenzi"),
}
# Ordinary words that hold a listed word inside them, per language.
CONTAINING = {
    "en": "A class assistant from Scunthorpe drank a cocktail, read Dickens and ate grapes.",
    "fr": "Il faut connaître le concombre, la console et les cônes de pin.",
    "es": "La computadora del consejo ganó la disputa con una reputación limpia.",
    "pt": "O computador venceu a disputa e a reputação da escola cresceu.",
    "sw": "Tumemaliza kazi ya falaki; tutakumaliza kesho mapema.",
}
# Words the lists carry that a children's book means in their ordinary sense.
ORDINARY_SENSE = {
    "en": "The blue tit sang while the cock crowed and the farmer took his hoe.",
    "fr": "La veuve donna un baiser au petit et la tanche nagea.",
    "es": "El asno llevó el martillo hasta la concha del mar.",
    "pt": "A aranha foi comer com o burro e o pinto, com um saco na mão.",
    "sw": "Mjinga alipanda punda wake hadi sokoni.",
}


def found(text: str, language: str) -> list[dict[str, object]]:
    return offensive_word_findings([text], [language])[0]


@pytest.mark.parametrize("language", sorted(OFFENSIVE))
def test_every_list_language_finds_its_word_and_masks_it(language: str) -> None:
    text, word = OFFENSIVE[language]
    (finding,) = found(text, language)
    assert (finding["kind"], finding["severity"], finding["page"]) == (
        "offensive-word", "warning", 1
    )  # fmt: skip
    excerpt = str(finding["excerpt"])
    assert word not in excerpt
    assert word[0] in excerpt  # its first letter, then dots
    assert repr(language) in str(finding["detail"])


@pytest.mark.parametrize("language", sorted(CONTAINING))
def test_ordinary_words_that_contain_a_listed_word_are_not_flagged(language: str) -> None:
    assert found(CONTAINING[language], language) == []


@pytest.mark.parametrize("language", sorted(ORDINARY_SENSE))
def test_words_in_their_ordinary_sense_are_not_flagged(language: str) -> None:
    assert found(ORDINARY_SENSE[language], language) == []


@pytest.mark.parametrize(
    "disguised",
    ["SHIT", "Shit!", "sh1t", "$hit", "sh!t", "shiiiit", "s.h.i.t", "sh*t", "shits"],
)
def test_disguises_do_not_hide_a_word(disguised: str) -> None:
    assert len(found(f"Then he said {disguised} and left.", "en")) == 1, disguised


def test_inflections_and_missing_accents_are_the_word_itself() -> None:
    assert len(found("They fucked it up.", "en")) == 1
    assert len(found("Eran unas putas.", "es")) == 1
    # The list spells "cabrón" and "cabron"; "cabrao" without its tilde.
    assert len(found("Ese cabron se fue.", "es")) == 1
    assert len(found("Aquele cabrão saiu.", "pt")) == 1


def test_a_phrase_is_one_finding_and_its_words_are_not_counted_again() -> None:
    (finding,) = found("¡Hijo de puta! dijo el lobo.", "es")
    assert "puta" not in str(finding["excerpt"])
    (swahili,) = found("Alisema kuma mamako kwa hasira.", "sw")
    assert "mamako" not in str(swahili["excerpt"])


def test_a_list_applies_only_in_its_own_language() -> None:
    """French "bite" is an English verb; Spanish "con" is "with"."""
    assert found("The dog will bite the bone.", "en") == []
    assert len(found("The dog will bite the bone.", "fr")) == 1
    assert found("Vino con su madre.", "es") == []


def test_a_word_repeated_on_a_page_is_one_finding_with_its_count() -> None:
    pages = ["Merde, merde et encore MERDE.", "Rien ici.", "Merde."]
    findings, _ = offensive_word_findings(pages, ["fr"])
    assert [(f["page"], "3 times" in str(f["detail"])) for f in findings] == [
        (1, True), (3, False)
    ]  # fmt: skip
    # Every other offensive word in an excerpt's context is hidden too.
    assert all("erde" not in str(f["excerpt"]) for f in findings)


def test_a_manuscript_full_of_them_is_bounded() -> None:
    words = sorted(word_list("en").words)[: MAX_FINDINGS + 20]  # type: ignore[union-attr]
    findings, _ = offensive_word_findings([" ".join(words)], ["en"])
    assert len(findings) == MAX_FINDINGS


def test_a_language_with_no_list_says_so_and_the_other_checks_still_apply() -> None:
    pages = ["Ruf mich an: +49 30 1234567. Das ist Scheiße.", "Ende."]
    analysis = analyse_pages(pages, "de")
    assert analysis["checks"]["offensive_words"] == {
        "checked": [],
        "unavailable": {"de": "no offensive-word list for 'de'"},
    }
    assert [f["kind"] for f in analysis["findings"]] == ["phone-number"]


def test_a_book_is_checked_in_the_language_detected_as_well_as_the_declared_one() -> None:
    """Portuguese declared as English: the Portuguese list still reads it."""
    pages = ["O lobo gritou porra na frente da casa dos porquinhos, e todos fugiram."] * 3
    analysis = analyse_pages(pages, "en")
    assert analysis["checks"]["offensive_words"]["checked"] == ["en", "pt"]
    assert [(f["kind"], f["page"]) for f in analysis["findings"]] == [
        ("offensive-word", 1), ("offensive-word", 2), ("offensive-word", 3)
    ]  # fmt: skip


def test_the_swahili_list_names_its_source() -> None:
    header = (WORD_LISTS / "sw.txt").read_text(encoding="utf-8").split("\n\n")[0]
    assert "Source:" in (WORD_LISTS / "sw.txt").read_text(encoding="utf-8")
    assert header.startswith("#")
    assert len(word_list("sw").words) >= 20  # type: ignore[union-attr]
