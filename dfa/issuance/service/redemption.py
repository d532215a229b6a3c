"""Redemption of an emission at maturity or early, under the operator's control of the issuer's
obligations to holders (REQ-32).

Trading is suspended first (open orders cancelled, their holds released), then the holders are fixed
by a snapshot taken now. Each holder but the issuer is due its units × the redemption price (the
application's, or the nominal); the issuer's own units are cancelled without payment. The issuer
prefunds the redemption with the money in its KZT available account.

When that money is short, nothing is paid and nothing is cancelled: the redemption is recorded as
defaulted with a default event, and staff and compliance are notified. Otherwise one ledger batch
pays every holder and cancels every unit, frozen ones included, or does nothing at all; the proceeds
of frozen units are frozen in money in their place, on the same basis and order.

Units moved to a digital-asset trading platform (`platform_units`) are no longer here: they are
neither paid nor cancelled by this redemption.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import DefaultEvent, Emission, Freeze, Redemption, RedemptionPayment
from dfa.issuance.repository import emissions as emission_repository
from dfa.issuance.repository import offering as repository
from dfa.issuance.service.emissions import derived_id
from dfa.issuance.service.snapshots import Holders, take_snapshot
from dfa.ledger import service as ledger
from dfa.ledger.models import Asset
from dfa.platform import service as outbox
from dfa.platform.access import Role
from dfa.platform.audit import service as audit
from dfa.platform.calendar.service import load_calendar
from dfa.platform.errors import invariant
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts, orders

REDEEMABLE_STATUSES = ("registered", "placed", "not_placed", "defaulted")
DEFAULT_AUDIENCE = (Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER)


@dataclass(frozen=True)
class RedemptionRecord:
    """A redemption with the payments made to holders (one party's only, when asked so)."""

    redemption: Redemption
    payments: list[RedemptionPayment]
    default: DefaultEvent | None


async def redeem(
    session: AsyncSession, *, emission: Emission, kind: str, actor: str, settings: Settings,
    now: datetime | None = None,
) -> RedemptionRecord:
    """Redeem the emission: pay every holder and cancel every unit in one ledger batch, or, when the
    issuer's prefunded money is short, pay nothing and record the default. Either way the record is
    returned for the caller to commit.

    Raises RedemptionNotAllowed, RedemptionBlocked.
    """
    emission = await emission_repository.get_emission(session, emission.asset_id, for_update=True)
    invariant(emission is not None, "the emission exists")
    await _require_redeemable(session, emission, kind=kind, settings=settings, now=now or datetime.now(UTC))
    await orders.suspend(
        session, asset_code=emission.registration_number, reason=f"{kind} redemption", actor=actor
    )
    holders = await take_snapshot(session, emission=emission, actor=actor, settings=settings)
    encumbered = [p.party_id for p in holders.positions if p.held != p.frozen]
    if encumbered:
        raise errors.RedemptionBlocked(
            f"units of {len(encumbered)} holder(s) are held by an operation that has not finished (such as a transfer "
            "to a trading platform awaiting its answer); redeem once it ends",
            parties=[str(p) for p in encumbered],
        )
    application = await repository.get_application(session, emission.application_id)
    price = application.redemption_price or application.nominal
    money = await ledger.get_asset(session, accounts.MONEY)
    issuer_money = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=money.id, kind="available"
    )
    paid = [p for p in holders.positions if p.party_id != emission.issuer_party_id]
    redemption = Redemption(
        id=uuid.uuid4(), asset_id=emission.asset_id, kind=kind, snapshot_id=holders.snapshot.id, price=price,
        units=sum(p.available + p.held for p in paid), amount_due=sum((p.available + p.held) * price for p in paid),
        amount_available=issuer_money.balance if issuer_money else 0, created_by=actor,
    )
    if redemption.amount_available < redemption.amount_due:
        return await _default(session, emission=emission, redemption=redemption, actor=actor)
    invariant(issuer_money is not None or redemption.amount_due == 0, "money is paid from the issuer's account")
    return await _pay(
        session, emission=emission, redemption=redemption, holders=holders, money=money,
        issuer_money_id=issuer_money.id if issuer_money else None, actor=actor, settings=settings,
    )


async def _require_redeemable(
    session: AsyncSession, emission: Emission, *, kind: str, settings: Settings, now: datetime
) -> None:
    if emission.status == "placing" or await repository.open_placement_of(session, emission.asset_id) is not None:
        raise errors.RedemptionBlocked(f"{emission.registration_number} has an open placement; close it first")
    if emission.status not in REDEEMABLE_STATUSES:
        raise errors.RedemptionNotAllowed(f"{emission.registration_number} is {emission.status}", status=emission.status)
    application = await repository.get_application(session, emission.application_id)
    if kind == "early" and not application.early_redemption_allowed:
        raise errors.RedemptionNotAllowed(f"the terms of {emission.registration_number} do not allow early redemption")
    if kind == "maturity":
        calendar = await load_calendar(session, settings=settings)
        today = calendar.business_date_of(now)
        due = calendar.business_day_on_or_after(application.maturity_date) if application.maturity_date else None
        if due is None or today < due:
            raise errors.RedemptionNotAllowed(
                f"{emission.registration_number} matures on {application.maturity_date}; it is redeemed at maturity "
                f"from that business date ({due}) on, and today is {today}",
                maturity_date=str(application.maturity_date),
            )


async def _default(
    session: AsyncSession, *, emission: Emission, redemption: Redemption, actor: str
) -> RedemptionRecord:
    """Record the issuer's failure to prefund: nothing paid, nothing cancelled, staff and compliance told."""
    shortfall = redemption.amount_due - redemption.amount_available
    redemption.status = "defaulted"
    redemption.reason = (
        f"the issuer's money ({redemption.amount_available} tiyn) is short of the {redemption.amount_due} tiyn due "
        f"by {shortfall} tiyn; nothing was paid"
    )
    default = DefaultEvent(
        id=uuid.uuid4(), asset_id=emission.asset_id, redemption_id=redemption.id, amount_due=redemption.amount_due,
        shortfall=shortfall,
    )
    await repository.insert_redemption(session, redemption=redemption, default=default)
    await repository.update_emission(session, asset_id=emission.asset_id, status="defaulted")
    details = {
        "redemption_id": str(redemption.id), "redemption_kind": redemption.kind, "amount_due": redemption.amount_due,
        "amount_available": redemption.amount_available, "shortfall": shortfall,
    }
    await audit.record(
        session, kind="redemption.defaulted", actor=actor, subject=emission.registration_number, outcome="failure",
        details=details,
    )
    await outbox.notify(
        session, audience=DEFAULT_AUDIENCE, kind="issuer-default", registration_number=emission.registration_number,
        issuer_party_id=str(emission.issuer_party_id), **details,
    )
    return RedemptionRecord(redemption, [], default)


async def _pay(
    session: AsyncSession, *, emission: Emission, redemption: Redemption, holders: Holders, money: Asset,
    issuer_money_id: int | None, actor: str, settings: Settings,
) -> RedemptionRecord:
    """One batch pays every holder from a hold of the issuer's money and cancels every unit (available
    ones through a hold of each holder's, frozen ones from their freeze holds); a second batch freezes
    the proceeds of frozen units."""
    issued = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="issued"
    )
    invariant(issued is not None, "an issued emission has its issued account")
    unit_accounts = await ledger.account_ids(
        session, keys=[(p.party_id, emission.asset_id, "available") for p in holders.positions]
    )
    freezes = await repository.lock_active_freezes(session, asset_id=emission.asset_id)
    place, post, payments = [], [], []
    money_hold = derived_id(redemption.id, "issuer-money")
    if redemption.amount_due:
        place.append(ledger.PlaceHoldItem(money_hold, issuer_money_id, redemption.amount_due,
                                          reference=f"redemption {redemption.id}"))
    for position in holders.positions:
        if position.available:
            hold = derived_id(redemption.id, f"units:{position.party_id}")
            place.append(ledger.PlaceHoldItem(hold, unit_accounts[(position.party_id, emission.asset_id, "available")],
                                              position.available, reference=f"redemption {redemption.id}"))
            post.append(ledger.PostHoldItem(hold, derived_id(redemption.id, f"cancel:{position.party_id}"), issued.id,
                                            amount=position.available))
        if position.party_id == emission.issuer_party_id:
            continue
        cash = await accounts.holder_account(
            session, party_id=position.party_id, asset_code=money.code, settings=settings
        )
        payment = RedemptionPayment(
            redemption_id=redemption.id, party_id=position.party_id, units=position.available + position.held,
            frozen_units=position.frozen, amount=(position.available + position.held) * redemption.price,
            transfer_id=derived_id(redemption.id, f"pay:{position.party_id}"),
        )
        payments.append(payment)
        post.append(ledger.PostHoldItem(money_hold, payment.transfer_id, cash.id, amount=payment.amount))
    post += [
        ledger.PostHoldItem(f.hold_id, derived_id(redemption.id, f"cancel-frozen:{f.id}"), issued.id, amount=f.units)
        for f in freezes
    ]
    await ledger.settle_holds(session, batch_id=derived_id(redemption.id, "redemption"), place=place, post=post)
    # The issuer is not paid for its own units, so a freeze of them leaves no proceeds to freeze.
    await _freeze_proceeds(
        session, redemption=redemption, lifted=freezes,
        freezes=[f for f in freezes if f.party_id != emission.issuer_party_id], money=money, actor=actor,
        settings=settings,
    )
    redemption.status = "paid"
    await repository.insert_redemption(session, redemption=redemption, payments=payments)
    await repository.update_emission(
        session, asset_id=emission.asset_id, cancelled=holders.snapshot.total_units, status="redeemed"
    )
    await audit.record(
        session, kind="redemption.paid", actor=actor, subject=emission.registration_number,
        details={"redemption_id": str(redemption.id), "kind": redemption.kind, "holders": len(payments),
                 "amount_paid": redemption.amount_due, "units_cancelled": holders.snapshot.total_units},
    )
    return RedemptionRecord(redemption, payments, None)


async def _freeze_proceeds(
    session: AsyncSession, *, redemption: Redemption, lifted: list[Freeze], freezes: list[Freeze], money: Asset,
    actor: str, settings: Settings,
) -> None:
    """Freeze in money what each holder was paid for its frozen units (`freezes`), on the same basis and
    order as the units were frozen, and lift every units' freeze (`lifted`) as redeemed."""
    accounts_of = {}
    proceeds = []
    for old in freezes:
        accounts_of[old.party_id] = await accounts.holder_account(
            session, party_id=old.party_id, asset_code=money.code, settings=settings
        )
        proceeds.append(Freeze(
            id=derived_id(redemption.id, f"freeze:{old.id}"), asset_id=money.id, party_id=old.party_id,
            units=old.units * redemption.price, hold_id=derived_id(redemption.id, f"freeze-hold:{old.id}"),
            basis=old.basis, order_reference=old.order_reference,
            reason=f"proceeds of {old.units} frozen units redeemed by redemption {redemption.id}", status="active",
            frozen_from=old.id, created_by=actor,
        ))
    if proceeds:
        await ledger.settle_holds(
            session, batch_id=derived_id(redemption.id, "proceeds-freezes"),
            place=[ledger.PlaceHoldItem(f.hold_id, accounts_of[f.party_id].id, f.units, reference=f"freeze {f.id}")
                   for f in proceeds],
        )
    await repository.insert_freezes(session, freezes=proceeds)
    await repository.lift_freezes(session, freeze_ids=[f.id for f in lifted], actor=actor, reason="redeemed")


async def list_redemptions(
    session: AsyncSession, *, emission: Emission, party_id: uuid.UUID | None, limit: int
) -> list[RedemptionRecord]:
    """The emission's redemptions, newest first, with their payments: all of them, or one party's only."""
    found = await repository.list_redemptions(session, asset_id=emission.asset_id, limit=limit)
    ids = [r.id for r in found]
    payments = await repository.redemption_payments(session, redemption_ids=ids, party_id=party_id)
    defaults = {d.redemption_id: d for d in await repository.default_events(session, redemption_ids=ids)}
    return [
        RedemptionRecord(r, [p for p in payments if p.redemption_id == r.id], defaults.get(r.id)) for r in found
    ]
