"""HTTP plumbing shared by every router: problem details, request ids, units of work, idempotency."""

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

import fastapi.routing
import pydantic_core
from fastapi import Depends, FastAPI, Header, Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dfa.platform import service
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.adapters.identification import IdentificationCentre
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import Category, DomainError, IdempotencyKeyMissing
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.guard import authenticate
from dfa.platform.logs import client_address_var, request_id_var
from dfa.platform.schemas import FieldError, Problem
from dfa.platform.settings import Settings

log = logging.getLogger("dfa.http")

PROBLEM_JSON = "application/problem+json"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STATUS_OF_CATEGORY = {
    Category.INVALID: 422,
    Category.NOT_FOUND: 404,
    Category.CONFLICT: 409,
    Category.REFUSED: 422,
    Category.PRECONDITION: 428,
    Category.UNAUTHENTICATED: 401,
    Category.FORBIDDEN: 403,
    Category.TOO_MANY: 429,
    Category.UNAVAILABLE: 503,
}
# Matched in full: `$` would also let a trailing line break through into the logs and the echoed header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
# How deep pydantic-core's parser lets JSON nest; no request body comes near it.
JSON_MAX_DEPTH = 200
# Idempotency keys are scoped per principal, so one caller can never replay another's response;
# callers of public routes (sign-up, sign-in) share the anonymous scope.
ANONYMOUS_PRINCIPAL = "anonymous"


# Problem types of the HTTP layer itself, next to the domain's (DomainError.registry).
HTTP_PROBLEM_TYPES = {
    "validation-error": "The request is not valid",
    "not-found": "No such resource",
    "method-not-allowed": "The method is not allowed here",
    "payload-too-large": "The request body is too large",
    "database-unavailable": "The database is unavailable",
    "internal-error": "Internal error",
}


def problem_type_uri(slug: str) -> str:
    return f"/problems/{slug}"


def problem(
    status: int, *, slug: str, title: str, detail: str, request: Request | None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type_uri(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def domain_error_handler(request: Request, error: DomainError) -> JSONResponse:
    status = STATUS_OF_CATEGORY[error.category]
    log.info("refused", extra={"problem": error.type, "status": status})
    response = problem(
        status,
        slug=error.type,
        title=error.title,
        detail=error.detail,
        request=request,
        **({"context": error.context} if error.context else {}),
    )
    response.headers.update(error.headers or {})
    return response


def _field_path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location)


async def validation_error_handler(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": _field_path(e["loc"]), "message": e["msg"], "code": e["type"]} for e in error.errors()
    ]
    return problem(
        422,
        slug="validation-error",
        title="The request is not valid",
        detail="; ".join(f"{e['field']}: {e['message']}" for e in errors),
        request=request,
        errors=errors,
    )


async def http_error_handler(request: Request, error: StarletteHTTPException) -> JSONResponse:
    slug = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
        error.status_code, f"http-{error.status_code}"
    )
    response = problem(
        error.status_code,
        slug=slug,
        title=str(error.detail) if error.status_code < 500 else "Internal error",
        detail=str(error.detail),
        request=request,
    )
    response.headers.update(error.headers or {})
    if error.status_code == 405:
        # RFC 9110: a 405 names every method the resource takes; Starlette names only those of the first route
        # matching the path, and FastAPI makes one route per method.
        response.headers["Allow"] = ", ".join(_methods_taken(request))
    return response


def _methods_taken(request: Request) -> list[str]:
    """The methods of the resource at the request's path: of the path templates matching it, the most literal one
    (`/withdrawals/submission`, not `/withdrawals/{withdrawal_id}`)."""
    # Included routers are mounted as branches; walk them to their routes where FastAPI does so.
    flattened = getattr(fastapi.routing, "iter_route_contexts", None)
    taken: dict[str, set[str]] = {}
    for route in flattened(request.app.routes) if flattened else request.app.routes:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if route.matches({**request.scope, "method": method})[0] == Match.FULL:
                taken.setdefault(getattr(route, "path_format", ""), set()).add(method)
    if not taken:
        return []
    resource = min(taken, key=lambda template: template.count("{"))
    return sorted(taken[resource], key=["GET", "POST", "PUT", "PATCH", "DELETE"].index)


async def unexpected_error_handler(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return problem(
        500,
        slug="internal-error",
        title="Internal error",
        detail="The platform failed to handle this request; nothing was changed. Quote the request id.",
        request=request,
    )


# The problems an operation may answer instead of its success, by status: (when, what it means).
_PROBLEM_RESPONSES = {
    400: ("body", "The request body could not be parsed (not JSON, or not the form it should be)."),
    401: ("guarded", "Not signed in, or the credential presented is not valid."),
    403: ("guarded", "The caller's role may not do this, or the session's CSRF token is missing."),
    404: ("always", "No such resource (another owner's objects are not found either)."),
    409: ("guarded", "The request conflicts with the current state of the resource."),
    413: ("body", "The request body is too large."),
    422: ("always", "The request is not valid (with field errors), or the platform refuses it by a business rule."),
    428: ("idempotent", "An Idempotency-Key header is required."),
    429: ("always", "Too many requests: slow down."),
    503: ("always", "A party the answer depends on (the database, an external centre) is unavailable."),
}


def document_problems(openapi: dict) -> dict:
    """Declare on every operation the RFC 9457 problems it may answer, so the description is the contract
    clients and contract tests hold the API to (FastAPI alone documents only a 422 of another shape)."""
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldError, Problem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        components[model.__name__] = schema
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for item in openapi.get("paths", {}).values():
        for method, operation in item.items():
            applies = {
                "always": True,
                "guarded": operation.get("security") != [] or method.upper() in MUTATING_METHODS,
                "body": "requestBody" in operation,
                "idempotent": any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])),
            }
            responses = operation.setdefault("responses", {})
            for status, (when, description) in _PROBLEM_RESPONSES.items():
                if applies[when]:
                    response = responses.setdefault(str(status), {"description": description})
                    if status == 422:  # FastAPI's own says only "Validation Error"
                        response["description"] = description
                    response["content"] = content
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return openapi


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)


class RequestContextMiddleware:
    """Gives every request an id (kept from X-Request-ID when sane), caps the body size, logs it.

    `upload_limits` raises the cap for the few paths that take uploads: (path pattern, bytes) pairs.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, upload_limits: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.upload_limits = [(re.compile(pattern), limit) for pattern, limit in upload_limits]

    def _limit(self, path: str) -> int:
        return next((limit for pattern, limit in self.upload_limits if pattern.fullmatch(path)), self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        client = scope.get("client")
        address_token = client_address_var.set(client[0] if client else None)
        started = time.perf_counter()
        status_holder = {"status": 500}

        max_body_bytes = self._limit(scope["path"])
        declared = headers.get(b"content-length")
        response = None
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            response = problem(
                413,
                slug="payload-too-large",
                title="The request body is too large",
                detail=f"request bodies are limited to {max_body_bytes} bytes",
                request=None,
            )
        elif "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # PostgreSQL cannot keep a NUL in text and no address needs one: refused before any query sees it.
            where = "path" if "\x00" in scope["path"] else "query"
            response = problem(
                422,
                slug="validation-error",
                title="The request is not valid",
                detail=f"{where}: a NUL character is not allowed",
                request=None,
                errors=[{"field": where, "message": "a NUL character is not allowed", "code": "string_type"}],
            )
        if response is not None:
            response.headers["X-Request-ID"] = request_id
            await response(scope, receive, send)
            request_id_var.reset(token)
            client_address_var.reset(address_token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise StarletteHTTPException(413, "request body too large")
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_holder["status"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)
            client_address_var.reset(address_token)


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_settings_dependency(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> AsyncSession:
    """The session of the unit of work `UnitOfWorkRoute` opened for this request."""
    return request.state.session


def app_state(name: str) -> Callable[[Request], Any]:
    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


SessionDep = Annotated[AsyncSession, Depends(get_session)]
KeysDep = Annotated[Keys, Depends(app_state("keys"))]
AntiFraudCentreDep = Annotated[AntiFraudCentre, Depends(app_state("antifraud"))]
IdentificationCentreDep = Annotated[IdentificationCentre, Depends(app_state("identification_centre"))]
DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
IdempotencyKeyHeader = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        description="Unique per intended operation; a retry with the same key and body returns the first response.",
        min_length=1,
        max_length=service.IDEMPOTENCY_KEY_MAX_LENGTH,
        pattern=service.IDEMPOTENCY_KEY_PATTERN,
    ),
]


async def _file_digest(upload: UploadFile) -> str:
    digest = hashlib.sha256()
    await upload.seek(0)
    while chunk := await upload.read(65_536):
        digest.update(chunk)
    await upload.seek(0)
    return digest.hexdigest()


class UnitOfWorkRoute(APIRoute):
    """Runs each request in one database transaction, committed before the response leaves.

    Mutating requests must carry an Idempotency-Key: the key is claimed, per caller, in the same
    transaction as the command, the response is stored with it, and a replay returns the stored
    response. A refusal rolls everything back (the key included), so a corrected retry may reuse the
    key; a refusal that is a security event (a denial, an anti-fraud match) is recorded on its own.
    """

    async def _canonical_body(self, request: Request) -> bytes:
        """The body as idempotency compares it: the bytes, or for a form upload its fields and each file's
        name, type and SHA-256 (a retry of the same upload carries a new random multipart boundary). The
        form parsed here, within the route's limits, is the one the route then reads."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await request.body()
        form = await request.form(**(self.form_limits or {}))
        parts = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                value = f"file {value.filename!r} {value.content_type!r} sha-256 {await _file_digest(value)}"
            parts.append(json.dumps([name, value]))
        return "\n".join(sorted(parts)).encode()

    async def _refuse_deep_json(self, request: Request) -> None:
        """Refuse a JSON body nested deeper than any request needs before Python's parser sees it: that parser
        recurses once per level, and the EVM libraries lift the interpreter's recursion limit (to 100,000) so
        far that a body of nested brackets would overflow the stack and kill the process. The depth is checked
        by pydantic-core's parser, which stops at 200 levels without recursing in Python."""
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return
        try:
            pydantic_core.from_json(await request.body())
        except ValueError as error:
            if str(error).startswith("recursion limit exceeded"):
                raise RequestValidationError([{
                    "type": "json_invalid", "loc": ("body",), "input": {},
                    "msg": f"JSON nested more than {JSON_MAX_DEPTH} levels deep",
                }]) from None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run_in_unit_of_work(request: Request) -> Response:
            database: Database = request.app.state.database
            if request.method not in MUTATING_METHODS:
                async with database.read() as session:
                    request.state.session = session
                    return await handler(request)

            key = request.headers.get("idempotency-key")
            if key is None:
                raise IdempotencyKeyMissing(
                    "mutating requests must carry an Idempotency-Key header (any unique string, e.g. a UUID)"
                )
            key = service.validate_idempotency_key(key)
            fingerprint = service.request_fingerprint(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                body=await self._canonical_body(request),
            )
            async with database.unit_of_work() as session:
                request.state.session = session
                caller = await authenticate(request)
                scope = caller.key if caller is not None else ANONYMOUS_PRINCIPAL
                stored = await service.claim_idempotency_key(
                    session, principal=scope, key=key, request_hash=fingerprint
                )
                if stored is not None:
                    return Response(
                        stored.body,
                        status_code=stored.status_code,
                        media_type=stored.content_type,
                        headers={"Idempotent-Replayed": "true"},
                    )
                response = await handler(request)
                if not 200 <= response.status_code < 300:
                    raise _RollBack(response)
                await service.store_response(
                    session,
                    principal=scope,
                    key=key,
                    response=service.StoredResponse(
                        response.status_code,
                        response.headers.get("content-type", "application/json"),
                        bytes(response.body),
                    ),
                )
            return response

        async def handle(request: Request) -> Response:
            await self._refuse_deep_json(request)
            try:
                return await run_in_unit_of_work(request)
            except _RollBack as rolled_back:
                return rolled_back.response
            except DomainError as refusal:
                await _record_security_event(request.app.state.database, refusal)
                raise

        return handle


class SecurityRoute(UnitOfWorkRoute):
    """For sign-in, recovery, identity checks and tokens: no Idempotency-Key (each attempt is its own
    event), and the transaction commits even when the request is refused, so failure counts,
    lockouts, recorded biometric checks and their security events stay."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = APIRoute.get_route_handler(self)

        async def handle(request: Request) -> Response:
            await self._refuse_deep_json(request)
            database: Database = request.app.state.database
            refusal: DomainError | None = None
            async with database.unit_of_work() as session:
                request.state.session = session
                try:
                    response = await handler(request)
                except DomainError as error:
                    refusal = error
            if refusal is not None:
                await _record_security_event(database, refusal)
                raise refusal
            return response

        return handle


async def _record_security_event(database: Database, refusal: DomainError) -> None:
    """A refusal that is a security event is recorded in a transaction of its own: the refused work
    (and the request's transaction with it) does not commit."""
    if refusal.security_event is not None:
        await audit.record_in_own_transaction(database, **refusal.security_event)


class _RollBack(Exception):
    """Leaves the unit of work without committing, carrying the response to send."""

    def __init__(self, response: Response) -> None:
        self.response = response

