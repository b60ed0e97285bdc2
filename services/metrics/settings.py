from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_")

    service_name: ClassVar[str] = "metrics"

    database_url: str = "sqlite+aiosqlite:///./.stories/metrics.sqlite3"

    # Where the dashboard's sign-in form posts (the browser's view of access):
    # default ACCESS_URL + /v1/auth/login; "/v1/auth/login" behind one load balancer.
    dashboard_login_url: str | None = None
    dashboard_refresh_seconds: int = Field(default=30, ge=5, le=3600)

    # The figures are also published as CloudWatch custom metrics by the worker.
    cloudwatch_namespace: str = Field(default="Stories/Metrics", min_length=1, max_length=255)
    cloudwatch_export_seconds: float = Field(default=60.0, ge=0)  # 0: no export

    # How often the worker checks that the reader sketches in Redis are complete,
    # and puts back what they lack (after Redis lost data, or a write failed).
    sketch_reseal_seconds: float = Field(default=2.0, ge=0)  # 0: never (tests)

    # A submission waiting for its review longer than this counts as overdue in the
    # overview; content marks it so in its queue. Set the bare REVIEW_OVERDUE_DAYS
    # to change both at once.
    review_overdue_days: int = Field(default=14, gt=0, le=365)

    # Retention (#41, retention.py): a reading event's raw row stays in the event log
    # this many days, then only what it added to the figures is kept (no figure
    # changes); the worker looks this often.
    raw_event_days: int = Field(default=90, ge=1, le=3650)
    retention_check_seconds: float = Field(default=3600.0, gt=0)

    # xAPI statements to a learning record store (#20, xapi.py): off unless set.
    # The URL is the LRS's xAPI base (statements go to <url>/statements).
    xapi_lrs_url: str | None = None
    xapi_lrs_username: str = ""
    xapi_lrs_password: SecretStr | None = None
    # Statements per request, the pause between rounds, each request's deadline.
    xapi_batch_size: int = Field(default=100, ge=1, le=500)
    xapi_send_seconds: float = Field(default=1.0, gt=0)
    xapi_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # The actors' accounts and the activities' ids live under this home page.
    xapi_home_page: str = "https://stories.example"

    def login_url(self) -> str:
        return self.dashboard_login_url or f"{self.access_url.rstrip('/')}/v1/auth/login"
