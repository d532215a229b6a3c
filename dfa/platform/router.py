"""Platform routes: health and problem type documentation."""

from fastapi import APIRouter
from sqlalchemy import text

from dfa.platform import schemas
from dfa.platform.errors import Category, DomainError
from dfa.platform.web import (
    HTTP_PROBLEM_TYPES,
    DatabaseDep,
    problem,
    problem_type_uri,
)

router = APIRouter(tags=["platform"])


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
