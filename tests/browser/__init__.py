"""Helpers for browser tests (the fixtures are in conftest.py): sign a browser in, photograph a page."""

import re
from pathlib import Path

from playwright.async_api import Page

from tests.identity import SESSION_COOKIE, Users

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


async def sign_in(page: Page, users: Users, name: str) -> None:
    """Sign the page's browser in as the `users` fixture's user `name` (a role, or "other_investor"...): its
    session cookie goes into the browser, which then shares that session with `users.client(name)`. A test that
    signs out or lets the session lapse signs in a user of its own through POST /v1/auth/sign-in instead."""
    header = users.client(name).headers["Cookie"]
    cookie_name, _, token = header.partition("=")
    assert cookie_name == SESSION_COOKIE, header
    cookie = {"name": SESSION_COOKIE, "value": token, "url": users.base_url, "secure": True, "sameSite": "Strict"}
    await page.context.add_cookies([{**cookie, "httpOnly": True}])


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/browser/<name>.png; returns the file."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png"
    await page.screenshot(path=path, full_page=True)
    return path
