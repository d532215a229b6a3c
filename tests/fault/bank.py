"""The bank workload (after Jepsen's "bank" test) and its checker.

A few client parties hold KZT and units of one emission; once funded, the money and units of the bank (every
client's available and held accounts, plus the operator's fee account that DvP fees go to) are a closed
system: per asset, their total never changes. Concurrent HTTP clients move value around inside it while the
server and the database are killed under them, and every client records what it was told:

- `ok`: a 2xx answer; the operation happened;
- `failed`: a 4xx answer, a definite refusal; the operation did not happen;
- `unknown`: no answer, a timeout or a 5xx; it may or may not have happened. The client retries the same
  operation later, with the same ids and the same Idempotency-Key, as a real client does (every attempt is
  recorded).

`check` then judges the recorded history against the journal read from the database afterwards. It is a pure
function over plain data, so a planted defect in either shows up as a violation.
"""

import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from dfa.ledger import service as ledger
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts
from tests.factories import make_party, new_asset_code
from tests.identity import cookie_of, create_user, sign_in

MONEY = "KZT"
REQUEST_TIMEOUT_S = 10.0
RETRY_PAUSE_S = (0.2, 2.0)  # first and longest pause before a client retries an unknown operation
RETRY_GRACE_S = 10.0  # how long after the run's end a client still retries an operation it is unsure of
READ_PAGE = 500


# --- the bank -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A signed-in caller of the API: its session cookie and CSRF token."""

    login: str
    party_id: uuid.UUID | None
    cookie: str
    csrf_token: str

    def http(self, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base_url,
            timeout=REQUEST_TIMEOUT_S,
            headers={"Cookie": f"dfa_session={self.cookie}", "X-CSRF-Token": self.csrf_token},
        )


@dataclass(frozen=True)
class Bank:
    """The accounts whose total per asset is constant, and who may move value between them."""

    emission: str
    admin: Client
    investors: list[Client]
    accounts: dict[int, tuple[uuid.UUID, str, str]]  # account id -> (owner party, asset code, kind)
    available: dict[tuple[uuid.UUID, str], int]  # (party, asset code) -> available account id
    totals: dict[str, int]  # asset code -> the constant total


def _signed_in(base_url: str, login: str, party_id: uuid.UUID | None, totp_secret: str | None = None) -> Client:
    response = sign_in(base_url, login, totp_secret=totp_secret)
    if response.status_code != 200:
        raise RuntimeError(f"{login} could not sign in: {response.status_code} {response.text}")
    return Client(login, party_id, cookie_of(response), response.json()["csrf_token"])


async def open_bank(
    database: Database, settings: Settings, base_url: str, *, parties: int, money_each: int, units_each: int
) -> Bank:
    """Create an operator administrator and `parties` investors, signed in through the API, and fund each
    investor once with `money_each` tiyn of client money and `units_each` units of a new emission."""
    admin_login, _, _, admin_secret = await create_user(database, settings, role="operator_admin")
    investors = [await create_user(database, settings, role="investor") for _ in range(parties)]
    emission = new_asset_code("BANK")
    bank_accounts: dict[int, tuple[uuid.UUID, str, str]] = {}
    available: dict[tuple[uuid.UUID, str], int] = {}
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)
        await ledger.create_asset(session, code=emission, kind="dfa", scale=0, name="Bank test emission")
        issuer = await make_party(session, kind="legal_entity", name="Bank test issuer")
        issued = await ledger.open_account(
            session, owner_party_id=issuer.id, asset_code=emission, kind="issued", settings=settings
        )
        client_money = await accounts.operator_account(session, kind="client_money", settings=settings)
        fees = await accounts.operator_account(session, kind="fees", settings=settings)
        bank_accounts[fees.id] = (fees.owner_party_id, MONEY, "fees")
        totals = {MONEY: fees.balance, emission: 0}
        for _, _, party_id, _ in investors:
            for code, source, amount in ((MONEY, client_money, money_each), (emission, issued, units_each)):
                holding = await accounts.holder_account(session, party_id=party_id, asset_code=code, settings=settings)
                held = await ledger.find_account(session, owner_party_id=party_id, asset_id=holding.asset_id, kind="held")
                assert held is not None, "an available account opens with its held twin"
                await ledger.post_transfer(
                    session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, holding.id, amount, reference="funding")
                )
                bank_accounts[holding.id] = (party_id, code, "available")
                bank_accounts[held.id] = (party_id, code, "held")
                available[(party_id, code)] = holding.id
                totals[code] += amount
    admin = await asyncio.to_thread(_signed_in, base_url, admin_login, None, admin_secret)
    clients = [await asyncio.to_thread(_signed_in, base_url, login, party_id) for login, _, party_id, _ in investors]
    return Bank(emission, admin, clients, bank_accounts, available, totals)


# --- what the clients did -------------------------------------------------------------------------------


@dataclass
class Attempt:
    step: str  # transfer, seller_side, buyer_side, cancellation or read
    outcome: str  # ok, failed or unknown
    status: int | None
    detail: str  # the problem type of a refusal, or what went wrong on the way
    started_s: float
    ended_s: float


@dataclass
class Operation:
    """One client operation: a KZT transfer, a DvP trade or a read of every balance."""

    id: str  # also the transfer's or the trade's reference, which is how the checker finds it in the journal
    kind: str  # transfer, dvp or read
    parameters: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "unknown"
    balances: dict[int, int] | None = None  # what an ok read saw, for the bank's accounts


@dataclass
class History:
    operations: list[Operation] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)  # (seconds into the run, what was done)
    duration_s: float = 0.0

    def save(self, path: Path) -> None:
        """Keep the history beside the logs, for whoever wants to see what a verdict was based on."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1, default=str) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Reply:
    outcome: str
    status: int | None
    body: Any
    detail: str


def _classify(response: httpx.Response) -> Reply:
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    status = response.status_code
    detail = body.get("type", "").removeprefix("/problems/") if isinstance(body, dict) and status >= 400 else ""
    if 200 <= status < 300:
        return Reply("ok", status, body, detail)
    if 400 <= status < 500:
        return Reply("failed", status, body, detail)
    return Reply("unknown", status, body, detail)


class Workload:
    """Concurrent clients doing transfers, DvP trades and reads against the bank until told to stop."""

    def __init__(self, bank: Bank, base_url: str, *, clients: int, mix: dict[str, float], seed: int) -> None:
        self.bank = bank
        self.base_url = base_url
        self.clients = clients
        self.mix = mix
        self.seed = seed
        self.run = uuid.uuid4().hex[:8]
        self.history = History()
        self.served = 0  # ok answers so far, to tell whether the platform is serving again after a fault
        self._serial = 0
        self._started = time.monotonic()
        self._stopped_at: float | None = None

    async def execute(self, driver: Coroutine[Any, Any, None]) -> History:
        """Run the clients until `driver` (the faults, or just a wait) is done; return what they saw."""
        self._started = time.monotonic()
        self._http = {client.login: client.http(self.base_url) for client in [self.bank.admin, *self.bank.investors]}
        clients = [asyncio.create_task(self._client(n)) for n in range(self.clients)]
        try:
            await driver
        finally:
            self._stopped_at = time.monotonic()
            await asyncio.gather(*clients, return_exceptions=True)
            for http in self._http.values():
                await http.aclose()
        self.history.duration_s = self._stopped_at - self._started
        for client in clients:
            client.result()  # a client that failed fails the run
        return self.history

    async def calm(self, seconds: float, *, served: int = 20, patience_s: float = 60.0) -> None:
        """Let the clients work undisturbed for `seconds`, and until `served` of their requests were answered
        ok since (or `patience_s` passed: a platform that never serves again is the checker's to judge)."""
        started, before = time.monotonic(), self.served
        await asyncio.sleep(seconds)
        while self.served - before < served and time.monotonic() - started < patience_s:
            await asyncio.sleep(0.1)

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def _stopping(self) -> bool:
        return self._stopped_at is not None

    def _operation(self, kind: str, **parameters: Any) -> Operation:
        self._serial += 1
        operation = Operation(f"{self.run}-{kind[0]}{self._serial}", kind, parameters)
        self.history.operations.append(operation)
        return operation

    async def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 1_000 + number)
        kinds, weights = zip(*self.mix.items(), strict=True)
        while not self._stopping():
            kind = rng.choices(kinds, weights)[0]
            if kind == "transfer":
                await self._transfer(rng)
            elif kind == "dvp":
                await self._dvp(rng)
            else:
                await self._read()

    async def _send(
        self, operation: Operation, step: str, who: Client, method: str, path: str, body: Any = None, *, retry: bool = True
    ) -> Reply:
        """Send one step, again with the same key and body while the answer is unknown (until the grace period
        after the run's end is over)."""
        key = str(uuid.uuid4()) if method != "GET" else None
        headers = {"Idempotency-Key": key} if key else {}
        pause_s = RETRY_PAUSE_S[0]
        while True:
            started_s = self.elapsed_s()
            try:
                response = await self._http[who.login].request(method, path, json=body, headers=headers)
            except httpx.HTTPError as error:  # refused, reset or timed out: the server may or may not have acted
                reply = Reply("unknown", None, None, type(error).__name__)
            else:
                reply = _classify(response)
            operation.attempts.append(
                Attempt(step, reply.outcome, reply.status, reply.detail, started_s, self.elapsed_s())
            )
            self.served += reply.outcome == "ok"
            given_up = self._stopped_at is not None and time.monotonic() > self._stopped_at + RETRY_GRACE_S
            if reply.outcome != "unknown" or not retry or given_up:
                return reply
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, RETRY_PAUSE_S[1])

    async def _transfer(self, rng: random.Random) -> None:
        payer, payee = rng.sample(self.bank.investors, 2)
        amount = rng.randint(1, self.bank.totals[MONEY] // len(self.bank.investors) // 3)
        operation = self._operation(
            "transfer", transfer_id=str(uuid.uuid4()), debit=self.bank.available[(payer.party_id, MONEY)],
            credit=self.bank.available[(payee.party_id, MONEY)], amount=amount,
        )
        body = {
            "id": operation.parameters["transfer_id"], "debit_account_id": operation.parameters["debit"],
            "credit_account_id": operation.parameters["credit"], "amount": amount, "reference": operation.id,
        }
        reply = await self._send(operation, "transfer", self.bank.admin, "POST", "/v1/ledger/transfers", body)
        operation.outcome = reply.outcome

    async def _dvp(self, rng: random.Random) -> None:
        """A DvP through the settlement engine: the seller's side holds its units, the buyer's side holds the
        money and matches, and the engine settles both legs (and the fee) in one transaction. A buyer's
        refusal leaves the seller's side waiting, so the seller cancels it and gets its units back."""
        seller, buyer = rng.sample(self.bank.investors, 2)
        units = rng.randint(1, 20)
        value = units * rng.randint(100, 5_000)
        operation = self._operation(
            "dvp", seller=str(seller.party_id), buyer=str(buyer.party_id), units=units, value=value
        )
        units_leg = {"asset": self.bank.emission, "amount": units}
        money_leg = {"asset": MONEY, "amount": value}
        side = await self._send(
            operation, "seller_side", seller, "POST", "/v1/settlement-instructions",
            {"counterparty_id": str(buyer.party_id), "deliver": units_leg, "receive": money_leg, "reference": operation.id},
        )
        if side.outcome != "ok":
            operation.outcome = side.outcome
            return
        instruction_id = side.body["id"]
        operation.parameters["instruction_id"] = instruction_id
        matched = await self._send(
            operation, "buyer_side", buyer, "POST", "/v1/settlement-instructions",
            {"counterparty_id": str(seller.party_id), "deliver": money_leg, "receive": units_leg, "reference": operation.id},
        )
        operation.outcome = matched.outcome
        if matched.outcome == "ok":
            operation.parameters["status"] = matched.body["status"]
        elif matched.outcome == "failed":
            await self._send(
                operation, "cancellation", seller, "POST", f"/v1/settlement-instructions/{instruction_id}/cancellation",
                {"reason": "the counterparty could not pay"},
            )

    async def _read(self) -> None:
        operation = self._operation("read")
        reply = await self._send(
            operation, "read", self.bank.admin, "GET", f"/v1/ledger/accounts?limit={READ_PAGE}", retry=False
        )
        operation.outcome = reply.outcome
        if reply.outcome == "ok":
            if len(reply.body) >= READ_PAGE:
                raise RuntimeError("the bank's accounts no longer fit in one page; raise READ_PAGE")
            operation.balances = {a["id"]: a["balance"] for a in reply.body if a["id"] in self.bank.accounts}


# --- faults ----------------------------------------------------------------------------------------------


def faults_in_turn(*, app_kills: int, postgres_restarts: int) -> list[str]:
    """The faults of a run in the order they come: the database restarts spread among the kills."""
    count = app_kills + postgres_restarts
    kinds = ["kill"] * count
    for n in range(postgres_restarts):
        kinds[(2 * n + 1) * count // (2 * postgres_restarts)] = "postgres"
    return kinds


async def inflict(
    workload: Workload, faults: list[str], *, process: Any, cluster: Any, calm_s: float, down_s: float = 1.0
) -> None:
    """The faults, one after the other, each once the clients have been served for `calm_s` seconds since the
    last: "kill" kills the platform process with SIGKILL and starts it again; "postgres" stops PostgreSQL at
    once, keeps it down for `down_s` seconds and starts it again (the platform, left running, must recover by
    itself). Ends after a last calm period, so the clients' retries can settle what the last fault left unknown."""
    for kind in faults:
        await workload.calm(calm_s)
        workload.history.faults.append((round(workload.elapsed_s(), 1), kind))
        if kind == "kill":
            await asyncio.to_thread(process.restart)
        else:
            await asyncio.to_thread(cluster.restart_immediately, down_s=down_s)
            await asyncio.to_thread(process.wait_ready)
    await workload.calm(calm_s)


# --- the journal as the database holds it after the run -----------------------------------------------------


@dataclass
class Journal:
    """What the checker needs from the database, read after the run."""

    transfers: dict[str, list[dict[str, Any]]]  # reference -> the plain transfers carrying it
    instructions: dict[str, list[dict[str, Any]]]  # reference -> settlement instructions, with their posted legs
    balances: dict[int, int]  # the bank's accounts' stored balances
    replay_mismatches: list[dict[str, Any]]  # accounts whose stored balance is not the sum of their entries
    unpaired_transfers: int  # transfers without exactly two entries that sum to zero
    verification: dict[str, Any]  # the ledger's own verification, as GET /v1/ledger/verification answered


async def read_journal(database: Database, bank: Bank, run: str, verification: dict[str, Any]) -> Journal:
    """Read the journal: every transfer and instruction of this run (by its reference), and a replay of every
    account's balance from its entries, computed here in SQL rather than by the ledger's own verification."""
    async with database.read() as session:
        transfers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in await session.execute(
            text(
                "SELECT reference, id, debit_account_id, credit_account_id, amount FROM ledger_transfers "
                "WHERE kind = 'transfer' AND reference LIKE :run"
            ),
            {"run": f"{run}-%"},
        ):
            transfers[row.reference].append(dict(row._mapping))
        instructions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in await session.execute(
            text(
                """
                SELECT i.reference, i.id, i.status, i.first_amount, i.second_amount, i.first_fee + i.second_fee AS fee,
                       i.second_fee AS buyer_fee,
                       count(t.id) AS legs, coalesce(sum(t.amount) FILTER (WHERE t.hold_id = i.first_hold_id), 0)
                           AS units_posted,
                       coalesce(sum(t.amount) FILTER (WHERE t.hold_id = i.second_hold_id), 0) AS money_posted
                FROM settlement_instructions i
                LEFT JOIN ledger_transfers t
                    ON t.kind = 'post' AND t.hold_id IN (i.first_hold_id, i.second_hold_id)
                WHERE i.reference LIKE :run
                GROUP BY i.id
                """
            ),
            {"run": f"{run}-%"},
        ):
            instructions[row.reference].append(dict(row._mapping))
        balances = {
            row.id: row.balance
            for row in await session.execute(
                text("SELECT id, balance FROM ledger_accounts WHERE id = ANY (CAST(:ids AS bigint[]))"),
                {"ids": list(bank.accounts)},
            )
        }
        replay = [
            dict(row._mapping)
            for row in await session.execute(
                text(
                    """
                    SELECT a.id AS account_id, a.balance AS stored, coalesce(sum(e.amount), 0) AS replayed
                    FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
                    GROUP BY a.id HAVING a.balance <> coalesce(sum(e.amount), 0)
                    """
                )
            )
        ]
        unpaired = (
            await session.execute(
                text(
                    """
                    SELECT count(*) FROM ledger_transfers t
                    LEFT JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(e.amount), 0) AS total
                                       FROM ledger_entries e WHERE e.transfer_id = t.id) e ON true
                    WHERE e.n <> 2 OR e.total <> 0
                    """
                )
            )
        ).scalar_one()
    return Journal(dict(transfers), dict(instructions), balances, replay, unpaired, verification)


# --- the checker ------------------------------------------------------------------------------------------


@dataclass
class Findings:
    figures: dict[str, Any]
    violations: list[str]


MAX_EXAMPLES = 20  # violations described in words per kind; all of them are counted


def check(history: History, journal: Journal, bank: Bank) -> Findings:
    """Judge the history against the journal. Violations:

    - a read whose bank total of some asset differs from the constant total, or a negative balance (in a read
      or at the end);
    - an acknowledged (ok) operation not in the journal exactly once; an unknown one in it more than once; a
      failed one in it at all; a DvP with some but not all of its legs posted;
    - a stored balance that is not the sum of its account's entries, a transfer without its two entries, and
      the ledger's own verification reporting a discrepancy.
    """
    violations: dict[str, list[str]] = defaultdict(list)

    def violation(kind: str, description: str) -> None:
        violations[kind].append(description)

    reads = [o for o in history.operations if o.kind == "read" and o.balances is not None]
    for read in reads:
        for code, total in sorted(_totals(read.balances, bank).items()):
            if total != bank.totals[code]:
                violation("read_sum_violations", f"read {read.id} saw {code} total {total}, not {bank.totals[code]}")
        for account_id, balance in read.balances.items():
            if balance < 0:
                violation("negative_balances", f"read {read.id} saw account {account_id} at {balance}")
    for code, total in sorted(_totals(journal.balances, bank).items()):
        if total != bank.totals[code]:
            violation("final_sum_violations", f"at the end the {code} total is {total}, not {bank.totals[code]}")
    for account_id, balance in journal.balances.items():
        if balance < 0:
            violation("negative_balances", f"account {account_id} ends at {balance}")

    for operation in history.operations:
        if operation.kind == "transfer":
            _check_transfer(operation, journal.transfers.get(operation.id, []), violation)
        elif operation.kind == "dvp":
            _check_dvp(operation, journal.instructions.get(operation.id, []), violation)

    for mismatch in journal.replay_mismatches:
        violation(
            "replay_mismatches",
            f"account {mismatch['account_id']} stores {mismatch['stored']} but its entries sum to {mismatch['replayed']}",
        )
    if journal.unpaired_transfers:
        violation("unpaired_transfers", f"{journal.unpaired_transfers} transfers lack their two balancing entries")
    if not journal.verification.get("ok"):
        violation("verification_failures", f"the ledger's verification reports {journal.verification.get('first_discrepancy')}")

    kinds = Counter(o.kind for o in history.operations)
    changes = [o for o in history.operations if o.kind != "read"]
    outcomes = Counter(o.outcome for o in changes)
    figures = {
        "operations": len(changes),
        "ok": outcomes["ok"],
        "failed": outcomes["failed"],
        "unknown": outcomes["unknown"],
        "transfers": kinds["transfer"],
        "dvps": kinds["dvp"],
        "dvps_settled": sum(1 for o in history.operations if o.kind == "dvp" and o.parameters.get("status") == "settled"),
        "reads": len(reads),
        "attempts": sum(len(o.attempts) for o in history.operations),
        "retries": sum(len(o.attempts) - len({a.step for a in o.attempts}) for o in changes),
        "unknown_attempts": sum(a.outcome == "unknown" for o in history.operations for a in o.attempts),
    }
    for kind in (
        "read_sum_violations", "final_sum_violations", "negative_balances", "lost_acknowledged", "duplicates",
        "failed_applied", "partial_dvps", "replay_mismatches", "unpaired_transfers", "verification_failures",
    ):
        figures[kind] = len(violations.get(kind, []))
    described = [
        f"{kind}: {text_}" for kind, found in sorted(violations.items()) for text_ in found[:MAX_EXAMPLES]
    ]
    return Findings(figures, described)


def _totals(balances: dict[int, int], bank: Bank) -> dict[str, int]:
    totals = dict.fromkeys(bank.totals, 0)
    for account_id, balance in balances.items():
        totals[bank.accounts[account_id][1]] += balance
    return totals


def _check_transfer(operation: Operation, found: list[dict[str, Any]], violation) -> None:
    expected = operation.parameters
    if operation.outcome == "ok":
        if not found:
            violation("lost_acknowledged", f"transfer {operation.id} was acknowledged but is not in the journal")
        elif any(
            (t["debit_account_id"], t["credit_account_id"], t["amount"]) != (expected["debit"], expected["credit"], expected["amount"])
            for t in found
        ):
            violation("lost_acknowledged", f"transfer {operation.id} is in the journal with other terms: {found}")
    if operation.outcome == "failed" and found:
        violation("failed_applied", f"transfer {operation.id} was refused but is in the journal")
    if len(found) > 1:
        violation("duplicates", f"transfer {operation.id} is in the journal {len(found)} times")


def _check_dvp(operation: Operation, found: list[dict[str, Any]], violation) -> None:
    """A DvP's legs are the hold posts of its instruction: the units to the buyer, the money to the seller and,
    when there is one, the fee to the operator; all of them or none."""
    settled = [i for i in found if i["status"] == "settled"]
    for instruction in found:
        expected_legs = 3 if instruction["fee"] else 2
        if instruction["legs"] not in (0, expected_legs) or (instruction["legs"] > 0) != (instruction["status"] == "settled"):
            violation(
                "partial_dvps",
                f"DvP {operation.id}: instruction {instruction['id']} is {instruction['status']} with "
                f"{instruction['legs']} of its {expected_legs} legs posted",
            )
        elif instruction["legs"] and (instruction["units_posted"], instruction["money_posted"]) != (
            operation.parameters["units"], operation.parameters["value"] + instruction["buyer_fee"]
        ):
            violation("partial_dvps", f"DvP {operation.id}: legs of other amounts posted: {instruction}")
    if operation.outcome == "ok" and not settled:
        violation("lost_acknowledged", f"DvP {operation.id} was acknowledged but did not settle")
    if operation.outcome == "failed" and settled:
        violation("failed_applied", f"DvP {operation.id} was refused but settled")
    if len(found) > 1:
        violation("duplicates", f"DvP {operation.id} has {len(found)} instructions")
