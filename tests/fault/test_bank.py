"""The bank test under crashes: money and units are never created, lost or moved twice, whatever is killed.

What is run: the platform in a process of its own on a PostgreSQL cluster of the test's own. Six investors
are funded once with KZT and units of one emission; from then on, the total per asset of their accounts (and
of the operator's fee account) is constant. Eight concurrent HTTP clients make KZT
transfers (`POST /v1/ledger/transfers`, each with its own transfer id), DvP trades and reads of every balance
in one request (`GET /v1/ledger/accounts`) for about half a minute, while the platform process is killed with
SIGKILL and started again three times and PostgreSQL is stopped at once (`pg_ctl stop -m immediate`) and
started again once; each fault comes once the clients have been served again for three seconds.

The DvP trades go through the settlement engine (`POST /v1/settlement-instructions`, the seller's side then
the buyer's), not a hand-made ledger batch: that is how trades really settle, holds, matching, the fee and
the one transaction that posts both legs included, so that path is the one worth crashing.

What is checked (`tests/fault/bank.py`): every read sums to the constant totals and no balance is ever
negative; every acknowledged operation is in the journal exactly once, every unknown one at most once, every
refused one not at all, and every DvP has all its legs or none; every stored balance equals the sum of its
account's journal entries (computed by the test in SQL), and the ledger's own verification is clean. The same
checker is run against a deliberately broken ledger (unlocked read-modify-write) and must find lost updates.

The long form (32 clients, twelve investors, twenty kills and ten database restarts, five seconds apart at
least: about five minutes) runs with
`.venv/bin/pytest tests/fault --long-form`.
"""

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfa.platform import faults
from dfa.platform.database import Database
from tests.evidence import record
from tests.fault.bank import (
    Bank,
    Findings,
    History,
    Journal,
    Operation,
    Workload,
    check,
    faults_in_turn,
    inflict,
    open_bank,
    read_journal,
)
from tests.fault.cluster import (
    LOG_DIR,
    PlatformProcess,
    PostgresCluster,
    platform_process,
    platform_settings,
    postgres_cluster,
    unique_name,
    warm_up,
)

pytestmark = pytest.mark.fault

MONEY_EACH = 10_000_000  # 100 000.00 KZT
UNITS_EACH = 10_000


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    warm_up()
    with postgres_cluster("bank") as cluster:
        yield cluster


async def _verification(bank: Bank, process: PlatformProcess) -> dict:
    async with bank.admin.http(process.url) as http:
        response = await http.get("/v1/ledger/verification")
    assert response.status_code == 200, response.text
    return response.json()


async def _judge(bank: Bank, process: PlatformProcess, workload: Workload) -> Findings:
    """The checker's verdict on the run, from a connection of its own (the setup's did not survive the
    database's restarts)."""
    database = Database.from_url(process.values["database_url"], process.settings())
    try:
        journal = await read_journal(database, bank, workload.run, await _verification(bank, process))
    finally:
        await database.dispose()
    return check(workload.history, journal, bank)


async def _opened_bank(process: PlatformProcess, *, parties: int) -> Bank:
    database = Database.from_url(process.values["database_url"], process.settings())
    try:
        return await open_bank(
            database, process.settings(), process.url, parties=parties, money_each=MONEY_EACH, units_each=UNITS_EACH
        )
    finally:
        await database.dispose()


async def test_req56_req57_the_bank_keeps_its_totals_and_every_answer_through_crashes(
    cluster: PostgresCluster, tmp_path: Path, long_form: bool
):
    """REQ-56 (information neither lost nor altered when the server or the database dies) and REQ-57 (a
    transaction the platform acknowledged happened, exactly once; one it refused did not)."""
    clients, calm_s, kills, restarts = (32, 5.0, 20, 10) if long_form else (8, 3.0, 3, 1)
    seed = random.randrange(10**6)
    settings = platform_settings(database_url=cluster.create_database(unique_name("bank")), data_dir=tmp_path / "data")
    with platform_process("bank", settings=settings) as process:
        bank = await _opened_bank(process, parties=12 if long_form else 6)
        workload = Workload(bank, process.url, clients=clients, mix={"transfer": 0.5, "dvp": 0.3, "read": 0.2}, seed=seed)
        faults_ = faults_in_turn(app_kills=kills, postgres_restarts=restarts)
        history = await workload.execute(inflict(workload, faults_, process=process, cluster=cluster, calm_s=calm_s))
        history.save(LOG_DIR / "bank-history.json")
        findings = await _judge(bank, process, workload)
        app_kills = process.kills

    record(
        "bank-under-crashes",
        title="The bank test under crashes: no money or units created, lost or moved twice",
        requirements=["REQ-56", "REQ-57"],
        method=(
            f"{clients} concurrent HTTP clients made KZT transfers, DvP trades through the settlement engine and "
            f"reads of every balance for {history.duration_s:.0f} s while the platform process was killed with SIGKILL "
            f"{app_kills} times and PostgreSQL was stopped immediately {cluster.restarts} times; the recorded "
            "answers were then checked against the journal and a replay of every balance from its entries."
        ),
        form="long" if long_form else "short",
        figures={
            "clients": clients,
            "duration_s": round(history.duration_s, 1),
            **findings.figures,
            "app_kills": app_kills,
            "postgres_restarts": cluster.restarts,
            "faults": ", ".join(f"{kind}@{at_s}s" for at_s, kind in history.faults),
            "seed": seed,
        },
        violations=findings.violations,
    )
    assert findings.violations == []
    assert app_kills >= kills and cluster.restarts >= restarts
    assert findings.figures["ok"] > 0 and findings.figures["dvps_settled"] > 0 and findings.figures["reads"] > 0
    assert findings.figures["unknown_attempts"] > 0, "the faults were not felt by any client"


async def test_the_checker_finds_lost_updates_in_a_ledger_that_reads_balances_without_locks(
    cluster: PostgresCluster, tmp_path: Path
):
    """The same workload and checker against a ledger that reads balances without locking them and writes back
    what it computed (`DFA_FAULTS=naive_read_modify_write`): with three accounts and eight clients, concurrent
    transfers overwrite each other's balance updates, and the checker must say so."""
    settings = platform_settings(
        database_url=cluster.create_database(unique_name("bank_naive")), data_dir=tmp_path / "data"
    )
    with platform_process("bank-naive", settings=settings, faults=faults.NAIVE_READ_MODIFY_WRITE) as process:
        bank = await _opened_bank(process, parties=3)
        for round_ in range(20):  # in practice the first round shows it; the bound only keeps a bad day finite
            workload = Workload(bank, process.url, clients=8, mix={"transfer": 0.8, "read": 0.2}, seed=round_)
            await workload.execute(workload.calm(3.0))
            findings = await _judge(bank, process, workload)
            if findings.violations:
                break

    lost_updates = (
        findings.figures["read_sum_violations"] + findings.figures["final_sum_violations"]
        + findings.figures["replay_mismatches"]
    )
    assert lost_updates > 0, (round_, findings.figures)


def test_the_checker_reports_each_kind_of_violation_planted_in_a_history():
    """The checker's every rule, on a small history and journal with one planted defect each: an acknowledged
    transfer missing from the journal, a refused one in it, an unknown one in it twice, a DvP with one of its two
    legs, a read whose total is off, a negative balance, a balance its entries do not add up to, an unclean
    verification."""
    party = uuid.uuid4()
    bank = Bank(
        emission="E", admin=None, investors=[],  # type: ignore[arg-type]
        accounts={1: (party, "KZT", "available"), 2: (party, "KZT", "available"), 3: (party, "E", "available")},
        available={}, totals={"KZT": 100, "E": 10},
    )
    transfer = {"debit": 1, "credit": 2, "amount": 5}
    row = {"debit_account_id": 1, "credit_account_id": 2, "amount": 5}
    history = History(operations=[
        Operation("lost", "transfer", transfer, outcome="ok"),
        Operation("refused", "transfer", transfer, outcome="failed"),
        Operation("twice", "transfer", transfer, outcome="unknown"),
        Operation("half", "dvp", {"units": 1, "value": 10}, outcome="unknown"),
        Operation("read", "read", {}, outcome="ok", balances={1: 60, 2: 41, 3: 10}),
        Operation("negative", "read", {}, outcome="ok", balances={1: 101, 2: -1, 3: 10}),
    ])
    journal = Journal(
        transfers={"refused": [row], "twice": [row, row]},
        instructions={"half": [{"id": "i", "status": "pending", "fee": 0, "buyer_fee": 0, "legs": 1,
                                "units_posted": 1, "money_posted": 0}]},
        balances={1: 50, 2: 50, 3: 10},
        replay_mismatches=[{"account_id": 2, "stored": 50, "replayed": 49}],
        unpaired_transfers=0,
        verification={"ok": False, "first_discrepancy": {"check": "account_state"}},
    )

    figures = check(history, journal, bank).figures

    assert {kind: figures[kind] for kind in (
        "lost_acknowledged", "failed_applied", "duplicates", "partial_dvps", "read_sum_violations",
        "negative_balances", "replay_mismatches", "verification_failures", "final_sum_violations",
    )} == {
        "lost_acknowledged": 1, "failed_applied": 1, "duplicates": 1, "partial_dvps": 1, "read_sum_violations": 1,
        "negative_balances": 1, "replay_mismatches": 1, "verification_failures": 1, "final_sum_violations": 0,
    }
