"""The EVM mirror: every change to an emission's holdings reaches its token contract exactly once."""

import asyncio
import uuid

import pytest
from sqlalchemy import text

from dfa.custody.chain import in_process_chain, rpc_chain
from dfa.custody.errors import ChainUnavailable
from dfa.custody.service import wallets
from dfa.custody.service.mirror import FORCED_MOVE_CODE, TOPIC, Mirror, pause_emission
from dfa.custody.service.signing import Signer, SigningPurpose
from dfa.custody.vault import Vault
from dfa.ledger import service as ledger
from dfa.platform import service as platform
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from tests.anvil import AnvilNode, anvil_binary
from tests.factories import make_account, make_asset, make_party


async def _emission(database: Database, *, holders: int = 2, units: int = 1000):
    """A DFA asset with its issued account and `holders` funded holders, committed."""
    async with database.unit_of_work() as session:
        asset = await make_asset(session, kind="dfa")
        issuer = await make_party(session, kind="legal_entity", name="Issuer")
        issued = await make_account(session, asset=asset, owner=issuer, kind="issued")
        accounts = [await make_account(session, asset=asset) for _ in range(holders)]
        await ledger.post_transfers(
            session, transfers=[ledger.TransferSpec(uuid.uuid4(), issued.id, a.id, units) for a in accounts]
        )
    return asset, issued, accounts


async def _move(database: Database, debit: int, credit: int, amount: int) -> None:
    async with database.unit_of_work() as session:
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), debit, credit, amount))


async def _assert_in_sync(mirror: Mirror, asset_id: int) -> None:
    [comparison] = await mirror.compare(asset_id=asset_id)
    assert comparison.deployed
    assert comparison.unapplied_ops == 0
    assert comparison.in_sync, comparison
    assert comparison.chain_supply == comparison.ledger_outstanding


async def test_ledger_movements_reach_the_token_contract(chain_database: Database, mirror: Mirror):
    asset, _, (a, b) = await _emission(chain_database)
    await _move(chain_database, a.id, b.id, 250)
    await mirror.drain()
    [comparison] = await mirror.compare(asset_id=asset.id)
    assert comparison.ledger_outstanding == 2000
    await _assert_in_sync(mirror, asset.id)


async def _batches(database: Database, asset_id: int) -> list:
    async with database.read() as session:
        rows = await session.execute(
            text("SELECT * FROM custody_chain_batches WHERE asset_id = :a AND status <> 'superseded' ORDER BY nonce"),
            {"a": asset_id},
        )
        return list(rows.mappings())


def _restarted(mirror: Mirror) -> Mirror:
    """The same mirror after a crash: a new process with nothing in memory, on the same chain and database."""
    return Mirror(
        database=mirror.database,
        chain=mirror.chain,
        vault=mirror.vault,
        signer=Signer(mirror.vault),
        settings=mirror.settings,
    )


async def test_many_movements_share_one_chain_transaction(chain_database: Database, mirror: Mirror):
    asset, _, (a, b) = await _emission(chain_database)
    await mirror.drain()
    before = len(await _batches(chain_database, asset.id))
    async with chain_database.unit_of_work() as session:
        await ledger.post_transfers(
            session, transfers=[ledger.TransferSpec(uuid.uuid4(), a.id, b.id, 1) for _ in range(300)]
        )
    await mirror.drain()
    new_batches = (await _batches(chain_database, asset.id))[before:]
    # 300 moves fit in two transactions of at most 200 ops each.
    assert sorted(len(b["ops"]) for b in new_batches) == [100, 200]
    await _assert_in_sync(mirror, asset.id)


async def test_moves_within_one_holder_change_nothing_on_chain(chain_database: Database, mirror: Mirror):
    asset, _, (a, _b) = await _emission(chain_database)
    await mirror.drain()
    async with chain_database.unit_of_work() as session:
        hold, _ = await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=a.id, amount=10)
        await ledger.void_hold(session, hold_id=hold.id, transfer_id=uuid.uuid4())
    async with chain_database.read() as session:
        pending = await platform.pending_messages(session, topic=TOPIC, limit=10)
    assert pending == []
    await _assert_in_sync(mirror, asset.id)


@pytest.mark.parametrize("crash_after", ["prepare", "sign", "broadcast", "send"])
async def test_a_crash_at_any_step_neither_loses_nor_doubles_a_movement(
    chain_database: Database, mirror: Mirror, crash_after: str
):
    asset, _, (a, b) = await _emission(chain_database)
    await mirror.drain()
    await _move(chain_database, a.id, b.id, 7)
    await mirror.prepare()
    if crash_after in ("sign", "broadcast", "send"):
        await mirror.sign()
    if crash_after == "broadcast":  # broadcast, but the crash came before "sent" was written down
        [batch] = [x for x in await _batches(chain_database, asset.id) if x["status"] == "signed"]
        await mirror.chain.send_raw(batch["raw_transaction"])
    if crash_after == "send":
        await mirror.send()

    restarted = _restarted(mirror)
    await restarted.drain()

    batches = await _batches(chain_database, asset.id)
    assert all(x["status"] == "confirmed" for x in batches)
    nonces = [x["nonce"] for x in batches]
    assert len(set(nonces)) == len(nonces)
    async with chain_database.read() as session:
        sender = (
            (
                await session.execute(
                    text("SELECT * FROM custody_chain_senders WHERE chain_id = :c"),
                    {"c": await mirror.chain.chain_id()},
                )
            )
            .mappings()
            .one()
        )
    assert await mirror.chain.nonce(sender["address"]) == sender["next_nonce"], "no nonce gap, none reused"
    [comparison] = await restarted.compare(asset_id=asset.id)
    assert comparison.in_sync and comparison.chain_supply == 2000


async def test_the_ledger_keeps_working_while_the_node_is_down_and_the_chain_catches_up(
    chain_database: Database, mirror: Mirror, node
):
    asset, _, (a, b) = await _emission(chain_database)
    await mirror.drain()
    node.cut()
    try:
        for _ in range(5):
            await _move(chain_database, a.id, b.id, 3)
        with pytest.raises(ChainUnavailable):
            await mirror.run_once()
    finally:
        node.restore()
    await mirror.drain()
    await _assert_in_sync(mirror, asset.id)


async def test_a_batch_the_chain_applied_before_is_not_applied_again(chain_database: Database, mirror: Mirror):
    """If the database lost track of an applied batch (restored from a backup), the contract's batch
    number refuses the second application and the mirror counts the batch as done."""
    asset, _, (a, b) = await _emission(chain_database)
    await _move(chain_database, a.id, b.id, 5)
    await mirror.drain()
    applied = [x for x in await _batches(chain_database, asset.id) if x["kind"] == "ops"][-1]
    async with chain_database.unit_of_work() as session:
        await session.execute(
            text("UPDATE custody_chain_batches SET status = 'superseded' WHERE id = :id"), {"id": applied["id"]}
        )
        await session.execute(
            text(
                "INSERT INTO custody_chain_batches (chain_id, sender, nonce, asset_id, kind, seq, ops, status) "
                "SELECT chain_id, sender, s.next_nonce, asset_id, kind, seq, ops, 'prepared' "
                "FROM custody_chain_batches b JOIN custody_chain_senders s USING (chain_id) WHERE b.id = :id"
            ),
            {"id": applied["id"]},
        )
        await session.execute(
            text("UPDATE custody_chain_senders SET next_nonce = next_nonce + 1 WHERE chain_id = :c"),
            {"c": applied["chain_id"]},
        )
    await mirror.drain()
    [comparison] = await mirror.compare(asset_id=asset.id)
    assert comparison.in_sync and comparison.chain_supply == 2000


async def test_a_forced_move_goes_through_a_paused_token(chain_database: Database, mirror: Mirror):
    asset, _, (a, b) = await _emission(chain_database)
    async with chain_database.unit_of_work() as session:
        await pause_emission(session, asset_id=asset.id, paused=True)
    async with chain_database.unit_of_work() as session:
        await ledger.post_transfer(
            session, transfer=ledger.TransferSpec(uuid.uuid4(), a.id, b.id, 100, code=FORCED_MOVE_CODE)
        )
    await mirror.drain()
    [comparison] = await mirror.compare(asset_id=asset.id)
    assert comparison.paused
    assert comparison.in_sync


async def test_the_comparison_reports_a_balance_changed_behind_the_ledgers_back(
    chain_database: Database, mirror: Mirror
):
    asset, _, (a, _b) = await _emission(chain_database)
    await mirror.drain()
    async with chain_database.unit_of_work() as session:
        token = (
            await session.execute(
                text("SELECT address FROM custody_tokens WHERE asset_id = :a AND chain_id = :c"),
                {"a": asset.id, "c": await mirror.chain.chain_id()},
            )
        ).scalar_one()
        holder = await wallets.address_of_account(
            session, mirror.vault, party_id=a.owner_party_id, kind="available", operator_party_id=uuid.uuid4()
        )
        chain_id = await mirror.chain.chain_id()
        sender = (
            await session.execute(
                text("SELECT address FROM custody_chain_senders WHERE chain_id = :c"), {"c": chain_id}
            )
        ).scalar_one()
        transaction = {
            "to": token,
            "nonce": await mirror.chain.nonce(sender),
            "gas": 200_000,
            "gasPrice": await mirror.chain.gas_price(),
            "chainId": await mirror.chain.chain_id(),
            "value": 0,
            "data": bytes.fromhex(mirror.chain._token.encode_abi("mint", args=[holder, 5, b"\0" * 32])[2:]),
        }
        signed = await mirror.signer.sign_transaction(
            session, address=sender, transaction=transaction, purpose=SigningPurpose.CHAIN_MIRROR
        )
        await session.execute(
            text("UPDATE custody_chain_senders SET next_nonce = next_nonce + 1 WHERE chain_id = :c"), {"c": chain_id}
        )
    await mirror.chain.send_raw(signed.raw)
    [comparison] = await mirror.compare(asset_id=asset.id)
    assert not comparison.in_sync
    assert comparison.chain_supply == comparison.expected_supply + 5
    [difference] = comparison.differences
    assert (difference.address, difference.on_chain - difference.expected) == (holder, 5)


async def test_a_chain_that_restarted_empty_is_rebuilt_from_the_ledger(chain_database: Database, mirror: Mirror):
    asset, _, (a, b) = await _emission(chain_database)
    await _move(chain_database, a.id, b.id, 40)
    await mirror.drain()
    fresh = Mirror(
        database=chain_database,
        chain=in_process_chain(),
        vault=mirror.vault,
        signer=Signer(mirror.vault),
        settings=mirror.settings,
    )
    await _move(chain_database, b.id, a.id, 1)
    await fresh.drain()
    await _assert_in_sync(fresh, asset.id)


async def test_the_mirror_and_a_comparison_starting_it_at_once_start_it_once(chain_database: Database, mirror: Mirror):
    """A platform starts its mirror and, at the same moment, a reconciliation compares the chain with the ledger."""
    asset, _, (a, b) = await _emission(chain_database)
    await _move(chain_database, a.id, b.id, 3)

    await asyncio.gather(mirror.drain(), mirror.compare(), mirror.compare())

    await _assert_in_sync(mirror, asset.id)


async def test_a_movement_rolled_back_on_the_ledger_never_reaches_the_outbox(chain_database: Database, mirror: Mirror):
    _, _, (a, b) = await _emission(chain_database)
    await mirror.drain()
    with pytest.raises(RuntimeError):
        async with chain_database.unit_of_work() as session:
            await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), a.id, b.id, 1))
            assert len(await platform.pending_messages(session, topic=TOPIC, limit=10)) == 1
            raise RuntimeError("the command failed after the transfer")
    async with chain_database.read() as session:
        assert await platform.pending_messages(session, topic=TOPIC, limit=10) == []


async def test_a_node_that_restarts_empty_while_the_mirror_runs_is_rebuilt(
    chain_database: Database, vault: Vault, settings: Settings
):
    """anvil keeps its state in memory: after a restart it is a new, empty chain under the same id."""
    binary = anvil_binary()
    if binary is None:
        pytest.skip("anvil is not on PATH and npm could not install @foundry-rs/anvil (is npm installed?)")
    with AnvilNode(binary=binary, chain_id=31338) as node:
        mirror = Mirror(
            database=chain_database, chain=rpc_chain(node.url, timeout_s=2), vault=vault, signer=Signer(vault),
            settings=settings,
        )
        asset, _, (a, b) = await _emission(chain_database)
        await mirror.drain()
        node.restart()
        await _move(chain_database, a.id, b.id, 9)
        await mirror.drain()
        await _assert_in_sync(mirror, asset.id)
