"""Reconciliation against the chain: each emission's token on the EVM is compared with the ledger (custody's
comparison), and a chain that disagrees, or cannot be read, is a breach of its own kind."""

import dataclasses
import os
import uuid

import pytest
from sqlalchemy import text

from dfa.custody.chain import in_process_chain
from dfa.custody.service.mirror import TOPIC, Mirror
from dfa.custody.service.signing import Signer
from dfa.custody.vault import AesKek, KeyRing, Vault
from dfa.ledger import service as ledger
from dfa.platform.identity.service.parties import local_today
from dfa.reconciliation.service import reports

VOLUME = 1_000 * 100_000


@pytest.fixture
def mirror(world) -> Mirror:
    """The chain mirror of the world's own database, on a fresh in-process EVM; the run compares through it."""
    vault = Vault(KeyRing(AesKek(os.urandom(32))))
    mirror = Mirror(database=world.database, chain=in_process_chain(), vault=vault, signer=Signer(vault),
                    settings=world.settings)
    world.reconciliation = dataclasses.replace(
        world.reconciliation, counterparties=dataclasses.replace(world.reconciliation.counterparties, mirror=mirror)
    )
    return mirror


async def _chain_of(world, day) -> tuple[dict, list[dict]]:
    report = (await world.run(day, force=True)).report
    async with world.database.read() as session:
        document = reports.document_of(await reports.get_report(session, report.id))
    return document["chain"], document["breaches"]


async def _lose_a_movement_on_its_way_to_the_chain(world, emission, issuer) -> None:
    """Units move on the ledger and the mirror's message is marked delivered without reaching the chain."""
    async with world.database.unit_of_work() as session:
        source = await ledger.find_account(session, owner_party_id=issuer.id, asset_id=emission.asset_id,
                                           kind="available")
        [holder] = (await session.execute(text(
            "SELECT id FROM ledger_accounts WHERE asset_id = :a AND kind = 'available' AND id <> :s"
        ), {"a": emission.asset_id, "s": source.id})).scalars()
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, holder, 7))
    async with world.database.unit_of_work() as session:
        lost = await session.execute(text(
            "UPDATE outbox_messages SET delivered_at = now() WHERE topic = :t AND delivered_at IS NULL"
        ), {"t": TOPIC})
        assert lost.rowcount == 1


async def test_a_chain_that_agrees_with_the_ledger_passes(world, mirror):
    emission, _, _ = await world.backed_emission(value=VOLUME * 2, holders=(10, 20))
    await mirror.drain()

    chain, breaches = await _chain_of(world, local_today(world.settings))

    assert chain["checked"] and chain["reason"] is None
    [row] = chain["emissions"]
    assert (row["asset_code"], row["status"], row["chain_supply"]) == (emission.registration_number, "in_sync", 1_000)
    assert breaches == []


async def test_a_movement_the_chain_never_got_is_a_chain_mismatch(world, mirror):
    emission, issuer, _ = await world.backed_emission(value=VOLUME * 2, holders=(10,))
    await mirror.drain()
    await _lose_a_movement_on_its_way_to_the_chain(world, emission, issuer)

    chain, breaches = await _chain_of(world, local_today(world.settings))

    [row] = chain["emissions"]
    assert row["status"] == "mismatch"
    [breach] = breaches
    assert (breach["kind"], breach["asset_code"]) == ("chain_mismatch", emission.registration_number)


async def test_a_chain_that_cannot_be_read_is_a_breach_never_a_pass(world, mirror):
    emission, _, _ = await world.backed_emission(value=VOLUME * 2, holders=(10,))
    await mirror.drain()
    mirror.chain.down = True

    chain, breaches = await _chain_of(world, local_today(world.settings))

    assert chain["checked"] and chain["reason"]
    [row] = chain["emissions"]
    assert row["status"] == "unavailable"
    [breach] = breaches
    assert (breach["kind"], breach["asset_code"]) == ("chain_unavailable", emission.registration_number)

    mirror.chain.down = False
    _, cleared = await _chain_of(world, local_today(world.settings))
    assert cleared == []
