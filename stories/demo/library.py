"""The demo's library and people: who they are, the ten story families in five
languages, and each book's cover, drawn in code."""

from __future__ import annotations

import io
import random
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from stories.demo.texts import EASY_TITLE, pages

DOMAIN = "demo.example.org"
PASSWORD = "Read-together-2026"  # noqa: S105 - the demo's own accounts, printed for the developer
STAFF = ("VOLUNTEER", "STORY_MANAGER", "BOOK_MANAGER", "CONTENT_ADMIN", "TEACHER")
LEARNERS = (
    "Amina", "Baraka", "Chloé", "Daniel", "Esther", "Farid", "Grace", "Hugo",
    "Imani", "Joaquín", "Kofi", "Lucía", "Maya", "Nuru", "Omar", "Pedro",
    "Rosa", "Sami", "Tendai", "Zawadi",
)  # fmt: skip
CLASS_NAME = "Demo class 3B"
DAYS = 30
ENTITLED_EVERY = 5
# Every id the demo makes for a reading event comes from this namespace and what
# the event is: the same event sent again is the same id, which delivery takes once.
EVENT_IDS = uuid.UUID("6f1d0c2e-3b5a-4c1e-9d7f-2a8b4e6c1d30")

LANGUAGES = ("en", "fr", "es", "sw", "pt")
# Ten story families: each written in its first language, then translated by
# volunteers into most of the others (a few left missing, which the dashboard's
# coverage matrix shows as what to commission next). Titles in each language, in
# the order of LANGUAGES. Latin-1 text only: the PDFs use a standard font.
FAMILIES: list[tuple[str, tuple[str, str, str, str, str]]] = [
    ("en", ("The brave elephant", "L'éléphant courageux", "El elefante valiente",
            "Tembo jasiri", "O elefante corajoso")),
    ("sw", ("The sleepy hippo", "L'hippopotame endormi", "El hipopótamo dormilón",
            "Kiboko mwenye usingizi", "O hipopótamo sonolento")),
    ("fr", ("The curious giraffe", "La girafe curieuse", "La jirafa curiosa",
            "Twiga mdadisi", "A girafa curiosa")),
    ("en", ("The little tortoise", "La petite tortue", "La pequeña tortuga",
            "Kobe mdogo", "A pequena tartaruga")),
    ("sw", ("The singing lion", "Le lion qui chante", "El león cantarín",
            "Simba mwimbaji", "O leão cantor")),
    ("es", ("The hungry zebra", "Le zèbre gourmand", "La cebra glotona",
            "Pundamilia mlafi", "A zebra gulosa")),
    ("pt", ("The kind parrot", "Le perroquet gentil", "El loro amable",
            "Kasuku mwema", "O papagaio gentil")),
    ("en", ("The clever monkey", "Le singe malin", "El mono listo",
            "Tumbili mjanja", "O macaco esperto")),
    ("sw", ("The busy goat", "La chèvre pressée", "La cabra apurada",
            "Mbuzi mwepesi", "A cabra apressada")),
    ("fr", ("The dancing crocodile", "Le crocodile qui danse", "El cocodrilo bailarín",
            "Mamba mcheza ngoma", "O crocodilo dançarino")),
]  # fmt: skip
# The line that recurs on every page, in each language.
LINES = {
    "en": "Once upon a time, under the big baobab tree...",
    "fr": "Il était une fois, sous le grand baobab...",
    "es": "Había una vez, bajo el gran baobab...",
    "sw": "Hapo zamani za kale, chini ya mbuyu mkubwa...",
    "pt": "Era uma vez, debaixo do grande embondeiro...",
}
TITLE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CATEGORIES = ("animals", "adventure", "family", "science", "friendship")
# The families whose original also has an easier adaptation: one in each language.
ADAPTED = (0, 1, 2, 5, 6)


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class Story:
    number: int  # of its family
    language: str
    title: str
    # The family's first book (the original), None for the original itself.
    source: Story | None = None
    # An easier telling of its original, in the original's language (#40).
    adaptation: bool = False

    @property
    def line(self) -> str:
        return LINES[self.language]

    @property
    def derivation(self) -> str:
        if self.source is None:
            return "original"
        return "adaptation" if self.adaptation else "translation"

    @property
    def reading_level(self) -> str:
        """What its text reads as (services/content/reading_levels.py), which its
        reviewer confirms at approval: the full telling early, the easy one emergent."""
        return "emergent" if self.adaptation else "early"

    @property
    def page_texts(self) -> list[str]:
        hero = (self.source or self).title if self.adaptation else self.title
        return [self.title, *pages(self.language, hero, self.number, easy=self.adaptation)]

    @property
    def access(self) -> str:
        return "entitled" if self.number % ENTITLED_EVERY == ENTITLED_EVERY - 1 else "free"


def stories() -> list[Story]:
    """Every book of the library, each family's original before its translations."""
    originals, translations = [], []
    for number, (first, titles) in enumerate(FAMILIES):
        original = Story(number, first, titles[LANGUAGES.index(first)])
        originals.append(original)
        for index, language in enumerate(LANGUAGES):
            # A few translations nobody has made yet.
            if language != first and (number + index) % 7 != 3:
                translations.append(Story(number, language, titles[index], original))
        if number in ADAPTED:
            easier = f"{original.title} ({EASY_TITLE[first]})"
            translations.append(Story(number, first, easier, original, adaptation=True))
    return originals + translations


def learner_email(name: str) -> str:
    """chloe@..., not chloé@...: an address any mail system and form takes."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return f"{plain.lower()}@{DOMAIN}"


def cover_png(story: Story) -> bytes:
    """A picture-book cover drawn in code: a sky of the book's own colour, a sun,
    two hills and a tree, the title on a band (PNG, 600 x 840)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(story.number)
    sky = (rng.randrange(80, 200), rng.randrange(140, 230), rng.randrange(180, 255))
    image = Image.new("RGB", (600, 840), sky)
    draw = ImageDraw.Draw(image)
    sun = rng.randrange(80, 520)
    draw.ellipse((sun - 60, 90, sun + 60, 210), fill=(255, 205, 60))
    hills = [(rng.randrange(40, 120), rng.randrange(120, 200), 60) for _ in range(2)]
    draw.ellipse((-200, 560, 420, 1100), fill=hills[0])
    draw.ellipse((200, 600, 820, 1100), fill=hills[1])
    trunk = rng.randrange(120, 480)
    draw.rectangle((trunk - 14, 470, trunk + 14, 640), fill=(110, 70, 40))
    draw.ellipse((trunk - 90, 360, trunk + 90, 520), fill=(40, 130, 60))
    draw.rectangle((0, 250, 600, 350), fill=(255, 250, 240))
    title = story.title
    for size in range(44, 20, -2):  # as large as fits the band
        try:  # Debian's DejaVu has every accent; Pillow's own font has none
            font: Any = ImageFont.truetype(TITLE_FONT, size=size)
        except OSError:
            font = ImageFont.load_default(size=size)
            title = unicodedata.normalize("NFKD", story.title).encode("ascii", "ignore").decode()
        if draw.textlength(title, font=font) <= 560:
            break
    draw.text((300, 300), title, fill=(40, 40, 60), font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
