import pytest

from tests.settlement.trading import make_market


@pytest.fixture
async def market(session):
    return await make_market(session)
