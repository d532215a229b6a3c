"""Requests and responses of the platform API."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.types import Text


class PartyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["person", "legal_entity"] = Field(description="person (has an IIN) or legal_entity (has a BIN).")
    name: Text = Field(min_length=1, max_length=300, description="Full name or registered legal name.")
    identifier: str = Field(
        min_length=12, max_length=12, description="IIN for a person, BIN for a legal entity: 12 digits with a check digit."
    )
    resident: bool = Field(strict=True, description="Resident of the Republic of Kazakhstan.")


class PartyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Party id.")
    kind: str = Field(description="person or legal_entity.")
    name: str = Field(description="Name.")
    identifier: str = Field(description="IIN or BIN.")
    resident: bool = Field(description="Resident of Kazakhstan.")
    created_at: datetime = Field(description="When the party was registered (UTC).")


class Health(BaseModel):
    status: Literal["ok"] = Field(description="ok when the platform can serve requests.")
    database: Literal["ok"] = Field(description="ok when PostgreSQL answered.")


class ProblemType(BaseModel):
    type: str = Field(description="The problem type URI.")
    title: str = Field(description="Short description.")
    category: str = Field(description="invalid, not_found, conflict, refused, precondition, or http for the HTTP layer's own.")
