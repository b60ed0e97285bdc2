"""The metrics service's long-lived parts: built once before the first request,
shared by every request, read through `app_components()` (typed)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.metrics.settings import MetricsSettings
from services.metrics.sketches import ReaderSketches
from shared.resources import Resources
from shared.service.deps import components_accessors


@dataclass
class Components:
    settings: MetricsSettings
    sketches: ReaderSketches


async def build_components(
    settings: MetricsSettings, resources: Resources, _stack: AsyncExitStack
) -> Components:
    return Components(settings=settings, sketches=ReaderSketches.of(resources))


app_components, get_components = components_accessors(Components)


ComponentsDep = Annotated[Components, Depends(get_components)]
