"""#41: a person's data export on the whole platform (`stories up`: four services,
their workers, the emulator's S3). Each service writes its part from its own
database in answer to `user.export_requested`; access's worker assembles one zip
behind a signed link. A second person with data of the same kind is planted: the
archive holds the first person's data from all four services and nothing of the
second's. An export asked for and then erased at once leaves nothing behind."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest

from stories.embedded import AWS_SECRET_FILE, EMBEDDED_AWS_KEY_ID
from tests.harness.embedded import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    publish_free_book,
    running_platform,
    starts_timeout,
)
from tests.support import assert_problem, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(starts_timeout(1))]

TAG = uuid.uuid4().hex[:6]
PASSWORD = "a sturdy passphrase 42"
PARTS = ("access", "content", "delivery", "metrics")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    workdir = tmp_path_factory.mktemp("export")
    with running_platform(workdir, {"ACCESS_EXPORT_CHECK_SECONDS": "0.2"}) as base:
        yield base, workdir


async def _person(
    http: httpx.AsyncClient, admin: dict[str, str], who: str, role: str = "VOLUNTEER"
) -> tuple[dict[str, Any], dict[str, str]]:
    """A volunteer (or `role`) with a draft of their own: (their account, their headers)."""
    email = f"{who}.{TAG}@example.org"
    made = await http.post(
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": f"{who} {TAG}",
              "birth_year": 1990},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    account = made.json()
    promoted = await http.put(f"/v1/users/{account['id']}/role", json={"role": role}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    tokens = (await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    draft = await http.post(
        "/v1/submissions",
        json={"title": f"The story of {who} {TAG}", "summary": "A draft.", "language": "en",
              "age_min": 4, "age_max": 8, "category": "animals", "reading_level": "early"},
        headers=headers,
    )  # fmt: skip
    assert draft.status_code == 201, draft.text
    return account, headers


async def _read(
    http: httpx.AsyncClient, headers: dict[str, str], book_id: str, device: str
) -> None:
    """Open the book (once delivery knows it), reach page 3 online, then upload an
    open and page 7 read offline on `device`."""

    async def opened() -> bool:
        answer = await http.post("/v1/deliveries", json={"book_id": book_id}, headers=headers)
        return answer.status_code == 200

    await eventually(opened, timeout=30, what="the book in delivery")
    progress = await http.put(
        f"/v1/reading/{book_id}/progress", json={"page": 3, "total_pages": 10}, headers=headers
    )
    assert progress.status_code == 200, progress.text
    at = datetime.now(UTC).isoformat()
    offline = await http.post(
        "/v1/reading/events",
        json={"device_id": device, "events": [
            {"id": str(uuid.uuid4()), "type": "open", "book_id": book_id, "at": at},
            {"id": str(uuid.uuid4()), "type": "progress", "book_id": book_id, "at": at,
             "page": 7, "total_pages": 10},
        ]},
        headers=headers,
    )  # fmt: skip
    assert offline.status_code == 200, offline.text
    assert offline.json()["accepted"] == 2, offline.text


async def _ready(http: httpx.AsyncClient, headers: dict[str, str], path: str) -> dict[str, Any]:
    for _ in range(300):
        shown = await http.get(path, headers=headers)
        assert shown.status_code == 200, shown.text
        if shown.json()["status"] == "ready":
            body: dict[str, Any] = shown.json()
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"the export never became ready: {shown.text}")


def _exports_bucket(workdir: Path, link: str) -> tuple[Any, str]:
    """The emulator's S3 (its endpoint from a link it signed) and the exports bucket."""
    url = httpx.URL(link)
    secret = (workdir / "data" / AWS_SECRET_FILE).read_text().strip()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"{url.scheme}://{url.host}:{url.port}",
        aws_access_key_id=EMBEDDED_AWS_KEY_ID,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    return s3, url.path.split("/")[1]


async def test_an_export_holds_all_of_one_persons_data_and_nothing_of_anothers(
    platform: tuple[int, Path],
) -> None:
    base, workdir = platform
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base - 1}", timeout=20) as http:
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        admin = {
            "Authorization": "Bearer "
            + (await http.post("/v1/auth/login", json=login)).json()["access_token"]
        }
        amani, as_amani = await _person(http, admin, "amani")
        baraka, as_baraka = await _person(http, admin, "baraka")
        # Both read the same book, online and offline (each from a device of their own).
        _, reviewer = await _person(http, admin, "rehema", role="STORY_MANAGER")
        book_id = await publish_free_book(http, "", admin, reviewer)
        for who, headers in (("amani", as_amani), ("baraka", as_baraka)):
            await _read(http, headers, book_id, device=f"tablet-{who}-{TAG}")
        await asyncio.sleep(2)  # every service has heard of both people (their read models)

        async def counted() -> bool:
            # Metrics has every open: a request heard before them would miss some.
            shown = await http.get(f"/v1/metrics/books/{book_id}", headers=admin)
            return shown.status_code == 200 and shown.json()["opens"] == 4

        await eventually(counted, timeout=30, what="metrics counted both readers' opens")

        # (Asked several times at once, one starts and the rest are 409s:
        # tests/platform/test_races_on_both_databases.py, where no worker can finish
        # it first: here the workers poll every 0.2 s and a second ask may come after.)
        asked = await http.post("/v1/users/me/export", headers=as_amani)
        assert asked.status_code == 202, asked.text
        assert asked.json()["status"] == "gathering"
        # Nobody else's but an ADMIN's (or a class account's teacher's) to ask or see:
        # to anyone else another's export is not there at all.
        for path in (f"/v1/users/{amani['id']}/export",):
            assert_problem(await http.get(path, headers=as_baraka), 404)
            assert_problem(await http.post(path, headers=as_baraka), 404)
        assert_problem(await http.get("/v1/users/me/export", headers=as_baraka), 404)
        ready = await _ready(http, as_amani, "/v1/users/me/export")
        assert ready["expires_at"]
        as_seen_by_admin = await _ready(http, admin, f"/v1/users/{amani['id']}/export")
        assert as_seen_by_admin["id"] == ready["id"]

        archive = httpx.get(ready["download_url"], timeout=20)
        assert archive.status_code == 200, archive.text
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            names = set(zipped.namelist())
            text = "\n".join(zipped.read(n).decode() for n in names)
            parts = {p: json.loads(zipped.read(f"{p}.json")) for p in PARTS}
        assert {"README.txt", *(f"{p}.json" for p in PARTS)} <= names
        assert "access/account.csv" in names
        assert "content/submissions.csv" in names
        assert all(part["user_id"] == amani["id"] for part in parts.values())
        # Each service's own rows of this person.
        assert parts["access"]["tables"]["account"][0]["email"] == amani["email"]
        assert "password_hash" not in parts["access"]["tables"]["account"][0]
        assert [s["title"] for s in parts["content"]["tables"]["submissions"]] == [
            f"The story of amani {TAG}"
        ]
        assert parts["delivery"]["tables"]["reader"][0]["role"] == "VOLUNTEER"
        delivery = parts["delivery"]["tables"]
        # Page 3 online, then page 7 offline: the furthest, in delivery as in metrics.
        assert [(p["book_id"], p["page"]) for p in delivery["reading_progress"]] == [(book_id, 7)]
        assert {e["device_id"] for e in delivery["offline_reading_events"]} == {
            f"tablet-amani-{TAG}"
        }
        metrics = parts["metrics"]["tables"]
        assert metrics["account"][0]["user_id"] == amani["id"]
        # Opened online and offline.
        assert [(r["book_id"], r["opens"], r["page"]) for r in metrics["reading"]] == [
            (book_id, 2, 7)
        ]
        assert {r["book_id"] for r in metrics["reading_hours"]} == {book_id}
        audited = {e["action"] for e in parts["access"]["tables"]["audit_entries"]}
        assert "user.export_requested" in audited
        # Nothing of the other person, though they hold data of every same kind.
        for theirs in (
            baraka["id"], baraka["email"], f"baraka {TAG}", "The story of baraka",
            f"tablet-baraka-{TAG}",
        ):  # fmt: skip
            assert theirs not in text, theirs
        # The link is the archive's own and lasts minutes, not the week it is kept.
        link = httpx.URL(ready["download_url"])
        assert int(link.params["X-Amz-Expires"]) <= 300
        log = (await http.get("/v1/users/audit-log", headers=admin, params={"limit": 100})).json()
        actions = {(e["action"], e["subject_id"]) for e in log["items"]}
        assert ("user.export_requested", amani["id"]) in actions
        assert ("user.export_ready", amani["id"]) in actions

        # Erased while its export is gathered: nothing of it stays anywhere.
        chausiku, as_chausiku = await _person(http, admin, "chausiku")
        await asyncio.sleep(2)
        started = await http.post("/v1/users/me/export", headers=as_chausiku)
        assert started.status_code == 202
        erased = await http.delete("/v1/users/me", headers=as_chausiku)
        assert erased.status_code == 204
        assert_problem(await http.get(f"/v1/users/{chausiku['id']}/export", headers=admin), 404)
    s3, bucket = _exports_bucket(workdir, ready["download_url"])
    prefix = f"{started.json()['id']}/"

    def left() -> list[str]:
        return [
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        ]

    # The parts arrive (each service answers the request) and are swept; then none
    # comes back (a sweep every 30 checks: 6 s here).
    await asyncio.sleep(8)
    await eventually(lambda: left() == [], timeout=30, what="the erased person's export swept")
    await asyncio.sleep(7)
    assert left() == []
    # The first export's archive is still there for its owner.
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"{ready['id']}/")["KeyCount"] == 1
