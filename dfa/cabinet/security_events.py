"""The security-event log as a page (REQ-55): newest first, searched by kind, actor, subject, outcome and period
as the API searches it, with the result of recomputing the whole hash chain.

Auditors and compliance officers read it, as on the API; nobody changes it. Events carry text an attacker
chose (a login typed at the sign-in form, a subject named in a request), so every value is shown as text:
the details as key and value, never as markup.
"""

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.i18n import label
from dfa.cabinet.pages import FormState, PageRoute, page, page_of
from dfa.platform.access import Principal, Role, allow
from dfa.platform.audit import service as audit
from dfa.platform.audit.models import SecurityEvent
from dfa.platform.errors import Category
from dfa.platform.types import BIGINT_MAX
from dfa.platform.web import STATUS_OF_CATEGORY, SessionDep, SettingsDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Reader = Annotated[Principal, Depends(allow(Role.AUDITOR, Role.COMPLIANCE_OFFICER))]
Filter = Annotated[str, Query(max_length=200)]
PATH = "/compliance/security-events"


@dataclass(frozen=True)
class EventRow:
    """An event with its details as key and value text."""

    event: SecurityEvent
    details: list[tuple[str, str]]


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _row(event: SecurityEvent) -> EventRow:
    return EventRow(event, [(key, _text_of(value)) for key, value in sorted(event.details.items())])


@dataclass(frozen=True)
class Search:
    """The filters as the visitor entered them, and the instants the period stands for in the operator's zone."""

    entered: dict[str, str]
    since: datetime | None = None
    until: datetime | None = None


def _start_of(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))


def _search(entered: dict[str, str], zone: str) -> Search | FormState:
    """The search the filters ask for, or why a filter cannot be read (a FormState naming its field)."""
    if entered["outcome"] and entered["outcome"] not in audit.OUTCOMES:
        return FormState("outcome", entered["outcome"], _("Choose an outcome from the list."))
    days: dict[str, date | None] = {}
    for field in ("from", "to"):
        try:
            days[field] = date.fromisoformat(entered[field]) if entered[field] else None
        except ValueError:
            return FormState(field, entered[field], _("Enter the date as YYYY-MM-DD."))
    first, last = days["from"], days["to"]
    if first is not None and last is not None and last < first:
        return FormState("to", entered["to"], _("The period ends before it starts."))
    since = _start_of(first, zone) if first is not None else None
    until = _start_of(last + timedelta(days=1), zone) if last is not None and last < date.max else None
    return Search(entered, since, until)


def _href(query: dict[str, Any]) -> str:
    return f"{PATH}?{urlencode(query)}" if query else PATH


@router.get(PATH)
async def security_events(
    request: Request, principal: Reader, session: SessionDep, settings: SettingsDep,
    kind: Annotated[str, Query(max_length=64)] = "", actor: Filter = "", subject: Filter = "",
    outcome: Annotated[str, Query(max_length=10)] = "", since: Annotated[str, Query(alias="from", max_length=10)] = "",
    until: Annotated[str, Query(alias="to", max_length=10)] = "",
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> HTMLResponse:
    """Security events matching the filters, newest first, a page at a time, and whether the chain verifies."""
    entered = {"kind": kind.strip(), "actor": actor.strip(), "subject": subject.strip(), "outcome": outcome,
               "from": since.strip(), "to": until.strip()}
    search = _search(entered, settings.timezone)
    filters = {name: value for name, value in entered.items() if value}
    shown = {"entered": entered, "outcomes": [("", _("any")), *((outcome, label(outcome)) for outcome in audit.OUTCOMES)], "before": before, "newest_href": _href(filters),
             "verification": await audit.verify(session)}
    if isinstance(search, FormState):
        return page(
            request, "compliance/security_events.html", principal=principal, refused=search, rows=[], older_href=None,
            status_code=STATUS_OF_CATEGORY[Category.INVALID], **shown,
        )
    limit = settings.page_size(None)
    found = await audit.search(
        session, kind=entered["kind"] or None, actor=entered["actor"] or None, subject=entered["subject"] or None,
        outcome=entered["outcome"] or None, since=search.since, until=search.until, before=before, limit=limit + 1,
    )
    events, older = page_of(found, limit, lambda event: event.seq)
    return page(
        request, "compliance/security_events.html", principal=principal, refused=None,
        rows=[_row(event) for event in events], older_href=_href({**filters, "before": older}) if older else None,
        **shown,
    )
