"""Browser tests: Playwright drives Debian's Chromium against the platform served over real HTTP.

The browser is Debian's `chromium` package (`make test` installs it when it is missing), never one Playwright
downloads; CHROMIUM names another binary. It runs headless, one browser for the session and a new context, with
its own cookies, for every test.

The fixtures use Playwright's async API. pytest-asyncio runs the session's async fixtures and tests on one event
loop, and Playwright's sync API, once started, leaves its own loop marked as running in the main thread between
calls: every async fixture or test after it would then fail. So browser tests are `async def`, and await the page.

Screenshots go to test-artifacts/browser/: those a test takes with `screenshot(page, name)`, and one of the page
as it stood when a test failed. `sign_in(page, users, role)` signs a page's browser in.
"""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright
from playwright.async_api import Error as PlaywrightError

from tests.browser import screenshot

# The binary Debian's /usr/bin/chromium launcher runs; started directly, the launcher's own flags stay out.
DEBIAN_CHROMIUM = Path("/usr/lib/chromium/chromium")
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def chromium_binary() -> Path:
    """The Chromium to drive: $CHROMIUM, else Debian's. Fails the test when there is none."""
    configured = os.environ.get("CHROMIUM")
    found = Path(configured) if configured else DEBIAN_CHROMIUM
    if not configured and not found.is_file() and (on_path := shutil.which("chromium")):
        found = Path(on_path)
    if not (found.is_file() and os.access(found, os.X_OK)):
        pytest.fail(
            f"no Chromium at {found}: the browser tests need Debian's chromium (`make chromium` installs it, or "
            "`apt-get install --no-install-recommends chromium`), or CHROMIUM set to a Chromium binary",
            pytrace=False,
        )
    return found


def chromium_flags() -> list[str]:
    # Containers give /dev/shm little room; as root, Chromium refuses to start with its sandbox.
    return ["--disable-dev-shm-usage", *(["--no-sandbox"] if os.geteuid() == 0 else [])]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    binary = chromium_binary()
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(executable_path=binary, headless=True, args=chromium_flags())
        except PlaywrightError as error:
            pytest.fail(f"Chromium at {binary} did not start: {error.message}", pytrace=False)
        yield launched
        await launched.close()


async def _page(browser: Browser, server_url: str, request: pytest.FixtureRequest, **options) -> AsyncIterator[Page]:
    """A page in a context of its own, relative addresses on the platform, in English whatever the machine's
    locale; photographed if the test fails."""
    context = await browser.new_context(base_url=server_url, locale="en-US", **options)
    try:
        page = await context.new_page()
        yield page
        report = request.node.stash.get(CALL_REPORT, None)
        if report is not None and report.failed:
            await screenshot(page, f"{request.node.name}-failed")
    finally:
        await context.close()


@pytest.fixture
async def page(browser: Browser, server_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A desktop browser's page."""
    async for opened in _page(browser, server_url, request, viewport=DESKTOP):
        yield opened


@pytest.fixture
async def phone_page(browser: Browser, server_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A phone's page: 390×844 CSS pixels, touch, and the page's meta viewport honoured."""
    async for opened in _page(
        browser, server_url, request, viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True
    ):
        yield opened


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Keep the test's own outcome where the page fixtures' teardown can read it."""
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report
