"""One account per mailbox: email addresses in one canonical form, look-alikes refused.

Without this, `Dupcheck@...` typed with a fullwidth D (U+FF24), `dupcheck@...`
with a Cyrillic es (U+0441) for the c, or a domain written in Unicode and in
punycode were separate accounts that read the same to a person: a way to pose
as someone in a class or a review queue.

- NFKC first: fullwidth and other compatibility forms become the plain letters.
- The domain is stored in its ASCII (IDNA) form, so Unicode and punycode
  spellings of one domain are one domain.
- Refused: a part that mixes scripts (Latin with Cyrillic or Greek...; Japanese
  kana with kanji is one writing system), and combining marks left over after
  composition (U+0130, a dotted capital I, lower-cased is `i` + U+0307, which
  reads as a plain `i`).
"""

from __future__ import annotations

import unicodedata

from shared.contracts.errors import Unprocessable

# Scripts that are written together as one system.
_ONE_SYSTEM = {"HIRAGANA": "JAPANESE", "KATAKANA": "JAPANESE", "CJK": "JAPANESE"}


class LookalikeEmail(Unprocessable):
    code = "email-not-accepted"


def _scripts(text: str) -> set[str]:
    scripts = set()
    for character in text:
        if unicodedata.category(character).startswith("L"):
            script = unicodedata.name(character, "UNKNOWN").split()[0]
            scripts.add(_ONE_SYSTEM.get(script, script))
    return scripts


def _check_part(part: str, what: str) -> None:
    if any(unicodedata.category(c).startswith("M") for c in part):
        raise LookalikeEmail(f"The {what} of this address has a mark that hides a letter.")
    if len(_scripts(part)) > 1:
        raise LookalikeEmail(f"The {what} of this address mixes alphabets (a look-alike).")


def normalize_email(email: str) -> str:
    """The canonical form accounts are stored and found under; 422 for look-alikes."""
    text = unicodedata.normalize("NFKC", email.strip())
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise LookalikeEmail("This is not an email address.")
    try:
        unicode_domain = domain.encode("ascii").decode("idna") if domain.isascii() else domain
        ascii_domain = unicode_domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise LookalikeEmail("The domain of this address is not a valid name.") from exc
    local = local.lower()
    _check_part(local, "name part")
    for label in unicode_domain.lower().split("."):
        _check_part(label, "domain")
    return f"{local}@{ascii_domain}"
