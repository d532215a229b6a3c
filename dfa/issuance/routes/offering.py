"""The placement and redemption API: holder snapshots, primary placement with subscriptions and
allocation, and redemption. An issuer acts on its own emissions only (another's are "not found");
investors subscribe for themselves and see their own subscriptions and payments."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Emission, Placement
from dfa.issuance.schemas import offering as schemas
from dfa.issuance.service import emissions, placement, redemption, snapshots
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.errors import invariant
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, Limit
from dfa.platform.web import AntiFraudCentreDep, IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute

router = APIRouter(prefix="/v1", tags=["placement and redemption"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Client = Annotated[Principal, Depends(allow(Role.INVESTOR, Role.ISSUER))]
Issuer = Annotated[Principal, Depends(allow(Role.ISSUER))]
IssuerOrAdmin = Annotated[Principal, Depends(allow(Role.ISSUER, Role.OPERATOR_ADMIN))]
IssuerOrSupervisor = Annotated[
    Principal, Depends(allow(Role.ISSUER, Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER))
]
IssuerOrStaff = Annotated[Principal, Depends(allow(Role.ISSUER, *STAFF_ROLES))]
RegistrationNumber = Annotated[
    str, Path(pattern=ASSET_CODE_PATTERN, description="The emission's registration number.")
]
AfterSeq = Annotated[int | None, Query(ge=0, le=BIGINT_MAX, description="Page: subscriptions after this seq.")]


def _own(principal: Principal) -> uuid.UUID:
    invariant(principal.party_id is not None, "investors and issuers act for a party")
    return principal.party_id


# --- snapshots ----------------------------------------------------------------------------------------


def _snapshot_out(emission: Emission, holders: snapshots.Holders) -> schemas.SnapshotOut:
    return schemas.SnapshotOut(
        **{name: getattr(holders.snapshot, name) for name in
           ("id", "record_date", "as_of", "total_units", "holders", "taken_by", "taken_at")},
        registration_number=emission.registration_number,
        positions=[
            schemas.PositionOut(
                party_id=p.party_id, available=p.available, held=p.held, frozen=p.frozen,
                total=p.available + p.held, is_issuer=p.party_id == emission.issuer_party_id,
            )
            for p in holders.positions
        ],
    )


@router.post(
    "/emissions/{registration_number}/snapshots", status_code=status.HTTP_201_CREATED,
    response_model=schemas.SnapshotOut,
)
async def take_snapshot(
    registration_number: RegistrationNumber, body: schemas.SnapshotTake, principal: IssuerOrSupervisor,
    session: SessionDep, settings: SettingsDep, _key: IdempotencyKeyHeader,
):
    """Fix the emission's holders as of a record date's close, an instant, or now: every holder with its
    available, held and frozen units, the issuer's own account included (REQ-32, REQ-35)."""
    emission = await emissions.get_emission(session, registration_number, visible_to=principal.owner_filter())
    holders = await snapshots.take_snapshot(
        session, emission=emission, record_date=body.record_date, as_of=body.as_of, actor=principal.login,
        settings=settings,
    )
    return _snapshot_out(emission, holders)


@router.get("/emissions/{registration_number}/snapshots/{snapshot_id}", response_model=schemas.SnapshotOut)
async def get_snapshot(
    registration_number: RegistrationNumber, snapshot_id: uuid.UUID, principal: IssuerOrStaff, session: SessionDep
):
    """A snapshot of the emission with every holder's position."""
    emission = await emissions.get_emission(session, registration_number, visible_to=principal.owner_filter())
    return _snapshot_out(emission, await snapshots.get_snapshot(session, emission=emission, snapshot_id=snapshot_id))


# --- placements ---------------------------------------------------------------------------------------


async def _placement_out(session: AsyncSession, found: Placement) -> schemas.PlacementOut:
    emission = await placement.get_emission_of(session, found)
    return schemas.PlacementOut(
        **{name: getattr(found, name) for name in schemas.PlacementOut.model_fields if name != "registration_number"},
        registration_number=emission.registration_number,
    )


@router.post(
    "/emissions/{registration_number}/placements", status_code=status.HTTP_201_CREATED,
    response_model=schemas.PlacementOut,
)
async def open_placement(
    registration_number: RegistrationNumber, body: schemas.PlacementOpen, principal: Issuer, session: SessionDep,
    settings: SettingsDep, _key: IdempotencyKeyHeader,
):
    """Open a primary placement of your emission on your application (REQ-25): the offered units are held
    at once, so they cannot be sold elsewhere, until the placement is allocated or fails."""
    emission = await emissions.get_emission(session, registration_number, visible_to=_own(principal))
    opened = await placement.open_placement(
        session, emission=emission, units=body.units, price=body.price, min_units=body.min_units,
        opens_at=body.opens_at, closes_at=body.closes_at, actor=principal.login, settings=settings,
    )
    return await _placement_out(session, opened)


@router.get("/placements/{placement_id}", response_model=schemas.PlacementOut)
async def get_placement(placement_id: uuid.UUID, principal: Anyone, session: SessionDep):
    """A placement's terms and, once closed, its outcome."""
    return await _placement_out(session, await placement.get_placement(session, placement_id))


@router.post(
    "/placements/{placement_id}/subscriptions", status_code=status.HTTP_201_CREATED,
    response_model=schemas.SubscriptionOut,
)
async def subscribe(
    placement_id: uuid.UUID, body: schemas.SubscriptionCreate, principal: Client, session: SessionDep,
    settings: SettingsDep, centre: AntiFraudCentreDep, _key: IdempotencyKeyHeader,
):
    """Subscribe while the window is open: units × price of your money is held at once (REQ-38); short
    money, an anti-fraud match or a suspended emission refuse it and nothing is held."""
    return await placement.subscribe(
        session, placement_id=placement_id, party_id=_own(principal), units=body.units, actor=principal.login,
        centre=centre, settings=settings,
    )


@router.get("/placements/{placement_id}/subscriptions", response_model=list[schemas.SubscriptionOut])
async def list_subscriptions(
    placement_id: uuid.UUID, principal: Anyone, session: SessionDep, settings: SettingsDep,
    after_seq: AfterSeq = None, limit: Limit = None,
):
    """Subscriptions to the placement, earliest first: the issuer and staff see all, others their own."""
    found = await placement.get_placement(session, placement_id)
    emission = await placement.get_emission_of(session, found)
    sees_all = principal.is_staff or principal.party_id == emission.issuer_party_id
    return await placement.list_subscriptions(
        session, placement_id=found.id, party_id=None if sees_all else principal.party_id, after_seq=after_seq,
        limit=settings.page_size(limit),
    )


@router.post("/subscriptions/{subscription_id}/cancellation", response_model=schemas.SubscriptionOut)
async def cancel_subscription(
    subscription_id: uuid.UUID, principal: Client, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Cancel your live subscription while the window is open; its money is released."""
    return await placement.cancel_subscription(
        session, subscription_id=subscription_id, party_id=_own(principal), actor=principal.login
    )


@router.post("/placements/{placement_id}/allocation", response_model=schemas.PlacementOut)
async def allocate(
    placement_id: uuid.UUID, principal: IssuerOrAdmin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """After the window closes (a job also does it): allocate and settle the placement DvP, or fail it when
    the minimum is not reached; units not placed are cancelled and the report is kept."""
    closed = await placement.close_placement(
        session, placement_id=placement_id, actor=principal.login, settings=settings,
        issuer_party_id=principal.owner_filter(),
    )
    return await _placement_out(session, closed)


@router.get("/placements/{placement_id}/report", response_model=schemas.PlacementReportOut)
async def placement_report(placement_id: uuid.UUID, principal: IssuerOrStaff, session: SessionDep):
    """The closed placement's report: what was offered, subscribed, allocated, cancelled and raised, and
    every subscriber's row."""
    found = await placement.placement_of_issuer(session, placement_id, issuer_party_id=principal.owner_filter())
    return schemas.PlacementReportOut(placement_id=found.id, report=placement.report_of(found))


# --- redemptions --------------------------------------------------------------------------------------


def _redemption_out(emission: Emission, record: redemption.RedemptionRecord, *, full: bool) -> schemas.RedemptionOut:
    fields = {
        name: getattr(record.redemption, name)
        for name in schemas.RedemptionOut.model_fields
        if name not in ("registration_number", "default", "payments")
    }
    return schemas.RedemptionOut(
        **fields | ({} if full else {"amount_available": None}),
        registration_number=emission.registration_number,
        default=schemas.DefaultOut.model_validate(record.default) if record.default else None,
        payments=[schemas.PaymentOut.model_validate(p) for p in record.payments],
    )


@router.post(
    "/emissions/{registration_number}/redemptions", status_code=status.HTTP_201_CREATED,
    response_model=schemas.RedemptionOut,
    responses={201: {"description": "Redeemed (status paid) or, the issuer's money being short, defaulted."}},
)
async def redeem(
    registration_number: RegistrationNumber, body: schemas.RedemptionCreate, principal: IssuerOrAdmin,
    session: SessionDep, settings: SettingsDep, _key: IdempotencyKeyHeader,
):
    """Redeem the emission (REQ-32): trading is suspended, the holders are fixed, and every holder is paid
    and every unit cancelled in one step; when the issuer's prefunded money is short nobody is paid and
    the default is recorded (status `defaulted`)."""
    emission = await emissions.get_emission(session, registration_number, visible_to=principal.owner_filter())
    record = await redemption.redeem(session, emission=emission, kind=body.kind, actor=principal.login,
                                     settings=settings)
    return _redemption_out(emission, record, full=True)


@router.get("/emissions/{registration_number}/redemptions", response_model=list[schemas.RedemptionOut])
async def list_redemptions(
    registration_number: RegistrationNumber, principal: Anyone, session: SessionDep, settings: SettingsDep,
    limit: Limit = None,
):
    """The emission's redemptions, newest first, with their payments: the issuer and staff see every
    payment, a holder its own."""
    emission = await emissions.get_emission(session, registration_number)
    full = principal.is_staff or principal.party_id == emission.issuer_party_id
    records = await redemption.list_redemptions(
        session, emission=emission, party_id=None if full else principal.party_id, limit=settings.page_size(limit)
    )
    return [_redemption_out(emission, r, full=full) for r in records]
