"""`stories up`: the whole platform in one process, with no setup.

Defaults: a SQLite file per service, an in-process Redis stand-in, and an
in-process moto server for SNS, SQS and S3. Any of them is replaced by setting
the usual variables (`REDIS_URL`, `AWS_ENDPOINT_URL`, `ACCESS_DATABASE_URL`...)
before starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import secrets
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import structlog
from pydantic import TypeAdapter

from shared.bus.provision import bootstrap
from shared.resources import open_resources
from shared.service.migrations import upgrade
from shared.service.runtime import install_stop_signals, run_worker, serve_api
from shared.settings import DEV_ORIGINS, ServiceSettings
from stories.emulator import free_port
from stories.emulator_guard import Credentials, start_guarded_moto
from stories.gateway.openapi import merged_openapi
from stories.gateway.proxy import Gateway
from stories.mailbox import start_mailbox
from stories.registry import SERVICES

log = structlog.get_logger(__name__)


def embedded_logging(environ: Mapping[str, str]) -> tuple[str, bool]:
    """The log level and format of `stories up`: readable lines unless LOG_JSON says
    otherwise (as every service honours it when run on its own)."""
    level = environ.get("LOG_LEVEL", "INFO").upper()
    as_json = TypeAdapter(bool).validate_python(environ.get("LOG_JSON", "false"))
    return level, as_json


def embedded_defaults(
    data_dir: Path,
    aws_endpoint: str | None,
    host: str,
    ports: dict[str, int],
    gateway_port: int,
) -> dict[str, str]:
    gateway = f"http://{host}:{gateway_port}"
    defaults = {
        "JWKS_URL": f"http://{host}:{ports['access']}/.well-known/jwks.json",
        "ACCESS_URL": f"http://{host}:{ports['access']}",
        # The class report reads a class's figures from metrics.
        "ACCESS_METRICS_URL": f"http://{host}:{ports['metrics']}",
        "CONTENT_METRICS_URL": f"http://{host}:{ports['metrics']}",
        # The OPDS feeds' acquisition and sign-in links: the gateway's one origin,
        # which serves them all (a feed read straight from content's port too).
        "CONTENT_OPDS_DELIVERY_URL": gateway,
        "CONTENT_OPDS_ACCESS_URL": gateway,
        # Covers and thumbnails: content serves them through the gateway, as
        # CloudFront does in AWS (#38: without it no book had a cover_url).
        "CONTENT_PUBLISHED_ASSETS_URL": f"{gateway}/v1/assets",
        # The acquisition's 401 links the catalog's authentication document there.
        "DELIVERY_OPDS_CATALOG_URL": gateway,
        # The dashboard signs in through the gateway, wherever it is opened from.
        "METRICS_DASHBOARD_LOGIN_URL": f"{gateway}/v1/auth/login",
        # The gateway tells the services who the client is (X-Forwarded-For); they
        # believe it from loopback only, where the gateway runs.
        "TRUSTED_PROXIES": json.dumps(["127.0.0.1/32"]),
        "REDIS_URL": "memory://embedded",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LOG_JSON": "false",
        # Links in mail (a parent's consent link) open through the gateway.
        "ACCESS_PUBLIC_URL": gateway,
        # The metrics dashboard opened on its own port signs in through the gateway.
        "CORS_ORIGINS": json.dumps([*DEV_ORIGINS, f"http://{host}:{ports['metrics']}"]),
    }
    if aws_endpoint:
        defaults["AWS_ENDPOINT_URL"] = aws_endpoint
    for name in SERVICES:
        defaults[f"{name.upper()}_DATABASE_URL"] = (
            f"sqlite+aiosqlite:///{(data_dir / f'{name}.sqlite3').resolve()}"
        )
    return defaults


S3_SNAPSHOT = "s3.pickle"
# The embedded run's first ADMIN, so `stories demo` (and a newcomer) can start at
# once: its password is made on the first run and kept beside the databases, readable
# by this user alone, never printed in a log.
ADMIN_EMAIL = "admin@stories.example.org"
ADMIN_PASSWORD_FILE = "admin-password.txt"  # noqa: S105 - a file name


def embedded_admin(data_dir: Path) -> tuple[str, str]:
    """(email, password) of the embedded run's ADMIN, made once per data folder."""
    path = data_dir / ADMIN_PASSWORD_FILE
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18) + "\n")
    return ADMIN_EMAIL, path.read_text().strip()


# The in-process emulator's credentials: its secret is made once per data folder and
# kept beside the databases (as the ADMIN's password is), so nobody who merely reaches
# the emulator can sign a request; browsers get presigned links and forms only.
EMBEDDED_AWS_KEY_ID = "embedded"
AWS_SECRET_FILE = "aws-secret.txt"  # noqa: S105 - a file name


def embedded_aws_credentials(data_dir: Path) -> Credentials:
    """The emulator's credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY where set,
    else "embedded" and this data folder's own secret; set for every service."""
    path = data_dir / AWS_SECRET_FILE
    if "AWS_SECRET_ACCESS_KEY" not in os.environ and not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(30) + "\n")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", EMBEDDED_AWS_KEY_ID)
    if "AWS_SECRET_ACCESS_KEY" not in os.environ:
        os.environ["AWS_SECRET_ACCESS_KEY"] = path.read_text().strip()
    return Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])


def _s3_buckets() -> dict[str, Any]:
    """The in-process emulator's buckets, per account (its S3 state, objects included)."""
    from moto.s3.models import s3_backends

    return {account: s3_backends[account]["aws"].buckets for account in list(s3_backends)}


def save_s3(data_dir: Path) -> int:
    """Keep the emulator's buckets beside the databases, so a restart finds the files
    its databases point at (same keys, same version ids). Returns objects saved."""
    buckets = _s3_buckets()
    target = data_dir / S3_SNAPSHOT
    partial = target.with_suffix(".partial")
    partial.write_bytes(pickle.dumps(buckets))
    partial.replace(target)  # whole or not at all
    return sum(len(b.keys) for per_account in buckets.values() for b in per_account.values())


def restore_s3(data_dir: Path) -> int | None:
    """Put back what `save_s3` kept; None if there was nothing to put back."""
    from moto.s3.models import s3_backends

    source = data_dir / S3_SNAPSHOT
    if not source.exists():
        return None
    # Our own file, written by save_s3 in this data folder.
    saved: dict[str, dict[str, Any]] = pickle.loads(source.read_bytes())  # noqa: S301
    for account, buckets in saved.items():
        s3_backends[account]["aws"].buckets.update(buckets)
        # moto finds a bucket's owner through this registry; without the entry the
        # bootstrap's create_bucket would replace the restored bucket with an empty one.
        for name in buckets:
            s3_backends.bucket_accounts[name] = ("aws", account)
    return sum(len(b.keys) for per_account in saved.values() for b in per_account.values())


def _restore_or_warn(data_dir: Path) -> None:
    restored = restore_s3(data_dir)
    if restored is not None:
        log.info("files of the last run restored", objects=restored)
    elif any(data_dir.glob("*.sqlite3")):
        log.warning(
            "the last run's files were not saved (it did not stop cleanly): what it "
            "uploaded or published may not download; remove the data folder to start clean",
            data_dir=str(data_dir.resolve()),
        )


async def keep_s3_saved(data_dir: Path, stop: asyncio.Event, every_seconds: float = 30.0) -> None:
    """Save now and then too, so a run that is killed loses at most this much."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
        await asyncio.to_thread(save_s3, data_dir)


def start_moto(host: str, port: int, credentials: Credentials) -> object:
    """moto on host:port, guarded as AWS guards itself (stories/emulator_guard.py)."""
    try:
        import moto  # noqa: F401 - only to say what is missing
    except ImportError as exc:  # the image has no moto: compose brings LocalStack instead
        raise SystemExit(
            "the embedded run needs a development install (`make install`), or AWS_ENDPOINT_URL"
        ) from exc
    return start_guarded_moto(host, port, credentials)


async def run_platform(
    *,
    host: str,
    data_dir: Path,
    aws_port: int,
    base_port: int = 8001,
    gateway_port: int | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    moto = None
    if "AWS_ENDPOINT_URL" not in os.environ:
        credentials = await asyncio.to_thread(embedded_aws_credentials, data_dir)
        moto = start_moto(host, aws_port, credentials)
        aws_endpoint: str | None = f"http://{host}:{aws_port}"
        await asyncio.to_thread(_restore_or_warn, data_dir)
    else:
        aws_endpoint = None
        # An emulator of the operator's (LocalStack, say) takes any credentials.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", EMBEDDED_AWS_KEY_ID)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", EMBEDDED_AWS_KEY_ID)
    ports = {name: s.default_port - 8001 + base_port for name, s in SERVICES.items()}
    gateway_port = base_port - 1 if gateway_port is None else gateway_port
    mailbox = None
    if "ACCESS_SMTP_HOST" not in os.environ:
        # The parents' consent mail (#41) lands in files beside the databases.
        mail_port = free_port()
        mailbox = start_mailbox(host, mail_port, data_dir / "mail")
        os.environ["ACCESS_SMTP_HOST"], os.environ["ACCESS_SMTP_PORT"] = host, str(mail_port)
    for key, value in embedded_defaults(data_dir, aws_endpoint, host, ports, gateway_port).items():
        os.environ.setdefault(key, value)
    admin = None
    if "ACCESS_BOOTSTRAP_ADMIN_EMAIL" not in os.environ:
        admin, password = await asyncio.to_thread(embedded_admin, data_dir)
        os.environ["ACCESS_BOOTSTRAP_ADMIN_EMAIL"] = admin
        os.environ["ACCESS_BOOTSTRAP_ADMIN_PASSWORD"] = password
    try:
        settings: dict[str, ServiceSettings] = {
            name: service.settings_class() for name, service in SERVICES.items()
        }
        for name, service in SERVICES.items():
            await upgrade(
                service.migrations, settings[name].database_url, settings[name].database_schema
            )
        async with AsyncExitStack() as stack:
            first = next(iter(settings.values()))
            platform = await open_resources(first, stack)
            await bootstrap(
                sns=platform.aws.sns,
                sqs=platform.aws.sqs,
                s3=platform.aws.s3,
                names=first.resource_names,
                region=first.aws_region,
            )
            jobs = []
            documents = {}
            for name, service in SERVICES.items():
                resources = await open_resources(settings[name], stack)
                app = service.create_app(settings[name], resources)
                documents[name] = app.openapi()
                jobs.append(
                    serve_api(
                        app, host, ports[name], stop, trusted_proxies=settings[name].trusted_proxies
                    )
                )
                jobs.append(run_worker(service, settings[name], stop, resources))
            local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            gateway = Gateway(
                {name: f"http://{local}:{port}" for name, port in ports.items()},
                openapi=merged_openapi(documents),
                cors_origins=first.cors_origins,
            )
            stack.push_async_callback(gateway.aclose)
            jobs.append(serve_api(gateway, host, gateway_port, stop))
            if moto is not None:
                jobs.append(keep_s3_saved(data_dir, stop))
            running = [asyncio.create_task(job) for job in jobs]
            _print_banner(
                host,
                ports,
                gateway_port,
                os.environ.get("AWS_ENDPOINT_URL", "AWS"),
                data_dir,
                admin,
            )
            if ready is not None:
                ready.set()
            await asyncio.wait(
                [*running, asyncio.create_task(stop.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            stop.set()
            results = await asyncio.gather(*running, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.error("component failed", error=repr(result))
    finally:
        if mailbox is not None:
            mailbox.stop()
        if moto is not None:
            saved = await asyncio.to_thread(save_s3, data_dir)
            log.info("files saved for the next run", objects=saved)
            moto.stop()  # type: ignore[attr-defined]


def _print_banner(
    host: str,
    ports: dict[str, int],
    gateway_port: int,
    aws: str,
    data_dir: Path,
    admin: str | None,
) -> None:
    gateway = f"http://{host}:{gateway_port}"
    lines = ["", "1001 Stories is running (Ctrl-C stops it):", ""]
    lines.append(f"  {'gateway':<9} {gateway:<24} docs {gateway}/docs  (every public route)")
    for name, port in ports.items():
        base = f"http://{host}:{port}"
        lines.append(f"  {name:<9} {base:<24} docs {base}/docs")
    lines.append(f"  dashboard {gateway}/dashboard")
    lines += ["", f"  AWS endpoint {aws}; data in {data_dir.resolve()}"]
    if "ACCESS_SMTP_PORT" in os.environ:
        lines.append(f"  mail (a parent's consent link) is kept in {(data_dir / 'mail').resolve()}")
    if admin is not None:
        secret = data_dir / ADMIN_PASSWORD_FILE
        lines.append(f"  ADMIN {admin}, password in {secret}")
        lines.append("  A library to try it with: `make demo` (or `stories demo`) in another shell")
    lines.append("")
    print("\n".join(lines), flush=True)


def main(
    host: str, data_dir: Path, aws_port: int, base_port: int, gateway_port: int | None = None
) -> None:
    async def run() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_platform(
            host=host,
            data_dir=data_dir,
            aws_port=aws_port,
            base_port=base_port,
            gateway_port=gateway_port,
            stop=stop,
        )

    asyncio.run(run())
