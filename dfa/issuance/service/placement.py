"""Primary placement of an emission on the issuer's application (REQ-25), settled DvP against
prefunded money (REQ-38).

The issuer offers units of its placement account for a subscription window at a price; opening the
placement holds the offered units, so they cannot be sold elsewhere. Investors subscribe while the
window is open, each holding units × price of its money. After the window closes the placement is
allocated, or fails when the units subscribed are fewer than its minimum (or none at all): then every
hold is released and the offered units are cancelled, since the issue did not take place.

Allocation rule: when the units subscribed do not exceed the units offered, every subscriber gets what
it asked for. When they do, each subscriber gets its pro rata share of the offer, units asked × units
offered / units subscribed, rounded down; the units left over by rounding (fewer than the number of
subscribers) go one each to the earliest subscriptions. Allocations settle in one ledger batch, each as
a DvP instruction of origin `placement` (the issuer delivers from its hold, the investor pays from its
subscription's hold) with no fee on either side; what a subscriber is not allocated is released and the
units not placed are cancelled.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import Emission, Placement, Subscription
from dfa.issuance.repository import emissions as emission_repository
from dfa.issuance.repository import offering as repository
from dfa.issuance.service.emissions import derived_id
from dfa.ledger import service as ledger
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.platform.identity.service import parties, screening
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts, instructions

ALLOCATION_RULE = (
    "pro rata to the units subscribed, rounded down; the units left by rounding go one each to the earliest "
    "subscriptions; when not oversubscribed every subscriber gets the units it asked for"
)
PLACEABLE_STATUSES = ("registered", "placed", "not_placed")
DUE_PLACEMENTS_LIMIT = 50


def _now() -> datetime:
    return datetime.now(UTC)


# --- opening ---------------------------------------------------------------------------------------------


async def open_placement(
    session: AsyncSession,
    *,
    emission: Emission,
    units: int,
    price: int | None = None,
    min_units: int | None = None,
    opens_at: datetime,
    closes_at: datetime,
    actor: str,
    settings: Settings,
) -> Placement:
    """Open a placement of `units` of the issuer's available units for the window `opens_at`..`closes_at`
    at `price` (default: the application's placement price), with `min_units` below which the issue does
    not take place (default: the application's). The offered units are held from now on.

    Raises EmissionNotPlaceable, PlacementTermsInvalid.
    """
    emission = await emission_repository.get_emission(session, emission.asset_id, for_update=True)
    invariant(emission is not None, "the emission exists")
    application = await repository.get_application(session, emission.application_id)
    price = price or application.placement_price
    min_units = min_units or application.min_placement_units
    if await repository.open_placement_of(session, emission.asset_id) is not None or (
        emission.status not in PLACEABLE_STATUSES
    ):
        raise errors.EmissionNotPlaceable(
            f"{emission.registration_number} is {emission.status}; it may have one open placement at a time and "
            "none once redeemed or in default",
            status=emission.status,
        )
    issuer_account = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="available"
    )
    invariant(issuer_account is not None, "an issued emission has the issuer's placement account")
    problems = _term_problems(
        units=units, available=issuer_account.balance, price=price, min_units=min_units, opens_at=opens_at,
        closes_at=closes_at, period=(application.placement_start, application.placement_end),
        zone=ZoneInfo(settings.timezone),
    )
    if problems:
        raise errors.PlacementTermsInvalid("; ".join(problems), problems=problems)
    placement_id = uuid.uuid4()
    hold_id = derived_id(placement_id, "issuer-hold")
    await ledger.settle_holds(
        session, batch_id=derived_id(placement_id, "opening"),
        place=[ledger.PlaceHoldItem(hold_id, issuer_account.id, units, reference=f"placement {placement_id}")],
    )
    placement = await repository.insert_placement(
        session,
        values={
            "id": placement_id, "asset_id": emission.asset_id, "status": "open", "units": units, "price": price,
            "min_units": min_units, "opens_at": opens_at, "closes_at": closes_at, "issuer_hold_id": hold_id,
            "created_by": actor,
        },
    )
    await repository.update_emission(session, asset_id=emission.asset_id, status="placing")
    await audit.record(
        session, kind="placement.opened", actor=actor, subject=emission.registration_number,
        details={"placement_id": str(placement_id), "units": units, "price": price, "min_units": min_units},
    )
    return placement


def _term_problems(
    *, units: int, available: int, price: int, min_units: int | None, opens_at: datetime, closes_at: datetime,
    period: tuple[date, date], zone: ZoneInfo,
) -> list[str]:
    """What is wrong with a placement's terms, in words; empty when nothing is (REQ-25)."""
    problems = []
    if not 0 < units <= available:
        problems.append(f"the units offered are 1 to {available}, the issuer's available units")
    if not 0 < price * units <= ledger.MAX_AMOUNT:
        problems.append(f"the price is positive and the offer worth at most {ledger.MAX_AMOUNT} tiyn")
    if min_units is not None and not 0 < min_units <= units:
        problems.append("the minimum is 1 to the units offered")
    if closes_at <= opens_at or closes_at <= _now():
        problems.append("the window closes after it opens, and in the future")
    if opens_at.astimezone(zone).date() < period[0] or closes_at.astimezone(zone).date() > period[1]:
        problems.append(f"the window lies within the application's placement period {period[0]} to {period[1]}")
    return problems


async def get_placement(session: AsyncSession, placement_id: uuid.UUID, *, for_update: bool = False) -> Placement:
    """Raises PlacementNotFound."""
    placement = await repository.get_placement(session, placement_id, for_update=for_update)
    if placement is None:
        raise errors.PlacementNotFound(f"no placement {placement_id}")
    return placement


async def get_emission_of(session: AsyncSession, placement: Placement) -> Emission:
    emission = await emission_repository.get_emission(session, placement.asset_id)
    invariant(emission is not None, "a placement belongs to an emission")
    return emission


async def placement_of_issuer(
    session: AsyncSession, placement_id: uuid.UUID, *, issuer_party_id: uuid.UUID | None, for_update: bool = False
) -> Placement:
    """The placement; with `issuer_party_id`, only when that party issued its emission (others get "not found").

    Raises PlacementNotFound.
    """
    placement = await get_placement(session, placement_id, for_update=for_update)
    if issuer_party_id is not None and (await get_emission_of(session, placement)).issuer_party_id != issuer_party_id:
        raise errors.PlacementNotFound(f"no placement {placement_id}")
    return placement


# --- subscriptions ----------------------------------------------------------------------------------------


def _require_window(placement: Placement, now: datetime) -> None:
    if placement.status != "open" or not placement.opens_at <= now < placement.closes_at:
        raise errors.PlacementNotOpen(
            f"placement {placement.id} takes subscriptions from {placement.opens_at.isoformat()} until "
            f"{placement.closes_at.isoformat()} (it is {placement.status})",
            status=placement.status,
        )


async def subscribe(
    session: AsyncSession,
    *,
    placement_id: uuid.UUID,
    party_id: uuid.UUID,
    units: int,
    actor: str,
    centre: AntiFraudCentre,
    settings: Settings,
    now: datetime | None = None,
) -> Subscription:
    """Subscribe for `units` while the window is open, holding units × price of the investor's money.

    Raises PlacementNotFound, PlacementNotOpen, SubscriptionInvalid, SubscriptionExists, PartyNotFound,
    PartyNotIdentified, UnderAge, AntiFraudMatch, ExternalPartyUnavailable, TradingSuspended,
    InsufficientFunds (nothing is held then).
    """
    placement = await get_placement(session, placement_id, for_update=True)
    _require_window(placement, now or _now())
    emission = await get_emission_of(session, placement)
    if party_id == emission.issuer_party_id:
        raise errors.SubscriptionInvalid("the issuer does not subscribe to its own placement")
    if not 0 < units <= placement.units:
        raise errors.SubscriptionInvalid(f"a subscription is for 1 to {placement.units} units, the units offered")
    if await repository.live_subscription(session, placement_id=placement.id, party_id=party_id) is not None:
        raise errors.SubscriptionExists(f"you already subscribed to placement {placement.id}; cancel it to change it")
    await parties.ensure_may_operate(session, party_id, settings=settings)
    amount = units * placement.price
    await screening.screen_operation(
        session,
        operation="subscription",
        movements=[screening.Movement(sender_party_id=party_id, recipient_party_id=emission.issuer_party_id,
                                      asset=accounts.MONEY, amount=amount)],
        centre=centre,
        actor=actor,
        settings=settings,
    )
    await instructions.require_tradable(session, [await ledger.get_asset_by_id(session, emission.asset_id)])
    money = await accounts.holder_account(session, party_id=party_id, asset_code=accounts.MONEY, settings=settings)
    subscription_id = uuid.uuid4()
    hold_id = derived_id(subscription_id, "hold")
    # A single hold refuses without aborting the transaction: short money leaves nothing behind.
    await ledger.place_hold(
        session, hold_id=hold_id, account_id=money.id, amount=amount, reference=f"subscription {subscription_id}"
    )
    return await repository.insert_subscription(
        session,
        values={
            "id": subscription_id, "placement_id": placement.id, "party_id": party_id, "status": "pending",
            "units": units, "amount": amount, "hold_id": hold_id, "created_by": actor,
        },
    )


async def get_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, *, visible_to: uuid.UUID | None = None
) -> Subscription:
    """Raises SubscriptionNotFound (also for another party's subscription when `visible_to` is given)."""
    subscription = await repository.get_subscription(session, subscription_id)
    if subscription is None or (visible_to is not None and subscription.party_id != visible_to):
        raise errors.SubscriptionNotFound(f"no subscription {subscription_id}")
    return subscription


async def cancel_subscription(
    session: AsyncSession, *, subscription_id: uuid.UUID, party_id: uuid.UUID, actor: str, now: datetime | None = None
) -> Subscription:
    """Cancel the party's live subscription while the window is open and release its money.

    Raises SubscriptionNotFound, SubscriptionNotCancellable.
    """
    subscription = await get_subscription(session, subscription_id, visible_to=party_id)
    placement = await get_placement(session, subscription.placement_id, for_update=True)
    subscription = await get_subscription(session, subscription_id)
    now = now or _now()
    if subscription.status != "pending" or placement.status != "open" or now >= placement.closes_at:
        raise errors.SubscriptionNotCancellable(
            f"subscription {subscription_id} is {subscription.status} and its window closes at "
            f"{placement.closes_at.isoformat()}; it is cancelled only while live and the window is open",
            status=subscription.status,
        )
    await ledger.settle_holds(
        session, batch_id=derived_id(subscription.id, "cancellation"),
        void=[ledger.VoidHoldItem(subscription.hold_id, derived_id(subscription.id, "release"))],
    )
    await audit.record(
        session, kind="subscription.cancelled", actor=actor, subject=str(placement.id),
        details={"subscription_id": str(subscription.id)},
    )
    return await repository.set_subscription_status(session, subscription_id=subscription.id, status="cancelled")


async def list_subscriptions(
    session: AsyncSession, *, placement_id: uuid.UUID, party_id: uuid.UUID | None, after_seq: int | None, limit: int
) -> list[Subscription]:
    """The placement's subscriptions, earliest first: all of them, or one party's."""
    return await repository.list_subscriptions(
        session, placement_id=placement_id, party_id=party_id, after_seq=after_seq, limit=limit
    )


# --- closing ----------------------------------------------------------------------------------------------


def allocate(requested: list[int], offered: int) -> list[int]:
    """Units allotted to each subscription (given earliest first) under the allocation rule."""
    subscribed = sum(requested)
    if subscribed <= offered:
        return list(requested)
    allotted = [units * offered // subscribed for units in requested]
    left = offered - sum(allotted)
    invariant(0 <= left < len(requested), "rounding down leaves fewer units than subscribers")
    # Rounded down, every share is below what was asked, so each of the earliest can take one more.
    return [units + (1 if i < left else 0) for i, units in enumerate(allotted)]


@dataclass(frozen=True)
class _Allotment:
    subscription: Subscription
    units: int
    price: int

    @property
    def paid(self) -> int:
        return self.units * self.price


async def close_placement(
    session: AsyncSession,
    *,
    placement_id: uuid.UUID,
    actor: str,
    settings: Settings,
    now: datetime | None = None,
    issuer_party_id: uuid.UUID | None = None,
) -> Placement:
    """After its window, allocate the placement and settle it, or fail it when the minimum is not reached;
    either way the units not placed are cancelled and a report is kept. With `issuer_party_id`, only that
    issuer's placement is found.

    Raises PlacementNotFound, PlacementNotOpen (closed already), PlacementStillOpen.
    """
    placement = await placement_of_issuer(session, placement_id, issuer_party_id=issuer_party_id, for_update=True)
    if placement.status != "open":
        raise errors.PlacementNotOpen(f"placement {placement.id} is {placement.status} already", status=placement.status)
    now = now or _now()
    if now < placement.closes_at:
        raise errors.PlacementStillOpen(
            f"placement {placement.id} takes subscriptions until {placement.closes_at.isoformat()}"
        )
    emission = await get_emission_of(session, placement)
    subscriptions = await repository.lock_pending_subscriptions(session, placement.id)
    subscribed = sum(s.units for s in subscriptions)
    failed = subscribed < (placement.min_units or 1)
    shares = [0] * len(subscriptions) if failed else allocate([s.units for s in subscriptions], placement.units)
    allotments = [_Allotment(s, units, placement.price) for s, units in zip(subscriptions, shares, strict=True)]
    allocated = sum(shares)
    await _settle(session, placement=placement, emission=emission, allotments=allotments, actor=actor,
                  settings=settings)
    await repository.close_subscriptions(session, rows=[
        {
            "id": a.subscription.id, "status": "allocated" if a.units else "released", "allocated_units": a.units,
            "instruction_id": _instruction_id(a.subscription) if a.units else None,
        }
        for a in allotments
    ])
    cancelled = placement.units - allocated
    placed_before = await repository.units_placed(session, emission.asset_id)
    await repository.update_emission(
        session, asset_id=emission.asset_id, cancelled=cancelled,
        status="placed" if placed_before + allocated else "not_placed",
    )
    status = "failed" if failed else "allocated"
    closed = await repository.update_placement(
        session, placement_id=placement.id,
        values={
            "status": status, "units_subscribed": subscribed, "units_allocated": allocated,
            "units_cancelled": cancelled, "closed_by": actor, "closed_at": now,
            "report": _report(placement, emission, allotments, status=status, subscribed=subscribed),
        },
    )
    await audit.record(
        session, kind=f"placement.{status}", actor=actor, subject=emission.registration_number,
        details={"placement_id": str(placement.id), "subscribed": subscribed, "allocated": allocated,
                 "cancelled": cancelled},
    )
    return closed


def _instruction_id(subscription: Subscription) -> uuid.UUID:
    return derived_id(subscription.id, "allocation")


async def _settle(
    session: AsyncSession, *, placement: Placement, emission: Emission, allotments: list[_Allotment], actor: str,
    settings: Settings,
) -> None:
    """One ledger batch: every allotment DvP (no fees on primary placement), the unplaced units from the
    issuer's hold to the issued account, and what each money hold has left released."""
    invariant(placement.issuer_hold_id is not None, "an open placement holds the offered units")
    money = await ledger.get_asset(session, accounts.MONEY)
    exchanges = [
        instructions.Exchange(
            id=_instruction_id(a.subscription),
            first_party_id=emission.issuer_party_id, first_asset_id=emission.asset_id, first_amount=a.units,
            first_hold_id=placement.issuer_hold_id,
            second_party_id=a.subscription.party_id, second_asset_id=money.id, second_amount=a.paid,
            second_hold_id=a.subscription.hold_id,
        )
        for a in allotments
        if a.units
    ]
    unplaced = placement.units - sum(a.units for a in allotments)
    issued = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="issued"
    )
    invariant(issued is not None, "an issued emission has its issued account")
    cancellation = [
        ledger.PostHoldItem(placement.issuer_hold_id, derived_id(placement.id, "cancel-unplaced"), issued.id,
                            amount=unplaced, reference=f"placement {placement.id}: units not placed")
    ] if unplaced else []
    await instructions.settle_prefunded_exchanges(
        session, exchanges=exchanges, origin="placement", batch_id=derived_id(placement.id, "closing"),
        reference=f"placement {placement.id}", actor=actor, settings=settings, post=cancellation,
        void=[ledger.VoidHoldItem(a.subscription.hold_id, derived_id(a.subscription.id, "release")) for a in allotments],
    )


def _report(
    placement: Placement, emission: Emission, allotments: list[_Allotment], *, status: str, subscribed: int
) -> dict[str, Any]:
    allocated = sum(a.units for a in allotments)
    return {
        "registration_number": emission.registration_number,
        "outcome": status,
        "opens_at": placement.opens_at.isoformat(),
        "closes_at": placement.closes_at.isoformat(),
        "price": placement.price,
        "units_offered": placement.units,
        "min_units": placement.min_units,
        "units_subscribed": subscribed,
        "units_allocated": allocated,
        "units_cancelled": placement.units - allocated,
        "money_raised": sum(a.paid for a in allotments),
        "fees": 0,
        "subscribers": len(allotments),
        "allocation_rule": ALLOCATION_RULE,
        "subscriptions": [
            {
                "subscription_id": str(a.subscription.id), "seq": a.subscription.seq,
                "party_id": str(a.subscription.party_id), "units_requested": a.subscription.units,
                "units_allocated": a.units, "amount_paid": a.paid,
                "amount_released": a.subscription.amount - a.paid,
            }
            for a in allotments
        ],
    }


def report_of(placement: Placement) -> dict[str, Any]:
    """The closed placement's report. Raises PlacementStillOpen."""
    if placement.report is None:
        raise errors.PlacementStillOpen(f"placement {placement.id} is open; its report is made when it closes")
    return placement.report


async def close_due_placements(
    session: AsyncSession, *, settings: Settings, now: datetime | None = None, limit: int = DUE_PLACEMENTS_LIMIT
) -> int:
    """Close every open placement whose window has closed (up to `limit`); returns how many it closed."""
    now = now or _now()
    due = await repository.lock_due_placements(session, now=now, limit=limit)
    for placement_id in due:
        await close_placement(session, placement_id=placement_id, actor="placement-close", settings=settings, now=now)
    return len(due)
