"""Operator commands ask only for the settings they use (#14 item 5).

Each runs as an operator runs it, `ENVIRONMENT=production`, given what it needs
and nothing else: no service secrets, no Redis where it uses none. Before, every
command refused to start without `SERVICE_CLIENT_SECRET`, which none of them sends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from shared.clients.db import drop_schema
from tests.support import TEST_DATABASE_URL, TEST_REDIS_URL, unique_schema

pytestmark = pytest.mark.slow

LEFT_OUT = ("DATABASE_URL", "REDIS_URL", "AWS_", "SERVICE_CLIENT_SECRET", "KEY_ENCRYPTION_KEY")


def _production(**needed: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(part in k for part in LEFT_OUT)}
    env.update(ENVIRONMENT="production", LOG_JSON="false", **needed)
    return env


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stories.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def aws(moto_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "operator",
        "AWS_SECRET_ACCESS_KEY": "an-operators-secret-key",
        "AWS_REGION": "us-east-1",
        "RESOURCE_PREFIX": f"ops-{uuid.uuid4().hex[:8]}-",
    }


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    import asyncio

    for schema in made:
        asyncio.run(drop_schema(TEST_DATABASE_URL, schema))


def test_bootstrap_and_redrive_need_only_aws(aws: dict[str, str]) -> None:
    env = _production(**aws)
    bootstrap = _run("bootstrap", env=env)
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
    assert "queue  metrics" in bootstrap.stdout
    redrive = _run("dlq", "redrive", "metrics", env=env)
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    assert "moved 0 message(s)" in redrive.stdout


def test_migrate_create_admin_and_rotate_need_only_the_database(schemas: list[str]) -> None:
    schema = unique_schema("ops")
    schemas.append(schema)
    database = make_url(TEST_DATABASE_URL).render_as_string(hide_password=False)
    env = _production(ACCESS_DATABASE_URL=database, ACCESS_DATABASE_SCHEMA=schema)
    migrate = _run("migrate", "access", env=env)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    admin = _run(
        "create-admin",
        "--email",
        "ops@example.org",
        "--password",
        "a sturdy passphrase 42",
        env=env,
    )
    assert admin.returncode == 0, admin.stdout + admin.stderr
    assert "is ADMIN" in admin.stdout
    # Rotation encrypts the new key: that command needs the key-encryption key too.
    refused = _run("rotate-signing-key", env=env)
    assert refused.returncode != 0
    assert "key_encryption_key is a placeholder" in refused.stderr
    rotated = _run(
        "rotate-signing-key",
        env={**env, "ACCESS_KEY_ENCRYPTION_KEY": "an operator's key-encryption key"},
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr


def test_metrics_rebuild_needs_the_database_and_redis(schemas: list[str]) -> None:
    schema = unique_schema("opsm")
    schemas.append(schema)
    database = make_url(TEST_DATABASE_URL).render_as_string(hide_password=False)
    env = _production(METRICS_DATABASE_URL=database, METRICS_DATABASE_SCHEMA=schema)
    assert _run("migrate", "metrics", env=env).returncode == 0
    without_redis = _run("metrics", "rebuild", env=env)
    assert without_redis.returncode != 0
    assert "redis_url must name a real Redis" in without_redis.stderr
    rebuilt = _run("metrics", "rebuild", env={**env, "REDIS_URL": TEST_REDIS_URL})
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt from 0 logged event(s)" in rebuilt.stdout
