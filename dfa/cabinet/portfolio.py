"""The investor's own pages: the portfolio (units of each emission and money, free and held, and the wallet
addresses), money in and out (how to deposit, bank accounts, withdrawals), account statements as CSV or PDF over
a period, and the proof that a holding is counted in the latest reconciliation report.

Only investors open them, and each sees its own party's things only: the pages call the ledger, custody, cash and
reconciliation services with the party scoping of their API routes, so another party's withdrawal or bank account
answers as one that does not exist. Forms post with the session's CSRF token and answer with a redirect back to
the page (post/redirect/get); a refusal re-renders the page with the reason next to the field and changes nothing.
"""

import contextlib
import csv
import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet import i18n
from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.pages import FormState, PageRoute, attempt, page, page_of
from dfa.custody.service import wallets
from dfa.issuance.errors import EmissionNotFound
from dfa.issuance.service import emissions
from dfa.issuance.service.holders import neutralised
from dfa.ledger import service as ledger
from dfa.ledger.errors import InsufficientFunds
from dfa.ledger.models import Account, Asset
from dfa.platform.access import Principal, Role, allow
from dfa.platform.errors import Category, DomainError
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from dfa.platform.types import ASSET_CODE_PATTERN
from dfa.platform.web import STATUS_OF_CATEGORY, AntiFraudCentreDep, KeysDep, SessionDep, SettingsDep
from dfa.reconciliation.errors import ProofNotFound
from dfa.reconciliation.exports import FONT, DejaVuPdf
from dfa.reconciliation.service import proofs
from dfa.settlement.errors import BankAccountHolderNameInvalid, BankAccountNotVerified
from dfa.settlement.iban import validate_kazakh_iban
from dfa.settlement.service import cash

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Investor = Annotated[Principal, Depends(allow(Role.INVESTOR))]
EmissionPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN)]
WithdrawalPath = Annotated[uuid.UUID, Path()]
# Read as typed, however malformed: a field the page cannot read is refused beside it, never with a bare 422.
FormText = Annotated[str, Form()]
STATEMENT_DAYS_MAX = 366
STATEMENT_FORMATS = ("csv", "pdf")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WHOLE = re.compile(r"[0-9]{1,18}")
UNREADABLE = STATUS_OF_CATEGORY[Category.INVALID]  # a form or a query the page could not read


# The investor's accounts


@dataclass(frozen=True)
class Position:
    """What the investor has of one asset: free to use, and held for open orders, subscriptions and withdrawals
    until they settle or are cancelled."""

    asset: Asset
    available: int
    held: int

    @property
    def total(self) -> int:
        return self.available + self.held


async def _accounts(session: AsyncSession, party_id: uuid.UUID | None, settings: Settings) -> list[Account]:
    """Every ledger account of the party (its available and held accounts in money and in each emission)."""
    found: list[Account] = []
    while True:
        batch = await ledger.list_accounts(
            session, owner_party_id=party_id, after=found[-1].id if found else None, limit=settings.page_size_max
        )
        found += batch
        if len(batch) < settings.page_size_max:
            return found


async def _assets(session: AsyncSession, accounts: list[Account]) -> dict[int, Asset]:
    return {asset_id: await ledger.get_asset_by_id(session, asset_id) for asset_id in {a.asset_id for a in accounts}}


async def _nominal(session: AsyncSession, asset: Asset) -> int | None:
    """The nominal value of one unit of the emission, in tiyn."""
    try:
        return (await emissions.get_emission(session, asset.code)).nominal
    except EmissionNotFound:  # units booked by hand in an asset no registered emission stands behind
        return None


async def _positions(session: AsyncSession, party_id: uuid.UUID | None, settings: Settings) -> list[Position]:
    """The party's positions, money first, then the emissions by registration number."""
    accounts = await _accounts(session, party_id, settings)
    assets = await _assets(session, accounts)
    balances = {(a.asset_id, a.kind): a.balance for a in accounts}
    positions = [
        Position(asset, balances.get((asset_id, "available"), 0), balances.get((asset_id, "held"), 0))
        for asset_id, asset in assets.items()
    ]
    return sorted(positions, key=lambda p: (p.asset.kind != "money", p.asset.code))


def _money(positions: list[Position]) -> Position | None:
    return next((p for p in positions if p.asset.kind == "money"), None)


# The portfolio


@router.get("/portfolio")
async def portfolio(request: Request, principal: Investor, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """What the investor holds: units of each emission and money, each free and held, and its wallet addresses
    (REQ-40; never a key: REQ-43)."""
    party_id = principal.party_scope(None)
    positions = await _positions(session, party_id, settings)
    holdings = [p for p in positions if p.asset.kind == "dfa" and p.total]
    addresses = await wallets.list_addresses(session, party_id=party_id, after=None, limit=settings.page_size_max)
    return page(
        request, "portfolio/portfolio.html", principal=principal, money=_money(positions), holdings=holdings,
        nominals={h.asset.code: await _nominal(session, h.asset) for h in holdings}, addresses=addresses,
    )


# Money in and out


async def _payment_reference(request: Request, party_id: uuid.UUID | None) -> str:
    """The reference the investor quotes when paying in. The first request creates it: a write of its own, which
    any later request reads back (as the API gives it)."""
    async with request.app.state.database.unit_of_work() as session:
        reference = await cash.payment_reference(session, party_id=party_id, settings=request.app.state.settings)
    return reference.reference


@router.get("/money")
async def money(
    request: Request, principal: Investor, session: SessionDep,
    before: Annotated[uuid.UUID | None, Query()] = None,
) -> HTMLResponse:
    """How to deposit, the investor's bank accounts and withdrawals, and the forms to register an account, to
    withdraw and to cancel a withdrawal not yet sent to the bank."""
    return await _money_page(request, session, principal, before=before)


async def _money_page(
    request: Request, session: AsyncSession, principal: Principal, *, before: uuid.UUID | None = None,
    refused: FormState | None = None, entered: dict[str, str] | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    settings = request.app.state.settings
    party_id = principal.party_scope(None)
    bank_accounts = await cash.list_bank_accounts(
        session, party_id=party_id, status=None, after=None, limit=settings.page_size_max
    )
    limit = settings.page_size(None)
    found = await cash.list_withdrawals(session, party_id=party_id, status=None, before=before, limit=limit + 1)
    withdrawals, older = page_of(found, limit, lambda withdrawal: withdrawal.id)
    return page(
        request, "portfolio/money.html", principal=principal, status_code=status_code,
        money=_money(await _positions(session, party_id, settings)),
        reference=await _payment_reference(request, party_id),
        client_money_iban=validate_kazakh_iban(settings.operator_client_money_iban),
        bank_bic=settings.operator_bank_bic, bank_accounts=bank_accounts, ibans={a.id: a.iban for a in bank_accounts},
        payees=[(str(a.id), a.iban) for a in bank_accounts if a.status == "verified"], withdrawals=withdrawals,
        before=before, older=older, new_withdrawal_id=uuid.uuid4(), entered=entered or {}, refused=refused,
    )


def _reason(refusal: DomainError) -> str:
    """The reason to show beside the field, in the visitor's language."""
    if isinstance(refusal, InsufficientFunds):
        return _("That is more than the money you have available.")
    return _(refusal.title)


@router.post("/money/bank-accounts")
async def register_bank_account(
    request: Request, principal: Investor, session: SessionDep, settings: SettingsDep, iban: FormText = "",
    holder_name: FormText = "",
) -> Response:
    """Register a bank account of the investor's own, where withdrawals go once it is verified."""
    refusal = await attempt(session, lambda: cash.register_bank_account(
        session, party_id=principal.party_scope(None), iban=iban, holder_name=holder_name, actor=principal.login,
        settings=settings,
    ))
    if refusal is None:
        return RedirectResponse("/money#bank-accounts", status_code=status.HTTP_303_SEE_OTHER)
    entered = {"iban": iban, "holder_name": holder_name}
    field = "holder_name" if isinstance(refusal, BankAccountHolderNameInvalid) else "iban"
    return await _money_page(
        request, session, principal, refused=FormState(field, entered[field], _reason(refusal)),
        entered=entered, status_code=STATUS_OF_CATEGORY[refusal.category],
    )


def _form_id(text: str) -> uuid.UUID:
    """The withdrawal's id the form was rendered with, so a form sent twice withdraws once; a new one if absent."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.uuid4()


@router.post("/money/withdrawals")
async def request_withdrawal(
    request: Request, principal: Investor, session: SessionDep, settings: SettingsDep, centre: AntiFraudCentreDep,
    bank_account_id: FormText = "", amount: FormText = "", withdrawal_id: FormText = "",
) -> Response:
    """Be paid out to a verified bank account of the investor's own; the amount is held at once (REQ-38)."""
    entered = {"bank_account_id": bank_account_id, "amount": amount}
    amount_tiyn = i18n.parse_tiyn(amount)
    if not _WHOLE.fullmatch(bank_account_id):
        refused = FormState("bank_account_id", "", _("Choose one of your verified bank accounts."))
    elif amount_tiyn is None:
        refused = FormState("amount", amount, _("Enter the amount in tenge, to the tiyn at most."))
    else:
        refusal = await attempt(session, lambda: cash.request_withdrawal(
            session, party_id=principal.party_scope(None), bank_account_id=int(bank_account_id),
            amount_tiyn=amount_tiyn, withdrawal_id=_form_id(withdrawal_id), actor=principal.login, centre=centre,
            settings=settings,
        ))
        if refusal is None:
            return RedirectResponse("/money#withdrawals", status_code=status.HTTP_303_SEE_OTHER)
        field = "bank_account_id" if isinstance(refusal, BankAccountNotVerified) else "amount"
        return await _money_page(
            request, session, principal, refused=FormState(field, entered[field], _reason(refusal)),
            entered=entered, status_code=STATUS_OF_CATEGORY[refusal.category],
        )
    return await _money_page(request, session, principal, refused=refused, entered=entered, status_code=UNREADABLE)


@router.post("/money/withdrawals/{withdrawal_id}/cancel")
async def cancel_withdrawal(
    request: Request, withdrawal_id: WithdrawalPath, principal: Investor, session: SessionDep
) -> Response:
    """Cancel a withdrawal not yet sent to the bank; its money is released."""
    refusal = await attempt(session, lambda: cash.cancel_withdrawal(
        session, withdrawal_id=withdrawal_id, actor=principal.login, visible_to=principal.owner_filter()
    ))
    if refusal is None:
        return RedirectResponse(f"/money#withdrawal-{withdrawal_id}", status_code=status.HTTP_303_SEE_OTHER)
    refused = FormState(f"withdrawal-{withdrawal_id}", "", _reason(refusal))
    return await _money_page(
        request, session, principal, refused=refused, status_code=STATUS_OF_CATEGORY[refusal.category]
    )


# Statements


@dataclass(frozen=True)
class Period:
    """A statement's days, first and last included, in the operator's time zone."""

    first: date
    last: date

    def bounds(self, zone: str) -> tuple[datetime, datetime]:
        """The instants the period opens and closes at: the first day's midnight and the midnight after the last."""
        tz = ZoneInfo(zone)
        return (datetime.combine(self.first, time.min, tzinfo=tz),
                datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=tz))


def _day(text: str) -> date | None:
    if not _ISO_DATE.fullmatch(text.strip()):
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _period(first_text: str, last_text: str, format: str, today: date) -> Period | FormState:
    """The period asked for, or why no statement is made of it: a statement covers past and present days, at most
    a year's worth, in one of the formats offered."""
    first, last = _day(first_text), _day(last_text)
    if first is None:
        return FormState("from", first_text, _("Enter the date as YYYY-MM-DD."))
    if last is None:
        return FormState("to", last_text, _("Enter the date as YYYY-MM-DD."))
    if last > today:
        return FormState("to", last_text, _("The period cannot end after today."))
    if last < first:
        return FormState("to", last_text, _("The period ends before it starts."))
    if (last - first).days >= STATEMENT_DAYS_MAX:
        return FormState("to", last_text, _("A statement covers at most %(days)s days.") % {"days": STATEMENT_DAYS_MAX})
    if format not in STATEMENT_FORMATS:
        return FormState("format", format, _("Choose CSV or PDF."))
    return Period(first, last)


@router.get("/statements")
async def statements(request: Request, principal: Investor, settings: SettingsDep) -> HTMLResponse:
    """The form that chooses a statement's period (this month so far, unless changed) and its format."""
    today = parties.local_today(settings)
    return page(
        request, "portfolio/statements.html", principal=principal, refused=None,
        entered={"from": today.replace(day=1).isoformat(), "to": today.isoformat(), "format": "csv"},
        days_max=STATEMENT_DAYS_MAX,
    )


@dataclass(frozen=True)
class StatementSection:
    """One of the investor's accounts over the period: its asset, whether it is the free or the held account, and
    its opening balance, movements and closing balance."""

    asset: Asset
    kind: str
    statement: ledger.AccountStatement


async def _sections(
    session: AsyncSession, party_id: uuid.UUID | None, settings: Settings, period: Period
) -> list[StatementSection]:
    """The party's accounts that had a balance or a movement in the period: money first, free before held."""
    accounts = await _accounts(session, party_id, settings)
    assets = await _assets(session, accounts)
    start, end = period.bounds(settings.timezone)
    found = await ledger.statement(session, account_ids=[a.id for a in accounts], start=start, end=end)
    sections = [
        StatementSection(assets[account.asset_id], account.kind, statement)
        for account, statement in zip(accounts, found, strict=True)
        if statement.entries or statement.opening or statement.closing
    ]
    return sorted(sections, key=lambda s: (s.asset.kind != "money", s.asset.code, s.kind != "available"))


@router.get("/statements/download")
async def download_statement(
    request: Request, principal: Investor, session: SessionDep, settings: SettingsDep,
    first: Annotated[str, Query(alias="from")] = "", last: Annotated[str, Query(alias="to")] = "",
    format: str = "csv",
) -> Response:
    """The statement of the investor's money and DFA accounts over the period, as a spreadsheet-safe CSV or a
    PDF in the visitor's language."""
    entered = {"from": first, "to": last, "format": format}
    period = _period(first, last, format, parties.local_today(settings))
    if isinstance(period, FormState):
        return page(
            request, "portfolio/statements.html", principal=principal, status_code=UNREADABLE, refused=period,
            entered=entered, days_max=STATEMENT_DAYS_MAX,
        )
    party_id = principal.party_scope(None)
    sections = await _sections(session, party_id, settings, period)
    if format == "csv":
        body, media_type = _statement_csv(sections, period, settings.timezone), "text/csv; charset=utf-8"
    else:
        holder = (await parties.get_party(session, party_id)).name
        body, media_type = _statement_pdf(sections, period, holder=holder, settings=settings), "application/pdf"
    filename = f"statement-{period.first.isoformat()}-{period.last.isoformat()}.{format}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _account_label(kind: str) -> str:
    return _("Available") if kind == "available" else _("Held")


def _movement(kind: str) -> str:
    """What a journal movement of this kind is, in the investor's words."""
    return {
        "transfer": _("Transfer"),
        "hold": _("Reserved"),
        "post": _("Settled from the reserve"),
        "void": _("Reserve released"),
        "expire": _("Reserve expired"),
    }[kind]


def _plain_amount(asset: Asset) -> Callable[[int], Decimal]:
    """Amounts as plain decimals a spreadsheet reads: tenge with a dot and two decimals, units as whole numbers."""
    return lambda value: Decimal(value).scaleb(-asset.scale)


def _csv_rows(sections: list[StatementSection], period: Period, zone: str) -> Iterator[list[Any]]:
    tz = ZoneInfo(zone)
    for section in sections:
        amount, account = _plain_amount(section.asset), [section.asset.code, _account_label(section.kind)]
        statement = section.statement
        yield [*account, period.first.isoformat(), _("Opening balance"), "", "", "", amount(statement.opening)]
        for entry in statement.entries:
            yield [
                *account, entry.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), _movement(entry.kind),
                entry.reference or "", amount(-entry.amount) if entry.amount < 0 else "",
                amount(entry.amount) if entry.amount > 0 else "", amount(entry.balance_after),
            ]
        yield [*account, period.last.isoformat(), _("Closing balance"), "", "", "", amount(statement.closing)]


def _statement_csv(sections: list[StatementSection], period: Period, zone: str) -> bytes:
    """One header row, then per account its opening balance, every movement and its closing balance. UTF-8 with a
    byte order mark (so Excel reads it as UTF-8), CRLF line ends; no cell can run as a formula, since references
    come from outside (a bank's entry references)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_("Asset"), _("Account"), _("Date"), _("Description"), _("Reference"), _("Debit"), _("Credit"),
                     _("Balance")])
    writer.writerows([neutralised(cell) for cell in row] for row in _csv_rows(sections, period, zone))
    return buffer.getvalue().encode("utf-8-sig")


_TABLE_PT = 7
_MOVEMENT_WIDTHS = (37, 28, 46, 23, 23, 23)


class _StatementPdf(DejaVuPdf):
    """The statement's pages, each footed with whose statement it is, its period and the page number."""

    def rows(self, rows: list[list[str]], *, widths: tuple[int, ...], headings: bool, right: frozenset[int]) -> None:
        """A table; amounts (columns in `right`) align right, and words longer than their column (references) break
        to fit."""
        self.set_font(FONT, "", _TABLE_PT)
        with self.table(
            col_widths=widths, text_align=tuple("RIGHT" if i in right else "LEFT" for i in range(len(widths))),
            line_height=_TABLE_PT / 2, first_row_as_headings=headings,
            borders_layout="ALL" if headings else "NONE",
        ) as table:
            for cells in rows:
                table.row(cells)
        self.ln(2)


def _statement_pdf(sections: list[StatementSection], period: Period, *, holder: str, settings: Settings) -> bytes:
    """The statement as a printable PDF in the visitor's language, amounts and dates as its people write them."""
    span = {"first": i18n.day(period.first), "last": i18n.day(period.last)}
    pdf = _StatementPdf(
        _("Statement of %(holder)s, %(first)s to %(last)s") % {"holder": holder, **span},
        numbering=_("Page %(page)s of %(pages)s"),
    )
    pdf.set_title(_("Account statement"))
    pdf.set_author(settings.operator_name)
    pdf.add_page()
    pdf.heading(_("Account statement"), size_pt=16)
    pdf.rows([
        [_("Operator"), f"{settings.operator_name}, {_('BIN')} {settings.operator_bin}"],
        [_("Account holder"), holder],
        [_("Period"), _("%(first)s to %(last)s") % span],
        [_("Prepared"), i18n.instant(datetime.now(UTC), settings.timezone)],
    ], widths=(40, 140), headings=False, right=frozenset())
    if not sections:
        pdf.paragraph(_("Your accounts had no balance and no movement in this period."))
    for section in sections:
        _pdf_section(pdf, section, settings.timezone)
    return bytes(pdf.output())


def _pdf_section(pdf: _StatementPdf, section: StatementSection, zone: str) -> None:
    in_money = section.asset.kind == "money"
    shown = i18n.tenge if in_money else i18n.units
    statement = section.statement
    title = f"{section.asset.code} · {_account_label(section.kind)}"
    pdf.heading(title if in_money else f"{title} ({_('units')})")
    movements = [
        [i18n.instant(entry.created_at, zone), _movement(entry.kind), entry.reference or i18n.NOTHING,
         shown(-entry.amount) if entry.amount < 0 else "", shown(entry.amount) if entry.amount > 0 else "",
         shown(entry.balance_after)]
        for entry in statement.entries
    ]
    pdf.rows([
        [_("Date"), _("Description"), _("Reference"), _("Debit"), _("Credit"), _("Balance")],
        ["", _("Opening balance"), "", "", "", shown(statement.opening)],
        *movements,
        ["", _("Closing balance"), "", "", "", shown(statement.closing)],
    ], widths=_MOVEMENT_WIDTHS, headings=True, right=frozenset({3, 4, 5}))


# Proofs of holding


@router.get("/proofs/{registration_number}")
async def proof(
    request: Request, registration_number: EmissionPath, principal: Investor, session: SessionDep, keys: KeysDep
) -> HTMLResponse:
    """The investor's inclusion proof in the emission's holder tree of the latest report that fixed one, with how
    anyone can check it against the root the signed report publishes."""
    found = await proofs.trees_of(session, asset_code=registration_number, limit=1)
    report = found[0][1] if found else None
    holding = None
    if report is not None:
        with contextlib.suppress(ProofNotFound):  # the investor held none of its units when the report was written
            holding = await proofs.holder_proof(
                session, report=report, asset_code=registration_number, party_id=principal.party_scope(None),
                secret_key=keys.secret_key,
            )
    return page(
        request, "portfolio/proof.html", principal=principal, code=registration_number, report=report,
        proof=holding, content_sha256=report.content_sha256.hex() if report else None,
    )
