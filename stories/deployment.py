"""What a deployment must give each service: the environment variables it reads
(plain values, and secrets from Secrets Manager), the topic it publishes to and
the queue it consumes. `stories contracts` writes this, with the topology, to
infra/platform/contracts.json, which Terraform reads and `terraform test`
checks the task definitions against; tests/platform/test_infra.py keeps the file current
and proves every name below is a setting the service really reads."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from shared.contracts.names import SUBSCRIPTIONS, ResourceNames, topology_plan
from stories.registry import SERVICES

# Read by every service, deployed: where its state is, how it finds the others.
COMMON_VALUES = [
    "ENVIRONMENT",
    "LOG_JSON",
    "AWS_REGION",
    "RESOURCE_PREFIX",
    "REDIS_URL",
    "ACCESS_URL",
    "JWKS_URL",
    "CORS_ORIGINS",
    "TRUSTED_PROXIES",
    # Traces to the task's ADOT collector sidecar (X-Ray): shared/observe/tracing.py.
    "TRACING_EXPORTER",
    "TRACING_SAMPLE_RATIO",
    "TRACING_MAX_TRACES_PER_SECOND",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
]
COMMON_SECRETS = ["{PREFIX}_DATABASE_URL"]

VALUES: dict[str, list[str]] = {
    # Mail leaves through SES from the domain's identity (infra/platform/mail.tf);
    # its links point at the public origin.
    "access": [
        "ACCESS_METRICS_URL",
        "ACCESS_MAIL_TRANSPORT",
        "ACCESS_MAIL_FROM",
        "ACCESS_PUBLIC_URL",
    ],
    "content": [
        "CONTENT_PUBLISHED_ASSETS_URL",
        "CONTENT_METRICS_URL",
        # The deep checks' memory and how many run at once: sized with the task.
        "CONTENT_PDF_CHECKS_AT_ONCE",
        "CONTENT_PDF_CHECK_MEMORY_BYTES",
    ],
    "delivery": ["DELIVERY_SIGNER", "DELIVERY_CLOUDFRONT_DOMAIN", "DELIVERY_LINK_SECONDS"],
    "metrics": ["METRICS_CLOUDWATCH_NAMESPACE", "METRICS_DASHBOARD_LOGIN_URL"],
}
SECRETS: dict[str, list[str]] = {
    # Access's own client secret too: every service holds one (the shared client
    # is built everywhere), and production refuses a placeholder.
    "access": [
        "ACCESS_KEY_ENCRYPTION_KEY",
        "ACCESS_SERVICE_CLIENTS",
        "ACCESS_SERVICE_CLIENT_SECRET",
    ],
    "content": ["CONTENT_SERVICE_CLIENT_SECRET"],
    "delivery": ["DELIVERY_SERVICE_CLIENT_SECRET", "DELIVERY_CLOUDFRONT_KEYS"],
    "metrics": ["METRICS_SERVICE_CLIENT_SECRET"],
}


def service_contract(name: str) -> dict[str, Any]:
    definition = SERVICES[name]
    prefix = name.upper()
    values = [*COMMON_VALUES, *VALUES[name]]
    if definition.produces is not None:
        values.append("EVENTS_TOPIC_ARN")
    return {
        "values": sorted(values),
        "secrets": sorted(s.format(PREFIX=prefix) for s in [*COMMON_SECRETS, *SECRETS[name]]),
        "publishes_to": definition.produces.value if definition.produces else None,
        "consumes": name in SUBSCRIPTIONS,
    }


# The public load balancer's path rules, defined once (#22): Terraform's listener
# rules are built from them (contracts.json), and tests/platform/test_infra.py
# proves every public route of every service is forwarded to it and to no other.
# ALB path patterns: `*` is any run of characters (slashes too), at most five
# patterns per rule. Lower priority is looked at first.
PUBLIC_ROUTES: dict[str, dict[str, Any]] = {
    "access": {
        "priority": 10,
        "paths": [
            "/v1/auth/*",
            "/v1/users*",
            "/v1/entitlements*",
            "/v1/classes*",
            "/.well-known/*",
        ],
    },
    "content": {
        "priority": 20,
        # /v1/assets: covers where no CDN serves them (the embedded run, compose).
        "paths": ["/v1/submissions*", "/v1/books*", "/v1/families*", "/opds*", "/v1/assets*"],
    },
    "delivery": {"priority": 30, "paths": ["/v1/deliveries*", "/v1/reading*"]},
    "metrics": {"priority": 40, "paths": ["/v1/metrics*", "/dashboard*"]},
}
# Paths only other tasks may call: refused at the load balancer before any rule.
# A service's credential is minted by the services alone (#37 F13: the public
# /v1/auth/* rule forwarded it, and with the embedded run's dev secrets anyone
# reaching the gateway minted service tokens).
INTERNAL_PATHS = ["/v1/decisions*", "/v1/auth/service-token*", "/metrics*", "/readyz*"]


def alb_pattern(pattern: str) -> str:
    """An ALB path pattern as a regular expression over the whole path: `*` is any
    run of characters (slashes too), `?` exactly one; everything else is literal."""
    return re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")


@functools.cache
def _compiled_rules() -> tuple[re.Pattern[str], list[tuple[str, re.Pattern[str]]]]:
    internal = re.compile("|".join(alb_pattern(p) for p in INTERNAL_PATHS), re.DOTALL)
    rules = sorted(PUBLIC_ROUTES.items(), key=lambda item: int(item[1]["priority"]))
    return internal, [
        (name, re.compile("|".join(alb_pattern(p) for p in rule["paths"]), re.DOTALL))
        for name, rule in rules
    ]


def forwarded_to(path: str) -> str | None:
    """The service the load balancer forwards `path` to, or None where it answers
    404 itself (an internal path, or one no rule takes): the ALB's rules, read by
    Terraform from contracts.json, and the local gateway both decide by this."""
    internal, rules = _compiled_rules()
    if internal.fullmatch(path):
        return None
    for name, pattern in rules:
        if pattern.fullmatch(path):
            return name
    return None


def contracts() -> dict[str, Any]:
    """Names without the deployment's prefix: Terraform puts its own in front."""
    return {
        "services": {name: service_contract(name) for name in sorted(SERVICES)},
        "topology": topology_plan(ResourceNames("")),
        "routes": PUBLIC_ROUTES,
        "internal_paths": INTERNAL_PATHS,
    }


def contracts_json() -> str:
    return json.dumps(contracts(), indent=2, sort_keys=True) + "\n"
