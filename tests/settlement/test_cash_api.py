"""Money in and out over HTTP: a client learns how to pay in, staff import the bank's statements and
work the unmatched queue, a client is paid out to its own verified account, and no client sees or
touches another's bank accounts or withdrawals (REQ-54: another owner's objects are "not found").

The app's bank is a simulator keeping the client-money account; every test leaves no withdrawal
waiting for the next one's submission.
"""

import uuid

import httpx
import pytest

from dfa.platform.identity.service.parties import local_today
from dfa.platform.settings import Settings
from dfa.settlement.bank import BankSimulator
from tests.http import post
from tests.identity import Users
from tests.settlement.test_cash import new_iban, spaced

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response) -> str:
    assert response.headers["content-type"] == PROBLEM, response.text
    return response.json()["type"]


@pytest.fixture
def bank(app) -> BankSimulator:
    return app.state.bank


class Money:
    """The app's bank and the staff who run it, as the tests need them."""

    def __init__(self, users: Users, bank: BankSimulator, settings: Settings) -> None:
        self.users, self.bank, self.settings = users, bank, settings

    def pay_in(self, amount_tiyn: int, details: str, *, payer_iban: str | None = None) -> str:
        return self.bank.credit_incoming(
            self.settings.operator_client_money_iban, amount_tiyn, details, "Erlan Asanov", payer_iban or new_iban(),
            local_today(self.settings),
        )

    def fetch(self) -> dict:
        response = post(self.users.client("operator_admin"), "/v1/bank-statements/fetch",
                        {"day": local_today(self.settings).isoformat()})
        assert response.status_code == 200, response.text
        return response.json()

    def reference(self, who: str) -> str:
        response = self.users.client(who).get("/v1/payment-reference")
        assert response.status_code == 200, response.text
        return response.json()["reference"]

    def deposit(self, who: str, amount_tiyn: int, **payment) -> dict:
        self.pay_in(amount_tiyn, f"Top-up {self.reference(who)}", **payment)
        return self.fetch()

    def balances(self, who: str) -> dict[str, int]:
        accounts = self.users.client(who).get("/v1/ledger/accounts", params={"asset": "KZT"}).json()
        return {a["kind"]: a["balance"] for a in accounts} or {"available": 0, "held": 0}

    def verified_account(self, who: str, *, iban: str | None = None) -> int:
        registered = post(self.users.client(who), "/v1/bank-accounts", {"iban": iban or new_iban(), "holder_name": "A. Sadykova"})
        assert registered.status_code == 201, registered.text
        account_id = registered.json()["id"]
        verified = post(self.users.client("operator_admin"), f"/v1/bank-accounts/{account_id}/verification",
                        {"evidence": "bank's confirmation letter"})
        assert (verified.status_code, verified.json()["status"]) == (200, "verified"), verified.text
        return account_id

    def withdraw(self, who: str, bank_account_id: int, amount_tiyn: int, **kwargs) -> httpx.Response:
        body = {"id": str(kwargs.pop("withdrawal_id", uuid.uuid4())), "bank_account_id": bank_account_id,
                "amount_tiyn": amount_tiyn}
        return post(self.users.client(who), "/v1/withdrawals", body, **kwargs)

    def submit(self) -> dict:
        response = post(self.users.client("operator_admin"), "/v1/withdrawals/submission")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def money(users: Users, bank: BankSimulator, settings: Settings):
    money = Money(users, bank, settings)
    yield money
    waiting = users.client("auditor").get("/v1/withdrawals", params={"status": "requested"}).json()
    waiting += users.client("auditor").get("/v1/withdrawals", params={"status": "submitted"}).json()
    assert waiting == [], "a test left a withdrawal for the next test's submission to find"


# --- money in -----------------------------------------------------------------------------------------


def test_an_investor_learns_how_to_pay_in_and_is_credited_to_the_tiyn(money: Money, settings: Settings):
    instructions = money.users.client("investor").get("/v1/payment-reference").json()
    assert instructions["reference"] == money.reference("investor")  # given once, kept
    assert (instructions["beneficiary_iban"], instructions["currency"]) == (settings.operator_client_money_iban, "KZT")
    before = money.balances("investor")["available"]

    money.pay_in(12_345_67, f"пополнение {spaced(instructions['reference'])}")
    document = money.bank.answer_statement(account_iban=settings.operator_client_money_iban, day=local_today(settings))
    admin = money.users.client("operator_admin")
    first = post(admin, "/v1/bank-statements", content=document, headers={"Content-Type": "application/xml"})
    again = post(admin, "/v1/bank-statements", content=document, headers={"Content-Type": "application/xml"})

    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["credited_tiyn"] >= 12_345_67
    assert again.json()["lines_new"] == 0 and again.json()["statements"][0]["already_imported"]
    assert money.balances("investor")["available"] == before + 12_345_67
    imports = money.users.client("auditor").get("/v1/bank-statements", params={"limit": 5}).json()
    assert imports[0]["id"] == first.json()["statements"][0]["import_id"]


def test_only_an_xml_statement_of_the_client_money_account_is_imported(money: Money, settings: Settings):
    admin = money.users.client("operator_admin")
    elsewhere = BankSimulator()
    other_iban = elsewhere.open_account(new_iban(), owner_name="Operator")
    elsewhere.credit_incoming(other_iban, 1_00, money.reference("investor"), "X", new_iban(), local_today(settings))
    foreign = elsewhere.answer_statement(account_iban=other_iban, day=local_today(settings))
    before = money.balances("investor")

    as_json = post(admin, "/v1/bank-statements", {"statement": "no"})
    of_another_account = post(admin, "/v1/bank-statements", content=foreign, headers={"Content-Type": "application/xml"})
    not_camt = post(admin, "/v1/bank-statements", content=b"<Document/>", headers={"Content-Type": "text/xml"})
    by_an_investor = post(money.users.client("investor"), "/v1/bank-statements", content=foreign,
                          headers={"Content-Type": "application/xml"})

    assert (as_json.status_code, _problem(as_json)) == (422, "/problems/bank-statement-media-type-unsupported")
    assert (of_another_account.status_code, _problem(of_another_account)) == (
        422, "/problems/bank-statement-of-another-account"
    )
    assert (not_camt.status_code, _problem(not_camt)) == (422, "/problems/bank-statement-invalid")
    assert by_an_investor.status_code == 403
    assert money.balances("investor") == before


def test_staff_credit_an_unmatched_deposit_to_the_client_it_is_for(money: Money, users: Users):
    entry = money.pay_in(2_500_00, "for Dana's account, sorry no reference")
    assert money.fetch()["unmatched"] >= 1
    queue = users.client("compliance_officer").get(
        "/v1/bank-statement-lines", params={"status": "unmatched", "limit": 500}
    ).json()
    [line] = [line for line in queue if line["entry_reference"] == entry]
    before = money.balances("other_investor")["available"]

    assert users.client("investor").get("/v1/bank-statement-lines").status_code == 403
    assigned = post(users.client("operator_admin"), f"/v1/bank-statement-lines/{line['id']}/assignment",
                    {"party_id": str(users["other_investor"].party_id), "note": "payer's letter"})
    twice = post(users.client("operator_admin"), f"/v1/bank-statement-lines/{line['id']}/assignment",
                 {"party_id": str(users["other_investor"].party_id), "note": "payer's letter"})

    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], assigned.json()["party_id"]) == ("assigned", str(users["other_investor"].party_id))
    assert (twice.status_code, _problem(twice)) == (409, "/problems/bank-statement-line-resolved")
    assert money.balances("other_investor")["available"] == before + 2_500_00
    events = users.client("auditor").get(
        "/v1/security-events", params={"kind": "bank_statement_line.assigned", "actor": users["operator_admin"].login}
    ).json()
    assert str(line["id"]) in {e["subject"] for e in events}


def test_staff_return_an_unmatched_deposit_with_a_note(money: Money, users: Users):
    entry = money.pay_in(99_00, "wrong account")
    money.fetch()
    queue = users.client("auditor").get("/v1/bank-statement-lines", params={"status": "unmatched", "limit": 500}).json()
    [line] = [line for line in queue if line["entry_reference"] == entry]

    without_note = post(users.client("operator_admin"), f"/v1/bank-statement-lines/{line['id']}/return", {"note": ""})
    returned = post(users.client("operator_admin"), f"/v1/bank-statement-lines/{line['id']}/return",
                    {"note": "returned by payment order 118"})

    assert without_note.status_code == 422
    assert (returned.status_code, returned.json()["status"]) == (200, "returned")


# --- money out ----------------------------------------------------------------------------------------


def test_an_investor_is_paid_out_to_its_own_verified_account_once(money: Money, users: Users, settings: Settings):
    """REQ-38: the withdrawal is prefunded by a hold; the money leaves when the bank accepts the order,
    and the next statement shows the payout as the withdrawal's."""
    investor = users.client("investor")
    money.deposit("investor", 1_000_00)
    registered = post(investor, "/v1/bank-accounts", {"iban": new_iban(), "holder_name": "Erlan Asanov"})
    account_id = registered.json()["id"]
    unverified = money.withdraw("investor", account_id, 100_00)
    assert (unverified.status_code, _problem(unverified)) == (422, "/problems/bank-account-not-verified")
    verified = post(users.client("operator_admin"), f"/v1/bank-accounts/{account_id}/verification",
                    {"evidence": "bank's letter"})
    assert verified.json()["status"] == "verified"
    before = money.balances("investor")
    bank_before = money.bank.balance_tiyn(settings.operator_client_money_iban)

    key, withdrawal_id = str(uuid.uuid4()), uuid.uuid4()
    requested = money.withdraw("investor", account_id, 333_33, withdrawal_id=withdrawal_id, headers={"Idempotency-Key": key})
    replayed = money.withdraw("investor", account_id, 333_33, withdrawal_id=withdrawal_id, headers={"Idempotency-Key": key})

    assert requested.status_code == 201, requested.text
    assert replayed.headers.get("idempotent-replayed") == "true" and replayed.json() == requested.json()
    assert money.balances("investor") == {"available": before["available"] - 333_33, "held": before["held"] + 333_33}

    submission = money.submit()

    assert submission["withdrawals_sent"] >= 1
    sent = investor.get(f"/v1/withdrawals/{withdrawal_id}").json()
    assert (sent["status"], sent["amount_tiyn"]) == ("sent", 333_33)
    assert money.balances("investor") == {"available": before["available"] - 333_33, "held": before["held"]}
    assert money.bank.balance_tiyn(settings.operator_client_money_iban) == bank_before - 333_33
    assert money.fetch()["withdrawals"] == 1
    lines = users.client("auditor").get(
        "/v1/bank-statement-lines", params={"status": "withdrawal", "party_id": str(users["investor"].party_id)}
    ).json()
    assert sent["end_to_end_id"] in {line["end_to_end_id"] for line in lines}
    cancel = post(investor, f"/v1/withdrawals/{withdrawal_id}/cancellation")
    assert (cancel.status_code, _problem(cancel)) == (409, "/problems/withdrawal-not-cancellable")


def test_a_withdrawal_short_of_money_is_refused_and_nothing_is_written(money: Money, users: Users):
    """REQ-38: no payout without prefunded money."""
    account_id = money.verified_account("issuer")
    before = money.balances("issuer")
    listed_before = users.client("issuer").get("/v1/withdrawals").json()

    response = money.withdraw("issuer", account_id, before["available"] + 1)

    assert (response.status_code, _problem(response)) == (422, "/problems/insufficient-funds")
    assert money.balances("issuer") == before
    assert users.client("issuer").get("/v1/withdrawals").json() == listed_before


def test_a_bank_that_does_not_answer_is_asked_again_and_pays_once(money: Money, users: Users, settings: Settings):
    money.deposit("other_investor", 500_00)
    account_id = money.verified_account("other_investor")
    withdrawal = money.withdraw("other_investor", account_id, 120_00).json()
    bank_before = money.bank.balance_tiyn(settings.operator_client_money_iban)

    money.bank.down = True
    try:
        unanswered = money.submit()
        waiting = users.client("other_investor").get(f"/v1/withdrawals/{withdrawal['id']}").json()
        cancel = post(users.client("other_investor"), f"/v1/withdrawals/{withdrawal['id']}/cancellation")
    finally:
        money.bank.down = False
    resent = money.submit()

    assert (unanswered["runs_unanswered"], unanswered["withdrawals_sent"]) == (1, 0)
    assert waiting["status"] == "submitted" and waiting["message_id"]
    assert cancel.status_code == 409
    assert (resent["runs_accepted"], resent["withdrawals_sent"]) == (1, 1)
    done = users.client("other_investor").get(f"/v1/withdrawals/{withdrawal['id']}").json()
    assert (done["status"], done["message_id"]) == ("sent", waiting["message_id"])
    assert money.bank.balance_tiyn(settings.operator_client_money_iban) == bank_before - 120_00


def test_an_investor_cancels_a_requested_withdrawal_and_its_money_is_released(money: Money, users: Users):
    money.deposit("investor", 50_00)
    account_id = money.verified_account("investor")
    before = money.balances("investor")
    withdrawal = money.withdraw("investor", account_id, 50_00).json()

    cancelled = post(users.client("investor"), f"/v1/withdrawals/{withdrawal['id']}/cancellation")

    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert money.balances("investor") == before


# --- ownership ----------------------------------------------------------------------------------------


def test_an_investor_cannot_see_or_touch_another_investors_bank_accounts_or_withdrawals(money: Money, users: Users):
    """REQ-54: another owner's objects are "not found", indistinguishable from ids that do not exist."""
    money.deposit("investor", 10_00)
    account_id = money.verified_account("investor")
    withdrawal = money.withdraw("investor", account_id, 10_00).json()
    stranger = users.client("other_investor")
    try:
        reads = [
            stranger.get(f"/v1/withdrawals/{withdrawal['id']}"),
            stranger.get(f"/v1/bank-accounts/{account_id}"),
            stranger.get("/v1/withdrawals", params={"party_id": str(users["investor"].party_id)}),
            stranger.get("/v1/bank-accounts", params={"party_id": str(users["investor"].party_id)}),
            stranger.get("/v1/payment-reference", params={"party_id": str(users["investor"].party_id)}),
        ]
        writes = [
            post(stranger, f"/v1/withdrawals/{withdrawal['id']}/cancellation"),
            post(stranger, f"/v1/bank-accounts/{account_id}/revocation", {"reason": "not mine"}),
            money.withdraw("other_investor", account_id, 1_00),
        ]
        missing = [
            stranger.get(f"/v1/withdrawals/{uuid.uuid4()}"),
            stranger.get("/v1/bank-accounts/9000000000"),
        ]

        assert [r.status_code for r in reads + writes] == [404] * 8, [r.text for r in reads + writes]
        assert _problem(reads[0]) == _problem(missing[0]) == "/problems/withdrawal-not-found"
        assert _problem(reads[1]) == _problem(missing[1]) == "/problems/bank-account-not-found"
        own = users.client("investor")
        assert own.get(f"/v1/withdrawals/{withdrawal['id']}").json()["status"] == "requested"
        assert own.get(f"/v1/bank-accounts/{account_id}").json()["status"] == "verified"
        assert {w["party_id"] for w in stranger.get("/v1/withdrawals").json()} <= {str(users["other_investor"].party_id)}
        assert {a["party_id"] for a in stranger.get("/v1/bank-accounts").json()} <= {str(users["other_investor"].party_id)}
    finally:
        post(users.client("investor"), f"/v1/withdrawals/{withdrawal['id']}/cancellation")


def test_staff_verify_and_an_owner_revokes_a_bank_account_as_security_events(money: Money, users: Users):
    account_id = money.verified_account("issuer")
    by_investor = post(users.client("investor"), f"/v1/bank-accounts/{account_id}/verification", {"evidence": "x"})

    revoked = post(users.client("issuer"), f"/v1/bank-accounts/{account_id}/revocation", {"reason": "closed"})

    assert by_investor.status_code == 403
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
    kinds = {
        e["kind"] for e in users.client("auditor").get(
            "/v1/security-events", params={"subject": str(account_id), "kind": "bank_account.", "limit": 50}
        ).json()
    }
    assert {"bank_account.registered", "bank_account.verified", "bank_account.revoked"} <= kinds
