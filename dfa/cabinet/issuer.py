"""(to be written)"""

from fastapi import APIRouter

from dfa.cabinet.pages import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
