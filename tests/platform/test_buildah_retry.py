"""#37: a new machine's first `make test` failed in the image stage on the OCI
runtime's memfd-sealing transient, and passed when run again. scripts/buildah-build
retries that one failure once, says so, and fails on anything else or on the same
failure twice. buildah is an edge we do not own: a stand-in on PATH plays it, failing
its first N builds with the given message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRANSIENT = "error running subprocess: Close_Fd sealing memfd copy: Device or resource busy"


def run_with_buildah(
    tmp_path: Path, *, failures: int, message: str
) -> subprocess.CompletedProcess[str]:
    tools = tmp_path / "bin"
    tools.mkdir()
    count = tmp_path / "builds"
    count.write_text("0")
    said = tmp_path / "message"
    said.write_text(message + "\n")
    stand_in = tools / "buildah"
    stand_in.write_text(
        "#!/usr/bin/env bash\n"
        f'n=$(( $(cat "{count}") + 1 )); echo "$n" > "{count}"\n'
        f'if [ "$n" -le {failures} ]; then cat "{said}" >&2; exit 1; fi\n'
        "echo built\n"
    )
    stand_in.chmod(0o755)
    return subprocess.run(
        [str(ROOT / "scripts" / "buildah-build"), "-t", "x", "."],
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_build_that_passes_is_not_retried(tmp_path: Path) -> None:
    result = run_with_buildah(tmp_path, failures=0, message=TRANSIENT)
    assert result.returncode == 0
    assert (tmp_path / "builds").read_text().strip() == "1"
    assert "retrying" not in result.stdout


def test_the_known_transient_is_retried_once_and_said(tmp_path: Path) -> None:
    result = run_with_buildah(tmp_path, failures=1, message=TRANSIENT)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "builds").read_text().strip() == "2"
    assert "memfd-sealing transient: retrying once" in result.stdout
    assert TRANSIENT in result.stderr


@pytest.mark.parametrize(
    ("failures", "message"),
    [(2, TRANSIENT), (1, 'Error: building at STEP "RUN pip install": exit status 1')],
    ids=["the transient twice", "any other failure"],
)
def test_anything_else_fails_the_build(tmp_path: Path, failures: int, message: str) -> None:
    result = run_with_buildah(tmp_path, failures=failures, message=message)
    assert result.returncode == 1
    assert message in result.stderr
    retried = message == TRANSIENT
    assert (tmp_path / "builds").read_text().strip() == ("2" if retried else "1")
