"""The daily checks, as pure functions of what the run gathered: each emission's coverage by its underlying
asset (REQ-30), each asset's books, the chain against the ledger, client money against the bank."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from dfa.custody.service.mirror import EmissionComparison
from dfa.issuance.custodian import CustodianStatement
from dfa.issuance.service.emissions import MonitoredEmission
from dfa.ledger.service import AssetIntegrity
from dfa.platform.errors import ExternalPartyUnavailable

# Coverage breaches the National Bank and the custodian are told of at once (REQ-31): the asset's value,
# existence or state no longer backs the emission. The others (a valuation missing, stale or not given)
# block the issuer all the same, because coverage is then unproven, but are for compliance to chase.
NOTIFIED_KINDS = frozenset({"shortfall", "asset_missing", "asset_encumbered", "asset_disputed"})

Answer = CustodianStatement | ExternalPartyUnavailable


def kzt(tiyn: int) -> str:
    sign = "-" if tiyn < 0 else ""
    return f"{sign}{abs(tiyn) // 100:,}.{abs(tiyn) % 100:02d} KZT"


@dataclass(frozen=True)
class CoverageFinding:
    """One emission's coverage: `status` is `covered` or the breach kind, `detail` says why."""

    emission: MonitoredEmission
    status: str
    required_value: int  # this emission's; `group_required` when its asset backs several emissions
    market_value: int | None
    valued_on: date | None
    statement_id: str | None
    shortfall: int | None
    detail: str


def coverage(
    emissions: list[MonitoredEmission], answers: dict[tuple[str, str], Answer], *, today: date, max_age_days: int
) -> list[CoverageFinding]:
    """Each backed emission's coverage. An asset backing several emissions must cover all of them at once,
    so each is judged against the sum of their required values."""
    backed = [e for e in emissions if e.custodian is not None]
    group_required: dict[tuple[str, str], int] = defaultdict(int)
    for emission in backed:
        group_required[(emission.custodian, emission.custodian_reference)] += emission.required_value
    findings = []
    for emission in backed:
        key = (emission.custodian, emission.custodian_reference)
        findings.append(_finding(emission, answers[key], required=group_required[key], today=today, max_age_days=max_age_days))
    return findings


def _finding(
    emission: MonitoredEmission, answer: Answer, *, required: int, today: date, max_age_days: int
) -> CoverageFinding:
    def found(status: str, detail: str, statement: CustodianStatement | None = None, shortfall: int | None = None):
        return CoverageFinding(
            emission, status, emission.required_value,
            statement.market_value if statement else None, statement.valued_on if statement else None,
            statement.statement_id if statement else None, shortfall, detail,
        )

    where = f"{emission.custodian} {emission.custodian_reference!r}"
    if isinstance(answer, ExternalPartyUnavailable):
        return found("custodian_unavailable", f"no statement from {where}: {answer.detail}")
    if not answer.exists:
        return found("asset_missing", f"the custodian keeps no asset under {where}", answer)
    if answer.legal_status != "clear":
        return found("asset_disputed", f"the custodian states the legal status as {answer.legal_status}", answer)
    if answer.encumbered:
        return found("asset_encumbered", f"encumbered: {'; '.join(answer.encumbrances)}", answer)
    if answer.market_value is None or answer.valued_on is None:
        return found("valuation_missing", f"{where} states no market value", answer)
    age_days = (today - answer.valued_on).days
    if age_days > max_age_days:
        return found(
            "valuation_stale", f"the valuation is of {answer.valued_on.isoformat()}, {age_days} days old "
            f"(at most {max_age_days})", answer,
        )
    if answer.market_value < required:
        short = required - answer.market_value
        return found(
            "shortfall", f"the market value {kzt(answer.market_value)} is {kzt(short)} short of the {kzt(required)} "
            f"required at ratio {emission.coverage_ratio.normalize():f}", answer, short,
        )
    return found("covered", f"{kzt(answer.market_value)} covers the {kzt(required)} required", answer)


@dataclass(frozen=True)
class LedgerFinding:
    integrity: AssetIntegrity
    emission: MonitoredEmission | None
    findings: list[str]

    @property
    def ok(self) -> bool:
        return not self.findings


def ledger(integrity: list[AssetIntegrity], emissions: dict[int, MonitoredEmission]) -> list[LedgerFinding]:
    """Each asset's books: zero sum, no negative balance, an intact journal, and for an emission
    outstanding = held here + on trading platforms (REQ-46)."""
    results = []
    for books in integrity:
        emission = emissions.get(books.asset_id)
        findings = []
        if books.balance_sum != 0:
            findings.append(f"the balances sum to {books.balance_sum}, not zero")
        if books.negative_balances:
            findings.append(f"{books.negative_balances} account(s) crossed their sign")
        if books.broken_entries:
            findings.append(f"{books.broken_entries} journal entr(ies) or transfer(s) fail their hash chain")
        if books.state_mismatches:
            findings.append(f"{books.state_mismatches} account(s) differ from their journal")
        if books.issued is not None and books.issued != books.holdings:
            findings.append(f"{books.issued} units in circulation but {books.holdings} held")
        if emission is not None:
            here = emission.outstanding_units - emission.platform_units
            if books.holdings != here:
                findings.append(
                    f"{emission.outstanding_units} units outstanding with {emission.platform_units} on trading "
                    f"platforms, so {here} should be held here, but {books.holdings} are"
                )
        results.append(LedgerFinding(books, emission, findings))
    return results


def chain_status(comparison: EmissionComparison | None) -> str:
    if comparison is None:
        return "unavailable"
    return "in_sync" if comparison.in_sync else "mismatch"
