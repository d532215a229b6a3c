"""The gate before every operation that moves money or DFAs (REQ-14, REQ-16, REQ-18).

Both parties must be identified adults, and the anti-fraud centre must find neither in its
databases. A match refuses the operation and is a security event; a centre that does not answer
refuses it too (fail closed): nothing moves on an unchecked operation.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.adapters.antifraud import AntiFraudCentre, Subject
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.identity import repository
from dfa.platform.identity.errors import AntiFraudMatch, PartyNotFound
from dfa.platform.identity.models import Party
from dfa.platform.identity.service.parties import require_may_operate
from dfa.platform.settings import Settings


@dataclass(frozen=True)
class Movement:
    """One leg to screen: who pays or delivers, who receives, what and how much."""

    sender_party_id: uuid.UUID
    recipient_party_id: uuid.UUID
    asset: str
    amount: int


def _subject(party: Party) -> Subject:
    return Subject(identifier=party.identifier, name=party.name, kind=party.kind)


async def screen_operation(
    session: AsyncSession,
    *,
    operation: str,
    movements: list[Movement],
    centre: AntiFraudCentre,
    actor: str,
    settings: Settings,
) -> list[str]:
    """Clear every movement of an operation or refuse it; returns the centre's check references.

    A movement between a party and itself (a hold, the operator's own books) needs no screening.
    Raises PartyNotFound, PartyNotIdentified, UnderAge, AntiFraudMatch, ExternalPartyUnavailable.
    """
    party_ids = {m.sender_party_id for m in movements} | {m.recipient_party_id for m in movements}
    found = await repository.get_parties(session, party_ids)
    for party_id in party_ids:
        if party_id not in found:
            raise PartyNotFound(f"party {party_id} does not exist")
        require_may_operate(found[party_id], settings=settings)
    references = []
    screened: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for movement in movements:
        pair = (movement.sender_party_id, movement.recipient_party_id)
        if pair[0] == pair[1] or pair in screened:
            continue
        screened.add(pair)
        sender, recipient = found[pair[0]], found[pair[1]]
        try:
            screening = await centre.screen(
                operation=operation, sender=_subject(sender), recipient=_subject(recipient),
                amount=movement.amount, asset=movement.asset,
            )
        except ExternalPartyUnavailable as error:
            raise ExternalPartyUnavailable(
                f"the anti-fraud centre did not answer, so the {operation} is refused (nothing was moved); retry later"
            ).with_security_event(
                "antifraud.unavailable", actor=actor, subject=operation, outcome="failure",
                sender=str(sender.id), recipient=str(recipient.id),
            ) from error
        references.append(screening.reference)
        if not screening.clear:
            flagged = sorted({match.role for match in screening.matches})
            raise AntiFraudMatch(
                f"the anti-fraud centre flagged the {' and the '.join(flagged)} of this {operation}; "
                f"it is refused and nothing was moved (check {screening.reference})",
                reference=screening.reference,
                flagged=flagged,
            ).with_security_event(
                "antifraud.match", actor=actor, subject=operation, sender=str(sender.id),
                recipient=str(recipient.id), reference=screening.reference, flagged=flagged,
            )
    return references
