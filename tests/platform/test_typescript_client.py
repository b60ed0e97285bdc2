"""#22: the TypeScript client breaks when the API breaks.

`make test`'s `client` stage generates the types from infra/gateway/openapi.json
and compiles the typed example; test_gateway.py keeps that document equal to what
the services serve. Here the whole chain is shown end to end: a response model
changed in the code (DeliveryOut's `url` renamed) gives a document whose client no
longer compiles, while the same check passes on the real document and on an
additive change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"

# Run in a fresh interpreter: the model is replaced before any service's routes
# import it, exactly as an edit of services/delivery/schemas.py would.
CHANGED_MODEL = """
import sys
from pydantic import Field, create_model
import services.delivery.schemas as schemas

fields = {{
    name: (info.annotation, info)
    for name, info in schemas.DeliveryOut.model_fields.items()
    if name != "url"
}}
{change}
schemas.DeliveryOut = create_model(
    "DeliveryOut", __base__=schemas.DeliveryOut.__bases__[0], **fields
)
from stories.gateway.openapi import openapi_json, platform_openapi
sys.stdout.write(openapi_json(platform_openapi()))
"""
RENAMED = 'fields["href"] = (str, Field(description="renamed from url"))'
ADDED = (
    'fields["url"] = schemas.DeliveryOut.model_fields["url"].annotation, ...\n'
    'fields["size_bytes"] = (int | None, None)'
)


@pytest.fixture(scope="module")
def tools() -> None:
    if shutil.which("node") is None or not (BIN / "tsc").exists():
        pytest.skip(
            "SKIPPED: Node.js or clients/typescript/node_modules is missing "
            "(`make install` runs npm ci there)"
        )


def _document_with(change: str) -> str:
    made = subprocess.run(
        [sys.executable, "-c", CHANGED_MODEL.format(change=change)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return made.stdout


def _check(document: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """The client stage's two steps (generate, tsc --noEmit) on `document`, in a copy."""
    (workdir / "src").mkdir(parents=True)
    shutil.copy(CLIENT / "tsconfig.json", workdir)
    shutil.copy(CLIENT / "src" / "example.ts", workdir / "src")
    (workdir / "openapi.json").write_text(document)
    generated = subprocess.run(
        [str(BIN / "openapi-typescript"), "openapi.json", "-o", "src/schema.d.ts"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert generated.returncode == 0, generated.stderr
    (workdir / "node_modules").symlink_to(CLIENT / "node_modules")
    return subprocess.run(
        [str(BIN / "tsc"), "--noEmit", "-p", "."], cwd=workdir, capture_output=True, text=True
    )


@pytest.mark.timeout(300)
def test_the_client_compiles_against_the_checked_in_document(tools: None, tmp_path: Path) -> None:
    checked = _check((ROOT / "infra" / "gateway" / "openapi.json").read_text(), tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.timeout(300)
def test_a_breaking_change_to_a_response_model_fails_the_client_check(
    tools: None, tmp_path: Path
) -> None:
    renamed = _document_with(RENAMED)
    schema = json.loads(renamed)["components"]["schemas"]["DeliveryOut"]
    assert "href" in schema["properties"]
    assert "url" not in schema["properties"]
    broken = _check(renamed, tmp_path / "renamed")
    assert broken.returncode != 0
    assert "example.ts" in broken.stdout, broken.stdout
    assert "'url'" in broken.stdout, broken.stdout
    # The same edit that only adds a field keeps every caller compiling.
    added = _check(_document_with(ADDED), tmp_path / "added")
    assert added.returncode == 0, added.stdout
