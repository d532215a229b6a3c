"""Holder protections, suspensions, trading platforms and the central depository's export over real HTTP."""

import csv
import io
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dfa.issuance.models import Emission
from dfa.issuance.service import holders
from dfa.ledger import service as ledger
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.identity.service import parties
from dfa.settlement.service import accounts
from tests.factories import SETTINGS, make_party
from tests.http import post
from tests.issuance.factories import make_emission
from tests.market import onboarded_issuer

EVIL_NAME = "=HYPERLINK(\"http://evil.example\")"


@pytest.fixture
async def holding(database: Database, users) -> tuple[Emission, uuid.UUID, uuid.UUID]:
    """A committed emission of the signed-in issuer; the investor holds 100 units and a party with a
    formula for a name 50."""
    async with database.unit_of_work() as session:
        issuer_id = users["issuer"].party_id
        await onboarded_issuer(session, issuer_id)
        emission = await make_emission(session, issuer=await parties.get_party(session, issuer_id))
        placement = await ledger.find_account(
            session, owner_party_id=issuer_id, asset_id=emission.asset_id, kind="available"
        )
        evil = await make_party(session, name=EVIL_NAME)
        for party_id, units in ((users["investor"].party_id, 100), (evil.id, 50)):
            account = await accounts.holder_account(
                session, party_id=party_id, asset_code=emission.registration_number, settings=SETTINGS
            )
            await ledger.post_transfer(
                session, transfer=ledger.TransferSpec(uuid.uuid4(), placement.id, account.id, units, reference="sale")
            )
    return emission, users["investor"].party_id, evil.id


# --- freezes, forced transfers, suspensions ---------------------------------------------------------------


def test_staff_freeze_and_lift_a_holders_units_and_the_holder_sees_only_its_own(users, holding):
    emission, investor_id, _ = holding
    body = {
        "asset": emission.registration_number, "party_id": str(investor_id), "units": 30, "basis": "court_order",
        "order_reference": "court 2-1/2026", "reason": "securing a claim",
    }
    assert post(users.client("investor"), "/v1/freezes", body).status_code == 403
    placed = post(users.client("compliance_officer"), "/v1/freezes", body)
    assert placed.status_code == 201, placed.text
    freeze = placed.json()
    assert (freeze["asset"], freeze["units"], freeze["status"]) == (emission.registration_number, 30, "active")

    assert users.client("investor").get(f"/v1/freezes/{freeze['id']}").status_code == 200
    assert users.client("other_investor").get(f"/v1/freezes/{freeze['id']}").status_code == 404
    mine = users.client("investor").get("/v1/freezes", params={"asset": emission.registration_number}).json()
    assert [f["id"] for f in mine] == [freeze["id"]]
    assert users.client("other_investor").get("/v1/freezes", params={"asset": emission.registration_number}).json() == []

    too_much = post(users.client("operator_admin"), "/v1/freezes", {**body, "units": 71})
    assert (too_much.status_code, too_much.json()["type"]) == (422, "/problems/holder-units-short")

    lifted = post(users.client("operator_admin"), f"/v1/freezes/{freeze['id']}/lifting", {"reason": "claim settled"})
    assert (lifted.status_code, lifted.json()["status"]) == (200, "lifted")


def test_only_the_operators_administrator_orders_a_forced_transfer(users, holding):
    emission, investor_id, _ = holding
    body = {
        "asset": emission.registration_number, "from_party_id": str(investor_id),
        "to_party_id": str(users["other_investor"].party_id), "units": 10, "basis": "access_recovery",
        "order_reference": "recovery case 77", "reason": "the client lost access to its account",
    }
    assert post(users.client("compliance_officer"), "/v1/forced-transfers", body).status_code == 403

    moved = post(users.client("operator_admin"), "/v1/forced-transfers", body)

    assert moved.status_code == 201, moved.text
    assert (moved.json()["order_reference"], moved.json()["units"]) == ("recovery case 77", 10)
    listed = users.client("auditor").get("/v1/forced-transfers", params={"asset": emission.registration_number}).json()
    assert [t["id"] for t in listed] == [moved.json()["id"]]
    assert users.client("investor").get("/v1/forced-transfers").status_code == 403


def test_req62_a_suspension_over_http_and_who_sees_it(users, holding):
    emission, _, _ = holding
    issuer_id = str(users["issuer"].party_id)
    arrest = {"ground": "asset_arrest", "issuer_party_id": issuer_id, "arrested_share": "0.5", "reference": "court 8",
              "details": "half of the assets arrested"}
    refused = post(users.client("operator_admin"), "/v1/suspensions", arrest)
    assert (refused.status_code, refused.json()["type"]) == (422, "/problems/suspension-arrest-not-over-half")

    decision = {"ground": "operator_decision", "emission": emission.registration_number, "reference": "decision 5",
                "details": "suspicious trading"}
    assert post(users.client("compliance_officer"), "/v1/suspensions", decision).status_code == 403
    recorded = post(users.client("operator_admin"), "/v1/suspensions", decision)
    assert recorded.status_code == 201, recorded.text
    assert (recorded.json()["emission"], recorded.json()["issuer_party_id"]) == (emission.registration_number, issuer_id)

    own = users.client("issuer").get("/v1/suspensions", params={"active": "true"}).json()
    assert recorded.json()["id"] in [s["id"] for s in own]
    assert users.client("other_issuer").get("/v1/suspensions").json() == []
    lifted = post(users.client("operator_admin"), f"/v1/suspensions/{recorded.json()['id']}/lifting", {"reason": "ok"})
    assert lifted.json()["lifted_by"] == users["operator_admin"].login


# --- trading platforms -------------------------------------------------------------------------------------


def test_req44_req47_an_issuer_moves_units_to_a_platform_and_follows_the_messages(app, users, holding):
    emission, _, _ = holding
    code = f"tp-{uuid.uuid4().hex[:10]}"
    gateway = app.state.trading_platforms
    gateway.platforms.add(code)
    platform = {"code": code, "name": "Steppe Exchange", "nbk_registration_number": "NBK-TP-9"}
    assert post(users.client("issuer"), "/v1/trading-platforms", platform).status_code == 403
    assert post(users.client("operator_admin"), "/v1/trading-platforms", platform).status_code == 201
    assert code in [p["code"] for p in users.client("investor").get("/v1/trading-platforms").json()]
    path = f"/v1/emissions/{emission.registration_number}/platform-transfers"

    gateway.down = True
    try:
        down = post(users.client("issuer"), path, {"platform": code, "units": 40})
    finally:
        gateway.down = False
    assert down.status_code == 503
    assert post(users.client("other_issuer"), path, {"platform": code, "units": 40}).status_code == 404

    gateway.confirm_next()
    notified = post(users.client("issuer"), path, {"platform": code, "units": 40})
    assert notified.status_code == 201, notified.text
    transfer = notified.json()
    assert (transfer["status"], transfer["emission"], [m["direction"] for m in transfer["messages"]]) == (
        "notified", emission.registration_number, ["sent", "received"]
    )
    assert users.client("other_issuer").get(f"/v1/platform-transfers/{transfer['id']}").status_code == 404

    refreshed = post(users.client("issuer"), f"/v1/platform-transfers/{transfer['id']}/refresh", {})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["status"] == "confirmed"
    assert len(refreshed.json()["messages"]) == 4
    listed = users.client("compliance_officer").get("/v1/platform-transfers", params={"emission": emission.registration_number})
    assert [t["id"] for t in listed.json()] == [transfer["id"]]


# --- the central depository's export -------------------------------------------------------------------


@pytest.fixture
async def frozen_holding(database: Database, holding) -> tuple[Emission, uuid.UUID, uuid.UUID]:
    """The holding with 20 of the investor's units frozen."""
    emission, investor_id, _ = holding
    async with database.unit_of_work() as session:
        await holders.place_freeze(
            session, asset_code=emission.registration_number, party_id=investor_id, units=20, basis="authority_order",
            order_reference="AFM 5", reason="financial monitoring", actor="officer",
        )
    return holding


def _rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_req35_the_registry_for_the_central_depository_identifies_every_holder_with_frozen_units(
    users, frozen_holding, database, registry_closed_now
):
    emission, investor_id, evil_id = frozen_holding
    path = f"/v1/emissions/{emission.registration_number}/holders-registry/export"
    params = {"as_of": registry_closed_now.isoformat()}

    response = users.client("compliance_officer").get(path, params=params)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = {row["party_id"]: row for row in _rows(response)}
    investor = rows[str(investor_id)]
    assert (investor["available"], investor["held"], investor["frozen"], investor["total"]) == ("80", "20", "20", "100")
    assert investor["registration_number"] == emission.registration_number
    assert investor["as_of"].endswith("+05:00") and investor["as_of"].startswith(registry_closed_now.isoformat())
    assert (rows[str(evil_id)]["name"], rows[str(evil_id)]["kind"]) == ("'" + EVIL_NAME, "person")
    assert rows[str(users["issuer"].party_id)]["available"] == "850"
    assert sum(int(row["total"]) for row in rows.values()) == emission.units

    assert users.client("issuer").get(path, params=params).status_code == 200
    assert users.client("other_issuer").get(path, params=params).status_code == 404
    assert users.client("investor").get(path, params=params).status_code == 403
    async with database.read() as session:
        events = await audit.search(session, kind="registry.exported", subject=emission.registration_number, limit=10)
    assert {e.actor for e in events} == {users["compliance_officer"].login, users["issuer"].login}


def test_the_registry_of_a_day_not_closed_yet_is_refused(users, holding):
    emission, _, _ = holding
    tomorrow = (datetime.now(ZoneInfo("Asia/Almaty")) + timedelta(days=1)).date()
    response = users.client("operator_admin").get(
        f"/v1/emissions/{emission.registration_number}/holders-registry/export", params={"as_of": tomorrow.isoformat()}
    )
    assert (response.status_code, response.json()["type"]) == (422, "/problems/registry-date-not-closed")


def test_a_page_boundary_is_an_rfc_3339_instant_and_nothing_else_reads_as_one(users):
    """`before=0.0` was read as 1 January 1970 though the description says an RFC 3339 date-time: a number, a
    date alone or an instant without its offset is refused as invalid rather than guessed at."""
    auditor = users.client("auditor")

    refused = [auditor.get("/v1/suspensions", params={"before": before}) for before in
               ("0.0", "1700000000", "2026-11-21", "2026-11-21T10:00:00")]
    answered = auditor.get("/v1/suspensions", params={"before": "2000-01-01T00:00:00+05:00"})

    assert [(r.status_code, r.json()["errors"][0]["field"]) for r in refused] == [(422, "query.before")] * 4
    assert (answered.status_code, answered.json()) == (200, [])
