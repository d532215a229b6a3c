"""The issuance API: issuers and their documents, underlying assets, emission applications and emissions,
placement and redemption, holder protections, trading suspensions and trading platforms."""

from fastapi import APIRouter

from dfa.issuance.routes import applications, holders, issuers, offering, platforms

router = APIRouter()
for part in (issuers, applications, offering, holders, platforms):
    router.include_router(part.router)
