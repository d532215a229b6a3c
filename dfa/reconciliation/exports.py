"""Renderings of a signed reconciliation report for people and spreadsheets: CSV, PDF, and the SVG chart of
an emission's coverage history.

They render the report's signed document (`reports.document_of`), never the live tables, so an export
always says exactly what was signed. The signed JSON stays the authoritative form: the PDF prints its
SHA-256 and signature so a reader can check a printout against it.
"""

import csv
import html
import io
import logging
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from dfa.issuance.service.holders import neutralised

CSV_COLUMNS = (
    "asset_code", "issuer_name", "issuer_bin", "custodian", "custodian_reference", "outstanding_units",
    "platform_units", "nominal_tiyn", "coverage_ratio", "required_value_tiyn", "market_value_tiyn", "valued_on",
    "statement_id", "coverage_status", "shortfall_tiyn", "ledger_status", "chain_status", "holder_root", "holders",
)
# Columns copied as they are from the emission's coverage entry of the document.
_COVERAGE_COLUMNS = (
    "custodian", "custodian_reference", "outstanding_units", "platform_units", "nominal_tiyn", "coverage_ratio",
    "required_value_tiyn", "market_value_tiyn", "valued_on", "statement_id", "shortfall_tiyn",
)
NOTHING = "—"

# fpdf2 subsets the fonts with fontTools, which logs every glyph it keeps at INFO: noise in the platform's logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)


def format_kzt(tiyn: int | None) -> str:
    """An amount in tiyn as KZT with spaces between thousands and two decimals: 123456789 -> "1 234 567.89"."""
    if tiyn is None:
        return NOTHING
    sign = "-" if tiyn < 0 else ""
    tenge, rest = divmod(abs(tiyn), 100)
    return f"{sign}{format_units(tenge)}.{rest:02d}"


def format_units(units: int | None) -> str:
    """A whole number with spaces between thousands: 1234567 -> "1 234 567"."""
    return NOTHING if units is None else f"{units:,}".replace(",", " ")


def _plain(value: Any) -> str:
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _label(status: str) -> str:
    return status.replace("_", " ")


# CSV


def report_csv(document: dict) -> bytes:
    """The report as one machine-readable table: a header row, then one row per emission (those with an
    underlying asset first, then those without), joining its coverage, ledger, chain and holder-tree
    entries. UTF-8, CRLF line ends, amounts in integer tiyn, empty cells where the report has no value.
    No text cell can run as a spreadsheet formula: issuers' names and references come from outside."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([neutralised(row[column]) for column in CSV_COLUMNS] for row in _emission_rows(document))
    return buffer.getvalue().encode()


def _emission_rows(document: dict) -> Iterator[dict[str, Any]]:
    ledger = {entry["asset_code"]: entry for entry in document["ledger"] if entry["kind"] == "dfa"}
    chain = {entry["asset_code"]: entry for entry in document["chain"]["emissions"]}
    trees = {entry["asset_code"]: entry for entry in document["holder_trees"]}
    emissions = [*document["coverage"], *document["without_underlying"]]
    for emission in emissions:
        code = emission["asset_code"]
        tree = trees.get(code, {})
        yield {
            "asset_code": code,
            "issuer_name": emission["issuer"]["name"],
            "issuer_bin": emission["issuer"]["bin"],
            **{column: emission.get(column) for column in _COVERAGE_COLUMNS},
            # An emission without an underlying asset has no coverage entry, hence no coverage status.
            "coverage_status": emission.get("status"),
            "ledger_status": ledger.get(code, {}).get("status"),
            "chain_status": chain.get(code, {}).get("status"),
            "holder_root": tree.get("root_hash"),
            "holders": tree.get("leaf_count"),
        }


# PDF

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVuSans"
_BODY_PT = 9
_TABLE_PT = 7
_LINE_MM = 5
_HEADING_ROOM_MM = 25


class DejaVuPdf(FPDF):
    """A4 pages set in DejaVu Sans, which has the Kazakh and Russian letters of people's and issuers' names
    (and the tenge sign), with headings, paragraphs, labelled values and tables, each page footed with what the document is and
    its number (`numbering` has the placeholders page and pages): what the operator's printable documents share."""

    def __init__(self, footer_text: str, *, numbering: str = "page %(page)s of %(pages)s") -> None:
        super().__init__(format="A4")
        self.footer_text, self.numbering = footer_text, numbering
        self.add_font(FONT, "", FONTS / "DejaVuSans.ttf")
        self.add_font(FONT, "B", FONTS / "DejaVuSans-Bold.ttf")
        self.set_margins(15, 15)
        self.set_auto_page_break(True, margin=15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", _TABLE_PT)
        numbered = self.numbering % {"page": self.page_no(), "pages": "{nb}"}
        self.cell(0, 4, f"{self.footer_text} · {numbered}", align="C")

    def heading(self, text: str, *, size_pt: int = 11) -> None:
        """A section's title, moved to the next page when too little room is left for anything under it."""
        if self.will_page_break(_HEADING_ROOM_MM):
            self.add_page()
        self.ln(2)
        self.set_font(FONT, "B", size_pt)
        self.multi_cell(0, _LINE_MM + 1, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", _BODY_PT)

    def paragraph(self, text: str) -> None:
        self.set_font(FONT, "", _BODY_PT)
        self.multi_cell(0, _LINE_MM, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def pairs(self, pairs: Sequence[tuple[str, Any]], *, wrapmode: WrapMode = WrapMode.WORD) -> None:
        """Labelled values, one per line; CHAR wrapping breaks hashes and signatures that outrun the line."""
        self.set_font(FONT, "", _BODY_PT)
        with self.table(
            col_widths=(50, 130), first_row_as_headings=False, borders_layout="NONE", text_align="LEFT",
            line_height=_LINE_MM - 0.5, wrapmode=wrapmode,
        ) as table:
            for label, value in pairs:
                row = table.row()
                row.cell(label)
                row.cell(_plain(value))
        self.ln(1)

    def grid(
        self, headings: Sequence[str], rows: Sequence[Sequence[Any]], *, widths: Sequence[int],
        right: frozenset[int] = frozenset(), wrapmode: WrapMode = WrapMode.WORD,
    ) -> None:
        """A bordered table with a heading row repeated on every page; columns in `right` (amounts) align
        right. Without rows, a line saying so instead."""
        if not rows:
            self.paragraph("None.")
            return
        self.set_font(FONT, "", _TABLE_PT)
        with self.table(
            col_widths=widths, text_align=tuple("RIGHT" if i in right else "LEFT" for i in range(len(widths))),
            line_height=_TABLE_PT / 2, wrapmode=wrapmode,
        ) as table:
            table.row(headings)
            for cells in rows:
                table.row([_plain(cell) for cell in cells])
        self.ln(2)


def report_pdf(
    document: dict, *, content_sha256: str, signature_b64: str, signing_key_sha256: str, sign_off: dict | None
) -> bytes:
    """The report as a printable PDF: what was checked, what was found, and the SHA-256, key fingerprint and
    signature of the signed document it renders, so a printout can be checked against the signed JSON.

    `sign_off` is the compliance sign-off, if any, as {"signed_by", "signed_at", "comment"}.
    """
    pdf = DejaVuPdf(f"Reconciliation report {document['business_date']}, version {document['version']}")
    pdf.set_title(f"Reconciliation report {document['business_date']} v{document['version']}")
    pdf.set_author(document["operator"]["name"])
    pdf.add_page()
    _header(pdf, document)
    _totals(pdf, document["totals"])
    _coverage(pdf, document)
    _breaches(pdf, document)
    _ledger(pdf, document["ledger"])
    _chain(pdf, document["chain"])
    _client_money(pdf, document["client_money"])
    _holder_trees(pdf, document["holder_trees"])
    signature_section(
        pdf, what="report", content_sha256=content_sha256, signature_b64=signature_b64,
        signing_key_sha256=signing_key_sha256,
    )
    _sign_off(pdf, sign_off)
    return bytes(pdf.output())


def _header(pdf: DejaVuPdf, document: dict) -> None:
    operator, run = document["operator"], document["run"]
    pdf.heading("Daily reconciliation report", size_pt=16)
    pdf.pairs([
        ("Operator", operator["name"]),
        ("Operator BIN", operator["bin"]),
        ("NBK registration number", operator["nbk_registration_number"]),
        ("Business date", document["business_date"]),
        ("Version", document["version"]),
        ("Late", document["late"]),
        ("As of", document["as_of"]),
        ("Run", f"{run['id']} ({run['trigger']}, requested by {run['requested_by']}, started {run['started_at']})"),
    ])


def _totals(pdf: DejaVuPdf, totals: dict) -> None:
    pdf.heading("Totals")
    pdf.pairs([
        ("Emissions", format_units(totals["emissions"])),
        ("With an underlying asset", format_units(totals["with_underlying"])),
        ("Covered", format_units(totals["covered"])),
        ("Outstanding units", format_units(totals["outstanding_units"])),
        ("Required value, KZT", format_kzt(totals["required_value_tiyn"])),
        ("Market value, KZT", format_kzt(totals["market_value_tiyn"])),
        ("Open breaches", format_units(totals["breaches"])),
        ("New breaches", format_units(totals["new_breaches"])),
        ("Cleared breaches", format_units(totals["cleared_breaches"])),
    ])


def _coverage(pdf: DejaVuPdf, document: dict) -> None:
    pdf.heading("Coverage of emissions by their underlying assets")
    pdf.grid(
        ("Emission", "Issuer", "Status", "Required, KZT", "Market, KZT", "Shortfall, KZT", "Valued on"),
        [
            (
                entry["asset_code"], f"{entry['issuer']['name']}\nBIN {entry['issuer']['bin']}",
                _label(entry["status"]) if entry["status"] == "covered" else f"{_label(entry['status'])}: {entry['detail']}",
                format_kzt(entry["required_value_tiyn"]), format_kzt(entry["market_value_tiyn"]),
                format_kzt(entry["shortfall_tiyn"]), entry["valued_on"],
            )
            for entry in document["coverage"]
        ],
        widths=(32, 30, 34, 22, 22, 20, 20), right=frozenset({3, 4, 5}),
    )
    if document["without_underlying"]:
        pdf.heading("Emissions without an underlying asset", size_pt=9)
        pdf.grid(
            ("Emission", "Issuer", "Reason"),
            [(e["asset_code"], f"{e['issuer']['name']}\nBIN {e['issuer']['bin']}", e["reason"])
             for e in document["without_underlying"]],
            widths=(40, 60, 80),
        )


def _breaches(pdf: DejaVuPdf, document: dict) -> None:
    pdf.heading("Breaches")
    pdf.grid(
        ("Breach", "Kind", "Emission", "Detail", "New"),
        [(b["id"], _label(b["kind"]), b["asset_code"], b["detail"], b["new"]) for b in document["breaches"]],
        widths=(12, 24, 34, 98, 12),
    )
    if document["cleared"]:
        pdf.heading("Cleared by this report", size_pt=9)
        pdf.grid(
            ("Breach", "Kind", "Emission", "Detail"),
            [(c["id"], _label(c["kind"]), c["asset_code"], c["detail"]) for c in document["cleared"]],
            widths=(12, 24, 34, 110),
        )


def _ledger(pdf: DejaVuPdf, ledger: list[dict]) -> None:
    pdf.heading("Ledger invariants")
    pdf.grid(
        ("Asset", "Kind", "Accounts", "Status", "Findings"),
        [(e["asset_code"], e["kind"], format_units(e["accounts"]), e["status"], "\n".join(e["findings"]))
         for e in ledger],
        widths=(34, 14, 16, 14, 102), right=frozenset({2}),
    )


def _chain(pdf: DejaVuPdf, chain: dict) -> None:
    pdf.heading("Ledger against the chain")
    if not chain["checked"]:
        pdf.paragraph(f"Not checked: {chain['reason'] or 'no reason given'}.")
        return
    pdf.grid(
        ("Emission", "Status", "Block", "Ledger outstanding", "Chain supply", "Holder differences"),
        [
            (e["asset_code"], _label(e["status"]), e["block"], format_units(e["ledger_outstanding"]),
             format_units(e["chain_supply"]), format_units(e["holder_differences"]))
            for e in chain["emissions"]
        ],
        widths=(34, 22, 22, 36, 34, 32), right=frozenset({2, 3, 4, 5}),
    )


def _client_money(pdf: DejaVuPdf, money: dict) -> None:
    pdf.heading("Client money against the bank")
    pdf.pairs([
        ("Status", _label(money["status"])),
        ("Account (IBAN)", money["account_iban"]),
        ("Bank statement date", money["statement_date"]),
        ("Bank closing balance, KZT", format_kzt(money["bank_closing_tiyn"])),
        ("Ledger, KZT", format_kzt(money["ledger_tiyn"])),
        ("Unmatched receipts, KZT", format_kzt(money["unmatched_tiyn"])),
        ("Difference, KZT", format_kzt(money["difference_tiyn"])),
    ])


def _holder_trees(pdf: DejaVuPdf, trees: list[dict]) -> None:
    pdf.heading("Holder trees (Merkle-sum roots of each emission's holders)")
    pdf.grid(
        ("Emission", "Holders", "Total units", "Root hash (SHA-256)"),
        [(t["asset_code"], format_units(t["leaf_count"]), format_units(t["total_units"]), t["root_hash"])
         for t in trees],
        widths=(34, 14, 24, 108), right=frozenset({1, 2}), wrapmode=WrapMode.CHAR,
    )


def signature_section(
    pdf: DejaVuPdf, *, what: str, content_sha256: str, signature_b64: str, signing_key_sha256: str
) -> None:
    """Where a printout of a signed document says how to check it against the signed JSON (`what` it is)."""
    pdf.heading("Signature")
    pdf.paragraph(
        f"The operator signed the {what}'s canonical JSON document with its Ed25519 key. The JSON document is "
        "authoritative; this rendering is checked against it by the hash below."
    )
    pdf.pairs([
        ("Document SHA-256", content_sha256),
        ("Signing key SHA-256", signing_key_sha256),
        ("Signature (base64)", signature_b64),
    ], wrapmode=WrapMode.CHAR)


def _sign_off(pdf: DejaVuPdf, sign_off: dict | None) -> None:
    pdf.heading("Compliance sign-off")
    if sign_off is None:
        pdf.paragraph("Not signed off.")
        return
    pdf.pairs([("Signed off by", sign_off["signed_by"]), ("At", sign_off["signed_at"]), ("Comment", sign_off["comment"])])


# SVG chart


class ChartPoint(Protocol):
    """What the chart needs of one report's coverage of an emission (a `CoveragePoint`)."""

    business_date: date
    version: int
    status: str
    required_value: int
    market_value: int | None


_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 104, 40, 32, 36
_Y_INTERVALS = 4
_X_LABELS_MAX = 6
_LEGEND_STEP_PX = 130
_BAND_MAX_PX = 40
_MARKET_COLOUR, _REQUIRED_COLOUR = "#1b6e3a", "#1f3f7a"
_SHORTFALL_COLOUR, _OTHER_BREACH_COLOUR = "#f2b8b5", "#f6dca0"


def coverage_chart_svg(points: Sequence[ChartPoint], *, width: int = 720, height: int = 240) -> str:
    """An emission's coverage history as standalone SVG markup: per business date the underlying asset's
    market value (solid line) against the value its outstanding units require (dashed line), in KZT; days
    short of cover are red bands and days without a usable valuation amber bands, each with a tooltip.
    A forced re-run's later version replaces that day's earlier one. No script, every text escaped, and a
    `<title>` and `<desc>` for screen readers."""
    latest: dict[date, ChartPoint] = {}
    for point in sorted(points, key=lambda p: (p.business_date, p.version)):
        latest[point.business_date] = point
    days = list(latest.values())
    if not days:
        return _svg(width, height, "Coverage history: no reports yet", "No reconciliation report covers this "
                    "emission yet.", [_text(width // 2, height // 2, "No reports yet", anchor="middle")])
    plot = _Plot(days, width=width, height=height)
    title = f"Coverage history {days[0].business_date} to {days[-1].business_date}: market value against required value"
    return _svg(width, height, title, _description(days), [
        *plot.breach_bands(),
        *plot.axes(),
        plot.line([p.required_value for p in days], colour=_REQUIRED_COLOUR, dashed=True),
        plot.line([p.market_value for p in days], colour=_MARKET_COLOUR, dashed=False),
        *plot.markers(),
        *_legend(),
    ])


def _description(days: Sequence[ChartPoint]) -> str:
    short = [p for p in days if p.status == "shortfall"]
    described = f"{len(days)} business days."
    if short:
        described += " Short of cover on " + ", ".join(str(p.business_date) for p in short) + "."
    return described


class _Plot:
    """Positions of days and amounts in the plot area; whole pixels, so no float touches an amount."""

    def __init__(self, days: Sequence[ChartPoint], *, width: int, height: int) -> None:
        self.days = days
        self.left, self.right = _MARGIN_LEFT, width - _MARGIN_RIGHT
        self.top, self.bottom = _MARGIN_TOP, height - _MARGIN_BOTTOM
        self.first = days[0].business_date
        self.span_days = (days[-1].business_date - self.first).days
        highest = max(max(p.required_value, p.market_value or 0) for p in days)
        self.step_tenge = _tick_step(-(-highest // 100), _Y_INTERVALS)
        self.axis_top = self.step_tenge * 100 * _Y_INTERVALS

    def x(self, day: date) -> int:
        if self.span_days == 0:
            return (self.left + self.right) // 2
        return self.left + (day - self.first).days * (self.right - self.left) // self.span_days

    def y(self, tiyn: int) -> int:
        return self.bottom - tiyn * (self.bottom - self.top) // self.axis_top

    def band_width(self) -> int:
        return min(_BAND_MAX_PX, max(3, (self.right - self.left) // (self.span_days + 1)))

    def breach_bands(self) -> Iterator[str]:
        half = self.band_width() // 2
        for p in self.days:
            if p.status == "covered":
                continue
            colour = _SHORTFALL_COLOUR if p.status == "shortfall" else _OTHER_BREACH_COLOUR
            yield (
                f'<rect class="day-{_esc(p.status)}" x="{self.x(p.business_date) - half}" y="{self.top}" '
                f'width="{2 * half or 1}" height="{self.bottom - self.top}" fill="{colour}">'
                f"<title>{_esc(_day_summary(p))}</title></rect>"
            )

    def axes(self) -> Iterator[str]:
        for i in range(_Y_INTERVALS + 1):
            tiyn = i * self.step_tenge * 100
            y = self.y(tiyn)
            yield f'<line x1="{self.left}" y1="{y}" x2="{self.right}" y2="{y}" stroke="#d0d0d0" stroke-width="1"/>'
            yield _text(self.left - 6, y + 4, format_units(tiyn // 100), anchor="end")
        yield _text(self.left - 6, self.top - 14, "KZT", anchor="end")
        yield f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}" stroke="#555" stroke-width="1"/>'
        labelled = _evenly_spaced(len(self.days), _X_LABELS_MAX)
        for i in labelled:
            day = self.days[i].business_date
            yield _text(self.x(day), self.bottom + 16, day.isoformat(), anchor="middle")

    def line(self, values: Sequence[int | None], *, colour: str, dashed: bool) -> str:
        """One series as a path that breaks where a day has no value (no valuation)."""
        commands, pen_down = [], False
        for p, value in zip(self.days, values, strict=True):
            if value is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{self.x(p.business_date)} {self.y(value)}")
            pen_down = True
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        return f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'

    def markers(self) -> Iterator[str]:
        for p in self.days:
            x, summary = self.x(p.business_date), _esc(_day_summary(p))
            required_y = self.y(p.required_value)
            yield (f'<rect x="{x - 3}" y="{required_y - 3}" width="6" height="6" fill="{_REQUIRED_COLOUR}">'
                   f"<title>{summary}</title></rect>")
            if p.market_value is not None:
                yield (f'<circle cx="{x}" cy="{self.y(p.market_value)}" r="3.5" fill="{_MARKET_COLOUR}">'
                       f"<title>{summary}</title></circle>")


def _day_summary(p: ChartPoint) -> str:
    return (f"{p.business_date} (version {p.version}): {_label(p.status)}; market {format_kzt(p.market_value)} KZT, "
            f"required {format_kzt(p.required_value)} KZT")


def _legend() -> Iterator[str]:
    """A swatch and a label for each line and band, in a row above the plot."""
    swatches = (
        ("Market value", f'<line x2="24" stroke="{_MARKET_COLOUR}" stroke-width="2"/>'),
        ("Required value", f'<line x2="24" stroke="{_REQUIRED_COLOUR}" stroke-width="2" stroke-dasharray="6 4"/>'),
        ("Short of cover", f'<rect x="6" y="-6" width="12" height="12" fill="{_SHORTFALL_COLOUR}"/>'),
        ("Other breach", f'<rect x="6" y="-6" width="12" height="12" fill="{_OTHER_BREACH_COLOUR}"/>'),
    )
    for i, (label, swatch) in enumerate(swatches):
        x, y = _MARGIN_LEFT + 40 + i * _LEGEND_STEP_PX, _MARGIN_TOP - 16
        yield f'<g transform="translate({x} {y})">{swatch}{_text(30, 4, label)}</g>'


def _tick_step(highest: int, intervals: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten whose `intervals` multiples reach `highest` (at least 1)."""
    least = max(1, -(-highest // intervals))
    magnitude = 10 ** (len(str(least)) - 1)
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= least)


def _evenly_spaced(count: int, most: int) -> list[int]:
    """Up to `most` indexes out of `count`, first and last among them, spread evenly."""
    if count <= most:
        return list(range(count))
    return sorted({i * (count - 1) // (most - 1) for i in range(most)})


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _text(x: int, y: int, text: str, *, anchor: str = "start") -> str:
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="11" fill="#222">{_esc(text)}</text>'


def _svg(width: int, height: int, title: str, description: str, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="coverage-chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="coverage-chart-title coverage-chart-desc" '
        f'font-family="DejaVu Sans, Verdana, sans-serif">'
        f'<title id="coverage-chart-title">{_esc(title)}</title><desc id="coverage-chart-desc">{_esc(description)}</desc>'
        + "".join(parts)
        + "</svg>"
    )
