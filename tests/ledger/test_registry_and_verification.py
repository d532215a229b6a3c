import csv
import io
import json
import uuid
from datetime import datetime

import pytest
from sqlalchemy import text

from dfa.ledger import service as ledger
from dfa.ledger.service import TransferSpec
from tests.factories import funded_accounts, make_asset
from tests.ledger.helpers import python_entry_hash, python_genesis_hash


async def _now(session) -> datetime:
    return (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()


async def _emission_with_holders(session):
    emission = await make_asset(session, kind="dfa")
    _, issued, (alice, bob) = await funded_accounts(session, count=2, amount=0, asset=emission)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), issued.id, alice.id, 1_000))
    return emission, issued, alice, bob


async def test_registry_as_of_a_past_instant_shows_the_holdings_of_that_moment(session):
    """REQ-34, REQ-36: ownership history is kept and the registry can be read as of any instant."""
    emission, _, alice, bob = await _emission_with_holders(session)
    before_trade = await _now(session)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 300))
    await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=bob.id, amount=100)

    then = await ledger.holders_registry(session, asset_code=emission.code, as_of=before_trade)
    now = await ledger.holders_registry(session, asset_code=emission.code)

    assert {p.account_id: (p.available_units, p.held_units) for p in then.positions} == {alice.id: (1_000, 0)}
    assert {p.account_id: (p.available_units, p.held_units) for p in now.positions} == {
        alice.id: (700, 0),
        bob.id: (200, 100),
    }


async def test_registry_before_the_first_issue_is_empty(session):
    before = await _now(session)
    emission, *_ = await _emission_with_holders(session)

    assert (await ledger.holders_registry(session, asset_code=emission.code, as_of=before)).positions == []


async def test_export_carries_identity_account_quantity_and_encumbrance_in_csv_and_json_lines(session):
    """REQ-35: the full registry, as the central depository needs it."""
    emission, _, alice, bob = await _emission_with_holders(session)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 250))
    await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=bob.id, amount=50)
    instant = await _now(session)

    csv_text = b"".join([c async for c in ledger.export_registry(session, asset=emission, as_of=instant, fmt="csv")]).decode()
    lines = b"".join([c async for c in ledger.export_registry(session, asset=emission, as_of=instant, fmt="jsonl")]).decode()

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    objects = [json.loads(line) for line in lines.splitlines()]
    assert [(r["account_id"], r["available_units"], r["held_units"], r["total_units"]) for r in rows] == [
        (str(alice.id), "750", "0", "750"),
        (str(bob.id), "200", "50", "250"),
    ]
    assert [(o["account_id"], o["available_units"], o["held_units"]) for o in objects] == [(alice.id, 750, 0), (bob.id, 200, 50)]
    assert {"holder_identifier", "holder_name", "holder_kind", "holder_resident", "asset_code", "as_of"} <= rows[0].keys()
    assert objects[0]["holder_identifier"].isdigit() and objects[0]["asset_code"] == emission.code


async def test_export_survives_names_with_quotes_commas_and_newlines(session):
    emission = await make_asset(session, kind="dfa")
    _, issued, (holder,) = await funded_accounts(session, count=1, amount=0, asset=emission)
    await session.execute(
        text("UPDATE parties SET name = :n WHERE id = :id"), {"n": 'Sadykova, "A"\nҚазақ \\ 1', "id": holder.owner_party_id}
    )
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), issued.id, holder.id, 5))
    instant = await _now(session)

    csv_text = b"".join([c async for c in ledger.export_registry(session, asset=emission, as_of=instant, fmt="csv")]).decode()
    lines = b"".join([c async for c in ledger.export_registry(session, asset=emission, as_of=instant, fmt="jsonl")]).decode()

    assert next(csv.DictReader(io.StringIO(csv_text)))["holder_name"] == 'Sadykova, "A"\nҚазақ \\ 1'
    assert json.loads(lines.strip())["holder_name"] == 'Sadykova, "A"\nҚазақ \\ 1'


async def test_hash_chain_recomputed_outside_the_database_matches(session):
    """The chain's canonical form is documented well enough to verify without our SQL."""
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 30))
    await ledger.post_transfers(session, transfers=[TransferSpec(uuid.uuid4(), alice.id, bob.id, 5) for _ in range(3)])

    entries = (
        await session.execute(
            text("SELECT * FROM ledger_entries WHERE account_id = :a ORDER BY seq"), {"a": alice.id}
        )
    ).all()
    previous = python_genesis_hash(alice.id)
    for e in entries:
        assert e.prev_hash == previous
        previous = python_entry_hash(
            previous, e.account_id, e.seq, e.transfer_id, e.counter_account_id, e.amount, e.balance_after, e.created_at
        )
        assert e.hash == previous
    stored_last = (await session.execute(text("SELECT last_hash FROM ledger_accounts WHERE id = :a"), {"a": alice.id})).scalar_one()
    assert stored_last == previous


async def _tamper(session, statement: str, **params) -> None:
    # Only a superuser can switch triggers off; this is what an attacker with database access would do.
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    await session.execute(text(statement), params)
    await session.execute(text("SET LOCAL session_replication_role = origin"))


async def test_verification_reports_an_altered_entry_amount(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 30))
    assert (await ledger.verify(session)).ok

    await _tamper(session, "UPDATE ledger_entries SET amount = -31 WHERE account_id = :a AND seq = 2", a=alice.id)

    result = await ledger.verify(session)
    assert not result.ok
    assert (result.first_discrepancy.check, result.first_discrepancy.account_id, result.first_discrepancy.seq) == (
        "entry_hash", alice.id, 2,
    )


async def test_verification_reports_a_deleted_entry_even_with_hashes_recomputed(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    first = TransferSpec(uuid.uuid4(), alice.id, bob.id, 10)
    await ledger.post_transfer(session, transfer=first)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 20))

    await _tamper(session, "DELETE FROM ledger_entries WHERE account_id = :a AND seq = 2", a=alice.id)

    result = await ledger.verify(session)
    assert not result.ok
    assert result.first_discrepancy.check == "chain_link"
    assert result.first_discrepancy.account_id == alice.id


async def test_verification_reports_a_balance_changed_behind_the_journal(session):
    _, source, (alice, bob) = await funded_accounts(session, count=2, amount=100)

    await _tamper(session, "UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :a", a=alice.id)

    result = await ledger.verify(session)
    assert not result.ok
    assert (result.first_discrepancy.check, result.first_discrepancy.account_id) == ("account_state", alice.id)


async def test_verification_reports_a_transfer_rewritten_behind_its_entries(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    posted = await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 10))

    await _tamper(session, "UPDATE ledger_transfers SET amount = 11 WHERE id = :t", t=posted.transfer.id)

    result = await ledger.verify(session)
    assert (result.ok, result.first_discrepancy.check) == (False, "transfer_entries")


_RECOMPUTE = (
    "hash = ledger_entry_hash(prev_hash, account_id, seq, transfer_id, counter_account_id, amount, balance_after, "
    "created_at)"
)
_DAMAGE = {
    "an altered amount": "UPDATE ledger_entries SET amount = -31 WHERE account_id = :a AND seq = 2",
    "a deleted entry": "DELETE FROM ledger_entries WHERE account_id = :a AND seq = 2",
    "a running balance rewritten with its hash": (
        f"UPDATE ledger_entries SET balance_after = balance_after + 5, {_RECOMPUTE} WHERE account_id = :a AND seq = 2"
    ),
    "a link rewritten with its hash": (
        f"UPDATE ledger_entries SET prev_hash = sha256('forged'), {_RECOMPUTE} WHERE account_id = :a AND seq = 2"
    ),
    "a transfer rewritten behind its entries": (
        "UPDATE ledger_transfers SET amount = 31 WHERE id = (SELECT transfer_id FROM ledger_entries "
        "WHERE account_id = :a AND seq = 2)"
    ),
}
_STATE_DAMAGE = {
    "a balance changed behind the journal": "UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :a",
    "an account rolled back to an earlier entry": (
        "UPDATE ledger_accounts a SET version = e.seq, balance = e.balance_after, last_hash = e.hash "
        "FROM ledger_entries e WHERE a.id = :a AND e.account_id = a.id AND e.seq = a.version - 1"
    ),
}


async def _integrity_of(session, asset_id: int) -> ledger.AssetIntegrity:
    [books] = [books for books in await ledger.integrity_by_asset(session) if books.asset_id == asset_id]
    return books


async def _three_entries_on_alice(session):
    asset, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 30))
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 20))
    return asset, alice


async def test_intact_books_count_no_damage_per_asset(session):
    asset, _ = await _three_entries_on_alice(session)
    books = await _integrity_of(session, asset.id)
    assert books.intact
    assert (books.holdings, books.negative_balances, books.broken_entries, books.state_mismatches) == (200, 0, 0, 0)


@pytest.mark.parametrize("damage", list(_DAMAGE))
async def test_per_asset_integrity_finds_every_kind_of_journal_damage(session, damage):
    asset, alice = await _three_entries_on_alice(session)
    await _tamper(session, _DAMAGE[damage], a=alice.id)
    books = await _integrity_of(session, asset.id)
    assert books.broken_entries >= 1 and not books.intact


@pytest.mark.parametrize("damage", list(_STATE_DAMAGE))
async def test_per_asset_integrity_finds_an_account_that_disagrees_with_its_journal(session, damage):
    asset, alice = await _three_entries_on_alice(session)
    await _tamper(session, _STATE_DAMAGE[damage], a=alice.id)
    books = await _integrity_of(session, asset.id)
    assert (books.state_mismatches, books.broken_entries) == (1, 0)
