"""How failed sign-ins, sign-ups and wrong join codes are counted and slowed
(README: Sign-in limits). Past a limit a key is slowed, not stopped: a guesser
crawls, while the right password from a child behind the same school address
still gets in.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.access.settings import AccessSettings
from shared.clients.ratelimit import RateLimiter
from shared.contracts.errors import Problem, TooManyRequests, Unauthorized


def address_key(client_ip: str | None) -> str:
    """A limit's key for an address: callers with none (in-process clients) share one."""
    return client_ip or "unknown"


@dataclass
class SignInLimits:
    limiter: RateLimiter
    settings: AccessSettings

    async def hold_registration(self, client_ip: str | None) -> None:
        """Count a sign-up against its address (each costs an argon2 hash); 429 past
        `ACCESS_REGISTRATIONS_PER_IP` an hour."""
        await self.count_address(
            "register",
            client_ip,
            window_seconds=self.settings.registration_window_seconds,
            limit=self.settings.registrations_per_ip,
            refusal="Too many sign-ups from this address; try again later.",
        )

    async def count_address(
        self, name: str, client_ip: str | None, *, window_seconds: int, limit: int, refusal: str
    ) -> None:
        """One more `name` from this address in the window; a 429 past `limit`."""
        count = await self.limiter.hit(
            f"{name}:{address_key(client_ip)}", window_seconds=window_seconds
        )
        if count.exceeded(limit):
            raise TooManyRequests(refusal, retry_after=count.retry_after)

    @contextlib.asynccontextmanager
    async def address_attempt(self, client_ip: str | None) -> AsyncIterator[None]:
        """A sign-in attempt counted against its address *before* it is checked
        (`ACCESS_LOGIN_FAILURES_PER_IP`), so attempts in flight at once cannot
        overshoot the limit together. Only a wrong password keeps its place: a
        success or a refusal that checked nothing gives it back, so a whole class
        behind one school address signs in. Past the limit the address is slowed,
        not stopped (`failure_gate`): the right password still gets in."""
        async with self.failure_gate(
            f"ip:{address_key(client_ip)}",
            limit=self.settings.login_failures_per_ip,
            refusal="Too many failed sign-ins from this address.",
            reserve=True,
        ):
            yield

    @contextlib.asynccontextmanager
    async def failure_gate(
        self,
        key: str,
        *,
        limit: int,
        refusal: str,
        reserve: bool = False,
        counts: type[Problem] = Unauthorized,
        code: str = "sign-ins-slowed",
    ) -> AsyncIterator[None]:
        """Failed attempts (a `counts` problem from the block: a wrong password,
        unless said otherwise) counted under `key` for the sign-in window. Past
        `limit` the key is slowed, not stopped: one attempt every
        `ACCESS_LOGIN_SLOWED_SECONDS` is still checked (the failure that reached the
        limit starts the wait, so the next guess waits it out), and an attempt that
        is not a failure gives its turn back at once. A guesser crawls; the
        right password, from a child behind the same school address, gets in.

        `reserve` counts the attempt before it is checked and gives it back unless
        it fails, so a burst in flight together cannot overshoot the limit."""
        window, pause = self.settings.login_window_seconds, self.settings.login_slowed_seconds
        if reserve:
            state = await self.limiter.hit(key, window_seconds=window)
            failed_before = state.count - 1
        else:
            state = await self.limiter.peek(key)
            failed_before = state.count
        turn = failed = False
        try:
            if failed_before >= limit:
                wait = await self.limiter.take_turn(key, seconds=pause)
                if wait:
                    raise TooManyRequests(
                        f"{refusal} One attempt every {pause} s is still checked: try again "
                        f"in {wait} s.",
                        code=code,
                        retry_after=wait,
                    )
                turn = True
            yield
        except counts:
            failed = True
            failures = (
                state.count
                if reserve
                else (await self.limiter.hit(key, window_seconds=window)).count
            )
            if failures >= limit:
                await self.limiter.hold_turn(key, seconds=pause)
            raise
        finally:
            if not failed:
                if reserve:
                    await self.limiter.release(key, window_seconds=window)
                if turn:
                    await self.limiter.give_back_turn(key)
