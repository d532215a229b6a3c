"""The compliance pages in a real browser: a compliance officer reads the reports and follows one with the
keyboard, an anonymous visitor sees none, and a phone shows the list without scrolling sideways."""

from urllib.parse import urlparse

import pytest
from playwright.async_api import Page, expect

from tests.browser import screenshot, sign_in
from tests.http import post


@pytest.fixture(scope="module")
def report_id(users) -> int:
    """Today's newest reconciliation report, written by a run a compliance officer asks for."""
    run = post(users.client("compliance_officer"), "/v1/reconciliation/runs", {"force": True})
    assert run.status_code == 201, run.text
    assert run.json()["report_id"] is not None, run.json()
    return run.json()["report_id"]


async def test_a_compliance_officer_follows_the_newest_report_with_the_keyboard(page: Page, users, report_id):
    await sign_in(page, users, "compliance_officer")

    response = await page.goto("/compliance/reports")

    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation reports")
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports")).to_have_attribute(
        "aria-current", "page"
    )
    await expect(page.get_by_text(f"Signed in as {users['compliance_officer'].login}")).to_be_visible()
    await screenshot(page, "compliance-reports")

    link = page.locator(f'a[href="/compliance/reports/{report_id}"]')
    await link.focus()
    await page.keyboard.press("Enter")

    await expect(page).to_have_url(f"/compliance/reports/{report_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Reconciliation report ")
    await expect(page.get_by_role("heading", name="Report and signature")).to_be_visible()
    await screenshot(page, "compliance-report")


async def test_past_the_oldest_report_the_list_says_there_are_no_older_ones(page: Page, users):
    await sign_in(page, users, "compliance_officer")

    await page.goto("/compliance/reports?before=1")

    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation reports")
    await expect(page.get_by_text("No older reports.")).to_be_visible()
    await expect(page.get_by_role("table")).to_have_count(0)


async def test_an_anonymous_browser_sees_no_report(page: Page, report_id):
    response = await page.goto("/compliance/reports")

    # Refused with a 401 problem, or sent to the sign-in page: either way, nothing of the reports.
    assert response is not None
    assert response.status == 401 or urlparse(page.url).path == "/sign-in", (response.status, page.url)
    await expect(page.locator('a[href^="/compliance/reports/"]')).to_have_count(0)
    await expect(page.get_by_role("table")).to_have_count(0)
    await expect(page.get_by_text("Signed in as")).to_have_count(0)
    await screenshot(page, "compliance-reports-anonymous")


async def test_on_a_phone_the_report_list_does_not_scroll_sideways(phone_page: Page, users, report_id):
    await sign_in(phone_page, users, "compliance_officer")

    await phone_page.goto("/compliance/reports")

    await expect(phone_page.locator(f'a[href="/compliance/reports/{report_id}"]')).to_be_visible()
    await screenshot(phone_page, "compliance-reports-phone")
    # A phone widens its layout viewport (and window.innerWidth with it) to fit a page that is too wide; the
    # root element's client width stays the screen's.
    widths = await phone_page.evaluate(
        "({page: document.documentElement.scrollWidth, screen: document.documentElement.clientWidth})"
    )
    assert widths["page"] <= widths["screen"], widths
