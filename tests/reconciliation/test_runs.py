"""The daily reconciliation run: coverage, breaches, notices, issuer blocks, versions and signatures."""

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dfa.issuance.service import issuers
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service.parties import local_today
from dfa.reconciliation import errors, merkle
from dfa.reconciliation.service import breaches, proofs, reports
from tests.issuance.custodians import CUSTODIAN

VOLUME = 1_000 * 100_000  # 1,000 units of 1,000.00 KZT, in tiyn


async def _document(world, report_id: int) -> dict:
    async with world.database.read() as session:
        return reports.document_of(await reports.get_report(session, report_id))


async def test_a_covered_platform_gets_a_clean_report_signed_by_the_operator_req_30(world):
    emission, _, _ = await world.backed_emission(value=VOLUME * 2, ratio="1.5", holders=(300, 200))
    report = (await world.run(local_today(world.settings))).report
    assert report.breaches == 0 and report.version == 1
    document = await _document(world, report.id)
    [row] = document["coverage"]
    assert (row["asset_code"], row["status"], row["required_value_tiyn"]) == (
        emission.registration_number, "covered", VOLUME * 3 // 2)
    public_key = Keys.load(world.settings).signing_key.public_key()
    assert reports.signature_valid(content=report.content, signature=report.signature, public_key=public_key)
    tampered = report.content.replace(b'"covered"', b'"CoVeReD"')
    assert not reports.signature_valid(content=tampered, signature=report.signature, public_key=public_key)


async def test_a_shortfall_notifies_the_national_bank_and_custodian_once_and_blocks_the_issuer_until_cured_req_31(world):
    emission, issuer, reference = await world.backed_emission(value=VOLUME - 1)
    today = local_today(world.settings)
    first = (await world.run(today)).report
    document = await _document(world, first.id)
    [breach] = document["breaches"]
    assert (breach["kind"], breach["asset_code"], breach["new"]) == ("shortfall", emission.registration_number, True)
    assert [n.body["kind"] for n in world.national_bank.notices.values()] == ["coverage_shortfall"]
    assert [n.body["emission"] for n in world.custodian.notices[CUSTODIAN].values()] == [emission.registration_number]
    async with world.database.read() as session:
        [block] = await issuers.open_blocks(session, issuer.id)
    assert block.source == "reconciliation"

    again = (await world.run(today, force=True)).report  # still short: carried, not notified again
    assert again.version == 2 and (await _document(world, again.id))["breaches"][0]["new"] is False
    assert len(world.national_bank.notices) == 1

    world.custodian.revalue(CUSTODIAN, reference, market_value=VOLUME)
    cured = (await world.run(today, force=True)).report
    cured_document = await _document(world, cured.id)
    assert cured.breaches == 0 and [c["kind"] for c in cured_document["cleared"]] == ["shortfall"]
    async with world.database.read() as session:
        assert await issuers.open_blocks(session, issuer.id) == []


@pytest.mark.parametrize(("change", "kind"), [
    (lambda c, ref: c.remove(CUSTODIAN, ref), "asset_missing"),
    (lambda c, ref: c.encumber(CUSTODIAN, ref, "arrested by court order 12/2026"), "asset_encumbered"),
    (lambda c, ref: c.dispute(CUSTODIAN, ref), "asset_disputed"),
    (lambda c, ref: c.revalue(CUSTODIAN, ref, market_value=VOLUME * 2, valued_on=c.assets[(CUSTODIAN, ref)].valued_on
                              - timedelta(days=30)), "valuation_stale"),
    (lambda c, ref: c.withdraw_valuation(CUSTODIAN, ref), "valuation_missing"),
    (lambda c, ref: setattr(c, "down", True), "custodian_unavailable"),
])
async def test_an_asset_that_cannot_be_shown_to_cover_is_a_breach_never_a_pass_req_30(world, change, kind):
    _, issuer, reference = await world.backed_emission(value=VOLUME * 2)
    change(world.custodian, reference)
    report = (await world.run(local_today(world.settings))).report
    [row] = (await _document(world, report.id))["coverage"]
    assert row["status"] == kind
    async with world.database.read() as session:
        assert await issuers.open_blocks(session, issuer.id), "coverage not shown: the issuer is blocked"


async def test_a_journal_row_altered_in_the_database_is_found(world):
    emission, _, _ = await world.backed_emission(value=VOLUME * 2, holders=(10,))
    async with world.database.unit_of_work() as session:
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text(
            "UPDATE ledger_entries SET amount = amount + 1 WHERE (account_id, seq) = "
            "(SELECT account_id, max(seq) FROM ledger_entries WHERE account_id = "
            "(SELECT max(id) FROM ledger_accounts WHERE asset_id = :a AND kind = 'available') GROUP BY account_id)"
        ), {"a": emission.asset_id})
    report = (await world.run(local_today(world.settings))).report
    document = await _document(world, report.id)
    [found] = [b for b in document["breaches"] if b["kind"] == "ledger_invariant"]
    assert found["asset_code"] == emission.registration_number
    assert "hash chain" in found["detail"]


async def test_a_day_with_a_report_is_not_reconciled_again_unless_forced_and_reports_never_change(world):
    await world.backed_emission(value=VOLUME * 2)
    today = local_today(world.settings)
    first = (await world.run(today)).report
    skipped = await world.run(today)
    assert skipped.report is None and skipped.run.outcome == "skipped"
    second = (await world.run(today, force=True)).report
    assert (first.version, second.version) == (1, 2) and first.content_sha256 != second.content_sha256
    async with world.database.read() as session:
        again = await reports.get_report(session, first.id)
    assert again.content == first.content
    with pytest.raises(DBAPIError, match="written once"):
        async with world.database.unit_of_work() as session:
            await session.execute(text("UPDATE reconciliation_reports SET breaches = 7 WHERE id = :i"), {"i": first.id})


async def test_a_holder_proves_its_holding_is_inside_the_published_total(world):
    emission, _, _ = await world.backed_emission(value=VOLUME * 2, holders=(300, 200, 5))
    report = (await world.run(local_today(world.settings))).report
    [tree] = [t for t in (await _document(world, report.id))["holder_trees"]
              if t["asset_code"] == emission.registration_number]
    assert (tree["total_units"], tree["leaf_count"]) == (1_000, 4)  # three investors and the issuer's rest
    async with world.database.read() as session:
        leaves = await session.execute(text(
            "SELECT owner_party_id, quantity FROM reconciliation_holder_leaves WHERE report_id = :r"), {"r": report.id})
        holder, quantity = next((p, q) for p, q in leaves if q == 200)
        proof = await proofs.holder_proof(
            session, report=report, asset_code=emission.registration_number, party_id=holder,
            secret_key=Keys.load(world.settings).secret_key,
        )
    assert proof.leaf.quantity == quantity
    verdict = merkle.verify(proof, root_hash=bytes.fromhex(tree["root_hash"]), total=tree["total_units"])
    assert verdict.ok, verdict.reason
    assert not merkle.verify(proof, root_hash=bytes.fromhex(tree["root_hash"]), total=999).ok


async def test_a_compliance_officer_acknowledges_a_breach_and_signs_off_the_report_once(world):
    await world.backed_emission(value=1)
    report = (await world.run(local_today(world.settings))).report
    async with world.database.unit_of_work() as session:
        [breach] = await breaches.list_breaches(session, status="open", limit=10)
        acknowledged = await breaches.acknowledge(session, breach_id=breach.id, comment="calling the issuer", actor="co")
        signed = await reports.sign_off(session, report_id=report.id, comment="reviewed", actor="co")
    assert acknowledged.acknowledged_by == "co" and acknowledged.status == "open"
    assert signed.comment == "reviewed"
    with pytest.raises(errors.ReportSignedOffAlready):
        async with world.database.unit_of_work() as session:
            await reports.sign_off(session, report_id=report.id, comment="again", actor="co")
    with pytest.raises(errors.CommentInvalid):
        async with world.database.unit_of_work() as session:
            await breaches.acknowledge(session, breach_id=breach.id, comment="   ", actor="co")
