from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AccessSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACCESS_")

    service_name: ClassVar[str] = "access"

    database_url: str = "sqlite+aiosqlite:///./.stories/access.sqlite3"

    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    service_token_ttl_seconds: int = 3600
    # Encrypts the private signing keys stored in the database (Secrets Manager
    # in AWS). Any string; refused as a placeholder outside development.
    key_encryption_key: SecretStr = SecretStr("dev-key-encryption-key")
    # A rotated-in key is published in the JWKS this long before it signs, so
    # every verifier has it by the time tokens carry its kid.
    key_activation_delay_seconds: int = 60
    # How often each process re-reads the signing keys (a rotation elsewhere
    # reaches it within this; it must stay well under the activation delay).
    signing_key_refresh_seconds: float = Field(default=10.0, ge=0.0, le=30.0)
    # client id -> secret of the services allowed to ask for decisions.
    service_clients: dict[str, SecretStr] = Field(
        default_factory=lambda: {
            name: SecretStr(f"dev-{name}-secret") for name in ("content", "delivery", "metrics")
        }
    )

    password_min_length: int = 10
    password_hash_time_cost: int = 2
    password_hash_memory_kib: int = 19_456  # OWASP's argon2id baseline
    password_hash_parallelism: int = 1

    # Guessing is stopped without handing anyone a lock-out button (README:
    # "Sign-in limits"). Failures for one account from one address: that pair
    # waits out the window; the owner elsewhere is not affected.
    login_failures_per_account: int = 5
    # Failures for one account from all addresses together: past this, only a
    # device that signed in before (its device token) reaches the password check.
    login_failures_per_account_total: int = 50
    # Failed sign-ins from one address across every account (#19: successes do not
    # count, so a whole class behind one school address signs in; each attempt
    # holds a place while it is checked, so a burst cannot overshoot the limit).
    login_failures_per_ip: int = 50
    login_window_seconds: int = 900
    # Past any of these limits the address (or account) is slowed, not stopped:
    # one attempt this often is still checked, and the right password gets in
    # (#37: one pupil's guesses had locked a whole school out for the window).
    login_slowed_seconds: int = Field(default=15, ge=1, le=900)
    # Class accounts (children without email): a simpler password is allowed, so
    # their failures are limited per account from every address together.
    class_password_min_length: int = Field(default=4, ge=4, le=64)
    class_login_failures_per_account: int = 10
    # A class's join code ends this long after it is made (or rotated) unless the
    # teacher says otherwise; it still names the class at sign-in afterwards.
    join_code_days: int = Field(default=30, ge=1, le=365)
    # Wrong join codes (joining, or a class account's sign-up) per account and per
    # address in the sign-in window, before the guesser is slowed (#37 F1).
    join_code_failures_per_account: int = 10
    join_code_failures_per_ip: int = 50
    # Sign-ups from one address per hour (each costs an argon2 hash): a school
    # behind one address signs up a class, a script does not sign up thousands.
    registrations_per_ip: int = 60
    registration_window_seconds: int = 3600
    # Wrong service-client secrets from one address before 429 (services hold
    # the right one; only a guesser gets it wrong).
    service_token_failures_per_ip: int = 10

    # The metrics service, for the class report's reading figures (#19). Its calls
    # are bounded like every call to another service: past the deadline or the
    # cap, the report is a 503 with Retry-After.
    metrics_url: str = "http://127.0.0.1:8004"
    metrics_timeout_seconds: float = Field(default=2.0, gt=0)
    metrics_max_in_flight: int = Field(default=16, ge=1)

    # Parents' consent (#41, README "Privacy"): a child under 13 who signs up waits
    # this long for a parent's answer; unanswered, the account and all it held go.
    consent_days: int = Field(default=14, ge=1, le=60)
    # Consent requests to one parent's address a day: a family signs up its
    # children, nobody fills a stranger's mailbox with them.
    consent_requests_per_parent: int = Field(default=5, ge=1)
    # How often the worker looks for consents left unanswered past their time.
    consent_expiry_check_seconds: float = Field(default=300.0, gt=0)
    # Retention (retention.py): expired sessions and old audit entries are removed
    # by the worker after these many days, checked this often.
    session_retention_days: int = Field(default=30, ge=1)
    audit_retention_days: int = Field(default=365, ge=1)
    retention_check_seconds: float = Field(default=3600.0, gt=0)
    # The next-book model (#42, next_books.py) is refitted from the whole reading
    # history this often (and at once after an erasure).
    recommendations_refit_seconds: float = Field(default=600.0, gt=0)
    # A person's data export (#41, data_export.py): its archive is offered this many
    # days, each link to it lasts this many seconds, and the worker looks for
    # finished parts this often.
    export_days: int = Field(default=7, ge=1, le=30)
    export_link_seconds: int = Field(default=300, ge=30, le=3600)
    export_check_seconds: float = Field(default=2.0, gt=0, le=300)
    # The platform's public origin: links in mail point there (the gateway locally,
    # the load balancer's name in AWS).
    public_url: str = "http://127.0.0.1:8000"

    # Mail leaves through the outbox (mail_outbox.py): SMTP (aiosmtpd in the
    # embedded run and the tests, any relay elsewhere) or SES in AWS.
    mail_transport: Literal["smtp", "ses"] = "smtp"
    mail_from: str = "1001 Stories <no-reply@stories.example.org>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool = False
    # How often the worker looks for mail to send when it found none last time.
    mail_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    # A mail the server did not take waits this long, doubling each time, at most
    # an hour (mail_outbox.py).
    mail_retry_seconds: float = Field(default=30.0, gt=0, le=3600)

    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
