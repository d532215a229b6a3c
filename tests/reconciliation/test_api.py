"""The reconciliation API over HTTP: a run on demand, the signed report and its exports, sign-off."""

import base64
import hashlib

from cryptography.hazmat.primitives import serialization

from dfa.reconciliation.service import reports
from tests.http import post


def test_a_compliance_officer_runs_a_day_verifies_the_signed_report_exports_it_and_signs_it_off(users):
    officer = users.client("compliance_officer")
    run = post(officer, "/v1/reconciliation/runs", {"force": True})
    assert run.status_code == 201, run.text
    assert run.json()["outcome"] in ("clean", "breaches")
    report_id = run.json()["report_id"]

    report = officer.get(f"/v1/reconciliation/reports/{report_id}").json()
    assert report["document"]["report_id"] == report_id
    document = officer.get(f"/v1/reconciliation/reports/{report_id}/document")
    assert hashlib.sha256(document.content).hexdigest() == report["content_sha256"]
    key = officer.get("/v1/reconciliation/signing-key").json()
    public_key = serialization.load_pem_public_key(key["public_key_pem"].encode())
    signature = base64.b64decode(document.headers["signature-ed25519"])
    assert reports.signature_valid(content=document.content, signature=signature, public_key=public_key)
    assert not reports.signature_valid(content=document.content + b" ", signature=signature, public_key=public_key)

    csv = officer.get(f"/v1/reconciliation/reports/{report_id}/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    pdf = officer.get(f"/v1/reconciliation/reports/{report_id}/export", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    signed = post(officer, f"/v1/reconciliation/reports/{report_id}/sign-off", {"comment": "reviewed, no action"})
    assert signed.status_code == 201, signed.text
    again = post(officer, f"/v1/reconciliation/reports/{report_id}/sign-off", {"comment": "twice"})
    assert again.status_code == 409
    listed = officer.get("/v1/reconciliation/reports").json()
    assert next(r for r in listed if r["id"] == report_id)["signed_off_by"] is not None


def test_a_day_to_come_cannot_be_reconciled_and_investors_cannot_start_a_run(users):
    officer = users.client("compliance_officer")
    assert post(officer, "/v1/reconciliation/runs", {"business_date": "2999-01-01"}).status_code == 422
    assert post(users.client("investor"), "/v1/reconciliation/runs", {}).status_code == 403


def test_a_run_is_asked_for_with_a_boolean_and_a_calendar_day_not_with_numbers(users):
    """The description says `force` is a boolean and `business_date` a YYYY-MM-DD day: 1 was read as true and 0
    as 1 January 1970; both are now refused as invalid and no run starts."""
    officer = users.client("compliance_officer")
    before = len(officer.get("/v1/reconciliation/runs").json())

    refused = [post(officer, "/v1/reconciliation/runs", body) for body in ({"force": 1}, {"business_date": 0})]

    assert [(r.status_code, r.json()["errors"][0]["field"]) for r in refused] == [
        (422, "body.force"), (422, "body.business_date")
    ]
    assert len(officer.get("/v1/reconciliation/runs").json()) == before
