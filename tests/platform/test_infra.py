"""The deployment contract the code writes for Terraform (infra/platform/contracts.json):
current, naming only settings the services really read, and enough to start each
service as production would (no placeholder, no embedded-run shortcut)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.settings import ServiceSettings
from stories.deployment import alb_pattern, contracts, contracts_json
from stories.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "infra" / "platform" / "contracts.json"

# What a deployment would put in each (shapes, not secrets).
PRODUCTION_VALUES = {
    "ENVIRONMENT": "production",
    "LOG_JSON": "true",
    "AWS_REGION": "us-east-1",
    "RESOURCE_PREFIX": "stories-production-",
    "REDIS_URL": "rediss://redis.internal:6379/0",
    "ACCESS_URL": "https://api.1001stories.org",
    "ACCESS_MAIL_TRANSPORT": "ses",
    "ACCESS_MAIL_FROM": "1001 Stories <no-reply@1001stories.org>",
    "ACCESS_PUBLIC_URL": "https://api.1001stories.org",
    "JWKS_URL": "https://api.1001stories.org/.well-known/jwks.json",
    "CORS_ORIGINS": '["https://1001stories.org"]',
    "TRUSTED_PROXIES": '["10.0.0.0/16"]',
    "EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:stories-production-x-events",
    "CONTENT_PUBLISHED_ASSETS_URL": "https://d111111abcdef8.cloudfront.net",
    "CONTENT_PDF_CHECKS_AT_ONCE": "1",
    "CONTENT_PDF_CHECK_MEMORY_BYTES": "1073741824",
    "DELIVERY_SIGNER": "cloudfront",
    "DELIVERY_CLOUDFRONT_DOMAIN": "https://d111111abcdef8.cloudfront.net",
    "DELIVERY_LINK_SECONDS": "300",
    "ACCESS_METRICS_URL": "http://metrics.stories-production.internal:8000",
    "CONTENT_METRICS_URL": "http://metrics.stories-production.internal:8000",
    "METRICS_CLOUDWATCH_NAMESPACE": "Stories/Metrics",
    "METRICS_DASHBOARD_LOGIN_URL": "/v1/auth/login",
    "TRACING_EXPORTER": "otlp",
    "TRACING_SAMPLE_RATIO": "0.1",
    "TRACING_MAX_TRACES_PER_SECOND": "10",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
}


def _secret_value(name: str) -> str:
    if name.endswith("_DATABASE_URL"):
        return "postgresql+asyncpg://stories:s3cret-from-secrets-manager@db.internal:5432/x"
    if name == "ACCESS_SERVICE_CLIENTS":
        return '{"content": "a-long-random-one", "delivery": "another-one", "metrics": "a-third"}'
    if name == "DELIVERY_CLOUDFRONT_KEYS":
        return '[{"key_pair_id": "K2026", "private_key": "-----BEGIN PRIVATE KEY-----"}]'
    return "a-long-random-value-from-secrets-manager"


def test_the_committed_contracts_are_what_the_code_says() -> None:
    assert CONTRACTS.read_text() == contracts_json(), f"run: stories contracts > {CONTRACTS}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_name_is_a_setting_the_service_reads(name: str) -> None:
    settings_class = SERVICES[name].settings_class
    contract = contracts()["services"][name]
    fields = set(settings_class.model_fields)
    for variable in [*contract["values"], *contract["secrets"]]:
        # Read under the service's prefix (CONTENT_X -> x) or bare (ACCESS_URL -> access_url).
        candidates = {variable.lower(), variable.lower().removeprefix(f"{name}_")}
        assert candidates & fields, f"{variable} is no setting of {name}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_contract_is_enough_to_start_as_production(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = contracts()["services"][name]
    for variable in list(os.environ):
        if variable.isupper() and variable not in ("PATH", "HOME", "LANG"):
            monkeypatch.delenv(variable)
    for variable in contract["values"]:
        monkeypatch.setenv(variable, PRODUCTION_VALUES[variable])
    for variable in contract["secrets"]:
        monkeypatch.setenv(variable, _secret_value(variable))
    if name == "delivery":  # a real key, as Secrets Manager would hold it
        from tests.delivery.test_cloudfront_signing import pem

        monkeypatch.setenv(
            "DELIVERY_CLOUDFRONT_KEYS",
            '[{"key_pair_id": "K2026", "private_key": ' + _json_string(pem("K1")) + "}]",
        )
    settings: ServiceSettings = SERVICES[name].settings_class()
    assert settings.environment.value == "production"
    assert settings.tracing_exporter == "otlp"
    assert settings.database_url.startswith("postgresql+asyncpg://")
    if SERVICES[name].produces is not None:
        assert settings.events_topic_arn is not None
    if name != "access":
        secret = settings.service_client_secret
        assert isinstance(secret, SecretStr)
        assert not secret.get_secret_value().startswith("dev-")


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)


def _alb_matches(pattern: str, path: str) -> bool:
    return re.fullmatch(alb_pattern(pattern), path) is not None


# Served by every service for operators and for the load balancer's own health
# checks (straight to the task), never through a listener rule.
NOT_FORWARDED = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/healthz"}


def _paths(name: str) -> list[str]:
    """Every path the service's app serves (its routers' routes included), with a
    value in place of each path parameter."""
    found = []
    for route in SERVICES[name].create_app().routes:
        included = getattr(route, "original_router", None)
        if included is None:
            found.append(str(getattr(route, "path", "")))
        else:
            prefix = route.include_context.prefix  # type: ignore[attr-defined]
            found += [prefix + str(getattr(r, "path", "")) for r in included.routes]
    paths = {re.sub(r"\{[^}]+\}", "x", p) for p in found if p and p not in NOT_FORWARDED}
    return sorted(p for p in paths if not p.startswith("/docs-assets"))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_load_balancer_forwards_every_public_route_to_its_service_alone(name: str) -> None:
    """#22: the path rules (stories/deployment.py, read by Terraform) against the
    routes each service really serves: a route no rule forwards is unreachable in
    AWS (as /v1/classes and /opds were), one another service's rule takes goes to
    the wrong service, and an internal one must be refused before any rule."""
    routes, internal = contracts()["routes"], contracts()["internal_paths"]
    assert len(routes[name]["paths"]) <= 5, "an ALB rule takes at most five path patterns"
    assert len({r["priority"] for r in routes.values()}) == len(routes)
    for path in _paths(name):
        if any(_alb_matches(p, path) for p in internal):
            assert path.startswith(
                ("/v1/decisions", "/v1/auth/service-token", "/metrics", "/readyz")
            ), path
            continue
        owners = [
            other
            for other, route in routes.items()
            if any(_alb_matches(p, path) for p in route["paths"])
        ]
        assert owners == [name], (path, owners)
