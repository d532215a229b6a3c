"""ISO 20022 with the bank: camt.053 statements read exactly and safely, pain.001 orders built and read back."""

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from xml.etree import ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfa.platform.errors import Category
from dfa.settlement.errors import IbanDefect, PaymentOrderInvalid, StatementInvalid
from dfa.settlement.iban import compute_check_digits
from dfa.settlement.iso20022 import (
    AMOUNT_MAX_TIYN,
    PAIN001_NAMESPACE,
    STATEMENT_MAX_BYTES,
    PaymentOrder,
    Statement,
    StatementLine,
    build_pain001,
    format_amount,
    parse_amount_tiyn,
    parse_camt053,
    parse_pain001,
)

OPERATOR_IBAN = "KZ86125KZT5004100100"  # the SWIFT registry's example Kazakhstan IBAN
INVESTOR_IBAN = "KZ05722KZT0000012345"
PAYEE_IBAN = "KZ89601KZT1234567890"
ALMATY = timezone(timedelta(hours=5))
CAMT053_V08 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"

# A day on the operator's collection account as its bank reports it: two investors top up (each
# quoting the reference the platform gave them), one payout leaves; 1 000 000.00 + 150 000.50
# + 100 000.25 - 25 000.00 = 1 225 000.75.
CAMT053_001_08 = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{CAMT053_V08}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <BkToCstmrStmt>
    <GrpHdr>
      <MsgId>HSBK-STMT-20240315-0001</MsgId>
      <CreDtTm>2024-03-16T06:00:00+05:00</CreDtTm>
      <MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn>
    </GrpHdr>
    <Stmt>
      <Id>STMT-20240315-KZ86</Id>
      <ElctrncSeqNb>75</ElctrncSeqNb>
      <CreDtTm>2024-03-16T06:00:05.250+05:00</CreDtTm>
      <FrToDt>
        <FrDtTm>2024-03-15T00:00:00+05:00</FrDtTm>
        <ToDtTm>2024-03-15T23:59:59+05:00</ToDtTm>
      </FrToDt>
      <Acct>
        <Id><IBAN>{OPERATOR_IBAN}</IBAN></Id>
        <Ccy>KZT</Ccy>
        <Ownr><Nm>ТОО «DFA Operator»</Nm></Ownr>
        <Svcr><FinInstnId><BICFI>HSBKKZKX</BICFI></FinInstnId></Svcr>
      </Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="KZT">1000000.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2024-03-15</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="KZT">1225000.75</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2024-03-15</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLAV</Cd></CdOrPrtry></Tp>
        <Amt Ccy="KZT">1225000.75</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2024-03-15</Dt></Dt>
      </Bal>
      <TxsSummry>
        <TtlCdtNtries><NbOfNtries>2</NbOfNtries><Sum>250000.75</Sum></TtlCdtNtries>
        <TtlDbtNtries><NbOfNtries>1</NbOfNtries><Sum>25000.00</Sum></TtlDbtNtries>
      </TxsSummry>
      <Ntry>
        <NtryRef>HSBK-20240315-000101</NtryRef>
        <Amt Ccy="KZT">150000.50</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2024-03-15</Dt></BookgDt>
        <ValDt><Dt>2024-03-15</Dt></ValDt>
        <AcctSvcrRef>FT24075000101</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><AcctSvcrRef>FT24075000101</AcctSvcrRef><EndToEndId>INV-7731</EndToEndId></Refs>
            <Amt Ccy="KZT">150000.50</Amt>
            <CdtDbtInd>CRDT</CdtDbtInd>
            <RltdPties>
              <Dbtr><Pty><Nm>Асанов Ерлан Болатович</Nm></Pty></Dbtr>
              <DbtrAcct><Id><IBAN>kz05 722K ZT00 0001 2345</IBAN></Id></DbtrAcct>
              <Cdtr><Pty><Nm>ТОО «DFA Operator»</Nm></Pty></Cdtr>
              <CdtrAcct><Id><IBAN>{OPERATOR_IBAN}</IBAN></Id></CdtrAcct>
            </RltdPties>
            <RmtInf>
              <Ustrd>DFA-TOPUP-8F3K2Q</Ustrd>
              <Ustrd>Пополнение счета инвестора</Ustrd>
            </RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="KZT">100000.25</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><DtTm>2024-03-15T14:02:11+05:00</DtTm></BookgDt>
        <ValDt><Dt>2024-03-18</Dt></ValDt>
        <AcctSvcrRef>FT24075000188</AcctSvcrRef>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <RltdPties>
              <Dbtr><Pty><Nm>ТОО "Kaspi &amp; Partners" &lt;Invest&gt;</Nm></Pty></Dbtr>
              <DbtrAcct><Id><Othr><Id>40702810400000012345</Id></Othr></Id></DbtrAcct>
            </RltdPties>
            <RmtInf><Ustrd>DFA-TOPUP-Q7M1ZX</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <NtryRef>HSBK-20240315-000377</NtryRef>
        <Amt Ccy="KZT">25000</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2024-03-15</Dt></BookgDt>
        <ValDt><Dt>2024-03-15</Dt></ValDt>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>PAYOUT-0042</EndToEndId></Refs>
            <RltdPties>
              <Dbtr><Pty><Nm>ТОО «DFA Operator»</Nm></Pty></Dbtr>
              <Cdtr><Pty><Nm>Иванова Айгерим</Nm></Pty></Cdtr>
              <CdtrAcct><Id><IBAN>{PAYEE_IBAN}</IBAN></Id></CdtrAcct>
            </RltdPties>
            <RmtInf><Ustrd>Выплата по ЦФА DFA-PAYOUT-0042</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""

# The same account in the oldest accepted version: no Acct/Ccy, the status as plain text, parties named
# directly, a structured creditor reference, and an entry known only by its transaction's reference.
CAMT053_001_02 = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>M-0002</MsgId><CreDtTm>2024-03-17T06:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>S-0002</Id>
      <CreDtTm>2024-03-17T06:00:00</CreDtTm>
      <Acct><Id><IBAN>{OPERATOR_IBAN}</IBAN></Id></Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="KZT">500.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Dt><Dt>2024-03-16</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="KZT">1000.5</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2024-03-16</Dt></Dt>
      </Bal>
      <Ntry>
        <Amt Ccy="KZT">1500.5</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2024-03-16</Dt></BookgDt>
        <NtryDtls>
          <TxDtls>
            <Refs><AcctSvcrRef>TX-998877</AcctSvcrRef></Refs>
            <RltdPties>
              <Dbtr><Nm>Нурланов Дамир</Nm></Dbtr>
              <DbtrAcct><Id><IBAN>{INVESTOR_IBAN}</IBAN></Id></DbtrAcct>
            </RltdPties>
            <RmtInf><Strd><CdtrRefInf><Ref>DFA-TOPUP-ZZ9911</Ref></CdtrRefInf></Strd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def camt053(*entries: str, balances: str = "", account: str | None = None, version: str = CAMT053_V08) -> bytes:
    """A minimal statement around `entries`, for tests that look at one thing at a time."""
    account_xml = f"<Acct><Id><IBAN>{OPERATOR_IBAN}</IBAN></Id><Ccy>KZT</Ccy></Acct>" if account is None else account
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{version}"><BkToCstmrStmt>
  <GrpHdr><MsgId>M-1</MsgId><CreDtTm>2024-03-16T06:00:00+05:00</CreDtTm></GrpHdr>
  <Stmt><Id>S-1</Id>{account_xml}{balances}{"".join(entries)}</Stmt>
</BkToCstmrStmt></Document>""".encode()


def entry(*, amount: str = "100.00", reference: str = "E-1", indicator: str = "CRDT", status: str = "<Cd>BOOK</Cd>",
          booking: str = "<Dt>2024-03-15</Dt>", currency: str = 'Ccy="KZT"', details: str = "") -> str:
    ref = f"<NtryRef>{reference}</NtryRef>" if reference else ""
    return (f"<Ntry>{ref}<Amt {currency}>{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd><Sts>{status}</Sts>"
            f"<BookgDt>{booking}</BookgDt>{details}</Ntry>")


def balance(code: str, amount: str, indicator: str = "CRDT") -> str:
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"KZT\">{amount}</Amt>"
            f"<CdtDbtInd>{indicator}</CdtDbtInd><Dt><Dt>2024-03-15</Dt></Dt></Bal>")


def refused(document: bytes, **kwargs) -> StatementInvalid:
    with pytest.raises(StatementInvalid) as caught:
        parse_camt053(document, **kwargs)
    return caught.value


# --- camt.053 ---------------------------------------------------------------------------------------


def test_a_camt053_001_08_statement_parses_to_exact_values():
    [statement] = parse_camt053(CAMT053_001_08.encode())
    assert statement == Statement(
        statement_id="STMT-20240315-KZ86",
        account_iban=OPERATOR_IBAN,
        currency="KZT",
        created_at=datetime(2024, 3, 16, 6, 0, 5, 250_000, tzinfo=ALMATY),
        opening_balance_tiyn=100_000_000,
        closing_balance_tiyn=122_500_075,
        lines=(
            StatementLine(
                entry_reference="HSBK-20240315-000101",
                amount_tiyn=15_000_050,
                currency="KZT",
                credit=True,
                booking_date=date(2024, 3, 15),
                value_date=date(2024, 3, 15),
                payment_reference="DFA-TOPUP-8F3K2Q Пополнение счета инвестора",
                counterparty_name="Асанов Ерлан Болатович",
                counterparty_iban=INVESTOR_IBAN,
                end_to_end_id="INV-7731",
            ),
            StatementLine(
                entry_reference="FT24075000188",  # no NtryRef: the entry's AcctSvcrRef
                amount_tiyn=10_000_025,
                currency="KZT",
                credit=True,
                booking_date=date(2024, 3, 15),
                value_date=date(2024, 3, 18),
                payment_reference="DFA-TOPUP-Q7M1ZX",
                counterparty_name='ТОО "Kaspi & Partners" <Invest>',
                counterparty_iban=None,  # a foreign account without IBAN
                end_to_end_id=None,  # NOTPROVIDED is no id
            ),
            StatementLine(
                entry_reference="HSBK-20240315-000377",
                amount_tiyn=2_500_000,
                currency="KZT",
                credit=False,
                booking_date=date(2024, 3, 15),
                value_date=date(2024, 3, 15),
                payment_reference="Выплата по ЦФА DFA-PAYOUT-0042",
                counterparty_name="Иванова Айгерим",  # the payee of a debit, not the operator
                counterparty_iban=PAYEE_IBAN,
                end_to_end_id="PAYOUT-0042",  # our payment order's id, back in the statement
            ),
        ),
    )
    assert all(type(line.amount_tiyn) is int for line in statement.lines)


def test_a_camt053_001_02_statement_parses_too():
    [statement] = parse_camt053(CAMT053_001_02.encode())
    assert statement == Statement(
        statement_id="S-0002",
        account_iban=OPERATOR_IBAN,
        currency="KZT",  # from the balances, as Acct/Ccy is absent
        created_at=datetime(2024, 3, 17, 6, 0),
        opening_balance_tiyn=-50_000,  # overdrawn: DBIT
        closing_balance_tiyn=100_050,
        lines=(
            StatementLine(
                entry_reference="TX-998877",
                amount_tiyn=150_050,
                currency="KZT",
                credit=True,
                booking_date=date(2024, 3, 16),
                value_date=None,
                payment_reference="DFA-TOPUP-ZZ9911",
                counterparty_name="Нурланов Дамир",
                counterparty_iban=INVESTOR_IBAN,
            ),
        ),
    )


@pytest.mark.parametrize("version", [f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{v:02d}" for v in range(2, 9)])
def test_every_accepted_version_is_read_by_local_names(version):
    [statement] = parse_camt053(camt053(entry(), version=version))
    assert statement.lines[0].amount_tiyn == 10_000


def test_a_statement_without_balances_or_entries_is_still_a_statement():
    [statement] = parse_camt053(camt053())
    assert (statement.opening_balance_tiyn, statement.closing_balance_tiyn, statement.lines) == (None, None, ())


def test_several_statements_in_one_message_are_all_returned():
    statement = CAMT053_001_08[CAMT053_001_08.index("<Stmt>"):CAMT053_001_08.index("</Stmt>") + len("</Stmt>")]
    second = statement.replace("STMT-20240315-KZ86", "STMT-20240315-KZ86-B")
    document = CAMT053_001_08.replace(statement, statement + second)
    statements = parse_camt053(document.encode())
    assert [s.statement_id for s in statements] == ["STMT-20240315-KZ86", "STMT-20240315-KZ86-B"]
    assert statements[0].lines == statements[1].lines


@pytest.mark.parametrize(("text", "tiyn"), [
    ("1500.5", 150_050),
    ("1500.50", 150_050),
    ("1500", 150_000),
    ("1500.05", 150_005),
    ("0.01", 1),
    ("0", 0),
    ("0.1", 10),
    ("0001500.00", 150_000),
    ("  1500.50\n", 150_050),
    ("9999999999999999.99", AMOUNT_MAX_TIYN),
    ("1234567890123.45", 123_456_789_012_345),
])
def test_amounts_become_exact_tiyn(text, tiyn):
    [statement] = parse_camt053(camt053(entry(amount=text)))
    assert statement.lines[0].amount_tiyn == tiyn
    assert parse_amount_tiyn(text) == tiyn


@pytest.mark.parametrize(("text", "why"), [
    ("1500.505", "more than 2 decimal places"),
    ("1500.500", "more than 2 decimal places"),
    ("0.001", "more than 2 decimal places"),
    ("-1500.00", "negative"),
    ("-0", "negative"),
    ("1.5E3", "exponent"),
    ("1e3", "exponent"),
    ("+1500", "not a plain decimal"),
    ("1 500.00", "not a plain decimal"),
    ("1,500.00", "not a plain decimal"),
    ("1500,50", "not a plain decimal"),
    ("", "not a plain decimal"),
    (".50", "not a plain decimal"),
    ("1500.", "not a plain decimal"),
    ("0x10", "not a plain decimal"),
    ("NaN", "not a plain decimal"),
    ("Infinity", "not a plain decimal"),
    ("\u0661\u0665\u0660\u0660", "not a plain decimal"),  # Arabic-Indic digits, which int() would take
    ("1_500", "not a plain decimal"),
    ("12345678901234567.00", "more than 16 digits"),
])
def test_amounts_that_are_not_plain_decimals_are_refused_with_the_element_path(text, why):
    error = refused(camt053(entry(amount=text)))
    assert error.detail.startswith("Document/BkToCstmrStmt/Stmt/Ntry/Amt: ")
    assert why in error.detail
    assert error.context == {"element": "Document/BkToCstmrStmt/Stmt/Ntry/Amt"}
    with pytest.raises(ValueError, match=why):
        parse_amount_tiyn(text)


def test_a_bad_balance_amount_names_its_balance():
    error = refused(camt053(balances=balance("OPBD", "10.00") + balance("CLBD", "1e5")))
    assert error.detail.startswith("Document/BkToCstmrStmt/Stmt/Bal[2]/Amt: ")


def test_the_offending_entry_is_named_by_its_position():
    error = refused(camt053(entry(reference="E-1"), entry(reference="E-2", amount="-5")))
    assert error.detail.startswith("Document/BkToCstmrStmt/Stmt/Ntry[2]/Amt: ")


@given(st.integers(min_value=0, max_value=AMOUNT_MAX_TIYN))
def test_formatted_amounts_parse_back_to_the_same_tiyn(tiyn):
    text = format_amount(tiyn)
    assert parse_amount_tiyn(text) == tiyn
    assert parse_amount_tiyn(text.rstrip("0").rstrip(".") if "." in text else text) == tiyn


@pytest.mark.parametrize(("document", "missing"), [
    (camt053(account=f"<Acct><Id><Othr><Id>{OPERATOR_IBAN}</Id></Othr></Id><Ccy>KZT</Ccy></Acct>"),
     "Document/BkToCstmrStmt/Stmt/Acct/Id/IBAN"),
    (camt053(account="<Acct><Ccy>KZT</Ccy></Acct>"), "Document/BkToCstmrStmt/Stmt/Acct/Id/IBAN"),
    (camt053(account=""), "Document/BkToCstmrStmt/Stmt/Acct/Id/IBAN"),
    (camt053().replace(b"<Id>S-1</Id>", b""), "Document/BkToCstmrStmt/Stmt/Id"),
    (camt053(entry(booking="")).replace(b"<BookgDt></BookgDt>", b""), "Document/BkToCstmrStmt/Stmt/Ntry/BookgDt"),
    (camt053(entry(booking="<Tm>10:00</Tm>")), "Document/BkToCstmrStmt/Stmt/Ntry/BookgDt/DtTm"),
    (camt053(entry()).replace(b"<CdtDbtInd>CRDT</CdtDbtInd>", b""), "Document/BkToCstmrStmt/Stmt/Ntry/CdtDbtInd"),
    (camt053(entry()).replace(b"<Sts><Cd>BOOK</Cd></Sts>", b""), "Document/BkToCstmrStmt/Stmt/Ntry/Sts"),
    (camt053(entry()).replace(b'<Amt Ccy="KZT">100.00</Amt>', b""), "Document/BkToCstmrStmt/Stmt/Ntry/Amt"),
    (camt053().replace(b"<GrpHdr><MsgId>M-1</MsgId><CreDtTm>2024-03-16T06:00:00+05:00</CreDtTm></GrpHdr>", b""),
     "Document/BkToCstmrStmt/GrpHdr/CreDtTm"),  # the statement has no CreDtTm of its own either
    (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"/>', "Document/BkToCstmrStmt"),
])
def test_missing_required_elements_are_refused_by_path(document, missing):
    error = refused(document)
    assert error.detail == f"{missing}: required element is missing"
    assert error.category == Category.INVALID


@pytest.mark.parametrize(("document", "message"), [
    (f'<Document xmlns="{CAMT053_V08}"><BkToCstmrStmt><GrpHdr/></BkToCstmrStmt></Document>'.encode(),
     "no statement"),
    (camt053(entry(reference="")), "no reference identifies the entry"),
    (camt053(entry(reference="", details="<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>"
                                          "</TxDtls></NtryDtls>")), "no reference identifies the entry"),
    (camt053(entry(reference="E-1"), entry(reference="E-1")), "two entries have the reference 'E-1'"),
    (camt053(entry(status="<Cd>PDNG</Cd>")), "only booked entries"),
    (camt053(entry(status="PDNG")), "only booked entries"),
    (camt053(entry(indicator="CREDIT")), "neither CRDT nor DBIT"),
    (camt053(entry(currency='Ccy="kzt"')), "three-letter currency code"),
    (camt053(entry(currency="")), "three-letter currency code"),
    (camt053(entry(booking="<Dt>2024-02-30</Dt>")), "is not a date"),
    (camt053(entry(booking="<Dt>15.03.2024</Dt>")), "is not a date"),
    (camt053(entry(booking="<DtTm>2024-03-15 10:00</DtTm>")), "is not a date and time"),
    (camt053(entry(booking="<Dt></Dt>")), "must not be empty"),
    (camt053(account="<Acct><Id><IBAN>KZ87125KZT5004100100</IBAN></Id></Acct>"), "check digits do not match"),
    (camt053(account="<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>"), "Only Kazakhstan IBANs"),
    (camt053(account=f"<Acct><Id><IBAN>{OPERATOR_IBAN}</IBAN></Id></Acct>"), "neither Acct/Ccy nor a balance"),
    (camt053(account=f"<Acct><Id><IBAN>{OPERATOR_IBAN}</IBAN></Id><Ccy>Tenge</Ccy></Acct>"), "currency code"),
    (camt053(balances=balance("OPBD", "1.00") + balance("OPBD", "2.00")), "more than one OPBD balance"),
    (camt053(balances=balance("OPBD", "1.00", indicator="PLUS")), "neither CRDT nor DBIT"),
    (camt053().replace(b"<Id>S-1</Id>", b"<Id>S-1</Id><Id>S-2</Id>"), "may appear only once"),
])
def test_malformed_statements_are_refused_with_a_clear_reason(document, message):
    assert message in refused(document).detail


def test_entries_that_do_not_take_the_opening_balance_to_the_closing_one_are_refused():
    # A statement whose entries do not add up is truncated or altered: none of it can be trusted.
    document = CAMT053_001_08.replace("<Amt Ccy=\"KZT\">1225000.75</Amt>", "<Amt Ccy=\"KZT\">1225000.76</Amt>", 1)
    error = refused(document.encode())
    assert "move the balance by 22500075 tiyn, but it goes from 100000000 to 122500076" in error.detail
    assert error.detail.startswith("Document/BkToCstmrStmt/Stmt: ")
    dropped_entry = CAMT053_001_08.split("<Ntry>")
    del dropped_entry[2]
    assert "move the balance" in refused("<Ntry>".join(dropped_entry).encode()).detail


def test_balances_add_up_across_a_negative_opening_balance():
    document = camt053(entry(amount="150.00"), entry(reference="E-2", amount="20.00", indicator="DBIT"),
                       balances=balance("OPBD", "100.00", "DBIT") + balance("CLBD", "30.00"))
    [statement] = parse_camt053(document)
    assert (statement.opening_balance_tiyn, statement.closing_balance_tiyn) == (-10_000, 3_000)


def test_currency_is_reported_faithfully_and_not_summed_with_tenge():
    document = camt053(entry(currency='Ccy="USD"', amount="10.00"),
                       balances=balance("OPBD", "1.00") + balance("CLBD", "1.00"))
    [statement] = parse_camt053(document)
    assert (statement.currency, statement.lines[0].currency, statement.lines[0].amount_tiyn) == ("KZT", "USD", 1_000)


def test_a_batch_entry_carries_no_single_payment_reference_or_counterparty():
    batch = ("<NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>"
             "<TxDtls><Refs><EndToEndId>A</EndToEndId></Refs><RmtInf><Ustrd>first</Ustrd></RmtInf></TxDtls>"
             "<TxDtls><Refs><EndToEndId>B</EndToEndId></Refs><RmtInf><Ustrd>second</Ustrd></RmtInf></TxDtls>"
             "</NtryDtls>")
    [statement] = parse_camt053(camt053(entry(details=batch)))
    line = statement.lines[0]
    assert (line.entry_reference, line.payment_reference, line.counterparty_name) == ("E-1", None, None)


@pytest.mark.parametrize(("namespace", "root"), [
    ("urn:iso:std:iso:20022:tech:xsd:camt.052.001.08", "Document"),  # an account report, not a statement
    ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.01", "Document"),
    ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.13", "Document"),
    (PAIN001_NAMESPACE, "Document"),
    ("", "Document"),
    ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.08", "Doc"),
])
def test_other_messages_are_refused(namespace, root):
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    error = refused(f"<{root}{xmlns}><BkToCstmrStmt/></{root}>".encode())
    assert "not one of the accepted messages" in error.detail


@pytest.mark.parametrize("document", [
    b"",
    b"not xml at all",
    b"<Document><unclosed></Document>",
    b"\xff\xfe\x00<",
    b'<?xml version="1.0" encoding="no-such-encoding"?><Document/>',
    CAMT053_001_08.encode()[:-40],
])
def test_malformed_xml_is_refused(document):
    assert "not well-formed XML" in refused(document).detail


class RecordingServer:
    """A local HTTP server that records every request: proof that a parser fetched nothing."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.append(self.path)
                body = b'<!ENTITY leak "fetched">'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def with_doctype(doctype: str, reference_text: str) -> bytes:
    """The 001.08 sample with `doctype` declared and `reference_text` as the first payment reference."""
    document = CAMT053_001_08.replace("<Ustrd>DFA-TOPUP-8F3K2Q</Ustrd>", f"<Ustrd>{reference_text}</Ustrd>")
    return document.replace('<?xml version="1.0" encoding="UTF-8"?>\n', f'<?xml version="1.0"?>\n{doctype}\n').encode()


def test_an_external_file_entity_is_refused_and_nothing_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-KEY-MATERIAL")
    document = with_doctype(f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>', "&xxe;")
    error = refused(document)
    assert "DTD or entities" in error.detail
    assert "TOP-SECRET" not in error.detail


def test_external_entities_and_dtds_over_the_network_are_refused_and_nothing_is_fetched(recording_server):
    url = recording_server.url
    for doctype, text in [
        (f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "{url}/entity">]>', "&xxe;"),
        (f'<!DOCTYPE Document SYSTEM "{url}/external.dtd">', "DFA-TOPUP-8F3K2Q"),
        (f'<!DOCTYPE Document [<!ENTITY % remote SYSTEM "{url}/parameter.dtd"> %remote;]>', "DFA-TOPUP-8F3K2Q"),
        (f'<!DOCTYPE Document PUBLIC "-//DFA//EVIL//EN" "{url}/public.dtd">', "DFA-TOPUP-8F3K2Q"),
    ]:
        assert "DTD or entities" in refused(with_doctype(doctype, text)).detail
    time.sleep(0.2)  # a parser that fetched in the background would have shown up by now
    assert recording_server.requests == []


def test_billion_laughs_is_refused_without_expanding():
    lol = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    document = with_doctype(f"<!DOCTYPE Document [{''.join(lol)}]>", "&lol9;")
    started = time.monotonic()
    assert "DTD or entities" in refused(document).detail
    assert time.monotonic() - started < 1


def test_an_internal_entity_cannot_smuggle_a_payment_reference_in():
    # The standard library would expand this quietly, crediting whoever's reference the entity holds.
    document = with_doctype('<!DOCTYPE Document [<!ENTITY ref "DFA-TOPUP-STOLEN">]>', "&ref;")
    assert "DTD or entities" in refused(document).detail


def test_any_dtd_is_refused():
    assert "DTD or entities" in refused(with_doctype("<!DOCTYPE Document>", "DFA-TOPUP-8F3K2Q")).detail


def test_oversized_documents_are_refused_before_parsing():
    document = CAMT053_001_08.encode()
    assert parse_camt053(document, max_bytes=len(document))
    error = refused(document, max_bytes=len(document) - 1)
    assert f"has {len(document)} bytes, more than the {len(document) - 1} accepted" in error.detail
    # Not even looked at: a body that is not XML is refused for its size, not its syntax.
    assert "more than" in refused(b"<" * (STATEMENT_MAX_BYTES + 1)).detail


@settings(max_examples=300)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_are_refused_as_a_statement_never_a_crash(document):
    with pytest.raises(StatementInvalid):
        parse_camt053(document)


@settings(max_examples=300)
@given(st.data())
def test_damaged_statements_are_parsed_or_refused_never_a_crash(data):
    document = CAMT053_001_08.encode()
    start = data.draw(st.integers(min_value=0, max_value=len(document) - 1))
    end = data.draw(st.integers(min_value=start, max_value=min(len(document), start + 50)))
    filler = data.draw(st.binary(max_size=5))
    try:
        parse_camt053(document[:start] + filler + document[end:])
    except StatementInvalid:
        pass


# --- pain.001 ---------------------------------------------------------------------------------------

CREATED_AT = datetime(2024, 3, 18, 9, 30, tzinfo=ALMATY)
ORDERS = [
    PaymentOrder(end_to_end_id="PAYOUT-0042", amount_tiyn=150_050, creditor_name="Иванова Айгерим",
                 creditor_iban=PAYEE_IBAN, creditor_bic="CASPKZKA", remittance="Выплата по ЦФА DFA-PAYOUT-0042"),
    PaymentOrder(end_to_end_id="PAYOUT-0043", amount_tiyn=5, creditor_name='ТОО "A & B" <Trust> \'Ltd\'',
                 creditor_iban=INVESTOR_IBAN, creditor_bic=None, remittance="Redemption <&> ]]> 'x'"),
    PaymentOrder(end_to_end_id="PAYOUT-0044", amount_tiyn=100_000_000_000_000, creditor_name="Big Fund",
                 creditor_iban=OPERATOR_IBAN, creditor_bic="HSBKKZKXXXX", remittance="Coupon"),
]


def pain001(orders=ORDERS, **overrides) -> bytes:
    arguments = {"message_id": "DFA-PO-20240318-0001", "created_at": CREATED_AT, "debtor_name": "ТОО «DFA Operator»",
                 "debtor_iban": OPERATOR_IBAN, "debtor_bic": "HSBKKZKX", "execution_date": date(2024, 3, 19),
                 "orders": orders}
    return build_pain001(**{**arguments, **overrides})


def order(**overrides) -> PaymentOrder:
    fields = {"end_to_end_id": "E-1", "amount_tiyn": 100, "creditor_name": "A", "creditor_iban": PAYEE_IBAN,
              "creditor_bic": None, "remittance": "r"}
    return PaymentOrder(**{**fields, **overrides})


def elements_at(document: bytes, path: str) -> list[ET.Element]:
    """The elements at `path` (local names joined by /) below the root of a pain.001 document."""
    qualified = "/".join(f"p:{name}" for name in path.split("/"))
    return ET.fromstring(document).findall(qualified, {"p": PAIN001_NAMESPACE})


def text_at(document: bytes, path: str) -> list[str | None]:
    return [element.text for element in elements_at(document, path)]


def attribute_at(document: bytes, path: str, name: str) -> list[str | None]:
    return [element.get(name) for element in elements_at(document, path)]


def test_a_pain001_reads_back_as_the_orders_it_was_built_from():
    assert parse_pain001(pain001()) == ("DFA-PO-20240318-0001", ORDERS)


def test_the_document_is_well_formed_pain001_001_09():
    document = pain001()
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = ET.fromstring(document)
    assert root.tag == f"{{{PAIN001_NAMESPACE}}}Document"
    assert {element.tag.partition("}")[0] for element in root.iter()} == {f"{{{PAIN001_NAMESPACE}"}
    assert [child.tag.partition("}")[2] for child in root[0]] == ["GrpHdr", "PmtInf"]


def test_the_header_and_payment_information_say_what_the_bank_needs():
    document = pain001()
    initiation = "CstmrCdtTrfInitn"
    assert text_at(document, f"{initiation}/GrpHdr/MsgId") == ["DFA-PO-20240318-0001"]
    assert text_at(document, f"{initiation}/GrpHdr/CreDtTm") == ["2024-03-18T09:30:00+05:00"]
    assert text_at(document, f"{initiation}/GrpHdr/NbOfTxs") == ["3"]
    assert text_at(document, f"{initiation}/PmtInf/PmtMtd") == ["TRF"]
    assert text_at(document, f"{initiation}/PmtInf/BtchBookg") == ["false"]
    assert text_at(document, f"{initiation}/PmtInf/NbOfTxs") == ["3"]
    assert text_at(document, f"{initiation}/PmtInf/ReqdExctnDt/Dt") == ["2024-03-19"]
    assert text_at(document, f"{initiation}/PmtInf/Dbtr/Nm") == ["ТОО «DFA Operator»"]
    assert text_at(document, f"{initiation}/PmtInf/DbtrAcct/Id/IBAN") == [OPERATOR_IBAN]
    assert text_at(document, f"{initiation}/PmtInf/DbtrAgt/FinInstnId/BICFI") == ["HSBKKZKX"]
    transfers = f"{initiation}/PmtInf/CdtTrfTxInf"
    assert text_at(document, f"{transfers}/PmtId/EndToEndId") == ["PAYOUT-0042", "PAYOUT-0043", "PAYOUT-0044"]
    assert text_at(document, f"{transfers}/Amt/InstdAmt") == ["1500.50", "0.05", "1000000000000.00"]
    assert attribute_at(document, f"{transfers}/Amt/InstdAmt", "Ccy") == ["KZT"] * 3
    assert text_at(document, f"{transfers}/CdtrAcct/Id/IBAN") == [PAYEE_IBAN, INVESTOR_IBAN, OPERATOR_IBAN]
    assert text_at(document, f"{transfers}/CdtrAgt/FinInstnId/BICFI") == ["CASPKZKA", "HSBKKZKXXXX"]
    assert text_at(document, f"{transfers}/RmtInf/Ustrd")[1] == "Redemption <&> ]]> 'x'"


def test_ctrl_sum_is_the_exact_sum_of_the_amounts():
    document = pain001()
    expected = "1000000001500.55"  # 1 000 000 000 000.00 + 1 500.50 + 0.05
    assert text_at(document, "CstmrCdtTrfInitn/GrpHdr/CtrlSum") == [expected]
    assert text_at(document, "CstmrCdtTrfInitn/PmtInf/CtrlSum") == [expected]


def test_special_characters_are_escaped_not_written_raw():
    document = pain001()
    assert b"&lt;Trust&gt;" in document and b"A &amp; B" in document and b"]]&gt;" in document
    assert b"<Trust>" not in document and b"<&>" not in document


def test_a_missing_debtor_bic_is_written_as_not_provided():
    document = pain001(debtor_bic=None)
    assert text_at(document, "CstmrCdtTrfInitn/PmtInf/DbtrAgt/FinInstnId/Othr/Id") == ["NOTPROVIDED"]


def test_ibans_are_written_in_electronic_form():
    document = pain001(orders=[order(creditor_iban="kz89 601k zt12 3456 7890")], debtor_iban="KZ86 125K ZT50 0410 0100")
    assert text_at(document, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/CdtrAcct/Id/IBAN") == [PAYEE_IBAN]
    assert text_at(document, "CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/IBAN") == [OPERATOR_IBAN]


xml_hostile_text = st.text(
    alphabet=st.one_of(st.sampled_from("<&>\"' ]]>;#«»"), st.characters(exclude_categories=("Cc", "Cs", "Cn"))),
    min_size=1, max_size=140,
).filter(lambda text: text == text.strip() and text != "")


def bban_to_iban(bban: str) -> str:
    return f"KZ{compute_check_digits('KZ', bban)}{bban}"


kazakh_ibans = st.builds(bban_to_iban, st.from_regex(r"[0-9]{3}[0-9A-Z]{13}", fullmatch=True))
orders_strategy = st.lists(
    st.builds(
        PaymentOrder,
        end_to_end_id=st.from_regex(r"[A-Za-z0-9/\-?:().,'+ ]{1,35}", fullmatch=True).filter(lambda s: s == s.strip()),
        amount_tiyn=st.integers(min_value=1, max_value=10**15),
        creditor_name=xml_hostile_text,
        creditor_iban=kazakh_ibans,
        creditor_bic=st.one_of(st.none(), st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)),
        remittance=xml_hostile_text,
    ),
    min_size=1, max_size=5, unique_by=lambda order: order.end_to_end_id,
)


@settings(max_examples=200, deadline=None)
@given(orders_strategy, xml_hostile_text.filter(lambda s: len(s) <= 35))
def test_any_valid_orders_round_trip_exactly(orders, message_id):
    document = pain001(orders=orders, message_id=message_id, debtor_name=orders[0].creditor_name)
    assert parse_pain001(document) == (message_id, orders)
    expected = sum(order.amount_tiyn for order in orders)
    assert text_at(document, "CstmrCdtTrfInitn/GrpHdr/CtrlSum") == [f"{expected // 100}.{expected % 100:02d}"]


@pytest.mark.parametrize(("orders", "field"), [
    ([], "orders"),
    ([order(amount_tiyn=0)], "orders[0].amount_tiyn"),
    ([order(amount_tiyn=-100)], "orders[0].amount_tiyn"),
    ([order(amount_tiyn=True)], "orders[0].amount_tiyn"),
    ([order(amount_tiyn=1.5)], "orders[0].amount_tiyn"),
    ([order(amount_tiyn=100.0)], "orders[0].amount_tiyn"),
    ([order(amount_tiyn="100")], "orders[0].amount_tiyn"),
    ([order(amount_tiyn=AMOUNT_MAX_TIYN + 1)], "orders[0].amount_tiyn"),
    ([order(end_to_end_id="")], "orders[0].end_to_end_id"),
    ([order(end_to_end_id="X" * 36)], "orders[0].end_to_end_id"),
    ([order(), order(end_to_end_id="E-2", creditor_name="  ")], "orders[1].creditor_name"),
    ([order(creditor_name="N" * 141)], "orders[0].creditor_name"),
    ([order(creditor_name=" Leading")], "orders[0].creditor_name"),
    ([order(creditor_name="Nul\x00byte")], "orders[0].creditor_name"),
    ([order(creditor_name="Line\nbreak")], "orders[0].creditor_name"),
    ([order(creditor_name="Not\ufffeXML")], "orders[0].creditor_name"),
    ([order(creditor_name="Lone\ud800surrogate")], "orders[0].creditor_name"),
    ([order(remittance="")], "orders[0].remittance"),
    ([order(remittance="R" * 141)], "orders[0].remittance"),
    ([order(remittance="tab\there")], "orders[0].remittance"),
    ([order(creditor_iban="KZ87125KZT5004100100")], "orders[0].creditor_iban"),
    ([order(creditor_iban="DE89370400440532013000")], "orders[0].creditor_iban"),
    ([order(creditor_bic="hsbkkzkx")], "orders[0].creditor_bic"),
    ([order(creditor_bic="HSBKKZ")], "orders[0].creditor_bic"),
    ([order(creditor_bic="HSBK KZKX")], "orders[0].creditor_bic"),
    ([order(), order()], "orders[1].end_to_end_id"),
    ([order(amount_tiyn=AMOUNT_MAX_TIYN), order(end_to_end_id="E-2")], "orders"),
])
def test_bad_orders_are_refused_naming_the_field(orders, field):
    with pytest.raises(PaymentOrderInvalid) as caught:
        pain001(orders=orders)
    assert caught.value.context["field"] == field
    assert caught.value.detail.startswith(field)
    assert caught.value.category == Category.INVALID


def test_an_invalid_creditor_iban_carries_the_iban_reason():
    with pytest.raises(PaymentOrderInvalid) as caught:
        pain001(orders=[order(creditor_iban="DE89370400440532013000")])
    assert caught.value.context["reason"] == IbanDefect.WRONG_COUNTRY


@pytest.mark.parametrize(("overrides", "field"), [
    ({"message_id": ""}, "message_id"),
    ({"message_id": "M" * 36}, "message_id"),
    ({"debtor_name": ""}, "debtor_name"),
    ({"debtor_name": "D" * 141}, "debtor_name"),
    ({"debtor_iban": "KZ86125KZT5004100101"}, "debtor_iban"),
    ({"debtor_bic": "HSBK"}, "debtor_bic"),
    ({"created_at": datetime(2024, 3, 18, 9, 30)}, "created_at"),
])
def test_bad_message_fields_are_refused(overrides, field):
    with pytest.raises(PaymentOrderInvalid) as caught:
        pain001(**overrides)
    assert caught.value.context["field"] == field


def test_too_many_orders_are_refused():
    many = [order(end_to_end_id=f"E-{i}") for i in range(10_001)]
    with pytest.raises(PaymentOrderInvalid, match="at most 10000 orders"):
        pain001(orders=many)


def test_created_at_in_utc_is_written_with_its_offset():
    document = pain001(created_at=datetime(2024, 3, 18, 4, 30, 15, 999, tzinfo=UTC))
    assert text_at(document, "CstmrCdtTrfInitn/GrpHdr/CreDtTm") == ["2024-03-18T04:30:15+00:00"]


def refused_order_document(document: bytes) -> PaymentOrderInvalid:
    with pytest.raises(PaymentOrderInvalid) as caught:
        parse_pain001(document)
    return caught.value


@pytest.mark.parametrize(("edit", "message"), [
    ((b"<CtrlSum>1000000001500.55</CtrlSum>", b"<CtrlSum>1000000001500.56</CtrlSum>"), "add up to 1000000001500.55"),
    ((b"<InstdAmt Ccy=\"KZT\">0.05</InstdAmt>", b"<InstdAmt Ccy=\"KZT\">0.06</InstdAmt>"), "add up to"),
    ((b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>"), "NbOfTxs says 4"),
    ((b"<InstdAmt Ccy=\"KZT\">0.05</InstdAmt>", b"<InstdAmt Ccy=\"USD\">0.05</InstdAmt>"), "only KZT"),
    ((b"<InstdAmt Ccy=\"KZT\">0.05</InstdAmt>", b"<InstdAmt Ccy=\"KZT\">0.050</InstdAmt>"), "2 decimal places"),
    ((f"<IBAN>{PAYEE_IBAN}</IBAN>".encode(), b"<IBAN>KZ00601KZT1234567890</IBAN>"), "creditor_iban"),
    ((b"<EndToEndId>PAYOUT-0043</EndToEndId>", b""), "EndToEndId: required element is missing"),
    ((b"<EndToEndId>PAYOUT-0043</EndToEndId>", b"<EndToEndId>PAYOUT-0042</EndToEndId>"), "used twice"),
    ((b"<Ustrd>Coupon</Ustrd>", b"<Ustrd>Coupon</Ustrd><Ustrd>again</Ustrd>"), "exactly one RmtInf/Ustrd"),
    ((PAIN001_NAMESPACE.encode(), b"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"), "not one of the accepted"),
])
def test_tampered_or_inconsistent_order_documents_are_refused(edit, message):
    document = pain001()
    old, new = edit
    assert old in document
    assert message in refused_order_document(document.replace(old, new, 1)).detail


def test_order_documents_are_read_as_safely_as_statements(recording_server):
    document = pain001().replace(b"<Ustrd>Coupon</Ustrd>", b"<Ustrd>&xxe;</Ustrd>")
    body = document.split(b"?>", 1)[1]
    for doctype in [f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "{recording_server.url}/x">]>'.encode(),
                    b'<!DOCTYPE Document [<!ENTITY xxe "Coupon">]>']:
        assert "DTD or entities" in refused_order_document(doctype + body).detail
    assert recording_server.requests == []
    with pytest.raises(PaymentOrderInvalid, match="more than the 100 accepted"):
        parse_pain001(pain001(), max_bytes=100)
