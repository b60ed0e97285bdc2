"""Join codes (#19): what a child types to join a class or make a class account.

A code is short and hard to misread; a code that joins nothing now is one answer,
whatever the reason, and wrong codes are counted per address and per account, as
failed sign-ins are, so guessing crawls while a right code still gets in.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.access.accounts import AccountService
from services.access.models import SchoolClass
from services.access.sign_in_limits import address_key
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, NotFound

# No 0/O, 1/I/L, 5/S, 2/Z, 8/B: a code read aloud or copied from a board by a
# seven-year-old still works. 25 symbols ** 6 = 244 million codes; wrong codes are
# counted per account and per address (`join_code_gates`), so guessing crawls.
CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
CODE_LENGTH = 6


def normalize_code(code: str) -> str:
    """What a child typed, as stored: case, spaces and dashes do not matter."""
    return re.sub(r"[\s-]+", "", code).upper()


def new_join_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


@dataclass
class JoinCodes:
    accounts: AccountService

    @contextlib.asynccontextmanager
    async def gates(
        self, client_ip: str | None, *, account: str | None = None
    ) -> AsyncIterator[None]:
        """Wrong join codes counted per address and per account, as failed sign-ins
        are (#37 F1: 600 guesses in 2.6 s, never a 429): past
        `ACCESS_JOIN_CODE_FAILURES_PER_IP` / `_PER_ACCOUNT` the guesser is slowed to one
        code every `ACCESS_LOGIN_SLOWED_SECONDS`, while a right code still gets in."""
        settings = self.accounts.settings
        limits = {f"join:ip:{address_key(client_ip)}": settings.join_code_failures_per_ip}
        if account is not None:
            limits[f"join:account:{account}"] = settings.join_code_failures_per_account
        async with contextlib.AsyncExitStack() as gates:
            for key, limit in limits.items():
                await gates.enter_async_context(
                    self.accounts.limits.failure_gate(
                        key,
                        limit=limit,
                        refusal="Too many wrong class codes.",
                        counts=NotFound,
                        code="join-codes-slowed",
                    )
                )
            yield

    async def joinable(self, code: str) -> SchoolClass:
        """The class of this code, locked: joins to one class take turns, so two
        children picking the same username at once both get one. A code that joins
        nothing now (unknown, expired, its class archived) is one answer: a guesser
        learns nothing from which (#37 F1: an expired code was a 409)."""
        school_class = await self.accounts.repository.class_by_code(
            normalize_code(code), for_update=True
        )
        now = now_utc()
        expires = school_class.join_code_expires_at if school_class is not None else None
        if (
            school_class is None
            or school_class.archived_at is not None
            or (expires is not None and expires <= now)
        ):
            raise NotFound(
                "No class takes this code now: check it, or ask your teacher for the current one.",
                code="unknown-class-code",
            )
        return school_class

    async def unused(self) -> str:
        for _ in range(10):
            code = new_join_code()
            if not await self.accounts.repository.code_taken(code):
                return code
        raise Conflict("Could not find a free class code; try again.", code="code-collision")
