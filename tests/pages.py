"""What tests of the cabinet's pages share: reading a page as its reader does, and the token its forms carry."""

import html
import re

import httpx

BROWSER = {"Accept": "text/html,application/xhtml+xml"}
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def csrf_token_of(page: httpx.Response) -> str:
    """The CSRF token the page's forms carry back."""
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]


def text_of(page: httpx.Response) -> str:
    """The page's text without markup, entities decoded and whitespace collapsed: what a reader reads."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())
