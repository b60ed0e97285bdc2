"""The class report's CSV as a pure rule (#37 F4): a cell a spreadsheet would run as a
formula is quoted as text, in every locale's separator, and every cell is in quotes."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from services.access.class_report import ClassProgress, ProgressRow, csv_cell, progress_csv


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("Amani", "Amani"),
        ("=1+1", "'=1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("Anna;=1+1", "'Anna;=1+1"),  # a formula where ";" separates (fr, pt, es)
        ("Anna, =HYPERLINK(1)", "'Anna, =HYPERLINK(1)"),
        ("Anna\t+1", "'Anna\t+1"),
        ("Jean-Pierre", "Jean-Pierre"),  # a dash inside a name is no formula
        ("Anna; Juma", "Anna; Juma"),
        (True, "true"),
        (None, ""),
        (7, "7"),
    ],
)
def test_a_cell_that_could_run_as_a_formula_is_text(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_every_cell_is_quoted_so_no_separator_splits_one() -> None:
    row = ProgressRow(
        user_id=uuid.uuid4(),
        username="anna",
        display_name="Anna;=1+1",
        assignment_id=uuid.uuid4(),
        book_id=uuid.uuid4(),
        title="Sungura; na Kobe",
        due_at=None,
        opened=True,
        opens=2,
        progress_percent=50,
        completed_at=None,
        last_read_at=None,
    )
    report = ClassProgress(
        class_id=uuid.uuid4(), name="4C", figures_as_of=None, learners=1, assignments=[], rows=[row]
    )
    text = progress_csv(report)
    _, line = text.splitlines()
    cells = next(csv.reader(io.StringIO(line)))
    assert line == ",".join('"' + cell.replace('"', '""') + '"' for cell in cells)
    # Split on ";" as a French spreadsheet would, a quoted cell stays whole.
    by_semicolon = next(csv.reader(io.StringIO(line), delimiter=";"))
    assert not any(cell.startswith(("=", "+", "@")) for cell in by_semicolon)
    assert "'Anna;=1+1" in cells
