"""A link's lifetime: never after the token, never longer than configured, and
aligned to a step so readers of one book at about the same time share a link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.links import link_lifetime

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


async def test_s3_links_follow_from_their_expiry_alone() -> None:
    """Signed as of expires_at - link_seconds: one URL per book and step, which ends
    exactly at expires_at; another expiry, version or file name is another URL."""
    from urllib.parse import parse_qs, urlsplit

    from services.delivery.signing import S3LinkSigner

    class Frozen:
        access_key, secret_key, token = "AKIDEXAMPLE", "secret", None

    class Client:
        async def get_frozen_credentials(self) -> Frozen:
            return Frozen()

    class S3:
        _request_signer = type("Signer", (), {"_credentials": Client()})()

    signer = S3LinkSigner(
        S3(), "stories-published", region="us-east-1", endpoint_url=None, link_seconds=300
    )
    expires_at = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
    url = await signer.signed_url("books/b/1-x.pdf", "v1", expires_at=expires_at)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Date"] == ["20261122T120000Z"]
    assert query["X-Amz-Expires"] == ["300"]
    assert query["versionId"] == ["v1"]
    same = await signer.signed_url("books/b/1-x.pdf", "v1", expires_at=expires_at)
    assert same == url
    others = {
        await signer.signed_url(
            "books/b/1-x.pdf", "v1", expires_at=expires_at + timedelta(seconds=30)
        ),
        await signer.signed_url("books/b/1-x.pdf", "v2", expires_at=expires_at),
    }
    assert url not in others
    assert len(others) == 2
