"""Requests and responses of the platform API."""

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"] = Field(description="ok when the platform can serve requests.")
    database: Literal["ok"] = Field(description="ok when PostgreSQL answered.")


class ProblemType(BaseModel):
    type: str = Field(description="The problem type URI.")
    title: str = Field(description="Short description.")
    category: str = Field(description="invalid, not_found, conflict, refused, precondition, or http for the HTTP layer's own.")


class FieldError(BaseModel):
    field: str = Field(description="Where the invalid value is, as a dotted path (body.amount_tiyn, query.limit).")
    message: str = Field(description="What is wrong with it.")
    code: str = Field(description="A stable code for the kind of error.")


class Problem(BaseModel):
    """An RFC 9457 problem: what every refusal and error of the API looks like."""

    type: str = Field(description="The problem type URI (`/problems/<slug>`); stable, explained at that path.")
    title: str = Field(description="Short description of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a person.")
    instance: str | None = Field(default=None, description="The path of the request.")
    request_id: str | None = Field(default=None, description="The request's id; quote it when asking about it.")
    context: dict | None = Field(default=None, description="Facts about the refusal, where the problem type has any.")
    errors: list[FieldError] | None = Field(default=None, description="For invalid requests: each invalid field.")
