"""The security-event log (REQ-55): append-only, hash-chained, searchable, verifiable.

Each event's hash is SHA-256 over the previous event's hash and a canonical JSON form of the event,
so changing, removing or reordering any stored event breaks every hash after it, and cutting events
off the end disagrees with the head row. The verifier recomputes everything in Python from the
stored fields: it does not trust the database that holds the log.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.audit import repository
from dfa.platform.audit.errors import InvalidEventQuery
from dfa.platform.audit.models import SecurityEvent
from dfa.platform.database import Database
from dfa.platform.errors import invariant
from dfa.platform.logs import client_address_var, request_id_var

GENESIS_HASH = hashlib.sha256(b"dfa security-event log genesis").digest()
OUTCOMES = ("success", "failure", "denied")
# Details are for who did what to what; a secret in them would be a leak into a log kept for years.
_SECRET_WORDS = ("password", "secret", "token", "mnemonic", "private", "totp", "otp", "api_key")


def _canonical(event: dict[str, Any]) -> bytes:
    fields = {
        "seq": event["seq"],
        "occurred_at": event["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": event["kind"],
        "outcome": event["outcome"],
        "actor": event["actor"],
        "subject": event["subject"],
        "source_ip": event["source_ip"],
        "request_id": event["request_id"],
        "details": event["details"],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hash(prev_hash: bytes, event: dict[str, Any]) -> bytes:
    return hashlib.sha256(prev_hash + _canonical(event)).digest()


def _check_details(details: dict[str, Any]) -> None:
    for key, value in details.items():
        invariant(
            not any(word in key.lower() for word in _SECRET_WORDS),
            f"security event details must not carry secrets (key {key!r})",
        )
        invariant(not isinstance(value, float), "security event details carry no floats (hashes must be stable)")
        if isinstance(value, dict):
            _check_details(value)


async def record(
    session: AsyncSession,
    *,
    kind: str,
    actor: str | None,
    subject: str | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> SecurityEvent:
    """Append an event in the caller's transaction: it exists exactly when the caller's work commits.

    `kind` is a dotted name (`sign_in.failed`, `role.granted`); `actor` who acted (a login, a client
    id, `system`); `subject` what was acted on. The request id and the client's address are taken
    from the request being served. Details never carry secrets.
    """
    invariant(outcome in OUTCOMES, f"unknown outcome {outcome!r}")
    details = details or {}
    _check_details(details)
    head = await repository.lock_head(session)
    event = {
        "seq": head.seq + 1,
        "occurred_at": datetime.now(UTC),
        "kind": kind,
        "outcome": outcome,
        "actor": actor[:200] if actor else actor,
        "subject": subject[:200] if subject else subject,
        "source_ip": client_address_var.get(),
        "request_id": request_id_var.get(),
        "details": json.loads(json.dumps(details, default=str)),
    }
    event["prev_hash"] = head.hash
    event["hash"] = event_hash(head.hash, event)
    await repository.append(session, event=event)
    return SecurityEvent(**event)


async def record_in_own_transaction(database: Database, **event: Any) -> None:
    """Record an event that must survive the refusal it describes (a denial, a failed check):
    the request's own transaction is about to roll back."""
    async with database.unit_of_work() as session:
        await record(session, **event)


async def search(
    session: AsyncSession,
    *,
    kind: str | None = None,
    actor: str | None = None,
    subject: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int,
) -> list[SecurityEvent]:
    """Events matching every given filter, newest first; `kind` ending in "." matches a family
    (`sign_in.`). Page with `before` = the smallest seq seen. Raises InvalidEventQuery."""
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidEventQuery(f"outcome is one of {', '.join(OUTCOMES)}")
    if since is not None and until is not None and since >= until:
        raise InvalidEventQuery("since must be earlier than until")
    return await repository.search(
        session, kind=kind, actor=actor, subject=subject, outcome=outcome, since=since, until=until, before=before, limit=limit
    )


async def record_configuration(session: AsyncSession, *, configuration: dict[str, str]) -> bool:
    """Record `configuration` (settings as text, nothing secret) when it differs from the last
    recorded one, naming what changed; returns whether it did."""
    last = await repository.search(
        session, kind="configuration.applied", actor=None, subject=None, outcome=None, since=None, until=None,
        before=None, limit=1,
    )
    # Stored as pairs: setting names like `secret_key_file` name where a secret lives, not the secret,
    # and must not trip the check that keeps secrets out of details.
    previous = dict(last[0].details.get("settings", [])) if last else {}
    if previous == configuration:
        return False
    changed = sorted(name for name in configuration.keys() | previous.keys() if configuration.get(name) != previous.get(name))
    await record(
        session, kind="configuration.applied", actor="system", subject="settings",
        details={"settings": sorted(configuration.items()), "changed": changed if last else []},
    )
    return True


@dataclass
class Verification:
    ok: bool
    events_checked: int
    head_seq: int
    problems: list[str] = field(default_factory=list)


async def verify(session: AsyncSession, *, chunk: int = 5_000, max_problems: int = 100) -> Verification:
    """Recompute the whole chain: numbering without gaps, every link and hash, and the head."""
    problems: list[str] = []
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    async for stored in repository.stream_in_order(session, chunk=chunk):
        checked += 1
        event = {name: getattr(stored, name) for name in (
            "seq", "occurred_at", "kind", "outcome", "actor", "subject", "source_ip", "request_id", "details"
        )}
        if stored.seq != expected_seq:
            problems.append(f"event {stored.seq}: expected number {expected_seq} (events missing)")
        if stored.prev_hash != prev_hash:
            problems.append(f"event {stored.seq}: does not link to the event before it")
        if stored.hash != event_hash(stored.prev_hash, event):
            problems.append(f"event {stored.seq}: its content does not match its hash (altered)")
        expected_seq, prev_hash = stored.seq + 1, stored.hash
        if len(problems) >= max_problems:
            break
    head = await repository.get_head(session)
    if len(problems) < max_problems and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        problems.append(
            f"the head names event {head.seq} but the log ends at event {expected_seq - 1} (events cut off or added)"
        )
    return Verification(ok=not problems, events_checked=checked, head_seq=head.seq, problems=problems)
