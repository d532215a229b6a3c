"""Money in and out: payment references, clients' bank accounts, statements, withdrawals.

Investors and issuers act on their own party only: another party's bank accounts and withdrawals are
"not found". Staff read everything; only the operator administrator imports statements, verifies
bank accounts, resolves the unmatched queue and sends withdrawals to the bank by hand.
"""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.identity.errors import PartyNotFound
from dfa.platform.types import BIGINT_MAX, AfterBigint, Limit
from dfa.platform.web import (
    AntiFraudCentreDep,
    DatabaseDep,
    IdempotencyKeyHeader,
    SessionDep,
    SettingsDep,
    UnitOfWorkRoute,
    app_state,
)
from dfa.settlement import cash_schemas as schemas
from dfa.settlement import jobs
from dfa.settlement.bank import Bank
from dfa.settlement.errors import StatementMediaTypeUnsupported, WithdrawalSubmissionInProgress
from dfa.settlement.iban import validate_kazakh_iban
from dfa.settlement.models import BANK_ACCOUNT_STATUSES, LINE_STATUSES, WITHDRAWAL_STATUSES
from dfa.settlement.service import cash
from dfa.settlement.service.accounts import MONEY

router = APIRouter(prefix="/v1", tags=["money"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Client = Annotated[Principal, Depends(allow(Role.INVESTOR, Role.ISSUER))]
ClientOrAdmin = Annotated[Principal, Depends(allow(Role.INVESTOR, Role.ISSUER, Role.OPERATOR_ADMIN))]
BankDep = Annotated[Bank, Depends(app_state("bank"))]

BankAccountIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Bank account id.")]
LineIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Bank statement line id.")]
PartyQuery = Annotated[uuid.UUID | None, Query(description="Only this party's (staff; a client sees its own).")]
XML_MEDIA_TYPES = ("application/xml", "text/xml")


def _required_party(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID:
    party_id = principal.party_scope(requested)
    if party_id is None:
        raise PartyNotFound("name the party (party_id)")
    return party_id


# --- payment references ---------------------------------------------------------------------------------


@router.get("/payment-reference", response_model=schemas.PaymentInstructionsOut)
async def payment_reference(principal: Anyone, database: DatabaseDep, settings: SettingsDep, party_id: PartyQuery = None):
    """How to pay in: the client-money account and the client's payment reference, given once and kept.
    Only an identified adult gets one (REQ-14, REQ-16)."""
    party = _required_party(principal, party_id)
    # The first request creates the reference: a write of its own, which any later request reads back.
    async with database.unit_of_work() as session:
        reference = await cash.payment_reference(session, party_id=party, settings=settings)
    return schemas.PaymentInstructionsOut(
        party_id=reference.party_id,
        reference=reference.reference,
        beneficiary_name=settings.operator_name,
        beneficiary_iban=validate_kazakh_iban(settings.operator_client_money_iban),
        beneficiary_bic=settings.operator_bank_bic,
        currency=MONEY,
        created_at=reference.created_at,
    )


# --- clients' bank accounts -----------------------------------------------------------------------------


@router.post("/bank-accounts", status_code=status.HTTP_201_CREATED, response_model=schemas.BankAccountOut)
async def register_bank_account(
    body: schemas.BankAccountCreate, principal: ClientOrAdmin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Register a bank account of the client's own, where withdrawals will be paid once it is verified
    (by staff, or by a deposit from it)."""
    return await cash.register_bank_account(
        session, party_id=_required_party(principal, body.party_id), iban=body.iban, holder_name=body.holder_name,
        actor=principal.login, settings=settings,
    )


@router.get("/bank-accounts", response_model=list[schemas.BankAccountOut])
async def list_bank_accounts(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    party_id: PartyQuery = None,
    status_: Annotated[
        Literal[BANK_ACCOUNT_STATUSES] | None, Query(alias="status", description="Only accounts in this status.")
    ] = None,
    after: AfterBigint = None,
    limit: Limit = None,
):
    """Registered bank accounts (investors and issuers: their own), oldest first."""
    return await cash.list_bank_accounts(
        session, party_id=principal.party_scope(party_id), status=status_, after=after, limit=settings.page_size(limit)
    )


@router.get("/bank-accounts/{bank_account_id}", response_model=schemas.BankAccountOut)
async def get_bank_account(bank_account_id: BankAccountIdPath, principal: Anyone, session: SessionDep):
    return await cash.get_bank_account(session, bank_account_id, visible_to=principal.owner_filter())


@router.post("/bank-accounts/{bank_account_id}/verification", response_model=schemas.BankAccountOut)
async def verify_bank_account(
    bank_account_id: BankAccountIdPath, body: schemas.BankAccountVerification, admin: Admin, session: SessionDep,
    _key: IdempotencyKeyHeader,
):
    """Confirm that the account is the client's own, on the evidence named (a security event)."""
    return await cash.verify_bank_account(
        session, bank_account_id=bank_account_id, evidence=body.evidence, actor=admin.login
    )


@router.post("/bank-accounts/{bank_account_id}/revocation", response_model=schemas.BankAccountOut)
async def revoke_bank_account(
    bank_account_id: BankAccountIdPath, body: schemas.BankAccountRevocation, principal: ClientOrAdmin,
    session: SessionDep, _key: IdempotencyKeyHeader,
):
    """Never pay to the account again; requested withdrawals to it are cancelled and their money released."""
    return await cash.revoke_bank_account(
        session, bank_account_id=bank_account_id, reason=body.reason, actor=principal.login,
        visible_to=principal.owner_filter(),
    )


# --- bank statements ------------------------------------------------------------------------------------


def _summary(summary: cash.ImportSummary) -> schemas.ImportSummaryOut:
    return schemas.ImportSummaryOut(
        statements=[
            schemas.StatementOutcomeOut(
                statement_id=s.statement_id, import_id=s.import_id, already_imported=s.import_id is None,
                lines_total=s.lines_total, lines_new=s.lines_new, credited=s.credited, credited_tiyn=s.credited_tiyn,
                unmatched=s.unmatched, withdrawals=s.withdrawals,
            )
            for s in summary.statements
        ],
        lines_new=summary.lines_new,
        credited=summary.credited,
        credited_tiyn=summary.credited_tiyn,
        unmatched=summary.unmatched,
        withdrawals=summary.withdrawals,
    )


@router.post(
    "/bank-statements",
    response_model=schemas.ImportSummaryOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A camt.053 document (versions 001.02 to 001.08) of the client-money account.",
            "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_statement(
    request: Request, admin: Admin, session: SessionDep, settings: SettingsDep, _key: IdempotencyKeyHeader
):
    """Import a bank statement of the client-money account: deposits quoting a client's payment
    reference are credited, our withdrawals' payments recognised, anything else queued for staff.
    Each entry counts once however often it is imported."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in XML_MEDIA_TYPES:
        raise StatementMediaTypeUnsupported(
            f"send the camt.053 document as application/xml, not {media_type or 'without a content type'}"
        )
    summary = await cash.import_statement(
        session, document=await request.body(), actor=admin.login, settings=settings
    )
    return _summary(summary)


@router.get("/bank-statements", response_model=list[schemas.StatementImportOut])
async def list_statement_imports(
    _staff: Staff,
    session: SessionDep,
    settings: SettingsDep,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="Imports older than this import id.")] = None,
    limit: Limit = None,
):
    """Imported statements, newest first, with what each import did."""
    return await cash.list_statement_imports(session, before=before, limit=settings.page_size(limit))


@router.post("/bank-statements/fetch", response_model=schemas.ImportSummaryOut)
async def fetch_statement(
    body: schemas.StatementFetch, admin: Admin, session: SessionDep, settings: SettingsDep, bank: BankDep,
    _key: IdempotencyKeyHeader,
):
    """Fetch the day's statement of the client-money account from the bank now and import it."""
    summary = await cash.fetch_statement(session, bank=bank, day=body.day, actor=admin.login, settings=settings)
    return _summary(summary)


@router.get("/bank-statement-lines", response_model=list[schemas.StatementLineOut])
async def list_statement_lines(
    _staff: Staff,
    session: SessionDep,
    settings: SettingsDep,
    status_: Annotated[
        Literal[LINE_STATUSES] | None,
        Query(alias="status", description="Only lines in this status; `unmatched` is the queue for staff."),
    ] = None,
    party_id: Annotated[uuid.UUID | None, Query(description="Only lines credited to or paid to this party.")] = None,
    after: AfterBigint = None,
    limit: Limit = None,
):
    """Lines of the client-money account's statements, oldest first."""
    return await cash.list_statement_lines(
        session, status=status_, party_id=party_id, after=after, limit=settings.page_size(limit)
    )


@router.post("/bank-statement-lines/{line_id}/assignment", response_model=schemas.StatementLineOut)
async def assign_line(
    line_id: LineIdPath, body: schemas.LineAssignment, admin: Admin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Credit an unmatched deposit to the client it is for (a security event)."""
    return await cash.assign_line(
        session, line_id=line_id, party_id=body.party_id, note=body.note, actor=admin.login, settings=settings
    )


@router.post("/bank-statement-lines/{line_id}/return", response_model=schemas.StatementLineOut)
async def return_line(
    line_id: LineIdPath, body: schemas.LineReturn, admin: Admin, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Close an unmatched line as returned to its payer (a security event). The return payment itself is
    ordered at the bank; the note says how."""
    return await cash.return_line(session, line_id=line_id, note=body.note, actor=admin.login)


# --- withdrawals ----------------------------------------------------------------------------------------


@router.post(
    "/withdrawals",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.WithdrawalOut,
    responses={200: {"description": "The same withdrawal was requested before; it is returned."}},
)
async def request_withdrawal(
    body: schemas.WithdrawalCreate,
    client: Client,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    response: Response,
    _key: IdempotencyKeyHeader,
):
    """Be paid out to the client's own verified bank account. The amount is held at once (REQ-38) and
    leaves when the bank accepts the payment order; the client is screened first (REQ-18)."""
    withdrawal, created = await cash.request_withdrawal(
        session,
        party_id=_required_party(client, None),
        bank_account_id=body.bank_account_id,
        amount_tiyn=body.amount_tiyn,
        withdrawal_id=body.id,
        actor=client.login,
        centre=centre,
        settings=settings,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return withdrawal


@router.get("/withdrawals", response_model=list[schemas.WithdrawalOut])
async def list_withdrawals(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    party_id: PartyQuery = None,
    status_: Annotated[
        Literal[WITHDRAWAL_STATUSES] | None, Query(alias="status", description="Only withdrawals in this status.")
    ] = None,
    before: Annotated[uuid.UUID | None, Query(description="The last withdrawal id of the previous page.")] = None,
    limit: Limit = None,
):
    """Withdrawals, newest first (investors and issuers: their own)."""
    return await cash.list_withdrawals(
        session, party_id=principal.party_scope(party_id), status=status_, before=before,
        limit=settings.page_size(limit),
    )


@router.get("/withdrawals/{withdrawal_id}", response_model=schemas.WithdrawalOut)
async def get_withdrawal(withdrawal_id: uuid.UUID, principal: Anyone, session: SessionDep):
    return await cash.get_withdrawal(session, withdrawal_id, visible_to=principal.owner_filter())


@router.post("/withdrawals/{withdrawal_id}/cancellation", response_model=schemas.WithdrawalOut)
async def cancel_withdrawal(
    withdrawal_id: uuid.UUID, principal: ClientOrAdmin, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Cancel a withdrawal not yet sent to the bank; its money is released."""
    return await cash.cancel_withdrawal(
        session, withdrawal_id=withdrawal_id, actor=principal.login, visible_to=principal.owner_filter()
    )


@router.post("/withdrawals/submission", response_model=schemas.SubmissionOut)
async def submit_withdrawals(
    _admin: Admin, database: DatabaseDep, settings: SettingsDep, bank: BankDep, _key: IdempotencyKeyHeader
):
    """Send the requested withdrawals to the bank now, as the periodic job does, and record its answer."""
    summary = await jobs.submit_withdrawals(database, bank, settings)
    if summary is None:
        raise WithdrawalSubmissionInProgress("another submission pass is sending payment orders; try again shortly")
    return schemas.SubmissionOut.model_validate(summary)
