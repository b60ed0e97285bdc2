"""#41: no personal data in logs, events or metric labels. The whole platform runs
(`stories up`, every request logged), people with names and addresses nobody else
has sign up, sign in, get a wrong password, join a class, get a parent's consent,
are erased; then every service's log output, every event any service wrote or
received, and every metric label are searched for those names and addresses."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.embedded import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SERVICE_OFFSETS,
    running_platform,
    starts_timeout,
)
from tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(starts_timeout(1))]

TAG = uuid.uuid4().hex[:6]
PASSWORD = "a sturdy passphrase 42"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    workdir = tmp_path_factory.mktemp("personal-data")
    with running_platform(workdir, {"LOG_REQUESTS": "true", "LOG_LEVEL": "DEBUG"}) as base:
        yield base, workdir


def _mail_to(folder: Path, address: str) -> Any:
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == address:
            return message
    return None


async def test_no_name_or_address_reaches_a_log_an_event_or_a_metric_label(
    platform: tuple[int, Path],
) -> None:
    base, workdir = platform
    gateway = f"http://127.0.0.1:{base - 1}"
    people = {
        "adult": (f"zawadi.mwangale{TAG}@example.org", f"Zawadi Mwangale{TAG}"),
        "child": (f"kibet.onyango{TAG}@example.org", f"Kibet Onyango{TAG}"),
        "parent": (f"wanjiku.parent{TAG}@example.org", ""),
    }
    pupil = f"Njeri Kamau{TAG}"
    async with httpx.AsyncClient(base_url=gateway, timeout=20) as http:
        admin = (
            await http.post(
                "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
        ).json()["access_token"]
        as_admin = {"Authorization": f"Bearer {admin}"}
        adult_email, adult_name = people["adult"]
        made = await http.post(
            "/v1/auth/register",
            json={"email": adult_email, "password": PASSWORD, "display_name": adult_name,
                  "birth_year": 1990},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        # Again (the no-enumeration path logs), a wrong password, then a right one.
        await http.post(
            "/v1/auth/register",
            json={"email": adult_email, "password": PASSWORD, "display_name": adult_name,
                  "birth_year": 1990},
        )  # fmt: skip
        wrong = await http.post("/v1/auth/login", json={"email": adult_email, "password": "x" * 12})
        assert wrong.status_code == 401
        tokens = (
            await http.post("/v1/auth/login", json={"email": adult_email, "password": PASSWORD})
        ).json()
        adult = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await http.get("/v1/users/me", headers=adult)).json()["email"] == adult_email

        # A child under 13, and the parent's consent through the mailed link.
        child_email, child_name = people["child"]
        parent_email, _ = people["parent"]
        child = await http.post(
            "/v1/auth/register",
            json={"email": child_email, "password": PASSWORD, "display_name": child_name,
                  "birth_year": datetime.now(UTC).year - 8, "parent_email": parent_email},
        )  # fmt: skip
        assert child.status_code == 201, child.text
        mail = workdir / "data" / "mail"
        await eventually(lambda: _mail_to(mail, parent_email) is not None, timeout=30)
        text = _mail_to(mail, parent_email).get_body(("plain",)).get_content()
        [link] = [w for w in text.split() if "/v1/auth/consents/" in w]
        assert (await http.post(link, json={"answer": "agree"})).status_code == 200
        child_login = await http.post(
            "/v1/auth/login", json={"email": child_email, "password": PASSWORD}
        )
        assert child_login.status_code == 200

        # The adult teaches: a class, a class account with a name, which is erased.
        await http.put(
            f"/v1/users/{made.json()['id']}/role", json={"role": "TEACHER"}, headers=as_admin
        )
        school_class = (
            await http.post("/v1/classes", json={"name": "Class 4B"}, headers=adult)
        ).json()
        added = await http.post(
            f"/v1/classes/{school_class['id']}/learners",
            json={"display_names": [pupil]},
            headers=adult,
        )
        assert added.status_code == 201, added.text
        [account] = added.json()["learners"]
        erased = await http.delete(f"/v1/users/{account['user_id']}", headers=adult)
        assert erased.status_code == 204

        # The child's parent withdraws later, from the confirmation's link.
        def confirmation() -> Any:
            found = [
                m
                for m in (message_from_bytes(p.read_bytes(), policy=policy.default)
                          for p in sorted(mail.glob("*.eml")))
                if m["To"] == parent_email and "withdraw" in str(m.get_body(("plain",)))
            ]  # fmt: skip
            return found[0] if found else None

        await eventually(lambda: confirmation() is not None, timeout=30, what="the confirmation")
        body = confirmation().get_body(("plain",)).get_content()
        [withdraw] = [w for w in body.split() if "/v1/auth/consents/" in w]
        assert (await http.post(withdraw, json={"answer": "refuse"})).status_code == 200

    secrets = [value for pair in people.values() for value in pair if value] + [pupil]
    secrets += [s.split("@")[0] for s in secrets if "@" in s]
    secrets += [link.rsplit("/", 1)[1], withdraw.rsplit("/", 1)[1]]  # credentials too

    def found_in(text: str) -> list[str]:
        return [s for s in secrets if s.lower() in text.lower()]

    # Events: what every service's outbox wrote, and metrics' log of all it heard.
    async def everything_heard() -> bool:
        database = workdir / "data" / "metrics.sqlite3"
        with sqlite3.connect(database) as connection:
            heard = connection.execute(
                "SELECT count(*) FROM event_log WHERE event_type = 'user.erased'"  # both
            ).fetchone()[0]
        return bool(heard >= 2)

    await eventually(everything_heard, timeout=60, what="metrics hearing the erasure")
    for name in SERVICE_OFFSETS:
        with sqlite3.connect(workdir / "data" / f"{name}.sqlite3") as connection:
            tables = [
                r[0]
                for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in {"outbox", "event_log"} & set(tables):
                rows = connection.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
                # Metrics hears every service's events; an outbox may be relayed empty.
                assert rows or table == "outbox", (name, table)
                assert found_in(json.dumps(rows, default=str)) == [], (name, table)
    # Metric labels, as Prometheus scrapes each service.
    for name, offset in SERVICE_OFFSETS.items():
        scraped = httpx.get(f"http://127.0.0.1:{base + offset}/metrics", timeout=10)
        assert scraped.status_code == 200, name
        assert found_in(scraped.text) == [], name
    # Every line every service logged (requests included).
    logged = (workdir / "up.log").read_text()
    assert '"request"' in logged or "request " in logged, "the access log was on"
    assert adult_email not in logged
    assert found_in(logged) == []
