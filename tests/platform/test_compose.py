"""docker-compose.yml, checked without a Docker engine: `docker-compose config -q`,
then what it does not catch (health conditions need healthchecks, host ports are
unique, every service gets the settings it reads); and LocalStack's ready.d hook,
run against a real emulator, creates exactly what `stories bootstrap` creates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aioboto3
import pytest
import yaml

from shared.bus.provision import bootstrap
from shared.contracts.names import ResourceNames, topology_plan
from shared.settings import ServiceSettings
from stories.operate import topology_json
from stories.registry import SERVICES
from tests.support import unique_prefix

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HOOK = ROOT / "infra" / "localstack" / "ready.d" / "10_stories_bootstrap.py"
PLAN = ROOT / "infra" / "localstack" / "topology.json"
PLATFORM_IMAGE = "stories-platform:local"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors and merges applied)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("SKIPPED LOUDLY: no docker-compose; `make test` installs Debian's")
    checked = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    resolved = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = yaml.safe_load(resolved.stdout)
    return config


def test_every_health_condition_has_a_healthcheck_to_wait_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, (name, target)
            if rule.get("condition") == "service_healthy":
                check = services[target].get("healthcheck")
                assert check, f"{name} waits on {target}'s health, which is never checked"
                assert not check.get("disable"), f"{name} waits on {target}'s disabled check"
            if rule.get("condition") == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (name, target)


def test_no_host_port_is_published_twice(compose: dict[str, Any]) -> None:
    published = [
        str(port["published"]) if isinstance(port, dict) else str(port).split(":")[0]
        for service in compose["services"].values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), published


def test_the_apis_come_up_after_migrations_and_the_emulator_is_pinned_and_strict(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in SERVICES:
        for process in (name, f"{name}-worker"):
            assert services[process]["image"] == PLATFORM_IMAGE
            needs = services[process]["depends_on"]
            assert needs["migrate"]["condition"] == "service_completed_successfully"
            assert needs["localstack"]["condition"] == "service_healthy"
        assert services[name]["command"][:2] == ["serve", name]
        assert services[f"{name}-worker"]["command"][:2] == ["worker", name]
    localstack = services["localstack"]
    assert localstack["image"] == "localstack/localstack:4.14.0"
    assert localstack["environment"]["S3_SKIP_SIGNATURE_VALIDATION"] == "0"
    mounts = dict(_mount(v) for v in localstack["volumes"])
    assert mounts[HOOK.parent] == "/etc/localstack/init/ready.d"
    assert mounts[PLAN] == localstack["environment"]["STORIES_TOPOLOGY"]
    assert "init/ready" in " ".join(localstack["healthcheck"]["test"])
    # A database per service, created when PostgreSQL starts.
    init = (ROOT / "infra" / "compose" / "postgres-init.sql").read_text()
    for name in SERVICES:
        assert f"CREATE DATABASE {name};" in init


def test_every_service_gets_the_settings_it_must_have(compose: dict[str, Any]) -> None:
    """Each process builds its settings from the compose environment as it would in
    its container, so a missing or misspelt variable fails here, not at start-up."""
    services = compose["services"]
    for name, definition in SERVICES.items():
        for process in (name, f"{name}-worker"):
            env = {k: str(v) for k, v in services[process]["environment"].items()}
            settings: ServiceSettings = _settings_from(definition.settings_class, env)
            assert settings.database_url.startswith("postgresql+asyncpg://"), process
            assert settings.database_url.endswith(f"/{name}"), process
            assert settings.redis_url.startswith("redis://redis:"), process
            assert settings.aws_endpoint_url == "http://localstack:4566", process
            assert settings.access_url == "http://access:8000", process
            assert settings.resource_prefix == "stories-", process
            # Traces go to the pinned Jaeger, as they go to the ADOT sidecar in AWS.
            assert settings.tracing_exporter == "otlp", process
            assert settings.otel_exporter_otlp_endpoint == "http://jaeger:4318", process
    assert services["jaeger"]["image"] == "jaegertracing/all-in-one:1.65.0"


def _mount(volume: str | dict[str, str]) -> tuple[Path, str]:
    """(host path, container path) of a bind mount, in either of compose's spellings."""
    if isinstance(volume, dict):
        return Path(volume["source"]).resolve(), volume["target"]
    source, target = volume.split(":")[:2]
    return (COMPOSE.parent / source).resolve(), target


def _settings_from(settings_class: type[ServiceSettings], env: dict[str, str]) -> ServiceSettings:
    """Settings read from exactly `env` (as in a container), not from this machine's."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({k: v for k, v in saved.items() if k in ("PATH", "HOME", "LANG")})
        os.environ.update(env)
        return settings_class()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_committed_topology_plan_is_what_bootstrap_creates() -> None:
    assert PLAN.read_text() == topology_json("stories-"), "run: stories topology > " + str(PLAN)
    assert json.loads(PLAN.read_text()) == topology_plan(ResourceNames("stories-"))


async def test_the_ready_hook_creates_what_stories_bootstrap_creates(
    moto_url: str, tmp_path: Path
) -> None:
    hook_prefix, bootstrap_prefix = unique_prefix(), unique_prefix()
    plan = tmp_path / "topology.json"
    plan.write_text(topology_json(hook_prefix))
    ran = subprocess.run(
        [sys.executable, str(HOOK)],
        env={
            **os.environ,
            "STORIES_TOPOLOGY": str(plan),
            "STORIES_BOOTSTRAP_ENDPOINT": moto_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    session = aioboto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    async with (
        session.client("sns", endpoint_url=moto_url) as sns,
        session.client("sqs", endpoint_url=moto_url) as sqs,
        session.client("s3", endpoint_url=moto_url) as s3,
    ):
        await bootstrap(
            sns=sns, sqs=sqs, s3=s3, names=ResourceNames(bootstrap_prefix), region="us-east-1"
        )
        by_hook = await _describe(sns, sqs, s3, hook_prefix)
        by_bootstrap = await _describe(sns, sqs, s3, bootstrap_prefix)
    assert by_hook == by_bootstrap
    assert len(by_hook["queues"]) == 2 * len(topology_plan(ResourceNames("x"))["queues"])
    assert by_hook["buckets"]["published"]["versioning"] == "Enabled"


async def _describe(sns: Any, sqs: Any, s3: Any, prefix: str) -> dict[str, Any]:
    """Every resource under `prefix`, with the prefix and account details taken out."""

    def bare(text: str) -> str:
        return text.replace(prefix, "<p>").replace("123456789012", "<acct>")

    topics = sorted(
        t["TopicArn"] for t in (await sns.list_topics())["Topics"] if prefix in t["TopicArn"]
    )
    subscriptions = []
    for topic in topics:
        listed = await sns.list_subscriptions_by_topic(TopicArn=topic)
        for sub in listed["Subscriptions"]:
            attributes = (
                await sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])
            )["Attributes"]
            subscriptions.append(
                (
                    bare(topic),
                    bare(sub["Endpoint"]),
                    attributes.get("RawMessageDelivery"),
                    attributes.get("FilterPolicy"),
                )
            )
    queues = {}
    for url in (await sqs.list_queues(QueueNamePrefix=prefix)).get("QueueUrls", []):
        attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
            "Attributes"
        ]
        kept = ("VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy", "Policy")
        queues[bare(url.rsplit("/", 1)[-1])] = {
            k: json.loads(bare(v)) if k in ("RedrivePolicy", "Policy") else v
            for k, v in attributes.items()
            if k in kept
        }
    buckets = {}
    for bucket in (await s3.list_buckets())["Buckets"]:
        if bucket["Name"].startswith(prefix):
            versioning = await s3.get_bucket_versioning(Bucket=bucket["Name"])
            block = await s3.get_public_access_block(Bucket=bucket["Name"])
            buckets[bucket["Name"].removeprefix(prefix)] = {
                "versioning": versioning.get("Status"),
                "public_access_block": block["PublicAccessBlockConfiguration"],
            }
    return {
        "topics": [bare(t) for t in topics],
        "subscriptions": sorted(subscriptions, key=lambda s: (s[0], s[1])),
        "queues": queues,
        "buckets": buckets,
    }
