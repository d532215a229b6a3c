"""Notices about breaches to the National Bank and to the underlying asset's custodian (REQ-31): written in
the transaction that opens the breach, each with one outbox message, then sent from the outbox
(`dfa.reconciliation.delivery`) and closed by the recipient's receipt, the evidence of delivery."""

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform import service as platform
from dfa.platform.adapters.external import Receipt
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.reconciliation.models import NOTICE_RECIPIENTS, Notice
from dfa.reconciliation.repository import notices as repository

NOTICES_TOPIC = "reconciliation.notices"
LAST_ERROR_MAX_LENGTH = 300

Recipient = Literal["national_bank", "custodian"]


async def write_notice(
    session: AsyncSession, *, breach_id: int, recipient: Recipient, custodian: str | None, body: dict[str, Any]
) -> Notice:
    """The breach's notice to `recipient`, written in the caller's transaction together with the outbox
    message that gets it sent. A breach has one notice per recipient: writing it again returns the notice
    written first and sends nothing more.

    `custodian` is the custodian's code for a notice to a custodian, None for the National Bank. `body` is
    what the recipient reads; the notice's id is added to it when it is sent.
    """
    invariant(recipient in NOTICE_RECIPIENTS, f"unknown notice recipient {recipient!r}")
    invariant((recipient == "custodian") == (custodian is not None), "exactly a notice to a custodian names one")
    invariant("notice_id" not in body, "a notice's id is its own, added when it is sent")
    values = {"id": uuid.uuid4(), "breach_id": breach_id, "recipient": recipient, "custodian": custodian, "body": body}
    notice = await repository.insert_notice(session, values=values)
    if notice is None:
        written = await repository.get_notice(session, breach_id=breach_id, recipient=recipient)
        invariant(written is not None, f"the notice of breach {breach_id} to {recipient} conflicts but cannot be read")
        return written
    await platform.enqueue(session, topic=NOTICES_TOPIC, payload={"notice_id": str(notice.id)})
    return notice


async def notices_of(session: AsyncSession, *, breach_id: int) -> list[Notice]:
    """The breach's notices, the National Bank's first."""
    return await repository.notices_of_breach(session, breach_id=breach_id)


async def undelivered(session: AsyncSession, *, limit: int) -> list[Notice]:
    """Notices no recipient has given a receipt for yet, oldest first."""
    return await repository.undelivered_notices(session, limit=limit)


async def notice_of_message(session: AsyncSession, *, payload: dict[str, Any]) -> Notice:
    """The notice an outbox message of `NOTICES_TOPIC` is about; both are written together, so it exists."""
    notice = await repository.get_notice_by_id(session, uuid.UUID(payload["notice_id"]))
    invariant(notice is not None, f"notice {payload['notice_id']} has an outbox message but no row")
    return notice


def body_to_send(notice: Notice) -> dict[str, Any]:
    """What the recipient receives: the notice's body and its id."""
    return {**notice.body, "notice_id": str(notice.id)}


async def record_receipt(session: AsyncSession, *, notice: Notice, receipt: Receipt) -> None:
    """The notice reached its recipient: its receipt, with the time the recipient states it received the
    notice, is the evidence of delivery REQ-31 asks for; recorded in the security-event log as well."""
    await repository.record_receipt(
        session, notice_id=notice.id, receipt_id=receipt.receipt_id, delivered_at=receipt.received_at
    )
    await audit.record(
        session, kind="reconciliation.notice_delivered", actor="system", subject=f"notice:{notice.id}",
        details={
            "breach_id": notice.breach_id, "recipient": notice.recipient, "custodian": notice.custodian,
            "receipt_id": receipt.receipt_id, "received_at": receipt.received_at.isoformat(),
        },
    )


async def record_failed_attempt(session: AsyncSession, *, notice: Notice, reason: str) -> None:
    """The notice did not reach its recipient this time (refused, or no answer): one more failed attempt,
    with the reason, which never quotes the notice. It waits to be sent again."""
    await repository.count_failed_attempt(session, notice_id=notice.id, error=reason[:LAST_ERROR_MAX_LENGTH])
