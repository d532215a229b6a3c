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
