"""The cabinet end to end in a real browser, as its people use it: an investor signs in, pays in through the bank,
buys units, sees the holding and the trade and downloads a statement; a compliance officer signs the newest
report off; the language switch turns every page's text Kazakh or Russian and is remembered."""

import csv
import io

import pytest
from playwright.async_api import Page, expect

from dfa.platform.identity.service.parties import local_today
from dfa.settlement import jobs as settlement_jobs
from dfa.settlement.iban import compute_check_digits
from tests.browser import screenshot, sign_in
from tests.http import post
from tests.identity import PASSWORD, create_user, signed_in_client
from tests.identity import sign_in as sign_in_by_api
from tests.issuance.factories import make_emission
from tests.market import fund, onboarded_issuer

PRICE_TIYN = 1_250_00  # 1,250.00 KZT a unit
PAID_IN_TIYN = 50_000_00
BOUGHT = 8


@pytest.fixture
async def emission_on_offer(database, settings, users, server_url) -> str:
    """A fresh emission with another investor's order to sell 20 units at 1,250.00 KZT resting on its book."""
    async with database.unit_of_work() as session:
        issuer = await onboarded_issuer(session, users["issuer"].party_id)
        code = (await make_emission(session, issuer=issuer, units=1_000)).registration_number
    seller, _, seller_party, _ = await create_user(database, settings, role="investor")
    await fund(database, settings, seller_party, units={code: 20}, issuer_id=issuer.id)
    with signed_in_client(server_url, sign_in_by_api(server_url, seller)) as api:
        sold = post(api, "/v1/orders", {"base": code, "side": "sell", "price": PRICE_TIYN, "quantity": 20})
    assert sold.status_code == 201, sold.text
    return code


async def test_an_investor_pays_in_buys_units_and_sees_the_holding_the_trade_and_a_statement(
    page: Page, app, database, settings, emission_on_offer
):
    """REQ: login and password access to the cabinet; an investor's money arrives by the bank's statement."""
    login, _, _, _ = await create_user(database, settings, role="investor")
    code = emission_on_offer

    await page.goto("/portfolio")
    await expect(page).to_have_url("/sign-in?next=%2Fportfolio")
    await page.get_by_label("Login").fill(login)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Portfolio")

    # Paying in: the reference the money page gives goes into the bank transfer's details.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Money").click()
    reference = (await page.locator("dt:has-text('Your payment reference') + dd").inner_text()).strip()
    await screenshot(page, "investor-money")
    bban = "722S000077770001"
    app.state.bank.credit_incoming(
        settings.operator_client_money_iban, PAID_IN_TIYN, f"Top-up {reference}", "Browser Investor",
        f"KZ{compute_check_digits('KZ', bban)}{bban}", local_today(settings),
    )
    assert await settlement_jobs.poll_statement_once(database, app.state.bank, settings) >= 1

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Portfolio").click()
    await expect(page.locator("main")).to_contain_text("50,000.00")

    # Buying: from the emission's page to the order form, a preview, then the order.
    await page.goto(f"/catalogue/{code}")
    await page.get_by_role("link", name="Buy", exact=True).click()
    await page.get_by_label("Price per unit").fill("1,250.00")
    await page.get_by_label("Quantity").fill(str(BOUGHT))
    await page.get_by_role("button", name="Preview the order").click()
    await expect(page.locator("main")).to_contain_text("10,000.00")  # 8 × 1,250.00 KZT held for the order
    await screenshot(page, "investor-order-preview")
    await page.get_by_role("button", name="Place order").click()

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Portfolio").click()
    holding = page.locator("tr", has_text=code)
    await expect(holding).to_contain_text(str(BOUGHT))
    await screenshot(page, "investor-portfolio")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Trades").click()
    trade = page.locator("tbody tr", has_text=code)
    await expect(trade).to_have_count(1)
    await expect(trade).to_contain_text("1,250.00")
    await expect(trade).to_contain_text("10,000.00")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Statements").click()
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download the statement").click()
    download = await downloading.value
    rows = list(csv.reader(io.StringIO((await download.path()).read_text(encoding="utf-8-sig"))))
    assert download.suggested_filename.startswith("statement-") and download.suggested_filename.endswith(".csv")
    assert any(code in " ".join(row) for row in rows), rows
    assert any(reference in " ".join(row) or "50000.00" in row for row in rows), rows


@pytest.fixture
async def report_to_sign(users) -> int:
    """A report of today's reconciliation, newer than any other, that nobody has signed off."""
    run = post(users.client("compliance_officer"), "/v1/reconciliation/runs", {"force": True})
    assert run.status_code == 201, run.text
    return run.json()["report_id"]


async def test_a_compliance_officer_opens_the_newest_report_and_signs_it_off(page: Page, users, report_to_sign):
    """REQ-30: the daily report is reviewed and signed off by compliance."""
    await sign_in(page, users, "compliance_officer")
    await page.goto("/compliance/reports")

    await page.locator("tbody tr").first.get_by_role("link").click()
    await expect(page).to_have_url(f"/compliance/reports/{report_to_sign}")
    await page.get_by_label("Review comment").fill("Reviewed: coverage and client money as expected.")
    await page.get_by_role("button", name="Sign off").click()

    await expect(page).to_have_url(f"/compliance/reports/{report_to_sign}#sign-off")
    await expect(page.locator("main")).to_contain_text(f"Signed off by {users['compliance_officer'].login}")
    await expect(page.get_by_role("button", name="Sign off")).to_have_count(0)
    await screenshot(page, "compliance-report-signed-off")


@pytest.mark.parametrize(("language", "heading", "sign_out"), [("Қазақша", "Портфель", "Шығу"), ("Русский", "Портфель", "Выйти")])
async def test_the_language_switch_changes_the_page_text_and_is_remembered(
    page: Page, users, language, heading, sign_out
):
    await sign_in(page, users, "investor")
    await page.goto("/portfolio")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    await page.get_by_role("navigation", name="Language").get_by_role("link", name=language).click()

    await expect(page.get_by_role("button", name=sign_out)).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    await page.goto("/trades")  # another page, no switch in its address: the language is remembered
    await expect(page.get_by_role("button", name=sign_out)).to_be_visible()
    code = await page.locator("html").get_attribute("lang")
    assert code in ("kk", "ru")
    await screenshot(page, f"trades-{code}")
