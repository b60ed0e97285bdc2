"""The embedded run's AWS emulator, guarded as AWS guards itself (#37 F15).

moto checks no signature and no POST policy: on `stories up` anyone who reached the
emulator could list and write every bucket with made-up credentials, and an author
could re-post an upload form with another key (the checked copy's), another content
type or a larger body. Browsers must reach the emulator (presigned uploads and
links), so the emulator itself refuses what S3 would refuse:

- every request is signed (AWS Signature Version 4, in the header or the query) with
  the embedded run's own credentials, and the signature is checked; a presigned
  link is refused once it has expired;
- a presigned POST's policy is signed with them and has not expired, and every field
  of the form and the file meet its conditions (bucket, key, content type, the
  content-length range, and every other field named);
- moto's own control API (`/moto-api`, which resets everything) is not served.

A WSGI layer in front of moto's application: moto answers whatever passes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
# What S3 allows: a presigned link lives at most 7 days; a header-signed request's
# clock may be 15 minutes off.
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
MAX_CLOCK_SKEW = timedelta(minutes=15)
# Larger than any body the platform sends (a manuscript is at most 50 MB): refused
# before it is read.
MAX_BODY_BYTES = 128 * 1024 * 1024
# Form fields that a POST policy need not name (S3's rule).
UNCONDITIONED_FIELDS = {"policy", "x-amz-signature", "file"}
_AUTH_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)"
)


class Refused(Exception):  # noqa: N818 - an answer, as S3 names its errors
    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(raw_query: str, *, leave_out: str | None = None) -> str:
    """The query as SigV4 canonicalizes it: every name and value encoded one way,
    sorted by name then value, whatever encoding the client sent."""
    pairs = [
        (_uri_encode(name), _uri_encode(value))
        for name, value in parse_qsl(raw_query, keep_blank_values=True)
        if name != leave_out
    ]
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else str(value)


def _canonical_uri(environ: Mapping[str, Any]) -> str:
    """The path as signed: each segment encoded once (S3's rule; the other services
    this emulator serves are all at `/`), from the path as it came on the wire."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    path = urlsplit(raw).path if raw else quote(environ.get("PATH_INFO", "/"))
    return "/".join(_uri_encode(segment) for segment in unquote(path or "/").split("/"))


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    """(access key id, date, region, service) of `AKID/date/region/service/aws4_request`."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise Refused("AuthorizationHeaderMalformed", "The credential is malformed.", 400)
    return parts[0], parts[1], parts[2], parts[3]


def _amz_time(value: str | None) -> datetime:
    try:
        return datetime.strptime(value or "", AMZ_DATE).replace(tzinfo=UTC)
    except ValueError as exc:
        raise Refused("AccessDenied", "The request's date is missing or malformed.") from exc


class EmulatorGuard:
    """WSGI: a request reaches moto only if S3 (or SNS, SQS) would accept it."""

    def __init__(
        self, app: WsgiApp, credentials: Credentials, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._app = app
        self._credentials = credentials
        self._clock = clock or (lambda: datetime.now(UTC))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            body = self._body(environ)
            self._check(environ, body)
        except Refused as refused:
            return _error(start_response, refused)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._app(environ, start_response)

    @staticmethod
    def _body(environ: Mapping[str, Any]) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            raise Refused(
                "EntityTooLarge", "The request is larger than any this emulator takes.", 400
            )
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            data: bytes = stream.read(MAX_BODY_BYTES + 1)
            if len(data) > MAX_BODY_BYTES:
                raise Refused("EntityTooLarge", "The request is too large.", 400)
            return data
        return bytes(stream.read(length)) if length else b""

    def _check(self, environ: Mapping[str, Any], body: bytes) -> None:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/moto-api"):
            raise Refused("AccessDenied", "The emulator's control API is not served here.")
        authorization = _header(environ, "authorization")
        query = environ.get("QUERY_STRING", "")
        if authorization is not None:
            self._check_header_signature(environ, authorization, body)
        elif "X-Amz-Signature=" in query:
            self._check_presigned(environ, query)
        elif method == "POST" and "multipart/form-data" in (environ.get("CONTENT_TYPE") or ""):
            self._check_post_policy(environ, body)
        elif method != "OPTIONS":  # a browser's CORS preflight carries no credentials
            raise Refused("AccessDenied", "Anonymous requests are not accepted.")

    def _known(self, access_key_id: str) -> None:
        if not hmac.compare_digest(access_key_id, self._credentials.access_key_id):
            raise Refused(
                "InvalidAccessKeyId", "The AWS access key id does not exist in our records."
            )

    def _check_header_signature(
        self, environ: Mapping[str, Any], authorization: str, body: bytes
    ) -> None:
        match = _AUTH_HEADER.match(authorization.strip())
        if match is None:
            raise Refused("AccessDenied", "Only AWS Signature Version 4 is accepted.")
        access_key_id, date, region, service = _parse_credential(match["credential"])
        self._known(access_key_id)
        amz_date = _header(environ, "x-amz-date") or ""
        if abs(self._clock() - _amz_time(amz_date)) > MAX_CLOCK_SKEW:
            raise Refused("RequestTimeTooSkewed", "The request's time is too far from ours.")
        signed = match["signed"].split(";")
        payload = _header(environ, "x-amz-content-sha256")
        if payload is None:
            payload = hashlib.sha256(body).hexdigest()
        elif not payload.startswith(("UNSIGNED-PAYLOAD", "STREAMING-")) and not (
            hmac.compare_digest(payload, hashlib.sha256(body).hexdigest())
        ):
            raise Refused("XAmzContentSHA256Mismatch", "The body is not the one signed.", 400)
        canonical = self._canonical_request(
            environ, canonical_query(environ.get("QUERY_STRING", "")), signed, payload
        )
        self._compare(canonical, amz_date, date, region, service, match["signature"])

    def _check_presigned(self, environ: Mapping[str, Any], query: str) -> None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise Refused("AccessDenied", "Only AWS Signature Version 4 is accepted.")
        access_key_id, date, region, service = _parse_credential(params.get("X-Amz-Credential", ""))
        self._known(access_key_id)
        issued = _amz_time(params.get("X-Amz-Date"))
        try:
            lifetime = int(params.get("X-Amz-Expires", ""))
        except ValueError as exc:
            raise Refused(
                "AuthorizationQueryParametersError", "X-Amz-Expires is missing.", 400
            ) from exc
        if not 0 < lifetime <= MAX_PRESIGNED_SECONDS:
            raise Refused(
                "AuthorizationQueryParametersError", "X-Amz-Expires is out of range.", 400
            )
        if self._clock() > issued + timedelta(seconds=lifetime):
            raise Refused("AccessDenied", "Request has expired")
        canonical = self._canonical_request(
            environ,
            canonical_query(query, leave_out="X-Amz-Signature"),
            params.get("X-Amz-SignedHeaders", "host").split(";"),
            "UNSIGNED-PAYLOAD",
        )
        self._compare(
            canonical,
            params["X-Amz-Date"],
            date,
            region,
            service,
            params.get("X-Amz-Signature", ""),
        )

    def _canonical_request(
        self,
        environ: Mapping[str, Any],
        query: str,
        signed_headers: list[str],
        payload: str,
    ) -> str:
        headers = []
        for name in signed_headers:
            value = _header(environ, name)
            if value is None:
                raise Refused("AccessDenied", f"The signed header {name} is missing.")
            headers.append(f"{name}:{' '.join(value.split())}\n")
        return "\n".join(
            [
                environ.get("REQUEST_METHOD", "GET"),
                _canonical_uri(environ),
                query,
                "".join(headers),
                ";".join(signed_headers),
                payload,
            ]
        )

    def _compare(
        self,
        canonical_request: str,
        amz_date: str,
        date: str,
        region: str,
        service: str,
        signature: str,
    ) -> None:
        if amz_date[:8] != date:
            raise Refused("SignatureDoesNotMatch", "The credential's date is not the request's.")
        scope = f"{date}/{region}/{service}/aws4_request"
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
        key = signing_key(self._credentials.secret_access_key, date, region, service)
        if not hmac.compare_digest(_sign(key, to_sign), signature):
            raise Refused(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )

    def _check_post_policy(self, environ: Mapping[str, Any], body: bytes) -> None:
        parsing = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        _, form, files = parse_form_data(parsing, max_content_length=MAX_BODY_BYTES)
        fields = {name.lower(): value for name, value in form.items()}
        upload = files.get("file")
        if upload is None:
            raise Refused("InvalidArgument", "POST requires exactly one file upload.", 400)
        size = len(upload.read())
        policy_text = fields.get("policy", "")
        if fields.get("x-amz-algorithm") != ALGORITHM or not policy_text:
            raise Refused("AccessDenied", "A POST must carry a SigV4-signed policy.")
        access_key_id, date, region, service = _parse_credential(fields.get("x-amz-credential", ""))
        self._known(access_key_id)
        key = signing_key(self._credentials.secret_access_key, date, region, service)
        if not hmac.compare_digest(_sign(key, policy_text), fields.get("x-amz-signature", "")):
            raise Refused("SignatureDoesNotMatch", "The policy's signature does not match.")
        try:
            policy = json.loads(base64.b64decode(policy_text))
            expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError) as exc:
            raise Refused("InvalidPolicyDocument", "The policy is not readable.", 400) from exc
        if self._clock() > expires:
            raise Refused("AccessDenied", "Invalid according to Policy: Policy expired.")
        bucket = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
        values = {**fields, "bucket": bucket}
        named = check_policy_conditions(policy.get("conditions", []), values, size)
        for name in fields:
            free = name in UNCONDITIONED_FIELDS or name.startswith("x-ignore-")
            if not free and name not in named:
                raise Refused(
                    "AccessDenied", f"Invalid according to Policy: Extra input fields: {name}"
                )


def check_policy_conditions(
    conditions: list[Any], values: Mapping[str, str], size: int
) -> set[str]:
    """Every condition of a POST policy met by the form's `values` and the file's
    `size`; the names of the fields they cover. Refused (403) at the first unmet."""
    named: set[str] = set()

    def unmet(what: str) -> Refused:
        return Refused(
            "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {what}"
        )

    for condition in conditions:
        if isinstance(condition, dict):
            for name, expected in condition.items():
                field = name.lower()
                named.add(field)
                if values.get(field) != expected:
                    raise unmet(f'["eq", "${name}", "{expected}"]')
        elif isinstance(condition, list) and len(condition) == 3:
            operator = str(condition[0]).lower()
            if operator == "content-length-range":
                if not int(condition[1]) <= size <= int(condition[2]):
                    raise Refused(
                        "EntityTooLarge" if size > int(condition[2]) else "EntityTooSmall",
                        "Your proposed upload is outside the policy's size range.",
                        400,
                    )
                continue
            field = str(condition[1]).lstrip("$").lower()
            named.add(field)
            actual = values.get(field)
            if operator == "eq" and actual != condition[2]:
                raise unmet(json.dumps(condition))
            if operator == "starts-with" and not (actual or "").startswith(str(condition[2])):
                raise unmet(json.dumps(condition))
            if operator not in ("eq", "starts-with"):
                raise Refused("InvalidPolicyDocument", f"Unknown condition {operator}.", 400)
        else:
            raise Refused("InvalidPolicyDocument", "A condition is malformed.", 400)
    return named


def _error(start_response: Callable[..., Any], refused: Refused) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(refused.code)}</Code>"
        f"<Message>{escape(refused.message)}</Message></Error>"
    ).encode()
    reasons = {400: "Bad Request", 403: "Forbidden"}
    start_response(
        f"{refused.status} {reasons.get(refused.status, 'Error')}",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


def start_guarded_moto(host: str, port: int, credentials: Credentials) -> Any:
    """moto's threaded server (with `stories.moto_fixes`) behind the guard, on
    `host:port`, started; `.stop()` stops it. moto is imported here: it is a
    development dependency, absent from the image."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from stories import moto_fixes

    moto_fixes.apply()

    class GuardedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = EmulatorGuard(DomainDispatcherApplication(create_backend_app), credentials)
            self._server = make_server(host, port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    server = GuardedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server
