"""The gate before every movement of money or DFAs, through the ledger API (REQ-14, REQ-18): a
watch-list match or a silent anti-fraud centre refuses the operation, records a security event and
moves nothing."""

import uuid

import pytest

from tests.ledger.test_api import balance, created, identified_party, post
from tests.platform.test_identity import FLAGGED_PERSON
from tests.factories import new_asset_code


@pytest.fixture(scope="module")
def flagged(users):
    """A party on the anti-fraud centre's watch list, identified and holding an account."""
    api, compliance = users.client("operator_admin"), users.client("compliance_officer")
    party = created(post(api, "/v1/parties", {"kind": "person", "name": "Flagged Person", "identifier": FLAGGED_PERSON, "resident": True}))
    decision = {"status": "identified", "level": "full", "method": "in_person", "reason": "documents seen"}
    assert post(compliance, f"/v1/parties/{party['id']}/kyc-decisions", decision).status_code == 200
    return party


@pytest.fixture
def accounts(users, flagged):
    api, compliance = users.client("operator_admin"), users.client("compliance_officer")
    money = created(post(api, "/v1/ledger/assets", {"code": new_asset_code("G"), "kind": "money", "scale": 2, "name": "money"}))
    operator = identified_party(api, compliance, "legal_entity")
    clean = identified_party(api, compliance, "person")
    account = lambda owner, kind: created(post(api, "/v1/ledger/accounts", {"owner_party_id": owner["id"], "asset": money["code"], "kind": kind}))
    bank, clean_account, flagged_account = account(operator, "client_money"), account(clean, "available"), account(flagged, "available")
    created(post(api, "/v1/ledger/transfers", {"id": str(uuid.uuid4()), "debit_account_id": bank["id"], "credit_account_id": clean_account["id"], "amount": 500}))
    return {"bank": bank, "clean": clean_account, "flagged": flagged_account}


def transfer(debit, credit, amount=100) -> dict:
    return {"id": str(uuid.uuid4()), "debit_account_id": debit["id"], "credit_account_id": credit["id"], "amount": amount}


def test_req18_a_transfer_to_a_flagged_party_is_refused_recorded_and_moves_nothing(users, accounts):
    api = users.client("operator_admin")
    refused = post(api, "/v1/ledger/transfers", transfer(accounts["clean"], accounts["flagged"]))

    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "/problems/antifraud-match"
    assert refused.json()["context"]["flagged"] == ["recipient"]
    assert balance(api, accounts["clean"]) == 500 and balance(api, accounts["flagged"]) == 0
    recorded = users.client("auditor").get("/v1/security-events", params={"kind": "antifraud.match"}).json()
    assert recorded[0]["details"]["reference"] == refused.json()["context"]["reference"]


def test_req18_a_batch_with_one_flagged_leg_moves_nothing(users, accounts):
    api = users.client("operator_admin")
    batch = {"id": str(uuid.uuid4()), "items": [
        {"type": "transfer", "transfer": transfer(accounts["bank"], accounts["clean"])},
        {"type": "transfer", "transfer": transfer(accounts["bank"], accounts["flagged"])},
    ]}
    assert post(api, "/v1/ledger/batches", batch).status_code == 422
    assert balance(api, accounts["clean"]) == 500 and balance(api, accounts["flagged"]) == 0


def test_req18_the_anti_fraud_centre_down_refuses_transfers_fail_closed(app, users, accounts):
    api = users.client("operator_admin")
    app.state.antifraud.down = True
    try:
        refused = post(api, "/v1/ledger/transfers", transfer(accounts["bank"], accounts["clean"]))
    finally:
        app.state.antifraud.down = False
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"] == "/problems/external-party-unavailable"
    assert balance(api, accounts["clean"]) == 500
    assert users.client("auditor").get("/v1/security-events", params={"kind": "antifraud.unavailable"}).json()
    assert post(api, "/v1/ledger/transfers", transfer(accounts["bank"], accounts["clean"])).status_code == 201


def test_req14_a_suspended_party_can_no_longer_receive(users, accounts):
    api, compliance = users.client("operator_admin"), users.client("compliance_officer")
    owner = api.get(f"/v1/ledger/accounts/{accounts['clean']['id']}").json()["owner_party_id"]
    suspend = {"status": "suspended", "level": "none", "method": "staff_decision", "reason": "document expired"}
    assert post(compliance, f"/v1/parties/{owner}/kyc-decisions", suspend).status_code == 200

    refused = post(api, "/v1/ledger/transfers", transfer(accounts["bank"], accounts["clean"]))
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/party-not-identified"
