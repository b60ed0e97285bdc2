"""A child's personal data in a manuscript: phone numbers, email addresses, web
addresses, street addresses and postcodes (#40), each a finding with its page and
a masked excerpt. Never a refusal: a reviewer decides.

Phone numbers are what Google's libphonenumber (`phonenumbers`) holds valid for
a region: in international form (+254 ...) for any region, and in national form
for the regions where the catalog's languages are read (REGIONS). Only a page
with at least MIN_DIGITS digits is searched, so a page of prose costs a scan for
digits and nothing more.

Excerpts are masked before they leave this module: every letter and digit of
what was found but its first and last two becomes "•", with a little of the
text around it, so a stored or shown finding never carries the number itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import phonenumbers

# Where en, fr, es, pt and sw are read (national number formats differ by region).
REGIONS = (
    "US", "GB", "IE", "KE", "NG", "ZA", "GH", "IN", "AU", "CA",
    "FR", "BE", "CH", "SN", "CI", "CM", "CD",
    "ES", "MX", "AR", "CO", "PE",
    "PT", "BR", "MZ", "AO",
    "TZ", "UG", "RW",
)  # fmt: skip
MIN_DIGITS = 7
CONTEXT = 16  # characters shown either side of a finding
MASK = "\u2022"

_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"']+|\b[\w-]+\.(?:com|org|net|info|co|io|me)(?:/[^\s<>\"']*)?\b",
    re.IGNORECASE,
)
# Street addresses as each language writes them; the names capitalised, so prose
# ("the road to 3 little houses", "3 close friends") is not an address.
_STREET = re.compile(
    # French: "12 rue de la Paix", "3 bis avenue Foch"
    r"\b\d{1,5}(?:\s?(?:bis|ter))?,?\s+"
    r"(?i:rue|avenue|boulevard|bd|chemin|impasse|all[\u00e9e]e|place|quai)"
    r"(?:\s+[\w'\u2019-]+){1,4}"
    # English: "221B Baker Street", "1 Main St"
    r"|\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][\w'\u2019-]+\s+){1,3}"
    r"(?:Street|St\b\.?|Road|Rd\b\.?|Avenue|Ave\b\.?|Lane|Drive|Close|Way|Crescent)"
    # Spanish, Portuguese, Swahili: "Calle Mayor 5", "Rua das Flores, 123", "Mtaa wa Moi 12"
    r"|\b(?i:calle|avenida|av\.|paseo|carrera|rua|travessa|estrada|largo|mtaa|barabara)\s+"
    r"(?:(?:de|da|das|do|dos|del|la|los|las|wa)\s+)?(?:[A-Z\u00c0-\u00dd][\w'\u2019-]+\s*){1,3}"
    r",?\s+(?:n[\u00ba\u00b0o.]\s*)?\d{1,5}\b"
)
# Postcodes whose form gives them away: the UK's, Canada's, a US ZIP+4 after its
# state (alone it is a Brazilian mobile number), Brazil's CEP.
_POSTCODE = re.compile(
    r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"
    r"|\b[A-Z]\d[A-Z]\s\d[A-Z]\d\b"
    r"|\b[A-Z]{2}\s\d{5}-\d{4}\b"
    r"|\b\d{5}-\d{3}\b"
)


def mask(found: str) -> str:
    """Every letter and digit but the first and last two as "•" (short ones: all)."""
    marks = [i for i, c in enumerate(found) if c.isalnum()]
    keep = set(marks[:2] + marks[-2:]) if len(marks) > 6 else set()
    return "".join(c if (i in keep or not c.isalnum()) else MASK for i, c in enumerate(found))


def excerpt(
    text: str,
    span: tuple[int, int],
    spans: Sequence[tuple[int, int]],
    masker: Callable[[str], str] | None = None,
) -> str:
    """The finding at `span` with a little context, masked by `masker` (`mask` by
    default); every other finding in that context fully masked, and every digit
    in it too."""
    start, end = span
    low, high = max(0, start - CONTEXT), min(len(text), end + CONTEXT)
    hidden = [False] * (high - low)
    for s, e in spans:
        for i in range(max(s, low), min(e, high)):
            hidden[i - low] = True
    out = []
    for i in range(low, high):
        c = text[i]
        if start <= i < end:
            continue
        out.append(MASK if (c.isdigit() or (hidden[i - low] and c.isalnum())) else c)
    before, after = "".join(out[: start - low]), "".join(out[start - low :])
    return " ".join(f"{before}{(masker or mask)(text[start:end])}{after}".split())


def _phone_spans(text: str) -> Iterator[tuple[int, int]]:
    if len(_DIGIT.findall(text)) < MIN_DIGITS:
        return
    seen: set[tuple[int, int]] = set()
    for region in REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region):
            span = (match.start, match.end)
            if not any(s <= span[0] < e or span[0] <= s < span[1] for s, e in seen):
                seen.add(span)
                yield span


KINDS = {
    "email-address": ("severe", "An email address: a child's contact details?"),
    "postcode": ("severe", "A postcode: where a child lives?"),
    "phone-number": ("severe", "A phone number: a child's contact details?"),
    "street-address": ("severe", "A street address: where a child lives?"),
    "web-address": ("warning", "A web address: where does it lead a child?"),
}


def _candidates(text: str) -> Iterator[tuple[str, tuple[int, int]]]:
    # The most telling form first: an email is not also a web address, and a
    # Brazilian CEP (01310-100) is not also a phone number.
    for match in _EMAIL.finditer(text):
        yield "email-address", match.span()
    for match in _POSTCODE.finditer(text):
        yield "postcode", match.span()
    for span in _phone_spans(text):
        yield "phone-number", span
    for match in _STREET.finditer(text):
        yield "street-address", match.span()
    for match in _URL.finditer(text):
        yield "web-address", match.span()


def personal_data_findings(pages: Sequence[str]) -> list[dict[str, Any]]:
    """Each piece of personal data found, in page order, with its masked excerpt."""
    found: list[dict[str, Any]] = []
    for number, text in enumerate(pages, start=1):
        taken: list[tuple[str, tuple[int, int]]] = []
        for kind, (start, end) in _candidates(text):
            if not any(s < end and start < e for _, (s, e) in taken):
                taken.append((kind, (start, end)))
        spans = [span for _, span in taken]
        for kind, span in sorted(taken, key=lambda t: t[1]):
            severity, detail = KINDS[kind]
            found.append(
                {
                    "kind": kind,
                    "severity": severity,
                    "page": number,
                    "excerpt": excerpt(text, span, spans),
                    "detail": detail,
                }
            )
    return found
