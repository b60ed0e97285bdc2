"""Decisions for other services (internal): may this principal do this to this
resource, one at a time or many in one call."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.access.components import account_service, app_components
from services.access.decisions import DecisionService
from services.access.dependencies import (
    DecisionServiceDep,
)
from services.access.schemas import (
    DecisionBatch,
    DecisionBatchResult,
)
from shared.clients.db import unit_of_work
from shared.contracts.decisions import Decision, DecisionRequest
from shared.http.problems import problem_responses
from shared.resources import resources_of
from shared.service.deps import CallingService

decisions = APIRouter(prefix="/v1/decisions", tags=["decisions (internal)"])


@decisions.post(
    "",
    response_model=Decision,
    summary="May this user do this? (internal: service credential only)",
    responses=problem_responses(401, 403, 422),
)
async def decide(body: DecisionRequest, _caller: CallingService, request: Request) -> Response:
    # Hot path: a cached decision is answered with its stored JSON, with no
    # session, no service object, no response validation, no extra dependency.
    resources = resources_of(request.app)
    cached = resources.decisions.get_local_json(body)
    if cached is not None:
        return Response(cached, media_type="application/json")
    components = app_components(request.app)
    async with unit_of_work(resources.session_factory) as session:
        accounts = account_service(components, resources, session)
        decision = await DecisionService(accounts).decide(body)
    return Response(decision.model_dump_json(), media_type="application/json")


@decisions.post(
    "/batch",
    summary="Many decisions in one call (internal: service credential only)",
    responses=problem_responses(401, 403, 422),
)
async def decide_many(
    body: DecisionBatch, _caller: CallingService, service: DecisionServiceDep
) -> DecisionBatchResult:
    return DecisionBatchResult(results=[await service.decide(r) for r in body.requests])
