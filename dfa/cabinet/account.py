"""The signed-in person's account page (who they are, and the form that changes their password) and password
recovery for someone who cannot sign in: their identity confirmed again by the identification data exchange
centre from a photo of their face, then a new password (REQ-19).

Pages call the identity services as the API's security routes do, and like them answer a refusal instead of
raising it: the transaction commits, so a wrong current password counts towards the lockout, and a recovery
attempt towards its rate limits together with the biometric check it made. The recovery forms are public, so
instead of a session's CSRF token their Origin guards them, as it guards sign-in. A refused recovery says no
more about whether a login exists than the API does: one answer for a login, an IIN or a face that do not match.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.pages import FormState, PageRoute, client_address, keep_security_event, page, refuse_foreign_origin
from dfa.platform.access import ALL_ROLES, Principal, allow
from dfa.platform.adapters.identification import BiometricSampleInvalid
from dfa.platform.errors import Category, DomainError
from dfa.platform.identity.errors import GrantInvalid, PasswordPolicyViolation, SignInFailed
from dfa.platform.identity.schemas import MAX_SAMPLE_BYTES
from dfa.platform.identity.service import parties, users
from dfa.platform.web import STATUS_OF_CATEGORY, IdentificationCentreDep, SessionDep, SettingsDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
# Fields are read as typed and checked here, so a missing or overlong one is answered beside it, not as a 422;
# a photo field that carries no file is a missing photo.
Field = Annotated[str, Form()]
Sample = Annotated[UploadFile | str | None, File()]

# What the API's request bodies take (identity schemas): longer passwords and tokens are refused unread.
PASSWORD_MAX_CHARS = 256
TOKEN_MAX_CHARS = 100
LOGIN_MAX_CHARS = 100
IIN_DIGITS = 12
# One photo and three short fields.
RECOVERY_FORM_LIMITS = {"max_files": 1, "max_fields": 4, "max_part_size": 4_096}
INVALID = STATUS_OF_CATEGORY[Category.INVALID]
SEE_OTHER = status.HTTP_303_SEE_OTHER


def _unfilled(**fields: str) -> FormState | None:
    """The first password field left empty or longer than the API takes, as a refusal beside it."""
    for name, value in fields.items():
        if not value:
            return FormState(name, "", _("Fill this in."))
        if len(value) > PASSWORD_MAX_CHARS:
            return FormState(name, "", _("At most %(count)s characters.") % {"count": PASSWORD_MAX_CHARS})
    return None


def _differs(new_password: str, new_password_again: str) -> FormState | None:
    if new_password != new_password_again:
        return FormState("new_password_again", "", _("The two new passwords differ."))
    return None


def _policy(refusal: DomainError) -> FormState:
    """A new password the policy refuses, with what it needs (the service names it)."""
    return FormState("new_password", "", f"{_(refusal.title)}: {refusal.detail}")


# The account


@router.get("/account")
async def account_page(request: Request, principal: Anyone, session: SessionDep, password: str = "") -> HTMLResponse:
    """Who is signed in (login, roles, the party they act for) and the form that changes the password;
    `password=changed` after a change."""
    return await _account_page(request, session, principal=principal, changed=password == "changed")


async def _account_page(
    request: Request, session: AsyncSession, *, principal: Principal, changed: bool = False,
    refused: FormState | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    user = await users.get_user(session, principal.user_id)
    party = await parties.get_party(session, principal.party_id) if principal.party_id else None
    return page(
        request, "account/account.html", principal=principal, status_code=status_code, user=user, party=party,
        changed=changed, refused=refused, password_min_length=request.app.state.settings.password_min_length,
    )


@router.post("/account/password")
async def change_password(
    request: Request, principal: Anyone, session: SessionDep, settings: SettingsDep, current_password: Field = "",
    new_password: Field = "", new_password_again: Field = "",
) -> Response:
    """Change the password, the current one required; every other session of the user ends, this one goes on.
    A wrong current password counts towards the lockout like a failed sign-in."""
    refused = _unfilled(current_password=current_password, new_password=new_password) or _differs(
        new_password, new_password_again
    )
    if refused is not None:
        return await _account_page(request, session, principal=principal, refused=refused, status_code=INVALID)
    try:
        await users.change_password(
            session, principal=principal, current_password=current_password, new_password=new_password,
            settings=settings,
        )
    except (SignInFailed, PasswordPolicyViolation) as refusal:
        await keep_security_event(session, refusal)
        refused = (
            FormState("current_password", "", _("The current password is wrong."))
            if isinstance(refusal, SignInFailed) else _policy(refusal)
        )
        return await _account_page(
            request, session, principal=principal, refused=refused, status_code=STATUS_OF_CATEGORY[refusal.category]
        )
    return RedirectResponse("/account?password=changed#password", status_code=SEE_OTHER)


# Recovery


@router.get("/recovery")
async def recovery_form(request: Request) -> HTMLResponse:
    """The first step of recovering a lost password: login, IIN and a photo of the face."""
    return _recovery_page(request, login="", identifier="")


def _recovery_page(
    request: Request, *, login: str, identifier: str, refused: FormState | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    return page(
        request, "account/recovery.html", principal=None, status_code=status_code, login=login,
        identifier=identifier, refused=refused, sample_max_bytes=MAX_SAMPLE_BYTES,
    )


def _unreadable_identity(login: str, identifier: str, sample: bytes) -> FormState | None:
    """The first field that the API would refuse before any check, as a refusal beside it."""
    if not login or len(login) > LOGIN_MAX_CHARS:
        return FormState("login", login[:LOGIN_MAX_CHARS], _("Enter your login."))
    if len(identifier) != IIN_DIGITS or not identifier.isascii() or not identifier.isdigit():
        return FormState("identifier", identifier[:IIN_DIGITS], _("An IIN is 12 digits."))
    if not sample:
        return FormState("biometric_sample", "", _("Choose a photo of your face."))
    if len(sample) > MAX_SAMPLE_BYTES:
        return FormState("biometric_sample", "", _("The photo is too large."))
    return None


async def _photo(field: UploadFile | str | None) -> bytes:
    """The uploaded photo's bytes, read to one byte past the most the API takes (enough to know it is too large);
    none when no file came."""
    if field is None or isinstance(field, str):
        return b""
    return await field.read(MAX_SAMPLE_BYTES + 1)


@router.post("/recovery", form_limits=RECOVERY_FORM_LIMITS)
async def start_recovery(
    request: Request, session: SessionDep, settings: SettingsDep, centre: IdentificationCentreDep,
    login: Field = "", identifier: Field = "", biometric_sample: Sample = None,
) -> Response:
    """Confirm the person's identity through the identification data exchange centre (REQ-19); on a match,
    the form for the new password, carrying the short-lived recovery token the service issued."""
    refuse_foreign_origin(request)
    sample = await _photo(biometric_sample)
    refused = _unreadable_identity(login, identifier, sample)
    if refused is not None:
        return _recovery_page(request, login=login, identifier=identifier, refused=refused, status_code=INVALID)
    try:
        grant = await users.start_recovery(
            session, login=login, identifier=identifier, sample=sample, centre=centre, source=client_address(request),
            settings=settings,
        )
    except DomainError as refusal:
        await keep_security_event(session, refusal)
        field = "biometric_sample" if isinstance(refusal, BiometricSampleInvalid) else "recovery"
        response = _recovery_page(
            request, login=login, identifier=identifier, refused=FormState(field, "", _(refusal.title)),
            status_code=STATUS_OF_CATEGORY[refusal.category],
        )
        response.headers.update(refusal.headers or {})
        return response
    return _new_password_page(request, token=grant.token, expires_at=grant.expires_at)


def _new_password_page(
    request: Request, *, token: str, expires_at: datetime | None = None, refused: FormState | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    return page(
        request, "account/new_password.html", principal=None, status_code=status_code, token=token,
        expires_at=expires_at, refused=refused,
        password_min_length=request.app.state.settings.password_min_length,
    )


@router.post("/recovery/completion")
async def complete_recovery(
    request: Request, session: SessionDep, settings: SettingsDep, recovery_token: Field = "",
    new_password: Field = "", new_password_again: Field = "",
) -> Response:
    """Set the new password with the recovery token: the user is unlocked and every session of theirs ends.
    A new password the policy refuses keeps the token, for another try."""
    refuse_foreign_origin(request)
    expired = FormState("recovery_token", "", _("This recovery has expired or was used already."))
    if not recovery_token or len(recovery_token) > TOKEN_MAX_CHARS:
        return _new_password_page(
            request, token="", refused=expired, status_code=STATUS_OF_CATEGORY[GrantInvalid.category]
        )
    refused = _unfilled(new_password=new_password) or _differs(new_password, new_password_again)
    if refused is not None:
        return _new_password_page(request, token=recovery_token, refused=refused, status_code=INVALID)
    try:
        await users.complete_recovery(
            session, recovery_token=recovery_token, new_password=new_password, settings=settings
        )
    except (GrantInvalid, PasswordPolicyViolation) as refusal:
        await keep_security_event(session, refusal)
        return _new_password_page(
            request, token=recovery_token, refused=expired if isinstance(refusal, GrantInvalid) else _policy(refusal),
            status_code=STATUS_OF_CATEGORY[refusal.category],
        )
    return RedirectResponse("/recovery/done", status_code=SEE_OTHER)


@router.get("/recovery/done")
async def recovered(request: Request) -> HTMLResponse:
    """The password is replaced: the person signs in with it."""
    return page(request, "account/recovered.html", principal=None)
