"""Settlement instructions: two deliveries that settle together or not at all.

An instruction exchanges what its first party delivers for what its second party delivers: DFA units
against money (DvP, REQ-38; the first party is the seller) or units of one emission against units of
another (DvD, REQ-39). It is accepted only when both deliveries are prefunded by holds, both parties
are identified adults cleared by the anti-fraud centre (REQ-14, REQ-16, REQ-18) and no emission in it
is suspended; it settles on its settlement date (by default the trade date: REQ-37) by one linked
ledger batch that posts both holds and the fees, or fails at that day's close and releases its holds.

Bilateral instructions are submitted by both parties, each its own side, and match on their terms;
the order book, placement and redemption create instructions whose holds they have already placed.
"""

import functools
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.ledger.models import Asset
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.audit import service as audit
from dfa.platform.calendar.service import BusinessCalendar, load_calendar
from dfa.platform.errors import ExternalPartyUnavailable, invariant
from dfa.platform.identity.errors import AntiFraudMatch, PartyNotFound, PartyNotIdentified, UnderAge
from dfa.platform.identity.service import parties, screening
from dfa.platform.settings import Settings
from dfa.settlement import errors, repository
from dfa.settlement.models import Instruction, InstructionEvent
from dfa.settlement.service import accounts

NAMESPACE = uuid.UUID("2f6b9d0e-8c51-4e7a-b3a4-5d9e0c1f7a28")
REFERENCE_MAX_LENGTH = 100
SUSPENDED = "trading-suspended"
END_OF_DAY = "not-settled-by-close"
NOT_CLEARED = "party-not-cleared"


def derived_id(parent: uuid.UUID, purpose: str) -> uuid.UUID:
    """A deterministic id for one step of `parent` (a hold, a transfer, a ledger batch): retries of
    the same step hit the same id, so the ledger does it exactly once."""
    return uuid.uuid5(NAMESPACE, f"{parent}:{purpose}")


def fee_of(value: int, *, settings: Settings) -> int:
    """The operator's fee on a trade worth `value` tiyn, for each of buyer and seller: basis points of the
    value, rounded down, so fees of a trade's parts never add up to more than the fee of the whole."""
    return value * settings.settlement_fee_bps // 10_000


def _now() -> datetime:
    return datetime.now(UTC)


async def business_date(session: AsyncSession, *, settings: Settings, now: datetime | None = None) -> date:
    """Today's business date: what is done after the close or on a holiday counts on the next business day."""
    calendar = await load_calendar(session, settings=settings)
    return calendar.business_date_of(now or _now())


async def require_tradable(session: AsyncSession, assets: Sequence[Asset]) -> None:
    """Raises TradingSuspended when trading in any of these emissions is suspended."""
    suspended = await repository.suspended_assets(session, [a.id for a in assets if a.kind == "dfa"])
    if suspended:
        codes = ", ".join(a.code for a in assets if a.id in suspended)
        raise errors.TradingSuspended(f"trading in {codes} is suspended", assets=sorted(suspended))


# --- the ledger side of an exchange -----------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """What moves when an instruction settles: the first party's hold delivers `first_amount` of the
    first asset to the second party; the second party's hold delivers `second_amount` of the second
    asset, less the first party's fee, to the first party, and both fees to the operator."""

    id: uuid.UUID
    first_party_id: uuid.UUID
    first_asset_id: int
    first_amount: int
    first_hold_id: uuid.UUID
    second_party_id: uuid.UUID
    second_asset_id: int
    second_amount: int
    second_hold_id: uuid.UUID
    first_fee: int = 0
    second_fee: int = 0

    @property
    def fee(self) -> int:
        return self.first_fee + self.second_fee

    def account_keys(self, operator_id: uuid.UUID) -> set[ledger.AccountKey]:
        keys = {
            (self.second_party_id, self.first_asset_id, "available"),
            (self.first_party_id, self.second_asset_id, "available"),
        }
        if self.fee:
            keys.add((operator_id, self.second_asset_id, "fees"))
        return keys

    def posts(self, account_ids: dict[ledger.AccountKey, int], operator_id: uuid.UUID) -> list[ledger.PostHoldItem]:
        posts = [
            ledger.PostHoldItem(
                self.first_hold_id, derived_id(self.id, "first-leg"),
                account_ids[(self.second_party_id, self.first_asset_id, "available")], amount=self.first_amount,
            ),
            ledger.PostHoldItem(
                self.second_hold_id, derived_id(self.id, "second-leg"),
                account_ids[(self.first_party_id, self.second_asset_id, "available")],
                amount=self.second_amount - self.first_fee,
            ),
        ]
        if self.fee:
            posts.append(ledger.PostHoldItem(
                self.second_hold_id, derived_id(self.id, "fee"),
                account_ids[(operator_id, self.second_asset_id, "fees")], amount=self.fee,
            ))
        return posts


async def exchange_posts(
    session: AsyncSession, exchanges: Sequence[Exchange], *, settings: Settings
) -> list[ledger.PostHoldItem]:
    """The hold posts that settle these exchanges, opening any receiving account a party lacks; the fees
    go to the operator's own fee account, never to client money (REQ-50)."""
    operator = await parties.ensure_operator_party(session, settings=settings)
    needed = set().union(*(e.account_keys(operator.id) for e in exchanges))
    found = await ledger.account_ids(session, keys=list(needed))
    for owner, asset_id, kind in needed - found.keys():
        asset = await ledger.get_asset_by_id(session, asset_id)
        account = await ledger.ensure_account(
            session, owner_party_id=owner, asset_code=asset.code, kind=kind, settings=settings
        )
        found[(owner, asset_id, kind)] = account.id
    return [post for e in exchanges for post in e.posts(found, operator.id)]


def _exchange(instruction: Instruction) -> Exchange:
    invariant(instruction.first_hold_id is not None and instruction.second_hold_id is not None, "both sides are held")
    return Exchange(
        id=instruction.id,
        first_party_id=instruction.first_party_id,
        first_asset_id=instruction.first_asset_id,
        first_amount=instruction.first_amount,
        first_hold_id=instruction.first_hold_id,
        second_party_id=instruction.second_party_id,
        second_asset_id=instruction.second_asset_id,
        second_amount=instruction.second_amount,
        second_hold_id=instruction.second_hold_id,
        first_fee=instruction.first_fee,
        second_fee=instruction.second_fee,
    )


def event(instruction_id: uuid.UUID, kind: str, *, actor: str, reason: str | None = None) -> dict:
    return {"instruction_id": instruction_id, "event": kind, "actor": actor, "reason": reason}


# --- bilateral instructions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What one party delivers: `amount` in the asset's smallest unit (tiyn, or units of an emission)."""

    asset_code: str
    amount: int


@dataclass(frozen=True)
class Submitted:
    instruction: Instruction
    created: bool  # False when the counterparty's side was waiting and this side matched it


def _terms_digest(values: dict) -> bytes:
    keys = (
        "kind", "first_party_id", "first_asset_id", "first_amount", "second_party_id", "second_asset_id",
        "second_amount", "trade_date", "settlement_date", "reference", "resubmitted_from",
    )
    return hashlib.sha256("|".join(str(values[k]) for k in keys).encode()).digest()


async def _check_dates(
    session: AsyncSession, *, trade_date: date | None, settlement_date: date | None, settings: Settings
) -> tuple[date, date, date]:
    """(trade date, settlement date, today's business date), the first two defaulting to today."""
    calendar: BusinessCalendar = await load_calendar(session, settings=settings)
    today = calendar.business_date_of(_now())
    trade_date = trade_date or today
    settlement_date = settlement_date or today
    if trade_date > today:
        raise errors.InstructionTermsInvalid(f"the trade date {trade_date} is after today's business date {today}")
    if settlement_date < today:
        raise errors.InstructionTermsInvalid(
            f"the settlement date {settlement_date} has passed (today's business date is {today})"
        )
    if not calendar.is_business_day(settlement_date):
        raise errors.InstructionTermsInvalid(f"the settlement date {settlement_date} is not a business day")
    return trade_date, settlement_date, today


async def submit(
    session: AsyncSession,
    *,
    party_id: uuid.UUID,
    counterparty_id: uuid.UUID,
    deliver: Delivery,
    receive: Delivery,
    reference: str,
    trade_date: date | None = None,
    settlement_date: date | None = None,
    resubmitted_from: uuid.UUID | None = None,
    actor: str,
    centre: AntiFraudCentre,
    settings: Settings,
) -> Submitted:
    """Submit one party's side of a bilateral instruction: hold what it delivers (its money fee
    included) and wait for the counterparty's matching side, or match the side that is waiting and,
    when the settlement date is today, settle at once.

    Raises InstructionTermsInvalid, AssetNotFound, TradingSuspended, PartyNotFound, PartyNotIdentified,
    UnderAge, AntiFraudMatch, ExternalPartyUnavailable, InsufficientFunds (nothing is held then),
    InstructionAlreadySubmitted.
    """
    if party_id == counterparty_id:
        raise errors.InstructionTermsInvalid("an instruction exchanges deliveries between two different parties")
    if not 0 < len(reference) <= REFERENCE_MAX_LENGTH:
        raise errors.InstructionTermsInvalid(f"the trade reference has 1 to {REFERENCE_MAX_LENGTH} characters")
    given, taken = await ledger.get_assets(session, [deliver.asset_code, receive.asset_code])
    if given.id == taken.id:
        raise errors.InstructionTermsInvalid("both deliveries are of the same asset")
    if given.kind == "money" and taken.kind == "money":
        raise errors.InstructionTermsInvalid("an exchange of money for money is not a DFA operation")
    for amount in (deliver.amount, receive.amount):
        if not 0 < amount <= ledger.MAX_AMOUNT:
            raise errors.InstructionTermsInvalid(f"an amount is between 1 and {ledger.MAX_AMOUNT}")
    await require_tradable(session, [given, taken])
    trade_date, settlement_date, today = await _check_dates(
        session, trade_date=trade_date, settlement_date=settlement_date, settings=settings
    )
    # The first party delivers the DFA: in a DvP the seller, in a DvD the deliverer of the older emission.
    delivers_first = taken.kind == "money" or (given.kind == "dfa" and taken.kind == "dfa" and given.id < taken.id)
    first, second = (party_id, counterparty_id) if delivers_first else (counterparty_id, party_id)
    first_delivery, second_delivery = (given, deliver.amount), (taken, receive.amount)
    if not delivers_first:
        first_delivery, second_delivery = second_delivery, first_delivery
    kind = "dvp" if second_delivery[0].kind == "money" else "dvd"
    fee = fee_of(second_delivery[1], settings=settings) if kind == "dvp" else 0
    if kind == "dvp" and fee >= second_delivery[1]:
        raise errors.InstructionTermsInvalid("the trade is too small to pay the operator's fee")
    if second_delivery[1] + fee > ledger.MAX_AMOUNT:
        # The payer holds the payment and the fee together; the ledger holds at most MAX_AMOUNT at once.
        raise errors.InstructionTermsInvalid(f"the payment and the operator's fee are at most {ledger.MAX_AMOUNT}")
    await _screen(session, buyer=second, seller=first, asset=second_delivery[0].code, amount=second_delivery[1],
                  centre=centre, actor=actor, settings=settings)

    values = {
        "id": uuid.uuid4(),
        "kind": kind,
        "origin": "bilateral",
        "status": "pending",
        "reference": reference,
        "trade_date": trade_date,
        "settlement_date": settlement_date,
        "first_party_id": first,
        "first_asset_id": first_delivery[0].id,
        "first_amount": first_delivery[1],
        "first_fee": fee,
        "second_party_id": second,
        "second_asset_id": second_delivery[0].id,
        "second_amount": second_delivery[1],
        "second_fee": fee,
        "resubmitted_from": resubmitted_from,
    }
    values["terms_digest"] = _terms_digest(values)
    instruction = await repository.claim_terms(session, values=values)
    created = instruction is not None
    if instruction is None:
        instruction = await repository.lock_waiting_instruction(session, terms_digest=values["terms_digest"])
        invariant(instruction is not None, "a waiting instruction vanished while its row was locked")
    side = "first" if party_id == instruction.first_party_id else "second"
    if getattr(instruction, f"{side}_hold_id") is not None:
        raise errors.InstructionAlreadySubmitted(
            f"your side of instruction {instruction.id} was submitted already; it waits for the counterparty",
            instruction_id=str(instruction.id),
        )
    held = await accounts.holder_account(
        session, party_id=party_id, asset_code=given.code, settings=settings
    )
    hold_id = derived_id(instruction.id, side)
    hold_amount = deliver.amount + (instruction.second_fee if side == "second" else 0)
    placement = ledger.PlaceHoldItem(hold_id, held.id, hold_amount, reference=f"instruction {instruction.id}")
    other_side = "second" if side == "first" else "first"
    matched = getattr(instruction, f"{other_side}_hold_id") is not None
    settles_now = matched and instruction.settlement_date <= today
    if not settles_now:
        await ledger.settle_holds(session, batch_id=derived_id(instruction.id, f"{side}-hold"), place=[placement])
    # A matched instruction leaves the terms index, so the same terms can be traded again.
    instruction = await repository.update_instruction(
        session, instruction_id=instruction.id,
        values={f"{side}_hold_id": hold_id, **({"terms_digest": None} if matched else {})},
    )
    events = [event(instruction.id, "submitted", actor=actor, reason=f"the {side} party's side")]
    if matched:
        events.append(event(instruction.id, "matched", actor=actor))
    await repository.insert_events(session, rows=events)
    if settles_now:
        # The matching side's hold is placed by the settling batch itself, which locks every account of the trade
        # in one ascending pass: placed apart, its accounts would stay locked while the settlement waited for the
        # counterparty's and the fee account, and two trades settling at once could each wait for the other.
        instruction = await _settle(session, instruction, actor=actor, settings=settings, place=[placement])
    return Submitted(instruction, created)


async def _screen(
    session: AsyncSession, *, buyer: uuid.UUID, seller: uuid.UUID, asset: str, amount: int, centre: AntiFraudCentre,
    actor: str, settings: Settings,
) -> None:
    """Both parties identified adults and neither flagged by the anti-fraud centre (REQ-14, REQ-16, REQ-18)."""
    await screening.screen_operation(
        session,
        operation="settlement",
        movements=[screening.Movement(sender_party_id=buyer, recipient_party_id=seller, asset=asset, amount=amount)],
        centre=centre,
        actor=actor,
        settings=settings,
    )


async def _settle(
    session: AsyncSession, instruction: Instruction, *, actor: str, settings: Settings,
    place: Sequence[ledger.PlaceHoldItem] = (),
) -> Instruction:
    await _settle_many(session, [instruction], actor=actor, settings=settings, place=place)
    settled = await repository.get_instruction(session, instruction.id)
    invariant(settled is not None and settled.status == "settled", f"instruction {instruction.id} did not settle")
    return settled


async def _settle_many(
    session: AsyncSession, settling: Sequence[Instruction], *, actor: str, settings: Settings,
    place: Sequence[ledger.PlaceHoldItem] = (),
) -> None:
    """Post both holds and the fees of every instruction in one linked ledger batch (placing the holds in `place`
    first) and mark them settled. Each leg's transfer id derives from its instruction, so no instruction ever
    settles twice."""
    posts = await exchange_posts(session, [_exchange(i) for i in settling], settings=settings)
    ids = sorted(i.id for i in settling)
    batch_id = derived_id(uuid.uuid5(NAMESPACE, ",".join(map(str, ids))), "settlement")
    await ledger.settle_holds(session, batch_id=batch_id, place=place, post=posts)
    await repository.mark_settled(session, instruction_ids=ids)
    await repository.insert_events(session, rows=[event(i, "settled", actor=actor) for i in ids])


async def _close(
    session: AsyncSession, instruction: Instruction, *, status: str, code: str | None, reason: str, actor: str
) -> Instruction:
    """Fail or cancel a pending instruction: release whatever its parties hold for it."""
    voids = [
        ledger.VoidHoldItem(hold_id, derived_id(instruction.id, f"release-{side}"))
        for side, hold_id in (("first", instruction.first_hold_id), ("second", instruction.second_hold_id))
        if hold_id is not None
    ]
    if voids:
        await ledger.settle_holds(session, batch_id=derived_id(instruction.id, "release"), void=voids)
    closed = await repository.update_instruction(
        session,
        instruction_id=instruction.id,
        values={"status": status, "failure_code": code, "failure_reason": reason, "closed_at": _now(),
                "terms_digest": None},
    )
    await repository.insert_events(
        session, rows=[event(instruction.id, "failed" if status == "failed" else "cancelled", actor=actor, reason=reason)]
    )
    return closed


async def get_instruction(
    session: AsyncSession, instruction_id: uuid.UUID, *, visible_to: uuid.UUID | None = None
) -> Instruction:
    """The instruction; with `visible_to`, only when that party is one of its two (others get "not
    found"). Raises InstructionNotFound."""
    instruction = await repository.get_instruction(session, instruction_id)
    if instruction is None or (
        visible_to is not None and visible_to not in (instruction.first_party_id, instruction.second_party_id)
    ):
        raise errors.InstructionNotFound(f"instruction {instruction_id} does not exist")
    return instruction


async def history(session: AsyncSession, instruction_id: uuid.UUID) -> list[InstructionEvent]:
    return await repository.list_events(session, instruction_id)


async def list_instructions(
    session: AsyncSession,
    *,
    party_id: uuid.UUID | None,
    status: str | None = None,
    origin: str | None = None,
    before: datetime | None = None,
    limit: int,
) -> list[Instruction]:
    return await repository.list_instructions(
        session, party_id=party_id, status=status, origin=origin, before=before, limit=limit
    )


async def cancel(
    session: AsyncSession, *, instruction_id: uuid.UUID, party_id: uuid.UUID | None, actor: str, reason: str
) -> Instruction:
    """Cancel a pending instruction and release its holds. A party may cancel only its own side that
    still waits for the counterparty; staff (`party_id` None) any pending instruction.

    Raises InstructionNotFound, InstructionNotChangeable.
    """
    await get_instruction(session, instruction_id, visible_to=party_id)
    instruction = await repository.get_instruction(session, instruction_id, for_update=True)
    invariant(instruction is not None, "a visible instruction vanished")
    if instruction.status != "pending":
        raise errors.InstructionNotChangeable(f"instruction {instruction_id} is {instruction.status}")
    matched = instruction.first_hold_id is not None and instruction.second_hold_id is not None
    if party_id is not None and matched:
        raise errors.InstructionNotChangeable(
            f"instruction {instruction_id} is matched; both parties agreed to it, so only the operator cancels it"
        )
    return await _close(session, instruction, status="cancelled", code="cancelled", reason=reason, actor=actor)


async def resubmit(
    session: AsyncSession,
    *,
    instruction_id: uuid.UUID,
    party_id: uuid.UUID,
    settlement_date: date | None,
    actor: str,
    centre: AntiFraudCentre,
    settings: Settings,
) -> Submitted:
    """Submit again, as a new instruction, this party's side of a failed or cancelled bilateral one;
    the counterparty resubmits its side the same way and the two match.

    Raises InstructionNotFound, InstructionNotChangeable, and what `submit` raises.
    """
    failed = await get_instruction(session, instruction_id, visible_to=party_id)
    if failed.status not in ("failed", "cancelled") or failed.origin != "bilateral":
        raise errors.InstructionNotChangeable(
            f"instruction {instruction_id} is a {failed.status} {failed.origin} one; only failed or cancelled "
            "bilateral instructions are resubmitted"
        )
    first_asset = await ledger.get_asset_by_id(session, failed.first_asset_id)
    second_asset = await ledger.get_asset_by_id(session, failed.second_asset_id)
    first_delivery = Delivery(first_asset.code, failed.first_amount)
    second_delivery = Delivery(second_asset.code, failed.second_amount)
    mine_first = party_id == failed.first_party_id
    return await submit(
        session,
        party_id=party_id,
        counterparty_id=failed.second_party_id if mine_first else failed.first_party_id,
        deliver=first_delivery if mine_first else second_delivery,
        receive=second_delivery if mine_first else first_delivery,
        reference=failed.reference or str(failed.id),
        settlement_date=settlement_date,
        resubmitted_from=failed.id,
        actor=actor,
        centre=centre,
        settings=settings,
    )


# --- the day's settlement and its close ---------------------------------------------------------------


async def settle_due(
    session: AsyncSession, *, centre: AntiFraudCentre, settings: Settings, actor: str = "settlement", limit: int = 500,
    now: datetime | None = None,
) -> int:
    """Settle matched instructions whose settlement date has come, up to `limit` of them together in one
    ledger batch. Each is screened again first (REQ-18): one whose party the centre flags fails; one
    the centre could not check waits for the next pass (the close fails it if no pass can). One in a
    suspended emission fails. Returns how many settled."""
    today = await business_date(session, settings=settings, now=now)
    due = await repository.lock_pending_instructions(session, due_on_or_before=today, limit=limit)
    if not due:
        return 0
    assets = {i: await ledger.get_asset_by_id(session, i) for i in {a for d in due for a in (d.first_asset_id, d.second_asset_id)}}
    suspended = await repository.suspended_assets(session, list(assets))
    ready = []
    for instruction in due:
        halted = [assets[a].code for a in (instruction.first_asset_id, instruction.second_asset_id) if a in suspended]
        if halted:
            reason = f"trading in {', '.join(halted)} is suspended"
            await _close(session, instruction, status="failed", code=SUSPENDED, reason=reason, actor=actor)
        else:
            ready.append(instruction)
    cleared = await _cleared(session, ready, assets=assets, centre=centre, actor=actor, settings=settings)
    if cleared:
        await _settle_many(session, cleared, actor=actor, settings=settings)
    return len(cleared)


def _movement(instruction: Instruction, assets: dict[int, Asset]) -> screening.Movement:
    return screening.Movement(
        sender_party_id=instruction.second_party_id, recipient_party_id=instruction.first_party_id,
        asset=assets[instruction.second_asset_id].code, amount=instruction.second_amount,
    )


async def _cleared(
    session: AsyncSession, instructions: list[Instruction], *, assets: dict[int, Asset], centre: AntiFraudCentre,
    actor: str, settings: Settings,
) -> list[Instruction]:
    """The instructions whose parties the centre clears, asked all at once; when that is refused, one by
    one: a flagged or no longer identified party fails its instruction, an unanswered check skips it."""
    if not instructions:
        return []
    screen = functools.partial(
        screening.screen_operation, session, operation="settlement", centre=centre, actor=actor, settings=settings
    )
    try:
        await screen(movements=[_movement(i, assets) for i in instructions])
        return instructions
    except (ExternalPartyUnavailable, AntiFraudMatch, PartyNotFound, PartyNotIdentified, UnderAge):
        pass
    cleared = []
    for instruction in instructions:
        try:
            await screen(movements=[_movement(instruction, assets)])
        except ExternalPartyUnavailable:
            continue  # unchecked, so not settled now; the next pass asks the centre again
        except (AntiFraudMatch, PartyNotFound, PartyNotIdentified, UnderAge) as refusal:
            if refusal.security_event is not None:
                await audit.record(session, **refusal.security_event)
            await _close(session, instruction, status="failed", code=NOT_CLEARED, reason=refusal.detail, actor=actor)
            continue
        cleared.append(instruction)
    return cleared


async def fail_overdue(
    session: AsyncSession, *, settings: Settings, actor: str = "end-of-day", limit: int = 500, now: datetime | None = None
) -> int:
    """At the close of a business day, every instruction still pending for that day (or an earlier
    one) fails with its reason and its holds are released (REQ-37). Returns how many failed."""
    today = await business_date(session, settings=settings, now=now)
    overdue = await repository.lock_pending_instructions(session, settlement_date_before=today, limit=limit)
    for instruction in overdue:
        missing = [
            side for side, hold in (("first", instruction.first_hold_id), ("second", instruction.second_hold_id))
            if hold is None
        ]
        reason = (
            f"not settled by the close of {instruction.settlement_date}: "
            + (f"the {' and '.join(missing)} party's side was never submitted" if missing else "it could not be settled")
        )
        await _close(session, instruction, status="failed", code=END_OF_DAY, reason=reason, actor=actor)
    return len(overdue)


async def fail_pending_of_asset(session: AsyncSession, *, asset: Asset, reason: str, actor: str) -> int:
    """Fail every pending instruction in a suspended emission and release its holds."""
    failed = 0
    while pending := await repository.lock_pending_instructions(session, asset_id=asset.id, limit=500):
        for instruction in pending:
            await _close(session, instruction, status="failed", code=SUSPENDED, reason=reason, actor=actor)
        failed += len(pending)
    return failed


# --- exchanges settled by placement and redemption ---------------------------------------------------


async def settle_prefunded_exchanges(
    session: AsyncSession,
    *,
    exchanges: Sequence[Exchange],
    origin: str,
    batch_id: uuid.UUID,
    reference: str,
    actor: str,
    settings: Settings,
    post: Sequence[ledger.PostHoldItem] = (),
    void: Sequence[ledger.VoidHoldItem] = (),
) -> None:
    """Settle exchanges whose both sides the caller has already held (placement, redemption), together
    with the caller's own `post` and `void` items, in one linked ledger batch: all of it or none, exactly
    once per `batch_id`. Each exchange is recorded as a settled instruction of `origin`, today's trade
    and settlement date, with its settled event (REQ-36, REQ-38).

    Raises what `ledger.settle_holds` raises; any refusal aborts the caller's transaction.
    """
    invariant(origin in ("placement", "redemption"), f"{origin} exchanges are not settled here")
    posts = await exchange_posts(session, exchanges, settings=settings) if exchanges else []
    if posts or post or void:
        await ledger.settle_holds(session, batch_id=batch_id, post=[*posts, *post], void=void)
    if not exchanges:
        return
    today = await business_date(session, settings=settings)
    money = {asset_id for asset_id in {e.second_asset_id for e in exchanges}
             if (await ledger.get_asset_by_id(session, asset_id)).kind == "money"}
    await repository.insert_instructions(session, rows=[
        {
            "id": e.id, "kind": "dvp" if e.second_asset_id in money else "dvd", "origin": origin,
            "status": "settled", "reference": reference, "trade_date": today, "settlement_date": today,
            "first_party_id": e.first_party_id, "first_asset_id": e.first_asset_id, "first_amount": e.first_amount,
            "first_fee": e.first_fee, "first_hold_id": e.first_hold_id, "second_party_id": e.second_party_id,
            "second_asset_id": e.second_asset_id, "second_amount": e.second_amount, "second_fee": e.second_fee,
            "second_hold_id": e.second_hold_id,
        }
        for e in exchanges
    ])
    await repository.insert_events(
        session, rows=[event(e.id, "settled", actor=actor, reason=f"settled by {origin}") for e in exchanges]
    )
