"""A link's lifetime: never after the token, never longer than configured, and
aligned to a step so readers of one book at about the same time share a link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.service import link_lifetime

NOW = datetime(2026, 11, 22, 12, 0, 7, 400_000, tzinfo=UTC)  # 12:00:07.4
HOUR_TOKEN = NOW + timedelta(hours=1)


def lifetime(
    now: datetime = NOW, token: datetime = HOUR_TOKEN, *, link: int = 300, step: int = 30
) -> tuple[datetime, int]:
    return link_lifetime(now, token, link_seconds=link, step_seconds=step)


def test_expiry_is_rounded_down_to_the_step() -> None:
    expires_at, seconds = lifetime()
    assert expires_at == datetime(2026, 11, 22, 12, 5, 0, tzinfo=UTC)  # not 12:05:07
    assert seconds == 293  # from 12:00:07, the second the request arrived in


@pytest.mark.parametrize("offset", [0.0, 0.6, 5.0, 22.5])
def test_readers_within_one_step_share_an_expiry(offset: float) -> None:
    assert lifetime(NOW + timedelta(seconds=offset))[0] == lifetime()[0]


def test_the_next_step_moves_the_expiry_on() -> None:
    assert lifetime(NOW + timedelta(seconds=23))[0] == lifetime()[0] + timedelta(seconds=30)


@pytest.mark.parametrize("link", [1, 30, 60, 300, 3600])
@pytest.mark.parametrize("step", [1, 15, 30, 300])
@pytest.mark.parametrize("second", [0.0, 0.5, 13.0, 29.99])
def test_never_longer_than_configured_and_never_less_than_half(
    link: int, step: int, second: float
) -> None:
    now = NOW + timedelta(seconds=second)
    expires_at, seconds = lifetime(now, link=link, step=step)
    assert 1 <= seconds <= link
    assert expires_at <= now.replace(microsecond=0) + timedelta(seconds=link)
    assert seconds * 2 >= link
    assert expires_at.microsecond == 0


def test_never_after_the_token() -> None:
    token = NOW + timedelta(seconds=100.9)
    expires_at, seconds = lifetime(token=token)
    assert expires_at <= token
    assert expires_at == datetime(2026, 11, 22, 12, 1, 30, tzinfo=UTC)  # 12:01:47 rounded down
    assert seconds == 83


def test_a_token_about_to_expire_keeps_its_own_second() -> None:
    token = NOW + timedelta(seconds=20)  # 12:00:27: rounding down would leave nothing
    expires_at, seconds = lifetime(token=token)
    assert expires_at == datetime(2026, 11, 22, 12, 0, 27, tzinfo=UTC)
    assert seconds == 20


def test_an_expired_token_still_gets_no_more_than_a_second() -> None:
    expires_at, seconds = lifetime(token=NOW - timedelta(seconds=5))
    assert (expires_at, seconds) == (datetime(2026, 11, 22, 12, 0, 8, tzinfo=UTC), 1)
