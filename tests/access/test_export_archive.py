"""#41: the archive a person downloads, as access assembles it from the services'
parts (no server: the zip itself). Every part as JSON, every table as CSV that a
spreadsheet reads back to the same values, and a README saying what is where."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime

from services.access.data_export import archive

PARTS = {
    "access": {
        "service": "access",
        "user_id": "u1",
        "tables": {
            "account": [
                {"id": "u1", "email": "amani@example.org", "display_name": 'A "quoted", name'}
            ],
            "sessions": [],
        },
    },
    "content": {
        "service": "content",
        "user_id": "u1",
        "tables": {
            "submissions": [
                {"id": "s1", "title": "Line one\nline two", "credits": [{"role": "author"}]},
                {"id": "s2", "title": "Ñandú", "extra": 3},
            ]
        },
    },
}


def test_the_archive_holds_each_part_as_json_and_each_table_as_csv() -> None:
    data = archive(PARTS, datetime(2026, 12, 7, tzinfo=UTC))
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        names = set(zipped.namelist())
        assert names == {
            "README.txt",
            "access.json",
            "content.json",
            "access/account.csv",
            "access/sessions.csv",
            "content/submissions.csv",
        }
        assert json.loads(zipped.read("content.json")) == PARTS["content"]
        assert "2026-12-07" in zipped.read("README.txt").decode()
        rows = list(csv.DictReader(io.StringIO(zipped.read("content/submissions.csv").decode())))
        account = list(csv.DictReader(io.StringIO(zipped.read("access/account.csv").decode())))
    assert account == [
        {"id": "u1", "email": "amani@example.org", "display_name": 'A "quoted", name'}
    ]
    # Every column of every row (a row without one leaves it empty); lists as JSON.
    assert rows[0]["title"] == "Line one\nline two"
    assert json.loads(rows[0]["credits"]) == [{"role": "author"}]
    assert rows[0]["extra"] == ""
    assert rows[1] == {"id": "s2", "title": "Ñandú", "credits": "", "extra": "3"}
