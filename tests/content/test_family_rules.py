"""Story families' pure rules as unit tests (no database): what a translation and
an adaptation may change, which licences allow derivatives, and the attribution
built from a derivation chain. The endpoints are tested over real HTTP in
test_content_families.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest

from services.content.families import (
    LICENCES,
    CreditRole,
    Family,
    check_derivable,
    check_derivation,
    credit_name_problem,
    derived_credits,
    families_of,
    language_name,
)
from services.content.schemas import Licence
from shared.contracts.errors import Conflict, Unprocessable

FAMILY = uuid.uuid4()


@dataclass
class Version:
    title: str
    language: str = "en"
    reading_level: str = "early"
    derivation: str = "original"
    derived_from: uuid.UUID | None = None
    status: str = "PUBLISHED"
    licence: str = "CC-BY-4.0"
    credits: list[dict[str, Any]] = field(default_factory=list)
    family_id: uuid.UUID = FAMILY
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def credit(role: str, name: str) -> dict[str, Any]:
    return {"role": role, "name": name, "account_id": None}


ORIGINAL = Version(
    "The Lantern Fox",
    credits=[credit("author", "Amina Yusuf"), credit("illustrator", "Juma Ali")],
)


def derive(source: Version, kind: str, name: str, title: str, **changes: Any) -> Version:
    role = CreditRole.TRANSLATOR if kind == "translation" else CreditRole.ADAPTER
    credits = derived_credits(source, role, name, uuid.uuid4())
    values = {"language": source.language, "reading_level": source.reading_level} | changes
    return Version(title, derivation=kind, derived_from=source.id, credits=credits, **values)


def test_a_translation_changes_the_language_and_keeps_the_level() -> None:
    check_derivation("translation", ORIGINAL, language="sw", reading_level="early")
    with pytest.raises(Unprocessable) as same:
        check_derivation("translation", ORIGINAL, language="EN", reading_level="early")
    assert same.value.code == "translation-same-language"
    with pytest.raises(Unprocessable) as relevelled:
        check_derivation("translation", ORIGINAL, language="sw", reading_level="fluent")
    assert relevelled.value.code == "translation-changes-level"


def test_a_regional_variant_is_the_same_language() -> None:
    """#37 F9: en to en-GB was taken as a translation, a new slot of the family."""
    for variant in ("en-GB", "en-us", "EN-Latn"):
        with pytest.raises(Unprocessable) as same:
            check_derivation("translation", ORIGINAL, language=variant, reading_level="early")
        assert same.value.code == "translation-same-language"
    check_derivation("adaptation", ORIGINAL, language="en-GB", reading_level="emergent")


@pytest.mark.parametrize(
    "name",
    [
        "Jane Doe, CC BY 4.0",
        "Jane (original author)",
        "Licensed under Creative Commons",
        "© Jane Doe",
        "Jane Doe (c) 2026",
        "Copyright Jane",
        "Written by Jane",
        "All rights reserved",
        "Public domain",
        "Jane, author",
    ],
)
def test_a_credit_name_with_licence_or_role_wording_is_refused(name: str) -> None:
    assert credit_name_problem(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "Amina Yusuf",
        "Jean-Baptiste Ccby",
        "Authorine Ndlovu",
        "Mwandishi Juma",
        "Demo volunteer translator",
    ],
)
def test_a_persons_name_is_a_credit_name(name: str) -> None:
    assert credit_name_problem(name) is None


def test_an_adaptation_changes_the_level_and_keeps_the_language() -> None:
    check_derivation("adaptation", ORIGINAL, language="en", reading_level="emergent")
    with pytest.raises(Unprocessable) as same:
        check_derivation("adaptation", ORIGINAL, language="en", reading_level="early")
    assert same.value.code == "adaptation-same-level"
    with pytest.raises(Unprocessable) as translated:
        check_derivation("adaptation", ORIGINAL, language="fr", reading_level="emergent")
    assert translated.value.code == "adaptation-changes-language"


def test_no_derivative_of_a_no_derivatives_licence() -> None:
    for licence in LICENCES:
        source = Version("X", licence=licence)
        if "ND" in licence:
            with pytest.raises(Conflict) as refused:
                check_derivable(source)
            assert refused.value.code == "licence-forbids-derivatives"
        else:
            check_derivable(source)
    # The API's list of licences is this list.
    assert set(get_args(Licence)) == set(LICENCES)


def test_attribution_of_an_original_a_translation_and_a_chain() -> None:
    swahili = derive(ORIGINAL, "translation", "Neema Mushi", "Mbweha wa Taa", language="sw")
    easier = derive(
        ORIGINAL, "adaptation", "Tom Reed", "The Little Lantern Fox", reading_level="emergent"
    )
    french_of_easier = derive(
        easier, "translation", "Claire Dubois", "Le petit renard", language="fr"
    )
    family = families_of([ORIGINAL, swahili, easier, french_of_easier])[FAMILY]

    assert family.attribution(ORIGINAL) == (
        "'The Lantern Fox' by Amina Yusuf, illustrated by Juma Ali, CC BY 4.0"
    )
    assert family.attribution(swahili) == (
        "Translated into Kiswahili by Neema Mushi from 'The Lantern Fox' by Amina Yusuf, "
        "illustrated by Juma Ali, CC BY 4.0"
    )
    assert family.attribution(easier) == (
        "Adapted for emergent readers by Tom Reed from 'The Lantern Fox' by Amina Yusuf, "
        "illustrated by Juma Ali, CC BY 4.0"
    )
    # Each step names only who made it: the adapter is not credited for the French.
    assert family.attribution(french_of_easier) == (
        "Translated into French by Claire Dubois from 'The Little Lantern Fox', adapted for "
        "emergent readers by Tom Reed from 'The Lantern Fox' by Amina Yusuf, illustrated by "
        "Juma Ali, CC BY 4.0"
    )
    # Credits carried over keep the source's and add the new maker last.
    assert [c["name"] for c in french_of_easier.credits] == [
        "Amina Yusuf",
        "Juma Ali",
        "Tom Reed",
        "Claire Dubois",
    ]


def test_a_family_lists_its_other_published_versions_by_language_and_level() -> None:
    swahili = derive(ORIGINAL, "translation", "N", "Mbweha", language="sw")
    easier = derive(ORIGINAL, "adaptation", "T", "Easy", reading_level="emergent")
    draft = derive(ORIGINAL, "translation", "C", "Renard", language="fr")
    draft.status = "DRAFT"
    family = Family(FAMILY, {v.id: v for v in (ORIGINAL, swahili, easier, draft)})
    others = family.published_versions(besides=ORIGINAL.id)
    assert [(v.language, v.reading_level) for v in others] == [("en", "emergent"), ("sw", "early")]


def test_a_source_outside_the_loaded_family_ends_the_chain() -> None:
    orphan = Version("Alone", derivation="translation", derived_from=uuid.uuid4(), language="sw")
    family = families_of([orphan])[FAMILY]
    assert family.attribution(orphan) == "'Alone', CC BY 4.0"


def test_language_names_by_primary_subtag() -> None:
    assert language_name("sw") == "Kiswahili"
    assert language_name("pt-BR") == "Portuguese"
    assert language_name("xx") == "xx"
