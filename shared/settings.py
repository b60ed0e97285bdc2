"""Settings every service shares, read from the environment.

Each service subclasses `ServiceSettings` with its own env prefix (`ACCESS_`,
`CONTENT_`, ...). A prefixed variable wins; the same name without a prefix is
the platform-wide fallback, so `REDIS_URL` reaches all four services while
`ACCESS_DATABASE_URL` reaches only one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.contracts.names import ResourceNames

# Values that mean "nobody set this": acceptable on a laptop, never in a deployment.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "test", "password", "dev"})


def _is_placeholder(secret: SecretStr) -> bool:
    value = secret.get_secret_value()
    return value.lower() in PLACEHOLDER_SECRETS or value.startswith(("dev-", "embedded"))


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"

    @property
    def is_deployed(self) -> bool:
        return self in (Environment.STAGING, Environment.PRODUCTION)


# Where a frontend is served from while it is developed (Create React App and
# Next.js on 3000, Vite's dev server on 5173 and its preview on 4173).
DEV_ORIGINS = (
    "http://localhost:3000",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
    "http://localhost:4173",
)


# An operator command names the settings it uses; only those must be real values
# (`stories bootstrap` needs AWS, not the service secrets it never sends).
_CHECKED_ONLY: ContextVar[frozenset[str] | None] = ContextVar("settings_checked", default=None)


@contextmanager
def checking_only(*names: str) -> Iterator[None]:
    """Within the block, deployed settings refuse placeholders and embedded
    shortcuts only among `names` (the settings the command at hand uses)."""
    token = _CHECKED_ONLY.set(frozenset(names))
    try:
        yield
    finally:
        _CHECKED_ONLY.reset(token)


AWS_SETTINGS = (
    "aws_endpoint_url",
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "resource_prefix",
)
DATABASE_SETTINGS = ("database_url", "database_schema")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    # Set by each subclass: the service's name, which is also its DB schema.
    service_name: ClassVar[str]

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_json: bool = True
    # One log line per request (method, path, status, time, request id): off by
    # default, since the load balancer keeps access logs in AWS.
    log_requests: bool = False
    # OpenTelemetry traces (shared/observe/tracing.py): "otlp" sends them to
    # OTEL_EXPORTER_OTLP_ENDPOINT (the ADOT sidecar in AWS, Jaeger in compose);
    # "none" (the default, and the embedded run's) costs nothing.
    tracing_exporter: Literal["none", "otlp"] = "none"
    # The share of traces kept, decided where a trace starts and followed by
    # every service it reaches (and every event it causes).
    tracing_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # And at most this many new traces a second in each process (none: no cap,
    # as compose runs): a kept span costs about 100 us of the process's core, so
    # a cap keeps tracing's cost flat at the platform's peak (shared/observe/tracing.py).
    tracing_max_traces_per_second: float | None = Field(default=None, gt=0.0)
    # Where OTLP/HTTP traces go (the standard variable's name and meaning): the ADOT
    # sidecar on the task's own loopback in AWS, Jaeger in compose.
    otel_exporter_otlp_endpoint: str = "http://127.0.0.1:4318"

    # API processes `stories serve` runs on one port: one per vCPU of the task
    # (a Python process uses one core).
    api_processes: int = Field(default=1, ge=1, le=16)

    database_url: str = "sqlite+aiosqlite:///./.stories/db.sqlite3"
    # Connections per process, never more (no overflow): 4 services x (API + worker)
    # x 10 stays under PostgreSQL's default 100, and a connection is never opened
    # and closed per request under load. A request that waits longer than the
    # timeout for one is a 503 with Retry-After.
    database_pool_size: int = Field(default=10, ge=1, le=50)
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # PostgreSQL schema holding this service's tables; defaults to the service's name.
    database_schema: str = ""
    redis_url: str = "memory://"
    # A stalled Redis costs one request at most this long (one attempt, no
    # retries); then the process stops calling it for REDIS_CIRCUIT_SECONDS and
    # takes its degraded paths at once (README: Degraded modes).
    redis_timeout_seconds: float = Field(default=0.25, gt=0, le=5)
    redis_circuit_seconds: float = Field(default=2.0, ge=0.1, le=60)

    aws_endpoint_url: str | None = None
    # Where readers' browsers reach S3 with presigned links, when that differs from
    # where the services do (compose: the services say http://localstack:4566, a
    # browser on the host http://localhost:4566). A link is signed for its host.
    aws_public_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    # Prefix of every topic, queue and bucket name, so several stacks can share
    # one account or emulator.
    resource_prefix: str = "stories-"
    # The ARN of the topic this service publishes to; deployments set it (so the
    # task role needs no sns:CreateTopic), emulators let it be looked up.
    events_topic_arn: str | None = None

    jwks_url: str = "http://127.0.0.1:8002/.well-known/jwks.json"
    jwt_issuer: str = "stories-access"
    jwt_audience: str = "stories"
    access_url: str = "http://127.0.0.1:8002"
    # How long an authorization decision may be served from cache (in process;
    # twice that in Redis). Changes invalidate at once; this bounds staleness
    # if a message is lost, and how long a cached answer outlives an access outage.
    decision_cache_seconds: float = Field(default=30.0, gt=0)
    # This service's credential for asking the access service for decisions.
    service_client_secret: SecretStr | None = None
    # Every call to access has this deadline (token fetch and decision together),
    # and at most this many are in flight per process: past that, the answer is
    # a 503 with Retry-After at once, never a queue that grows while access is slow.
    access_timeout_seconds: float = Field(default=1.0, gt=0)
    access_max_in_flight: int = Field(default=32, ge=1)
    # An unknown `kid` triggers a JWKS refetch at most this often, so forged
    # tokens with random kids cannot turn us into a load generator.
    jwks_refetch_interval_seconds: float = 30.0
    jwks_cache_seconds: float = 3600.0

    cors_origins: list[str] = Field(default_factory=lambda: list(DEV_ORIGINS))
    # The proxies (addresses or CIDR blocks, a JSON list) whose X-Forwarded-For
    # names the client: the load balancer's subnets in AWS. Nobody else may set
    # the client address, so by default (no proxy) the header is ignored and
    # every per-address limit counts the connection's own address.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Request bodies above this are refused (413) before anything parses them.
    max_body_bytes: int = 1_048_576

    outbox_poll_seconds: float = 0.2
    outbox_batch_size: int = 100
    consumer_batch_size: int = 10
    consumer_concurrency: int = 20
    consumer_wait_seconds: int = 20
    consumer_visibility_seconds: int = 30
    # First retry delay after a handler failure; doubles on each receive.
    consumer_retry_base_seconds: float = 1.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        platform_env = EnvSettingsSource(settings_cls, env_prefix="")
        return init_settings, env_settings, platform_env, file_secret_settings

    @model_validator(mode="after")
    def _default_per_service_values(self) -> ServiceSettings:
        if not self.database_schema:
            self.database_schema = self.service_name
        if self.service_client_secret is None:
            self.service_client_secret = SecretStr(f"dev-{self.service_name}-secret")
        return self

    @model_validator(mode="after")
    def _refuse_development_shortcuts_when_deployed(self) -> ServiceSettings:
        if not self.environment.is_deployed:
            return self
        checked = _CHECKED_ONLY.get()
        problems = []
        for name in type(self).model_fields:
            if checked is not None and name not in checked:
                continue
            value = getattr(self, name)
            secrets = value.items() if isinstance(value, dict) else [(None, value)]
            for key, secret in secrets:
                if isinstance(secret, SecretStr) and _is_placeholder(secret):
                    label = f"{name}[{key}]" if key is not None else name
                    problems.append(f"{label} is a placeholder")

        def uses(name: str) -> bool:
            return checked is None or name in checked

        if uses("redis_url") and self.redis_url.startswith("memory://"):
            problems.append("redis_url must name a real Redis (memory:// is for the embedded run)")
        if uses("database_url") and self.database_url.startswith("sqlite"):
            problems.append("database_url must name PostgreSQL (SQLite is for the embedded run)")
        if problems:
            raise ValueError(f"refusing {self.environment} settings: " + "; ".join(problems))
        return self

    @property
    def resource_names(self) -> ResourceNames:
        return ResourceNames(self.resource_prefix)
