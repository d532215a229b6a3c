"""The custody API over HTTP: clients see their own wallet addresses, never keys; staff see the
registry; only identified adults get an address (REQ-14, REQ-40, REQ-43)."""

import uuid

from dfa.platform.database import Database
from tests.factories import make_party
from tests.identity import Users


def _open(client, **body):
    return client.post("/v1/wallet-addresses", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


def test_an_investor_opens_one_holdings_address_and_sees_only_its_own(users: Users):
    investor, other = users.client("investor"), users.client("other_investor")
    first, again = _open(investor), _open(investor)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    address = first.json()
    assert (address["segment"], address["purpose"], address["activity"]) == ("client", "holdings", "dfa_platform")
    assert address["party_id"] == str(users["investor"].party_id)
    assert address["path"].startswith("m/44'/60'/")
    _open(other)
    listed = investor.get("/v1/wallet-addresses").json()
    assert {a["party_id"] for a in listed} == {str(users["investor"].party_id)}
    assert set(address) == {"address", "segment", "activity", "purpose", "party_id", "path"}, "addresses, never keys"


def test_another_clients_addresses_are_not_found(users: Users):
    other_party = users["other_investor"].party_id
    investor = users.client("investor")
    assert investor.get("/v1/wallet-addresses", params={"party_id": str(other_party)}).status_code == 404
    refused = _open(investor, party_id=str(other_party))
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"


def test_staff_see_the_registry_of_addresses_by_purpose_and_the_wallets(users: Users):
    _open(users.client("investor"))
    auditor = users.client("auditor")
    registry = auditor.get("/v1/wallet-addresses", params={"limit": 500}).json()
    purposes = {(a["segment"], a["purpose"]) for a in registry}
    assert {("operator_own", "chain_operator"), ("client_money", "money"), ("client", "holdings")} <= purposes
    wallets = auditor.get("/v1/wallets").json()
    assert {w["segment"] for w in wallets} >= {"operator_own", "client_money", "client"}
    assert all(set(w) == {"id", "segment", "activity", "fingerprint", "addresses", "created_at"} for w in wallets)
    mine = auditor.get("/v1/wallet-addresses", params={"party_id": str(users["investor"].party_id)}).json()
    assert {a["party_id"] for a in mine} == {str(users["investor"].party_id)}


async def test_an_unidentified_party_gets_no_wallet_address(users: Users, database: Database):
    """REQ-14: no wallet for a client without a completed identification."""
    async with database.unit_of_work() as session:
        pending = await make_party(session, identified=False)
    refused = _open(users.client("operator_admin"), party_id=str(pending.id))
    assert refused.status_code == 422, refused.text
    registry = users.client("auditor").get("/v1/wallet-addresses", params={"party_id": str(pending.id)}).json()
    assert registry == []


def test_the_chain_status_and_comparison_answer_staff(users: Users):
    staff = users.client("compliance_officer")
    status = staff.get("/v1/chain/status").json()
    assert status["chain"] == "in-process EVM"
    assert staff.get("/v1/chain/comparison/KZT-NOT-AN-EMISSION").status_code == 404
