"""#40: a child's personal data in a story, found in all five catalog languages,
masked wherever it is kept, and ordinary numbers left alone."""

from __future__ import annotations

import pytest

from services.content.personal_data import MASK, personal_data_findings

# In each language: a page that gives a child away, with what must never be shown.
PAGES = {
    "en": (
        "If you find Amina, call her mum on (415) 555-2671 or write to "
        "amina.k@example.com. She lives at 221B Baker Street, London NW1 6XE.",
        ["555-2671", "amina.k@example.com", "Baker", "NW1 6XE"],
        {"phone-number", "email-address", "street-address", "postcode"},
    ),
    "fr": (
        "Si tu trouves Chloé, appelle le 06 12 34 56 78 ou écris à chloe.b@exemple.fr. "
        "Elle habite 12 rue de la Paix.",
        ["12 34 56", "chloe.b@exemple.fr", "rue de la Paix"],
        {"phone-number", "email-address", "street-address"},
    ),
    "es": (
        "Si encuentras a Lucía, llama al +34 612 345 678. Vive en Calle Mayor 5. "
        "Su página es www.lucia-juega.com.",
        ["612 345 678", "Calle Mayor", "lucia-juega"],
        {"phone-number", "street-address", "web-address"},
    ),
    "pt": (
        "Se encontrares o Pedro, liga para (11) 91234-5678. Ele mora na Rua das Flores, "
        "123, CEP 01310-100.",
        ["91234-5678", "das Flores", "01310-100"],
        {"phone-number", "street-address", "postcode"},
    ),
    "sw": (
        "Ukimwona Baraka, mpigie mama yake kwa 0712 345 678 au +255 754 123 456. "
        "Barua pepe: baraka.m@mfano.co.ke.",
        ["345 678", "754 123", "baraka.m@mfano.co.ke"],
        {"phone-number", "email-address"},
    ),
}


@pytest.mark.parametrize("language", sorted(PAGES))
def test_a_childs_contact_details_are_found_and_masked(language: str) -> None:
    page, secrets, kinds = PAGES[language]
    found = personal_data_findings(["Once upon a time.", page])
    assert {f["kind"] for f in found} == kinds, found
    for finding in found:
        assert finding["page"] == 2
        assert finding["severity"] == ("warning" if finding["kind"] == "web-address" else "severe")
        assert MASK in finding["excerpt"]
        for secret in secrets:
            assert secret not in finding["excerpt"], (secret, finding["excerpt"])
    # Every phone number, each once.
    phones = [f for f in found if f["kind"] == "phone-number"]
    assert len(phones) == page.count("+") + (1 if language in ("en", "fr", "pt", "sw") else 0), (
        phones
    )


def test_ordinary_numbers_in_a_story_are_not_personal_data() -> None:
    pages = [
        "The cat counted 1 2 3 4 5 6 7 stars, then 10, 20, 30 and 100 more.",
        "In 2024, 1,250 children read 3,400 books in 12 schools.",
        "Page 12 of 40. Chapter 3: the 7 dwarfs walked down the long road to 3 little houses.",
        "She was born on 12/05/2019 and is 1.20 m tall; the river is 6,650 km long.",
        "Twenty lions roared on the street by the river, then went to the shop on Main Street.",
    ]
    assert personal_data_findings(pages) == []


def test_the_masked_excerpt_keeps_only_enough_to_find_it_on_the_page() -> None:
    (finding,) = personal_data_findings(["Call 0712 345 678 now."])
    assert finding["excerpt"] == f"Call 07{MASK * 2} {MASK * 3} {MASK}78 now."
