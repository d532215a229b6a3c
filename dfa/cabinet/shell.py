"""The cabinet's door: the home page with each role's sections, sign-in with login and password (staff also
with a one-time code, and their first authenticator enrolled on the way), sign-out, and the stylesheet.

A failed sign-in is answered with the form again and the reason beside it, and its transaction commits: the
failure counts towards the lockout as on the API. A sign-in form posted from another site is refused (its
Origin is not ours), so nobody can sign a visitor in to an account of theirs.
"""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.pages import (
    STYLESHEET,
    STYLESHEET_CACHE,
    FormState,
    PageRoute,
    client_address,
    keep_security_event,
    page,
    refuse_foreign_origin,
)
from dfa.platform.access import ALL_ROLES, Principal, allow
from dfa.platform.errors import DomainError
from dfa.platform.identity.guard import SESSION_COOKIE, authenticate, set_session_cookie
from dfa.platform.identity.service import users
from dfa.platform.settings import Settings
from dfa.platform.types import Text
from dfa.platform.web import STATUS_OF_CATEGORY, KeysDep, SessionDep, SettingsDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Next = Annotated[str, Query(max_length=2_000)]
Field = Annotated[Text, Form(max_length=200)]  # no control characters: a NUL would reach the login's lookup
Code = Annotated[str, Form(max_length=20)]


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only (never `//elsewhere` or `https://elsewhere`)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/static/cabinet.css")
async def stylesheet() -> FileResponse:
    """The pages' stylesheet; public, since the sign-in page wears it too."""
    return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": STYLESHEET_CACHE})


@router.get("/")
async def home(request: Request, principal: Anyone) -> HTMLResponse:
    """The signed-in person's sections."""
    return page(request, "home.html", principal=principal)


@router.get("/sign-in")
async def sign_in_form(request: Request, next: Next = "/") -> Response:
    """The sign-in form; someone signed in already goes on."""
    if await authenticate(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    return page(request, "sign_in.html", principal=None, next=_safe_next(next), login="", refused=None)


@router.post("/sign-in")
async def sign_in(
    request: Request, session: SessionDep, settings: SettingsDep, keys: KeysDep, login: Field, password: Field,
    one_time_code: Code = "", next: Annotated[str, Form(max_length=2_000)] = "/",
) -> Response:
    refuse_foreign_origin(request)
    target = _safe_next(next)
    try:
        result = await users.sign_in(
            session, login=login, password=password, one_time_code=one_time_code or None, source=client_address(request),
            settings=settings, keys=keys,
        )
    except DomainError as refusal:
        return await _refused(request, session, refusal, target=target, login=login)
    if isinstance(result, users.EnrolmentRequired):
        return page(request, "enrol.html", principal=None, next=target, enrolment=result, refused=None)
    return _signed_in(result, target=target, settings=settings)


@router.post("/sign-in/second-factor")
async def enrol_second_factor(
    request: Request, session: SessionDep, settings: SettingsDep, keys: KeysDep,
    enrolment_token: Annotated[str, Form(max_length=500)], one_time_code: Code,
    next: Annotated[str, Form(max_length=2_000)] = "/",
) -> Response:
    """Confirm a new authenticator with its first code; signs in."""
    refuse_foreign_origin(request)
    target = _safe_next(next)
    try:
        signed_in = await users.complete_enrolment(
            session, enrolment_token=enrolment_token, one_time_code=one_time_code, settings=settings, keys=keys
        )
    except DomainError as refusal:
        return await _refused(request, session, refusal, target=target, login="")
    return _signed_in(signed_in, target=target, settings=settings)


async def _refused(
    request: Request, session: AsyncSession, refusal: DomainError, *, target: str, login: str
) -> Response:
    """The sign-in form again with the reason beside it. Answered, not raised: the transaction commits with the
    failure counted (as the API's sign-in does)."""
    await keep_security_event(session, refusal)
    return page(
        request, "sign_in.html", principal=None, status_code=STATUS_OF_CATEGORY[refusal.category], next=target,
        login=login, refused=FormState("sign-in", login, _(refusal.title)),
    )


def _signed_in(signed_in: users.SignedIn, *, target: str, settings: Settings) -> Response:
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, signed_in, settings)
    return response


@router.post("/sign-out")
async def sign_out(principal: Anyone, session: SessionDep) -> Response:
    """End this session and go back to the sign-in page."""
    if principal.session_id is not None:
        await users.sign_out(session, principal=principal)
    response = RedirectResponse("/sign-in", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
