"""The operator administrator's pages: the bank-statement lines that matched no client, each credited to the
client it is for or returned to its payer; the users, with the forms that set their roles, lift a lockout,
disable and enable them; and the business-day calendar, where the government's day transfers and extra days
off are declared.

Pages call the services the API calls, with its authorization: staff read the bank lines and the calendar,
administrators and auditors read the users, and only administrators change anything. Forms post with the
session's CSRF token and answer with a redirect back to the page (post/redirect/get); a refusal shows the
page again with the reason next to the field and changes nothing.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from babel.dates import format_date
from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet import i18n
from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.pages import FormState, PageRoute, attempt, page, page_of
from dfa.platform.access import STAFF_ROLES, Principal, Role, allow
from dfa.platform.calendar import errors as calendar_errors
from dfa.platform.calendar import service as calendar
from dfa.platform.errors import Category, DomainError
from dfa.platform.identity.errors import PartyNotFound
from dfa.platform.identity.models import User
from dfa.platform.identity.service import parties, users
from dfa.platform.types import BIGINT_MAX, Text
from dfa.platform.web import STATUS_OF_CATEGORY, SessionDep, SettingsDep
from dfa.settlement.errors import ResolutionNoteRequired
from dfa.settlement.models import LINE_STATUSES, StatementImport, StatementLine
from dfa.settlement.service import cash

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
UserReader = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.AUDITOR))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]

LineIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
UserIdPath = Annotated[uuid.UUID, Path()]
DayPath = Annotated[date, Path()]
# The forms' own fields are far shorter (their inputs' maxlength); the services give the reasons for their limits.
FormText = Annotated[Text, Form(max_length=2_000)]
Year = Annotated[int | None, Query(ge=calendar.FIRST_DAY.year, le=calendar.LAST_DAY.year)]

# The queue first: it is what an administrator comes for.
SHOWN_STATUSES = ("unmatched", *(line_status for line_status in LINE_STATUSES if line_status != "unmatched"))
INVALID = STATUS_OF_CATEGORY[Category.INVALID]
SEE_OTHER = status.HTTP_303_SEE_OTHER


def _administers(principal: Principal) -> bool:
    return Role.OPERATOR_ADMIN in principal.roles


def _beside(field: str, entered: str, refusal: DomainError) -> tuple[FormState, int]:
    """The refusal as the page shows it next to `field`, and the status code it is answered with."""
    return FormState(field, entered, refusal.detail), STATUS_OF_CATEGORY[refusal.category]


# Bank-statement lines


@dataclass(frozen=True)
class LineRow:
    """A bank-statement line with the statement it came from."""

    line: StatementLine
    statement: StatementImport


async def _line_rows(session: AsyncSession, lines: list[StatementLine]) -> list[LineRow]:
    """Each line with its statement: the import that first stored it, fetched as the API lists imports."""
    statements: dict[int, StatementImport] = {}
    for import_id in {line.import_id for line in lines}:
        found = await cash.list_statement_imports(session, before=import_id + 1, limit=1)
        statements[import_id] = found[0]
    return [LineRow(line, statements[line.import_id]) for line in lines]


@router.get("/admin/bank-lines")
async def bank_lines(
    request: Request, principal: Staff, session: SessionDep,
    line_status: Annotated[Literal[LINE_STATUSES], Query(alias="status")] = "unmatched",
    after: Annotated[int | None, Query(ge=0, le=BIGINT_MAX)] = None,
) -> HTMLResponse:
    """Bank-statement lines in one status, oldest first, a page at a time: by default the queue of deposits that
    quoted no client's payment reference and wait for an administrator."""
    return await _bank_lines_page(request, session, principal=principal, line_status=line_status, after=after)


async def _bank_lines_page(
    request: Request, session: AsyncSession, *, principal: Principal, line_status: str, after: int | None,
    refused: FormState | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    limit = request.app.state.settings.page_size(None)
    found = await cash.list_statement_lines(session, status=line_status, after=after, limit=limit + 1)
    lines, later = page_of(found, limit, lambda line: line.id)
    return page(
        request, "admin/bank_lines.html", principal=principal, status_code=status_code,
        rows=await _line_rows(session, lines), line_status=line_status, statuses=SHOWN_STATUSES, after=after,
        later=later, may_administer=_administers(principal), refused=refused,
    )


async def _line_refused(
    request: Request, session: AsyncSession, *, principal: Principal, line_id: int, refused: FormState,
    status_code: int,
) -> HTMLResponse:
    """The queue again from the refused line, so its form shows the reason whichever page it was on."""
    return await _bank_lines_page(
        request, session, principal=principal, line_status="unmatched", after=line_id - 1, refused=refused,
        status_code=status_code,
    )


def _uuid_of(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


async def _attempt_for_a_party(session: AsyncSession, change: Callable[[], Awaitable[object]]) -> DomainError | None:
    """`attempt`, where a party that does not exist is a mistake in the form (the party typed), not a missing page."""
    try:
        return await attempt(session, change)
    except PartyNotFound as unknown:
        return unknown


@router.post("/admin/bank-lines/{line_id}/assignment")
async def assign_line(
    request: Request, line_id: LineIdPath, principal: Admin, session: SessionDep, settings: SettingsDep,
    party_id: FormText = "", note: FormText = "",
) -> Response:
    """Credit an unmatched deposit to the client it is for (a security event), then back to the queue."""
    party = _uuid_of(party_id)
    if party is None:
        return await _line_refused(
            request, session, principal=principal, line_id=line_id, status_code=INVALID,
            refused=FormState(f"assign-{line_id}-party", party_id, _("Enter the client's party id.")),
        )
    refusal = await _attempt_for_a_party(session, lambda: cash.assign_line(
        session, line_id=line_id, party_id=party, note=note, actor=principal.login, settings=settings
    ))
    if refusal is None:
        return RedirectResponse("/admin/bank-lines", status_code=SEE_OTHER)
    if isinstance(refusal, ResolutionNoteRequired):
        refused, status_code = _beside(f"assign-{line_id}-note", note, refusal)
    else:
        refused, status_code = _beside(f"assign-{line_id}-party", party_id, refusal)
    return await _line_refused(
        request, session, principal=principal, line_id=line_id, refused=refused, status_code=status_code
    )


@router.post("/admin/bank-lines/{line_id}/return")
async def return_line(
    request: Request, line_id: LineIdPath, principal: Admin, session: SessionDep, note: FormText = ""
) -> Response:
    """Close an unmatched line as returned to its payer (a security event), then back to the queue."""
    refusal = await attempt(
        session, lambda: cash.return_line(session, line_id=line_id, note=note, actor=principal.login)
    )
    if refusal is None:
        return RedirectResponse("/admin/bank-lines", status_code=SEE_OTHER)
    refused, status_code = _beside(f"return-{line_id}-note", note, refusal)
    return await _line_refused(
        request, session, principal=principal, line_id=line_id, refused=refused, status_code=status_code
    )


# Users


@dataclass(frozen=True)
class UserRow:
    """A user as the pages show it: nothing secret, and whether a lockout holds now."""

    user: User
    standing: str  # active, locked or disabled


def _user_row(user: User, now: datetime) -> UserRow:
    if user.status == "disabled":
        return UserRow(user, "disabled")
    return UserRow(user, "locked" if user.locked_until is not None and user.locked_until > now else "active")


@router.get("/admin/users")
async def user_list(
    request: Request, principal: UserReader, session: SessionDep, settings: SettingsDep,
    after: Annotated[uuid.UUID | None, Query()] = None,
) -> HTMLResponse:
    """Users with their roles and standing, a page at a time."""
    limit = settings.page_size(None)
    found = await users.list_users(session, after=after, limit=limit + 1)
    shown, later = page_of(found, limit, lambda user: user.id)
    now = datetime.now(UTC)
    return page(
        request, "admin/users.html", principal=principal, rows=[_user_row(user, now) for user in shown], after=after,
        later=later,
    )


@router.get("/admin/users/{user_id}")
async def user_page(request: Request, user_id: UserIdPath, principal: UserReader, session: SessionDep) -> HTMLResponse:
    """One user: roles, standing, the party they act for, and (for administrators) the forms that change them."""
    return await _user_page(request, session, user_id=user_id, principal=principal)


async def _user_page(
    request: Request, session: AsyncSession, *, user_id: uuid.UUID, principal: Principal,
    refused: FormState | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    user = await users.get_user(session, user_id)
    party = await parties.get_party(session, user.party_id) if user.party_id is not None else None
    return page(
        request, "admin/user.html", principal=principal, status_code=status_code,
        row=_user_row(user, datetime.now(UTC)), party=party, roles=list(Role), may_administer=_administers(principal),
        refused=refused,
    )


async def _changed_user(
    request: Request, session: AsyncSession, *, user_id: uuid.UUID, principal: Principal, field: str, entered: str,
    change: Callable[[], Awaitable[object]],
) -> Response:
    """Make the change to the user and go back to their page; a refusal shows the page with the reason at `field`."""
    refusal = await attempt(session, change)
    if refusal is None:
        return RedirectResponse(f"/admin/users/{user_id}#{field}", status_code=SEE_OTHER)
    refused, status_code = _beside(field, entered, refusal)
    return await _user_page(
        request, session, user_id=user_id, principal=principal, refused=refused, status_code=status_code
    )


@router.post("/admin/users/{user_id}/roles")
async def set_roles(
    request: Request, user_id: UserIdPath, principal: Admin, session: SessionDep,
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Replace the user's roles; their sessions end (a security event)."""
    roles = roles or []
    entered = ",".join(roles)
    if not roles or not set(roles) <= {role.value for role in Role}:
        return await _user_page(
            request, session, user_id=user_id, principal=principal, status_code=INVALID,
            refused=FormState("roles", entered, _("Choose one or more of the roles listed.")),
        )
    return await _changed_user(
        request, session, user_id=user_id, principal=principal, field="roles", entered=entered,
        change=lambda: users.set_roles(session, user_id=user_id, roles=roles, actor=principal),
    )


@router.post("/admin/users/{user_id}/unlock")
async def unlock_user(request: Request, user_id: UserIdPath, principal: Admin, session: SessionDep) -> Response:
    """Lift a lockout after failed sign-ins (a security event)."""
    return await _changed_user(
        request, session, user_id=user_id, principal=principal, field="standing", entered="",
        change=lambda: users.unlock(session, user_id=user_id, actor=principal),
    )


@router.post("/admin/users/{user_id}/disable")
async def disable_user(request: Request, user_id: UserIdPath, principal: Admin, session: SessionDep) -> Response:
    """Disable the user: their sessions end and their credentials stop working (a security event)."""
    return await _changed_user(
        request, session, user_id=user_id, principal=principal, field="standing", entered="",
        change=lambda: users.set_status(session, user_id=user_id, status="disabled", actor=principal),
    )


@router.post("/admin/users/{user_id}/enable")
async def enable_user(request: Request, user_id: UserIdPath, principal: Admin, session: SessionDep) -> Response:
    """Let a disabled user sign in again (a security event)."""
    return await _changed_user(
        request, session, user_id=user_id, principal=principal, field="standing", entered="",
        change=lambda: users.set_status(session, user_id=user_id, status="active", actor=principal),
    )


# The business-day calendar


@dataclass(frozen=True)
class DayRow:
    """A day that differs from the plain week (a public holiday, a weekend day worked, a declared day)."""

    info: calendar.DayInfo
    weekday: str  # in the visitor's language
    changeable: bool  # today or later: past days stay as they were acted on


def _differs_from_the_week(info: calendar.DayInfo) -> bool:
    return info.override is not None or info.holiday_name is not None or info.is_business_day == info.is_weekend


def _year_of(day: date, today: date) -> int:
    """The year whose calendar a form's answer shows: the day's, when the calendar covers it, else this one."""
    return day.year if calendar.FIRST_DAY <= day <= calendar.LAST_DAY else today.year


def _date_of(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


@router.get("/admin/calendar")
async def calendar_page(
    request: Request, principal: Staff, session: SessionDep, settings: SettingsDep, year: Year = None
) -> HTMLResponse:
    """The year's days that differ from the plain week, as the calendar service lists them, and (for
    administrators) the forms that declare a day a working day or a day off and remove a declaration."""
    return await _calendar_page(request, session, principal=principal, year=year or parties.local_today(settings).year)


async def _calendar_page(
    request: Request, session: AsyncSession, *, principal: Principal, year: int, refused: FormState | None = None,
    entered: dict[str, str] | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    settings = request.app.state.settings
    today = parties.local_today(settings)
    days = await calendar.list_days(session, settings=settings, start=date(year, 1, 1), end=date(year, 12, 31))
    locale = i18n.current().locale
    rows = [
        DayRow(info, format_date(info.day, "EEEE", locale=locale), info.day >= today)
        for info in days if _differs_from_the_week(info)
    ]
    return page(
        request, "admin/calendar.html", principal=principal, status_code=status_code, year=year, rows=rows,
        business_days=sum(info.is_business_day for info in days), first_year=calendar.FIRST_DAY.year,
        last_year=calendar.LAST_DAY.year, may_administer=_administers(principal), refused=refused,
        entered=entered or {"day": "", "kind": "", "reason": ""},
    )


_FIELD_OF_CALENDAR_REFUSAL: dict[type[DomainError], str] = {
    calendar_errors.UnknownOverrideKind: "kind",
    calendar_errors.InvalidOverrideReason: "reason",
}


@router.post("/admin/calendar/days")
async def declare_day(
    request: Request, principal: Admin, session: SessionDep, settings: SettingsDep,
    day: FormText = "", kind: FormText = "", reason: FormText = "",
) -> Response:
    """Declare a day a working day or a day off, whatever the weekend and the public holidays say (a security
    event), then back to its year."""
    entered = {"day": day, "kind": kind, "reason": reason}
    today = parties.local_today(settings)
    declared = _date_of(day)
    if declared is None:
        return await _calendar_page(
            request, session, principal=principal, year=today.year, entered=entered, status_code=INVALID,
            refused=FormState("day", day, _("Enter the date as YYYY-MM-DD.")),
        )
    refusal = await attempt(session, lambda: calendar.set_day(
        session, settings=settings, day=declared, kind=kind, reason=reason, actor=principal.login
    ))
    if refusal is None:
        return RedirectResponse(f"/admin/calendar?year={declared.year}#day-{declared}", status_code=SEE_OTHER)
    field = _FIELD_OF_CALENDAR_REFUSAL.get(type(refusal), "day")
    refused, status_code = _beside(field, entered[field], refusal)
    return await _calendar_page(
        request, session, principal=principal, year=_year_of(declared, today), refused=refused, entered=entered,
        status_code=status_code,
    )


@router.post("/admin/calendar/days/{day}/removal")
async def remove_day(
    request: Request, day: DayPath, principal: Admin, session: SessionDep, settings: SettingsDep
) -> Response:
    """Remove a day's declaration, so the weekend and the public holidays decide it again (a security event)."""
    refusal = await attempt(
        session, lambda: calendar.clear_day(session, settings=settings, day=day, actor=principal.login)
    )
    if refusal is None:
        return RedirectResponse(f"/admin/calendar?year={day.year}", status_code=SEE_OTHER)
    refused, status_code = _beside(f"remove-{day}", "", refusal)
    return await _calendar_page(
        request, session, principal=principal, year=_year_of(day, parties.local_today(settings)), refused=refused,
        status_code=status_code,
    )
