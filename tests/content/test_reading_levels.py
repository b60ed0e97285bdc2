"""#40: the reading-level estimator and the language detector, on stories made here
in every catalog language: a first-words book and a longer, harder telling of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wordfreq

from services.content.families import READING_LEVELS
from services.content.reading_levels import (
    LEVELS,
    WORDS_PER_PAGE_RULE,
    common_words,
    detect_language,
    estimate_reading_level,
    reading_features,
    words_of,
)
from stories.cli import main

# A first-words book: a short sentence a page, its words again and again.
FIRST_WORDS = {
    "en": ["A cat.", "A big cat.", "The big cat runs.", "The cat sees a dog.", "Run, cat, run!"],
    "fr": ["Un chat.", "Un gros chat.", "Le gros chat court.", "Le chat voit un chien.",
           "Cours, chat, cours !"],
    "es": ["Un gato.", "Un gato grande.", "El gato grande corre.", "El gato ve un perro.",
           "¡Corre, gato, corre!"],
    "pt": ["Um gato.", "Um gato grande.", "O gato grande corre.", "O gato vê um cão.",
           "Corre, gato, corre!"],
    "sw": ["Paka.", "Paka mkubwa.", "Paka mkubwa anakimbia.", "Paka anamwona mbwa.",
           "Kimbia, paka, kimbia!"],
}  # fmt: skip

# The same cat, told for a fluent reader: long pages, long sentences, rarer words.
FLUENT = {
    "en": "On the morning the river flooded, the old grey cat climbed onto the roof of the "
    "bakery and watched, with enormous patience, as the villagers carried their furniture "
    "towards the hill, arguing about whether the bridge would survive another night of "
    "relentless rain, until a small dog, trembling and soaked, paddled past on a wooden "
    "crate and the cat, forgetting every ancient quarrel between their families, leapt "
    "down to rescue him.",
    "fr": "Le matin où la rivière déborda, le vieux chat gris grimpa sur le toit de la "
    "boulangerie et observa, avec une patience remarquable, les villageois qui portaient "
    "leurs meubles vers la colline en se disputant pour savoir si le pont résisterait à "
    "une nouvelle nuit de pluie implacable, jusqu'à ce qu'un petit chien tremblant et "
    "trempé passe sur une caisse de bois et que le chat, oubliant toutes les querelles "
    "anciennes entre leurs familles, saute pour le sauver.",
    "es": "La mañana en que el río se desbordó, el viejo gato gris trepó al tejado de la "
    "panadería y observó, con una paciencia extraordinaria, cómo los vecinos cargaban sus "
    "muebles hacia la colina discutiendo si el puente resistiría otra noche de lluvia "
    "implacable, hasta que un perrito tembloroso y empapado pasó flotando sobre una caja "
    "de madera y el gato, olvidando todas las antiguas disputas entre sus familias, saltó "
    "para rescatarlo.",
    "pt": "Na manhã em que o rio transbordou, o velho gato cinzento subiu ao telhado da "
    "padaria e observou, com uma paciência extraordinária, os vizinhos que carregavam os "
    "seus móveis para a colina discutindo se a ponte aguentaria mais uma noite de chuva "
    "implacável, até que um cãozinho trémulo e encharcado passou a flutuar numa caixa de "
    "madeira e o gato, esquecendo todas as antigas disputas entre as suas famílias, saltou "
    "para o salvar.",
    "sw": "Asubuhi ile mto ulipofurika, paka mzee wa kijivu alipanda juu ya paa la duka la "
    "mikate na kutazama, kwa subira kubwa ajabu, wanakijiji wakibeba samani zao kuelekea "
    "kilimani huku wakibishana kama daraja lingestahimili usiku mwingine wa mvua isiyokoma, "
    "hadi mbwa mdogo aliyetetemeka na kulowa maji alipopita akielea juu ya sanduku la mbao, "
    "na paka, akisahau ugomvi wote wa zamani kati ya familia zao, akaruka chini kumwokoa.",
}
LANGUAGES = sorted(FIRST_WORDS)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_first_words_book_is_emergent_and_its_fluent_telling_harder(language: str) -> None:
    easy = estimate_reading_level(FIRST_WORDS[language] * 2, language)
    hard = estimate_reading_level([FLUENT[language]] * 12, language)
    assert (easy.level, hard.level) == ("emergent", "fluent")
    assert easy.method == hard.method == "word-count rule"
    assert easy.score is not None
    assert hard.score is not None
    assert hard.score > easy.score + 3
    assert easy.features.repetition > hard.features.repetition
    assert easy.features.words_per_sentence < hard.features.words_per_sentence


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_story_is_detected_in_its_own_language(language: str) -> None:
    for pages in ([FLUENT[language]], FIRST_WORDS[language] * 3):
        detected = detect_language("\n".join(pages))
        assert detected.language == language, (pages[0], detected)
    assert detect_language(FLUENT[language]).confidence >= 0.9
    assert detect_language(FLUENT[language]).reliable


def test_a_wrong_declared_language_is_measured_as_declared_and_detected_as_it_is() -> None:
    estimate = estimate_reading_level([FLUENT["pt"]] * 3, "en")
    assert estimate.language == "en"
    assert estimate.detected.language == "pt"
    assert estimate.detected.reliable
    # Read as English, nearly every Portuguese word is rare: the score says so.
    right = estimate_reading_level([FLUENT["pt"]] * 3, "pt")
    assert estimate.features.rare_word_share is not None
    assert right.features.rare_word_share is not None
    assert estimate.features.rare_word_share > right.features.rare_word_share + 0.3


def test_a_language_without_a_dictionary_or_a_list_says_so_and_is_still_scored() -> None:
    swahili = reading_features([FLUENT["sw"]], "sw")
    assert swahili.syllables_per_word is None
    assert swahili.rare_word_share is None
    assert set(swahili.unavailable) == {"syllables_per_word", "rare_word_share"}
    assert "'sw'" in swahili.unavailable["syllables_per_word"]
    for language in ("en", "fr", "es", "pt"):
        features = reading_features([FLUENT[language]], language)
        assert features.unavailable == {}, language
        assert features.syllables_per_word is not None
        assert features.syllables_per_word > 1.2
    # A regional tag is measured with its language's dictionary and list.
    assert reading_features([FLUENT["pt"]], "pt-BR").unavailable == {}


def test_a_scanned_book_gets_an_analysis_that_says_it_has_no_text() -> None:
    for pages in ([], ["", "   ", "\n"], ["12", "— 3 —"]):
        estimate = estimate_reading_level(pages, "en")
        assert (estimate.level, estimate.score, estimate.method) == (None, None, "no text")
        assert estimate.detected.language is None
        assert estimate.features.words == 0


def test_the_word_count_rule_is_words_per_page_with_text() -> None:
    def page(words: int) -> str:
        return " ".join(["cat"] * words) + "."

    for level, most in WORDS_PER_PAGE_RULE:
        at = estimate_reading_level([page(int(most))] * 4 + [""], "en")
        past = estimate_reading_level([page(int(most) + 1)] * 4, "en")
        assert at.level == level, (level, at.features.words_per_page)
        assert past.level != level
        assert at.features.pages == 5
        assert at.features.pages_with_text == 4
    assert estimate_reading_level([page(200)], "en").level == "fluent"


def test_fitted_thresholds_decide_where_a_language_has_them() -> None:
    pages = FIRST_WORDS["en"] * 2
    by_rule = estimate_reading_level(pages, "en", {"fr": (0.0, 0.1, 0.2)})
    assert by_rule.method == "word-count rule"
    assert by_rule.level == "emergent"
    assert by_rule.score is not None
    fitted = estimate_reading_level(pages, "en", {"en": (0.0, 0.1, by_rule.score)})
    assert (fitted.method, fitted.level) == ("fitted thresholds", "fluent")
    fitted = estimate_reading_level(pages, "en", {"en": (0.0, by_rule.score + 0.01, 99.0)})
    assert fitted.level == "early"


def test_repetition_does_not_grow_with_length_alone() -> None:
    once = reading_features([FLUENT["en"]], "en").repetition
    many = reading_features([FLUENT["en"] + " " + FLUENT["fr"]] * 30, "en").repetition
    assert abs(many - once) < 0.25  # a 50-word window, not the whole book
    assert reading_features(["cat " * 200], "en").repetition > 0.9


def test_a_300_page_text_book_is_read_whole() -> None:
    book = [FLUENT["en"] * 3] * 300
    estimate = estimate_reading_level(book, "en")
    assert estimate.features.pages == 300
    assert estimate.features.words == 300 * 3 * len(FLUENT["en"].split())
    assert estimate.level == "fluent"


def _reading_level(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command as `stories reading-level ARGS` runs it, in this process (the
    `stories` entry point is main; a new interpreter would cost seconds of imports)."""
    code = main(["reading-level", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_prints_one_json_line_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paged = tmp_path / "paged.txt"
    paged.write_text("\f".join(FIRST_WORDS["fr"]), encoding="utf-8")
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("\n\n".join([FLUENT["es"]] * 6) + "\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Le chat a mangé.".encode("latin-1"))
    code, out, err = _reading_level(
        capsys, str(paged), str(latin1), str(paragraphs), str(tmp_path / "gone.txt")
    )
    assert code == 1  # two files could not be read; the others were
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["file"] for line in lines] == [str(paged), str(paragraphs)]
    first, second = lines
    assert {"file", "language", "level", "score", "features"} <= set(first)
    assert (first["language"], first["level"]) == ("fr", "emergent")
    assert first["features"]["pages"] == 5
    assert (second["language"], second["level"], second["features"]["pages"]) == (
        "es", "fluent", 6
    )  # fmt: skip
    assert "latin1.txt: not UTF-8 text" in err
    assert "gone.txt" in err
    # --language: measured as the caller says, detected as it is.
    code, out, _ = _reading_level(capsys, "--language", "sw", str(paged))
    line = json.loads(out)
    assert code == 0
    assert (line["language"], line["detected"]["language"]) == ("sw", "fr")
    assert "syllables_per_word" in line["features"]["unavailable"]


def test_the_scale_is_the_catalogs() -> None:
    assert LEVELS == READING_LEVELS


@pytest.mark.parametrize("language", ["en", "fr", "es", "pt"])
def test_rare_words_are_what_wordfreq_itself_calls_rare(language: str) -> None:
    """The small list read from the wheel says what wordfreq's own API says."""
    words = {w.lower() for w in words_of(FLUENT[language] + " " + " ".join(FIRST_WORDS[language]))}
    common = common_words(language)
    assert common is not None
    disagree = {
        w for w in words if (w not in common) != (wordfreq.zipf_frequency(w, language) < 3.0)
    }
    assert len(disagree) <= max(1, len(words) // 50), disagree
    assert common_words("sw") is None
    assert common_words("../../etc") is None
