"""Transfers of an emission's units to and from digital-asset trading platforms (REQ-44..REQ-47).

Out: on the issuer's application the units are checked for encumbrances and restrictions, blocked (a
ledger hold on the issuer's account), and the platform is told they are ready. The platform answers
within 3 business days: on its confirmation the blocked units are cancelled here (moved back to the
emission's issued account; the chain mirror burns them) while the platform issues as many there; on
its refusal, or when it stays silent past the deadline's close, the block is released (and staff are
told of the silence). In: units come back from a platform when it confirms it cancelled them there;
they are issued here again into the issuer's account. Either way the registered volume is unchanged:
outstanding here + on platforms + cancelled = registered. Every message sent to or received from a
platform is kept with its transfer (REQ-47).
"""

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import Emission, PlatformMessage, PlatformTransfer, TradingPlatform
from dfa.issuance.repository import emissions as emission_repository
from dfa.issuance.repository import holders as holders_repository
from dfa.issuance.repository import platforms as repository
from dfa.issuance.service import emissions
from dfa.issuance.service.emissions import derived_id
from dfa.issuance.trading_platforms import Answer, TradingPlatforms
from dfa.ledger import service as ledger
from dfa.ledger.models import Account
from dfa.platform import service as outbox
from dfa.platform.access import Role
from dfa.platform.audit import service as audit
from dfa.platform.calendar.service import load_calendar
from dfa.platform.errors import ExternalPartyUnavailable, invariant
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from dfa.settlement.errors import TradingSuspended
from dfa.settlement.service import instructions

ANSWER_BUSINESS_DAYS = 3  # REQ-45
UNTRANSFERABLE_STATUSES = ("redeemed", "defaulted")
REFRESH_BATCH = 100
STAFF_AUDIENCE = (Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER)
SYSTEM = "system"

log = logging.getLogger("dfa.issuance.platforms")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TransferView:
    """A transfer with its emission's registration number and (for one transfer) its messages."""

    transfer: PlatformTransfer
    registration_number: str
    messages: list[PlatformMessage] | None = None


# --- the registry of platforms -----------------------------------------------------------------------


async def register_platform(
    session: AsyncSession, *, code: str, name: str, nbk_registration_number: str, actor: str
) -> TradingPlatform:
    """Register a trading platform the operator has an interaction agreement with. Raises TradingPlatformExists."""
    platform = await repository.insert_platform(
        session, values={"code": code, "name": name, "nbk_registration_number": nbk_registration_number}
    )
    if platform is None:
        raise errors.TradingPlatformExists(f"trading platform {code} is registered already", code=code)
    await audit.record(
        session, kind="trading_platform.registered", actor=actor, subject=code,
        details={"name": name, "nbk_registration_number": nbk_registration_number},
    )
    return platform


async def list_platforms(session: AsyncSession) -> list[TradingPlatform]:
    return await repository.list_platforms(session)


async def _active_platform(session: AsyncSession, code: str) -> TradingPlatform:
    platform = await repository.get_active_platform(session, code)
    if platform is None:
        raise errors.TradingPlatformNotFound(f"no active trading platform {code}", code=code)
    return platform


# --- transfers out and back ----------------------------------------------------------------------------


async def _issuer_account(session: AsyncSession, emission: Emission, kind: str) -> Account:
    account = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind=kind
    )
    invariant(account is not None, f"emission {emission.registration_number} has no issuer {kind} account")
    return account


async def _trading_suspended(session: AsyncSession, emission: Emission) -> bool:
    try:
        await instructions.require_tradable(session, [await ledger.get_asset_by_id(session, emission.asset_id)])
    except TradingSuspended:
        return True
    return False


async def _encumbrance_check(session: AsyncSession, emission: Emission, *, units: int) -> dict[str, Any]:
    """REQ-44: what restricts the issuer's units from moving, as recorded with the transfer.
    Raises EmissionNotTransferable listing every finding."""
    issuer_account = await _issuer_account(session, emission, "available")
    available = issuer_account.balance if issuer_account else 0
    frozen = await holders_repository.frozen_units(
        session, asset_id=emission.asset_id, party_id=emission.issuer_party_id
    )
    suspended = await _trading_suspended(session, emission)
    findings = []
    if emission.status in UNTRANSFERABLE_STATUSES:
        findings.append(f"the emission is {emission.status}")
    if suspended:
        findings.append("trading in the emission is suspended")
    if units > available:
        findings.append(f"the issuer has {available} units available ({frozen} frozen); {units} were asked for")
    if findings:
        raise errors.EmissionNotTransferable("; ".join(findings), findings=findings)
    return {
        "checked_at": _now().isoformat(), "emission_status": emission.status, "trading_suspended": suspended,
        "available_units": available, "frozen_units": frozen, "units_requested": units, "findings": [],
    }


async def _deadline(session: AsyncSession, *, settings: Settings) -> date:
    calendar = await load_calendar(session, settings=settings)
    return calendar.add_business_days(calendar.business_date_of(_now()), ANSWER_BUSINESS_DAYS)


async def _notified(
    session: AsyncSession, *, transfer_id: uuid.UUID, emission: Emission, platform: TradingPlatform, direction: str,
    units: int, hold_id: uuid.UUID | None, check: dict[str, Any], actor: str, platforms: TradingPlatforms,
    settings: Settings,
) -> TransferView:
    """Tell the platform, then record the transfer with both messages. Raises ExternalPartyUnavailable."""
    issuer = await parties.get_party(session, emission.issuer_party_id)
    receipt = await platforms.notify_transfer(
        platform.code, transfer_id=transfer_id, emission=emission.registration_number, units=units,
        issuer_bin=issuer.identifier, direction=direction,
    )
    transfer = await repository.insert_transfer(
        session,
        values={
            "id": transfer_id, "asset_id": emission.asset_id, "platform_code": platform.code,
            "holder_party_id": emission.issuer_party_id, "direction": direction, "status": "notified",
            "units": units, "hold_id": hold_id, "encumbrance_check": check,
            "deadline": await _deadline(session, settings=settings), "platform_reference": receipt.reference,
            "requested_by": actor,
        },
    )
    await repository.insert_messages(session, transfer_id=transfer_id, sent=receipt.sent, received=receipt.received)
    await audit.record(
        session, kind=f"platform_transfer.{direction}.notified", actor=actor, subject=str(transfer_id),
        details={"emission": emission.registration_number, "platform": platform.code, "units": units,
                 "platform_reference": receipt.reference},
    )
    return await transfer_view(session, transfer.id, visible_to=None)


async def request_transfer(
    session: AsyncSession, *, registration_number: str, platform_code: str, units: int, issuer_party_id: uuid.UUID,
    actor: str, platforms: TradingPlatforms, settings: Settings,
) -> TransferView:
    """On the issuer's application, check its units for encumbrances and restrictions, block them and tell
    the platform they are ready to move (REQ-44, REQ-45). A platform that does not answer leaves nothing
    blocked or recorded.

    Raises EmissionNotFound, TradingPlatformNotFound, EmissionNotTransferable, ExternalPartyUnavailable.
    """
    invariant(units > 0, "a transfer moves a positive number of units")
    emission = await emissions.get_emission(session, registration_number, visible_to=issuer_party_id, for_update=True)
    platform = await _active_platform(session, platform_code)
    check = await _encumbrance_check(session, emission, units=units)
    transfer_id = uuid.uuid4()
    hold_id = derived_id(transfer_id, "block")
    account = await _issuer_account(session, emission, "available")
    # Blocked before the platform hears of them, and unblocked again when it does not answer.
    async with session.begin_nested():
        await ledger.place_hold(
            session, hold_id=hold_id, account_id=account.id, amount=units,
            reference=f"blocked for trading platform {platform.code}",
        )
        return await _notified(
            session, transfer_id=transfer_id, emission=emission, platform=platform, direction="out", units=units,
            hold_id=hold_id, check=check, actor=actor, platforms=platforms, settings=settings,
        )


async def request_return(
    session: AsyncSession, *, registration_number: str, platform_code: str, units: int, issuer_party_id: uuid.UUID,
    actor: str, platforms: TradingPlatforms, settings: Settings,
) -> TransferView:
    """On the issuer's application, tell the platform that units it holds of the emission are to come back;
    they are issued here when it confirms it cancelled them there.

    Raises EmissionNotFound, TradingPlatformNotFound, PlatformUnitsShort, ExternalPartyUnavailable.
    """
    invariant(units > 0, "a transfer moves a positive number of units")
    emission = await emissions.get_emission(session, registration_number, visible_to=issuer_party_id, for_update=True)
    platform = await _active_platform(session, platform_code)
    returnable = await repository.units_returnable(session, asset_id=emission.asset_id, platform_code=platform.code)
    if units > returnable:
        raise errors.PlatformUnitsShort(
            f"{platform.code} holds {returnable} units of {registration_number} not yet called back; {units} were asked for",
            returnable=returnable, requested=units,
        )
    check = {"checked_at": _now().isoformat(), "platform_units_returnable": returnable, "units_requested": units}
    return await _notified(
        session, transfer_id=uuid.uuid4(), emission=emission, platform=platform, direction="in", units=units,
        hold_id=None, check=check, actor=actor, platforms=platforms, settings=settings,
    )


# --- the platforms' answers ---------------------------------------------------------------------------------


async def _confirmed(session: AsyncSession, transfer: PlatformTransfer, answer: Answer, emission: Emission) -> None:
    record = answer.record_reference
    invariant(record is not None, "a confirmation names the platform's record")
    reference = f"{transfer.direction} {transfer.platform_code} record {record}"
    if transfer.direction == "out":
        invariant(transfer.hold_id is not None, "a transfer out blocks its units")
        await ledger.post_hold(
            session, hold_id=transfer.hold_id, transfer_id=derived_id(transfer.id, "cancellation"),
            credit_account_id=(await _issuer_account(session, emission, "issued")).id, reference=reference,
        )
        emission.platform_units += transfer.units
    else:
        await ledger.post_transfer(
            session,
            transfer=ledger.TransferSpec(
                derived_id(transfer.id, "issuance"), (await _issuer_account(session, emission, "issued")).id,
                (await _issuer_account(session, emission, "available")).id, transfer.units, reference=reference,
            ),
        )
        emission.platform_units -= transfer.units
    # The record of the platform's issue (or cancellation) replaces its receipt's reference, which the
    # messages keep (REQ-46).
    transfer.platform_reference = record


async def _release(session: AsyncSession, transfer: PlatformTransfer) -> None:
    if transfer.hold_id is not None:
        await ledger.void_hold(session, hold_id=transfer.hold_id, transfer_id=derived_id(transfer.id, "release"))


async def _lapsed(session: AsyncSession, transfer: PlatformTransfer) -> None:
    await _release(session, transfer)
    await outbox.notify(
        session, audience=STAFF_AUDIENCE, kind="platform-transfer-lapsed", transfer_id=str(transfer.id),
        platform=transfer.platform_code, direction=transfer.direction, units=transfer.units,
        deadline=transfer.deadline.isoformat() if transfer.deadline else None,
    )


async def _refresh(
    session: AsyncSession, transfer: PlatformTransfer, *, platforms: TradingPlatforms, now: datetime, settings: Settings,
    actor: str,
) -> str:
    """Ask the platform about one notified transfer and act on the answer; returns the transfer's status.
    A platform that does not answer counts as silent."""
    invariant(transfer.status == "notified" and transfer.platform_reference is not None, "only notified transfers")
    try:
        answer: Answer | None = await platforms.answer(transfer.platform_code, reference=transfer.platform_reference)
    except ExternalPartyUnavailable:
        log.warning("trading platform gave no answer", extra={"transfer_id": str(transfer.id)})
        answer = None
    if answer is not None:
        await repository.insert_messages(session, transfer_id=transfer.id, sent=answer.sent, received=answer.received)
    calendar = await load_calendar(session, settings=settings)
    invariant(transfer.deadline is not None, "a notified transfer has a deadline")
    if answer is not None and answer.status != "pending":
        status = answer.status
    elif now >= calendar.close_of(transfer.deadline):
        status = "lapsed"
    else:
        return transfer.status
    emission = await emission_repository.get_emission(session, transfer.asset_id, for_update=True)
    invariant(emission is not None, "a transfer's emission exists")
    if status == "confirmed" and answer is not None:
        await _confirmed(session, transfer, answer, emission)
    elif status == "refused" and answer is not None:
        await _release(session, transfer)
        transfer.reasons = "; ".join(answer.reasons)
    else:
        await _lapsed(session, transfer)
    transfer.status, transfer.answered_at = status, now
    await session.flush()
    await audit.record(
        session, kind=f"platform_transfer.{status}", actor=actor, subject=str(transfer.id),
        details={"emission": emission.registration_number, "platform": transfer.platform_code,
                 "direction": transfer.direction, "units": transfer.units, "reasons": transfer.reasons,
                 "platform_reference": transfer.platform_reference},
    )
    return status


async def refresh_transfers(
    session: AsyncSession, *, platforms: TradingPlatforms, settings: Settings, now: datetime | None = None,
    limit: int = REFRESH_BATCH,
) -> Counter[str]:
    """Fetch the platforms' answers about notified transfers (oldest deadline first, at most `limit`)
    and act on them: cancel or issue the units on a confirmation, release the block on a refusal or
    after the deadline's close without an answer. Returns how many transfers ended in each status
    (`notified`: still waiting). Safe to run on several instances at once."""
    counts: Counter[str] = Counter()
    for transfer in await repository.lock_notified_transfers(session, limit=limit):
        counts[await _refresh(session, transfer, platforms=platforms, now=now or _now(), settings=settings, actor=SYSTEM)] += 1
    return counts


async def refresh_transfer(
    session: AsyncSession, *, transfer_id: uuid.UUID, visible_to: uuid.UUID | None, actor: str,
    platforms: TradingPlatforms, settings: Settings,
) -> TransferView:
    """Fetch the platform's answer about one transfer now (an answered one is left as it is).
    Raises PlatformTransferNotFound."""
    transfer = await get_transfer(session, transfer_id, visible_to=visible_to, for_update=True)
    if transfer.status == "notified":
        await _refresh(session, transfer, platforms=platforms, now=_now(), settings=settings, actor=actor)
    return await transfer_view(session, transfer_id, visible_to=None)


# --- reading --------------------------------------------------------------------------------------------


async def get_transfer(
    session: AsyncSession, transfer_id: uuid.UUID, *, visible_to: uuid.UUID | None = None, for_update: bool = False
) -> PlatformTransfer:
    """The transfer; with `visible_to`, only when that party is its issuer. Raises PlatformTransferNotFound."""
    transfer = await repository.get_transfer(session, transfer_id, for_update=for_update)
    if transfer is None or (visible_to is not None and transfer.holder_party_id != visible_to):
        raise errors.PlatformTransferNotFound(f"no trading platform transfer {transfer_id}")
    return transfer


async def transfer_view(session: AsyncSession, transfer_id: uuid.UUID, *, visible_to: uuid.UUID | None) -> TransferView:
    """The transfer with every message exchanged about it. Raises PlatformTransferNotFound."""
    transfer = await get_transfer(session, transfer_id, visible_to=visible_to)
    asset = await ledger.get_asset_by_id(session, transfer.asset_id)
    return TransferView(transfer, asset.code, await repository.messages_of(session, transfer.id))


async def list_transfers(
    session: AsyncSession, *, holder_party_id: uuid.UUID | None, registration_number: str | None, status: str | None,
    before: datetime | None, limit: int,
) -> list[TransferView]:
    """Transfers, newest first. Raises EmissionNotFound."""
    asset_id = None
    if registration_number is not None:
        asset_id = (await emissions.get_emission(session, registration_number, visible_to=holder_party_id)).asset_id
    rows = await repository.list_transfers(
        session, holder_party_id=holder_party_id, asset_id=asset_id, status=status, before=before, limit=limit
    )
    return [TransferView(transfer, number) for transfer, number in rows]
