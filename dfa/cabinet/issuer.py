"""The issuer's pages: its emission applications with the deadline of the step each waits on (business days,
Asia/Almaty) and their full history, and its registered emissions with the holders registry of each as the
central depository receives it (REQ-35).

Only issuers open these pages, and each sees its own only: pages call the issuance services with the
issuer's party as the API's routes do, so another issuer's application or emission is "not found"
(REQ-20). The registry is read through the depository export itself, so every reading is recorded in the
security-event log like an export.
"""

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.pages import FormState, PageRoute, page, page_of
from dfa.issuance.models import Emission
from dfa.issuance.service import applications, emissions, holders, issuers
from dfa.ledger import service as ledger
from dfa.platform.access import Principal, Role, allow
from dfa.platform.errors import Category, DomainError
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, AwareDatetime
from dfa.platform.web import STATUS_OF_CATEGORY, DatabaseDep, SessionDep, SettingsDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Issuer = Annotated[Principal, Depends(allow(Role.ISSUER))]
ApplicationPath = Annotated[uuid.UUID, Path()]
EmissionPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN)]
Before = Annotated[AwareDatetime | None, Query()]
After = Annotated[int | None, Query(ge=0, le=BIGINT_MAX)]


# Applications


@router.get("/issuer/applications")
async def application_list(
    request: Request, principal: Issuer, session: SessionDep, settings: SettingsDep, before: Before = None
) -> HTMLResponse:
    """The issuer's applications, newest first, a page at a time, each with its status and the deadline of the
    step it waits on."""
    limit = settings.page_size(None)
    found = await applications.list_applications(
        session, issuer_party_id=principal.owner_filter(), status=None, overdue_only=False, before=before,
        limit=limit + 1, settings=settings,
    )
    shown, older = page_of(found, limit, lambda application: application.submitted_at)
    return page(
        request, "issuer/applications.html", principal=principal,
        views=await applications.views(session, shown, settings=settings), before=before, older=older,
    )


@router.get("/issuer/applications/{application_id}")
async def application_page(
    request: Request, application_id: ApplicationPath, principal: Issuer, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """One application: its terms, its documents, every step of its history (who, when, what, why), the
    deadline it waits on and what comes next."""
    application = await applications.get_application(session, application_id, visible_to=principal.owner_filter())
    (view,) = await applications.views(session, [application], settings=settings)
    filed = await issuers.list_documents(
        session, issuer_party_id=application.issuer_party_id, limit=settings.page_size_max,
        visible_to=principal.owner_filter(),
    )
    return page(
        request, "issuer/application.html", principal=principal, view=view, application=application,
        documents=[document for document in filed if document.application_id == application.id],
    )


# Emissions


@dataclass(frozen=True)
class EmissionRow:
    """A registered emission with its name and the units still in the issuer's own accounts."""

    emission: Emission
    name: str
    issuer_units: int  # available and held (offered in an open placement)

    @property
    def outstanding_units(self) -> int:
        """Registered less cancelled and moved to trading platforms, as the emissions API counts them."""
        return self.emission.units - self.emission.cancelled_units - self.emission.platform_units

    @property
    def placed_units(self) -> int:
        """Outstanding units out of the issuer's hands: what placements (and later trades) put with investors."""
        return self.outstanding_units - self.issuer_units


async def _emission_row(session: AsyncSession, emission: Emission) -> EmissionRow:
    issuer_units = 0
    for kind in ("available", "held"):
        account = await ledger.find_account(
            session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind=kind
        )
        issuer_units += account.balance if account is not None else 0
    asset = await ledger.get_asset_by_id(session, emission.asset_id)
    return EmissionRow(emission, asset.name, issuer_units)


@router.get("/issuer/emissions")
async def emission_list(
    request: Request, principal: Issuer, session: SessionDep, settings: SettingsDep, after: After = None
) -> HTMLResponse:
    """The issuer's registered emissions in the order they were registered, a page at a time."""
    limit = settings.page_size(None)
    found = await emissions.list_emissions(
        session, issuer_party_id=principal.owner_filter(), after=after, limit=limit + 1
    )
    shown, later = page_of(found, limit, lambda emission: emission.asset_id)
    return page(
        request, "issuer/emissions.html", principal=principal,
        rows=[await _emission_row(session, emission) for emission in shown], after=after, later=later,
    )


# The holders registry


@dataclass(frozen=True)
class Holder:
    """One row of the depository's registry: the holder's identification and units as of the day's close."""

    position: int
    name: str
    identifier: str
    kind: str
    resident: bool
    available: int
    held: int
    frozen: int
    total: int


@dataclass(frozen=True)
class RegistryPage:
    holders: list[Holder]
    later: int | None  # the position to continue after, when more holders follow
    holder_count: int
    total_units: int


def _last_closed_day(settings: Settings) -> date:
    """The latest day whose registry is fixed: today once its business day has closed, else yesterday."""
    today = parties.local_today(settings)
    if holders.registry_instant(today, settings=settings) <= datetime.now(UTC):
        return today
    return today - timedelta(days=1)


def _holder(position: int, row: list[str]) -> Holder:
    cells = dict(zip(holders.REGISTRY_COLUMNS, row, strict=True))
    return Holder(
        position=position, name=cells["name"], identifier=cells["identifier"], kind=cells["kind"],
        resident=cells["resident"] == "yes", available=int(cells["available"]), held=int(cells["held"]),
        frozen=int(cells["frozen"]), total=int(cells["total"]),
    )


async def _registry_page(chunks: AsyncIterator[bytes], *, after: int, limit: int) -> RegistryPage:
    """The holders after position `after`, up to `limit`, read from the export's CSV (each chunk holds whole
    rows, the first the header); the whole registry is read for its totals."""
    found: list[Holder] = []
    position = total_units = 0
    header = True
    async for chunk in chunks:
        for row in csv.reader(io.StringIO(chunk.decode())):
            if header:
                header = False
                continue
            position += 1
            holder = _holder(position, row)
            total_units += holder.total
            if after < position <= after + limit + 1:
                found.append(holder)
    shown, later = page_of(found, limit, lambda holder: holder.position)
    return RegistryPage(shown, later, position, total_units)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _holders(
    request: Request, principal: Principal, *, registration_number: str, day: date | None, after: int | None,
    registry: RegistryPage | None = None, refused: FormState | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    return page(
        request, "issuer/holders.html", principal=principal, status_code=status_code,
        registration_number=registration_number, day=day, after=after, registry=registry, refused=refused,
    )


@router.get("/issuer/emissions/{registration_number}/holders")
async def holders_page(
    request: Request, registration_number: EmissionPath, principal: Issuer, session: SessionDep,
    database: DatabaseDep, settings: SettingsDep, as_of: str = "", after: After = None,
) -> HTMLResponse:
    """The emission's holders registry as of a day's close (the latest closed day unless `as_of` names
    another), as the central depository's export gives it: every holder's identification with available,
    held, frozen and total units, a page at a time, and the export itself to download."""
    await emissions.get_emission(session, registration_number, visible_to=principal.owner_filter())
    shown = {"registration_number": registration_number, "after": after}
    day = _day(as_of) if as_of else _last_closed_day(settings)
    if day is None:
        return _holders(
            request, principal, day=None, refused=FormState("as_of", as_of[:10], _("Enter a date as YYYY-MM-DD.")),
            status_code=STATUS_OF_CATEGORY[Category.INVALID], **shown,
        )
    try:
        export = await holders.export_registry(
            session, database=database, registration_number=registration_number, on=day,
            visible_to=principal.owner_filter(), actor=principal.login, settings=settings,
        )
    except DomainError as refusal:
        if refusal.category is Category.NOT_FOUND:
            raise
        return _holders(
            request, principal, day=day, refused=FormState("as_of", day.isoformat(), _(refusal.title)),
            status_code=STATUS_OF_CATEGORY[refusal.category], **shown,
        )
    registry = await _registry_page(export.chunks, after=after or 0, limit=settings.page_size(None))
    return _holders(request, principal, day=day, registry=registry, **shown)
