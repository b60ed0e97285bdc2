"""Class accounts (#19): children without email, who sign in with their class's code,
a username made from their first name and a simple password, guarded per account
from every address (its password may be simple) as well as per address.
"""

from __future__ import annotations

import itertools
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from services.access.accounts import AccountService
from services.access.join_codes import normalize_code
from services.access.models import SchoolClass, User
from services.access.schemas import TokenPair
from shared.contracts.errors import Unauthorized, Unprocessable

INVALID_CLASS_LOGIN = "Invalid class code, username or password."
# First passwords a child can type: a short word and four digits (40 * 10,000
# choices), guarded by the per-account failure limit.
_WORDS = (
    "ant", "bee", "cat", "cow", "deer", "duck", "eel", "elk", "fish", "fox", "frog", "goat",
    "hen", "horse", "lion", "lynx", "mole", "moth", "mouse", "newt", "owl", "panda", "pig",
    "pony", "puma", "rabbit", "seal", "sheep", "snail", "swan", "tiger", "toad", "trout",
    "tuna", "wasp", "whale", "wolf", "worm", "yak", "zebra",
)  # fmt: skip
_USERNAME_STEM = re.compile(r"[^a-z0-9]+")


def first_password() -> str:
    return f"{secrets.choice(_WORDS)}{secrets.randbelow(10_000):04d}"


def username_for(display_name: str, taken: set[str], *, self_registered: bool = False) -> str:
    """A username from the first name, in plain letters ("Amélie Njoroge" ->
    "amelie"), numbered when the class has one already ("amelie2"); "learner"
    when the name has no Latin letters.

    A child registering themselves always gets a random number after it
    ("amelie417"): the answer must not tell who else is in the class (#37 F14:
    "juma2" said a Juma was). A teacher adding a class sees them all anyway."""
    plain = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    plain = plain.replace("'", "")  # O'Neil -> oneil
    words = [w for w in _USERNAME_STEM.split(plain.lower()) if w]
    stem = (words[0] if words else "learner")[:20]
    if self_registered:
        for attempt in itertools.count():
            digits = 3 + attempt // 20  # a crowded stem: longer numbers after a while
            name = f"{stem}{secrets.randbelow(9 * 10 ** (digits - 1)) + 10 ** (digits - 1)}"
            if name not in taken:
                break
    else:
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem}{n}"
    taken.add(name)
    return name


def account_key(code: str, username: str | None) -> str:
    """The failure count of a class account, by what a sign-in names it with."""
    return f"class-account:{code}|{username}"


@dataclass(frozen=True)
class NewLearner:
    user: User
    password: str


@dataclass
class ClassAccounts:
    accounts: AccountService

    async def login(
        self, *, code: str, username: str, password: str, client_ip: str | None
    ) -> TokenPair:
        """Class code + username + password; limited per address like every sign-in,
        and per class account from every address (its password may be simple)."""
        async with self.accounts.limits.address_attempt(client_ip):
            return await self._login(normalize_code(code), username.strip().lower(), password)

    async def _login(self, code: str, username: str, password: str) -> TokenPair:
        settings = self.accounts.settings
        async with self.accounts.limits.failure_gate(
            account_key(code, username),
            limit=settings.class_login_failures_per_account,
            refusal="Too many failed sign-ins for this account (your teacher can give you "
            "a new password).",
        ):
            school_class = await self.accounts.repository.class_by_code(code)
            found = (
                await self.accounts.repository.class_account(school_class.id, username)
                if school_class is not None
                else None
            )
            user_id, stored_hash = (found.id, found.password_hash) if found else (None, None)
            await self.accounts.session.rollback()  # no connection held through argon2
            if not await self.accounts.hashing.verify(stored_hash, password):
                raise Unauthorized(INVALID_CLASS_LOGIN, code="invalid-credentials")
            user = await self.accounts.session.get(User, user_id)
            if user is None or user.password_hash != stored_hash:  # changed meanwhile
                raise Unauthorized(INVALID_CLASS_LOGIN, code="invalid-credentials")
            return await self.accounts.signed_in(user, password)

    def new(
        self, school_class: SchoolClass, name: str, username: str, password_hash: str, now: datetime
    ) -> User:
        return self.accounts.new_learner(
            name, password_hash, now, username=username, home_class_id=school_class.id
        )

    def check_password(self, password: str) -> None:
        minimum = self.accounts.settings.class_password_min_length
        if len(password) < minimum or len(set(password)) < 3:
            raise Unprocessable(
                f"A class account's password needs at least {minimum} characters, "
                "at least 3 of them different.",
                code="weak-password",
            )
