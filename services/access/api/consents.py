"""A parent's links (#41): the one in the consent mail and the one in the
confirmation. Opening a link (GET) only shows what it asks, as a page for a
browser or JSON for an app: mail scanners open links, and must not agree for
anyone. The answer is a POST (the page's buttons, or JSON)."""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from services.access.dependencies import ConsentServiceDep
from services.access.schemas import ConsentAnswer, ConsentOutcome, ConsentRequestOut
from shared.contracts.errors import Unprocessable
from shared.http.problems import problem_responses

consents = APIRouter(prefix="/v1/auth/consents", tags=["consent"])

Token = Annotated[
    str, Path(min_length=20, max_length=200, pattern=r"^[0-9a-z]+\.[a-z]+\.\d+\.[\w-]+$")
]
FORM = "application/x-www-form-urlencoded"


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<body style='font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@consents.get(
    "/{token}",
    response_model=ConsentRequestOut,
    summary="What a parent's link asks (changes nothing)",
    description="For the link in a consent or confirmation mail. A browser gets a page "
    "with the choices; `Accept: application/json` gets this. A forged link: 404; an "
    "expired one, or one for an account since erased: 410; a consent already given: 409.",
    responses=problem_responses(404, 409, 410, 422),
)
async def consent_request(token: Token, request: Request, service: ConsentServiceDep) -> Response:
    shown = await service.view(token)
    if not _wants_html(request):
        return Response(
            ConsentRequestOut.model_validate(shown).model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
    child = html.escape(str(shown["child"]))
    if shown["purpose"] == "give":
        return _page(
            "A child asks to read on 1001 Stories",
            f"<p>{child} ({html.escape(str(shown['child_email']))}) signed up and said they "
            "are under 13. We keep their name, email address, password (hashed) and what "
            "they read, to let them read and pick up where they left off. Nobody else sees "
            "it but their teachers, if they join a class. You can withdraw at any time.</p>"
            f"<form method=post><button name=answer value=agree>I am their parent or "
            "guardian and I agree</button> <button name=answer value=refuse>I do not agree: "
            "delete the account</button></form>",
        )
    return _page(
        "Withdraw your consent",
        f"<p>Withdrawing deletes {child}'s account and everything in it, at once.</p>"
        "<form method=post><button name=answer value=refuse>Withdraw and delete the "
        "account</button></form>",
    )


@consents.post(
    "/{token}",
    response_model=ConsentOutcome,
    summary="A parent's answer: agree, refuse, or (with the confirmation's link) withdraw",
    description='JSON `{"answer": "agree"|"refuse"}` or the page\'s form. Agreeing '
    "activates the account and mails a confirmation with a link to withdraw; refusing "
    "or withdrawing erases the account as `DELETE /v1/users/{id}` does. A link used "
    "again: 409 (agreed already) or 410 (erased already).",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ConsentAnswer.model_json_schema()},
                FORM: {"schema": ConsentAnswer.model_json_schema()},
            },
        }
    },
    responses=problem_responses(404, 409, 410, 422),
)
async def answer_consent(token: Token, request: Request, service: ConsentServiceDep) -> Response:
    raw = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() == FORM:
        try:
            fields = parse_qs(raw.decode(), max_num_fields=5)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Unprocessable("The form cannot be read.") from exc
        given: object = {"answer": (fields.get("answer") or [""])[0]}
    else:
        given = raw or b"{}"
    try:
        answer = (
            ConsentAnswer.model_validate(given)
            if isinstance(given, dict)
            else ConsentAnswer.model_validate_json(given)  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        raise Unprocessable('Answer with {"answer": "agree"} or {"answer": "refuse"}.') from exc
    outcome = await service.answer(token, answer.answer == "agree")
    if request.headers.get("content-type", "").startswith(FORM):
        if outcome is None:
            return _page("Deleted", "<p>The account and everything in it has been deleted.</p>")
        return _page(
            "Thank you",
            "<p>The account is active; a confirmation mail with a link to withdraw is on its "
            "way to you.</p>",
        )
    return Response(
        ConsentOutcome(consent="erased" if outcome is None else "parent").model_dump_json(),
        media_type="application/json",
    )
