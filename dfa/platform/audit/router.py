"""The security-event log for auditors and compliance officers: search and verification."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dfa.platform.access import Role, allow
from dfa.platform.audit import schemas, service
from dfa.platform.types import BIGINT_MAX, AwareDatetime, Limit
from dfa.platform.web import SessionDep, SettingsDep, UnitOfWorkRoute

router = APIRouter(
    prefix="/v1/security-events",
    tags=["security events"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(allow(Role.AUDITOR, Role.COMPLIANCE_OFFICER))],
)

Filter = Annotated[str | None, Query(max_length=200)]


@router.get("", response_model=list[schemas.SecurityEventOut])
async def search_events(
    session: SessionDep,
    settings: SettingsDep,
    kind: Annotated[str | None, Query(max_length=64, description="An event kind, or a family ending in a dot (sign_in.).")] = None,
    actor: Filter = None,
    subject: Filter = None,
    outcome: Annotated[str | None, Query(description="success, failure or denied.")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Events at or after this instant (with offset).")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Events before this instant (with offset).")] = None,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="Events numbered below this (paging).")] = None,
    limit: Limit = None,
):
    """Search the log, newest first."""
    return await service.search(
        session, kind=kind, actor=actor, subject=subject, outcome=outcome, since=since, until=until,
        before=before, limit=settings.page_size(limit),
    )


@router.get("/verification", response_model=schemas.VerificationOut)
async def verify_log(session: SessionDep):
    """Recompute the hash chain of the whole log and report any tampering."""
    return await service.verify(session)
