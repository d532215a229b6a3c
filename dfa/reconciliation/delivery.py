"""Sending the notices about breaches (REQ-31) from the outbox to the National Bank and the custodians,
each delivered exactly once end to end.

A notice is claimed, sent and recorded in one transaction, its outbox message locked meanwhile so that no
other pass sends it at the same time. If the process dies after the recipient answered and before the
commit, the next pass sends the notice again under the same idempotency key (the notice's id), and the
recipient, which keeps a notice once, answers with the receipt it gave the first time.
"""

import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.custodian import Custodian
from dfa.platform import faults
from dfa.platform import service as platform
from dfa.platform.adapters.external import Receipt
from dfa.platform.adapters.national_bank import NationalBank, NoticeRefused
from dfa.platform.database import Database
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.models import OutboxMessage
from dfa.reconciliation.models import Notice
from dfa.reconciliation.service import notices
from dfa.reconciliation.service.notices import NOTICES_TOPIC

log = logging.getLogger("dfa.reconciliation")

Addressee = tuple[str, str | None]  # (recipient, custodian code)


async def deliver_notices_once(
    database: Database, *, national_bank: NationalBank, custodian: Custodian, limit: int = 100
) -> int:
    """Send the notices waiting in the outbox, at most `limit` of them, each in a transaction of its own;
    returns how many were delivered.

    A notice refused, or not answered, counts a failed attempt with the reason and waits for the next
    pass. An addressee that does not answer is not asked again in this pass; notices to the others still go.
    """
    delivery = _Pass(national_bank, custodian)
    delivered = 0
    for _ in range(limit):
        async with database.unit_of_work() as session:
            message = await delivery.next_message(session)
            if message is None:
                break
            if await delivery.deliver(session, message):
                delivered += 1
        faults.crash_point("notices.after_commit")
    return delivered


@dataclass
class _Pass:
    """One delivery pass: the recipients, the messages it has tried and the addressees that did not answer."""

    national_bank: NationalBank
    custodian: Custodian
    passed_over: set[int] = field(default_factory=set)  # messages tried in this pass and still pending
    silent: set[Addressee] = field(default_factory=set)  # addressees that did not answer in this pass

    async def next_message(self, session: AsyncSession) -> OutboxMessage | None:
        """The oldest pending message not tried in this pass, locked until the caller's transaction ends."""
        # Messages tried in this pass are still pending, ahead in the queue: claim past them.
        claimed = await platform.claim_messages(session, topic=NOTICES_TOPIC, limit=len(self.passed_over) + 1)
        return next((message for message in claimed if message.id not in self.passed_over), None)

    async def deliver(self, session: AsyncSession, message: OutboxMessage) -> bool:
        """Send the message's notice and record what came of it; True when it was delivered."""
        notice = await notices.notice_of_message(session, payload=message.payload)
        addressee = (notice.recipient, notice.custodian)
        if addressee in self.silent:
            self.passed_over.add(message.id)
            return False
        try:
            receipt = await self._send(notice)
        except (NoticeRefused, ExternalPartyUnavailable) as failure:
            if isinstance(failure, ExternalPartyUnavailable):
                self.silent.add(addressee)
            await notices.record_failed_attempt(session, notice=notice, reason=failure.detail)
            self.passed_over.add(message.id)
            log.warning(
                "notice not delivered",
                extra={"notice_id": str(notice.id), "recipient": notice.recipient, "custodian": notice.custodian,
                       "failure": type(failure).__name__},
            )
            return False
        faults.crash_point("notices.after_send")
        await notices.record_receipt(session, notice=notice, receipt=receipt)
        await platform.mark_delivered(session, messages=[message])
        log.info(
            "notice delivered",
            extra={"notice_id": str(notice.id), "breach_id": notice.breach_id, "recipient": notice.recipient,
                   "custodian": notice.custodian, "receipt_id": receipt.receipt_id},
        )
        return True

    async def _send(self, notice: Notice) -> Receipt:
        notice_id, body = str(notice.id), notices.body_to_send(notice)
        if faults.enabled(faults.NOTICE_SENT_UNDER_A_NEW_ID):
            notice_id = body["notice_id"] = uuid.uuid4().hex
        if notice.custodian is None:
            return await self.national_bank.send_notice(notice_id=notice_id, body=body)
        return await self.custodian.notify(custodian=notice.custodian, notice_id=notice_id, body=body)
