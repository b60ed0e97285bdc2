"""Settings: per-service prefixes over platform-wide names; no placeholders when deployed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.access.settings import AccessSettings
from services.content.settings import ContentSettings


def test_a_prefixed_variable_wins_over_the_platform_wide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://shared:6379/0")
    monkeypatch.setenv("ACCESS_REDIS_URL", "redis://access-only:6379/0")

    assert AccessSettings().redis_url == "redis://access-only:6379/0"
    assert ContentSettings().redis_url == "redis://shared:6379/0"


def test_each_service_defaults_to_its_own_schema() -> None:
    assert AccessSettings().database_schema == "access"
    assert ContentSettings().database_schema == "content"


def test_placeholder_secrets_are_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="aws_secret_access_key is a placeholder"):
        AccessSettings(
            environment="production",
            database_url="postgresql+asyncpg://db/access",
            redis_url="redis://cache:6379/0",
            aws_secret_access_key="changeme",
        )


def test_embedded_stand_ins_are_refused_in_production() -> None:
    with pytest.raises(ValidationError) as refused:
        AccessSettings(environment="production")
    message = str(refused.value)
    assert "memory://" in message
    assert "SQLite" in message


def test_development_accepts_the_embedded_defaults() -> None:
    settings = AccessSettings(environment="development", aws_secret_access_key="test")
    assert settings.redis_url.startswith("memory://")
