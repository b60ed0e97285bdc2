from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class CloudFrontKey(BaseModel):
    """One public key of the distribution's key group, and its private half."""

    key_pair_id: str = Field(min_length=1, max_length=100)
    private_key: SecretStr = Field(description="PEM; from Secrets Manager when deployed")


class DeliverySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVERY_")

    service_name: ClassVar[str] = "delivery"

    database_url: str = "sqlite+aiosqlite:///./.stories/delivery.sqlite3"
    # Where content's OPDS catalog is, for the acquisition's 401 (it links the
    # catalog's Authentication Document): empty where one origin serves both, as
    # the load balancer does; the gateway otherwise (the embedded run, compose).
    opds_catalog_url: str = ""

    # Which signer issues links: S3 presigned GETs, or CloudFront signed URLs.
    signer: Literal["s3", "cloudfront"] = "s3"
    # A link's lifetime; never longer than the caller's token.
    link_seconds: int = Field(default=300, gt=0, le=3600)
    # Expiry times are rounded down to a multiple of this, so readers of one
    # book within the same step get the same link: one CloudFront signature
    # (deterministic RSA) serves them all, and browsers and caches see one URL.
    # A link then lives between link_seconds - step and link_seconds.
    link_expiry_step_seconds: int = Field(default=30, ge=1, le=300)
    # https://dxxxx.cloudfront.net (or the platform's own domain in front of it).
    cloudfront_domain: str | None = None
    # Several keys at once so they rotate without downtime: links are signed
    # with the active one; the key group trusts all of them.
    cloudfront_keys: list[CloudFrontKey] = Field(default_factory=list)
    cloudfront_active_key_id: str | None = None
    # Bind each CloudFront link to the caller's address (a custom policy).
    cloudfront_bind_client_ip: bool = False
    # Where the signed cookies apply (the domain serving the books).
    cookie_domain: str | None = None

    # Link issuance per user and minute (429 above it).
    links_per_minute: int = Field(default=60, gt=0)
    # Reading progress is announced (reading.progressed) each time it crosses
    # another step of this many percent, not on every page turn.
    progress_step_percent: int = Field(default=10, gt=0, le=100)
    # Reading done offline and uploaded later (#20): how old an event may be, how far
    # ahead of our clock a device's may run, how often the worker drops old ids.
    offline_max_age_days: int = Field(default=30, ge=1, le=90)
    offline_clock_skew_seconds: int = Field(default=300, ge=0, le=3600)
    offline_prune_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _cloudfront_is_complete(self) -> DeliverySettings:
        if self.signer == "cloudfront" and not (self.cloudfront_domain and self.cloudfront_keys):
            raise ValueError("the CloudFront signer needs cloudfront_domain and cloudfront_keys")
        ids = [k.key_pair_id for k in self.cloudfront_keys]
        if self.cloudfront_active_key_id and self.cloudfront_active_key_id not in ids:
            raise ValueError("cloudfront_active_key_id names no configured key")
        return self
