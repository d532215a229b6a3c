"""Platform routes: health, problem type documentation, parties."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import text

from dfa.platform import schemas, service
from dfa.platform.access import operator_staff
from dfa.platform.types import Limit
from dfa.platform.errors import Category, DomainError
from dfa.platform.web import (
    HTTP_PROBLEM_TYPES,
    DatabaseDep,
    IdempotencyKeyHeader,
    SessionDep,
    SettingsDep,
    UnitOfWorkRoute,
    problem,
    problem_type_uri,
)

router = APIRouter(tags=["platform"])
staff = APIRouter(prefix="/v1", tags=["parties"], route_class=UnitOfWorkRoute, dependencies=[Depends(operator_staff)])


@router.get("/healthz", response_model=schemas.Health, responses={503: {"description": "The database is down."}})
async def healthz(database: DatabaseDep):
    """Liveness and readiness: answers ok only when PostgreSQL answers."""
    try:
        async with database.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means "not ready"
        return problem(
            503, slug="database-unavailable", title="The database is unavailable", detail="PostgreSQL did not answer",
            request=None,
        )
    return schemas.Health(status="ok", database="ok")


@router.get("/problems/{slug}", response_model=schemas.ProblemType)
async def problem_type(slug: str):
    """What a problem `type` means."""
    error = DomainError.registry.get(slug)
    if error is not None:
        return schemas.ProblemType(type=problem_type_uri(slug), title=error.title, category=error.category)
    if slug in HTTP_PROBLEM_TYPES:
        return schemas.ProblemType(type=problem_type_uri(slug), title=HTTP_PROBLEM_TYPES[slug], category="http")
    raise _UnknownProblemType(f"no problem type {slug!r}")


class _UnknownProblemType(DomainError):
    type = "unknown-problem-type"
    title = "No such problem type"
    category = Category.NOT_FOUND


@staff.post("/parties", status_code=status.HTTP_201_CREATED, response_model=schemas.PartyOut)
async def create_party(body: schemas.PartyCreate, session: SessionDep, _key: IdempotencyKeyHeader):
    """Register a person or legal entity."""
    return await service.create_party(
        session, kind=body.kind, name=body.name, identifier=body.identifier, resident=body.resident
    )


@staff.get("/parties", response_model=list[schemas.PartyOut])
async def list_parties(
    session: SessionDep,
    settings: SettingsDep,
    after: Annotated[uuid.UUID | None, Query(description="Return parties with a larger id.")] = None,
    limit: Limit = None,
):
    return await service.list_parties(session, after=after, limit=settings.page_size(limit))


@staff.get("/parties/{party_id}", response_model=schemas.PartyOut)
async def get_party(party_id: uuid.UUID, session: SessionDep):
    return await service.get_party(session, party_id)
