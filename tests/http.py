"""Calls to the platform's API as its clients make them."""

import uuid

import httpx

PROBLEM = "application/problem+json"


def post(client: httpx.Client, path: str, json=None, *, key: str | None = None, **kwargs) -> httpx.Response:
    """POST with an Idempotency-Key: a fresh one, or `key` to replay a request."""
    headers = {"Idempotency-Key": key or str(uuid.uuid4()), **kwargs.pop("headers", {})}
    return client.post(path, json=json, headers=headers, **kwargs)


def problem_slug(response: httpx.Response) -> str:
    """The slug of a problem+json answer's type (`/problems/<slug>`)."""
    assert response.headers["content-type"] == PROBLEM, response.text
    return response.json()["type"].removeprefix("/problems/")
