"""The security-event log (REQ-55): append-only, hash-chained, searchable, and tampering is found."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dfa.platform.audit import service as audit
from dfa.platform.errors import InvariantViolation


async def test_events_chain_onto_each_other_and_the_log_verifies(session):
    first = await audit.record(session, kind="test.first", actor="alice", subject="x", details={"n": 1})
    second = await audit.record(session, kind="test.second", actor="bob", outcome="failure")

    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    verification = await audit.verify(session)
    assert verification.ok, verification.problems
    assert verification.head_seq == second.seq


async def test_the_log_refuses_updates_and_deletes(session):
    event = await audit.record(session, kind="test.immutable", actor="alice")
    for statement in ("UPDATE security_events SET actor = 'mallory' WHERE seq = :s", "DELETE FROM security_events WHERE seq = :s"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with session.begin_nested():
                await session.execute(text(statement), {"s": event.seq})


async def _bypass_triggers(session) -> None:
    # What an intruder with the database owner's rights could do; the hashes must still tell.
    await session.execute(text("ALTER TABLE security_events DISABLE TRIGGER security_events_append_only"))


async def test_an_altered_event_is_found_by_verification(session):
    await audit.record(session, kind="sign_in.failed", actor="mallory", outcome="failure")
    event = await audit.record(session, kind="role.changed", actor="admin", subject="mallory", details={"to": ["auditor"]})
    await _bypass_triggers(session)
    await session.execute(
        text("UPDATE security_events SET details = '{\"to\": [\"operator_admin\"]}' WHERE seq = :s"), {"s": event.seq}
    )

    verification = await audit.verify(session)
    assert not verification.ok
    assert any(f"event {event.seq}" in p and "altered" in p for p in verification.problems)


async def test_a_removed_event_is_found_by_verification(session):
    events = [await audit.record(session, kind="test.removed", actor="a") for _ in range(3)]
    await _bypass_triggers(session)
    await session.execute(text("DELETE FROM security_events WHERE seq = :s"), {"s": events[1].seq})

    verification = await audit.verify(session)
    assert not verification.ok
    assert any("missing" in p for p in verification.problems)


async def test_events_cut_off_the_end_are_found_by_verification(session):
    events = [await audit.record(session, kind="test.truncated", actor="a") for _ in range(2)]
    await _bypass_triggers(session)
    await session.execute(text("DELETE FROM security_events WHERE seq = :s"), {"s": events[-1].seq})

    verification = await audit.verify(session)
    assert not verification.ok
    assert any("cut off" in p for p in verification.problems)


async def test_details_never_carry_secrets(session):
    with pytest.raises(InvariantViolation):
        await audit.record(session, kind="test.leak", actor="a", details={"new_password": "hunter2hunter2"})
    with pytest.raises(InvariantViolation):
        await audit.record(session, kind="test.leak", actor="a", details={"nested": {"client_secret": "x"}})


async def test_search_filters_by_kind_family_actor_and_outcome(session):
    await audit.record(session, kind="sign_in.failed", actor="searcher-1", outcome="failure")
    await audit.record(session, kind="sign_in.succeeded", actor="searcher-1")
    await audit.record(session, kind="password.changed", actor="searcher-1")

    family = await audit.search(session, kind="sign_in.", actor="searcher-1", limit=10)
    assert [e.kind for e in family] == ["sign_in.succeeded", "sign_in.failed"]
    failures = await audit.search(session, actor="searcher-1", outcome="failure", limit=10)
    assert [e.kind for e in failures] == ["sign_in.failed"]
    older = await audit.search(session, actor="searcher-1", before=family[0].seq, limit=1)
    assert [e.kind for e in older] == ["sign_in.failed"]


def test_audit_verify_command_checks_the_whole_log(database_url):
    done = subprocess.run(
        [sys.executable, "-m", "dfa.cli", "audit", "verify"],
        capture_output=True, text=True, timeout=120, env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_auditors_search_the_log_over_http_and_investors_may_not(users):
    auditor, investor = users.client("auditor"), users.client("investor")
    found = auditor.get("/v1/security-events", params={"kind": "sign_in.succeeded", "actor": users["investor"].login})
    assert found.status_code == 200
    assert found.json() and all(e["actor"] == users["investor"].login for e in found.json())
    assert auditor.get("/v1/security-events/verification").json()["ok"] is True
    assert investor.get("/v1/security-events").status_code == 403


async def test_a_configuration_change_is_recorded_once_naming_what_changed(session, settings):
    await audit.record_configuration(session, configuration=settings.public_view())
    assert await audit.record_configuration(session, configuration=settings.public_view()) is False

    changed = settings.model_copy(update={"sign_in_max_failures": 3})
    assert await audit.record_configuration(session, configuration=changed.public_view()) is True
    [event] = await audit.search(session, kind="configuration.applied", limit=1)
    assert event.details["changed"] == ["sign_in_max_failures"]
    assert dict(event.details["settings"])["sign_in_max_failures"] == "3"


def test_the_recorded_configuration_hides_the_database_password(settings):
    view = settings.model_copy(update={"database_url": "postgresql://dfa:s3cret-pass@db:5432/dfa"}).public_view()
    assert "s3cret-pass" not in str(view) and view["database_url"].startswith("postgresql://dfa:***@db")
