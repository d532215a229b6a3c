"""Underlying assets (REQ-26, REQ-27) and their initial certification from the custodian's statement
(REQ-28, REQ-29): every check that fails is named in the findings, a failed certification is still
recorded, and nothing is recorded when the custodian does not answer."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from dfa.issuance import errors
from dfa.issuance.custodian import CustodianSimulator
from dfa.issuance.models import Application, Certification
from dfa.issuance.service import underlying
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.identity.service.parties import local_today
from tests.factories import SETTINGS
from tests.issuance.custodians import CUSTODIAN, kept, make_underlying_asset, new_reference
from tests.issuance.factories import make_application, make_issuer

# 1,000 units of 1,000.00 KZT at a ratio of 1.25: 1,250,000.00 KZT must be covered.
UNITS, NOMINAL, RATIO = 1_000, 100_000, Decimal("1.25")
REQUIRED = 125_000_000


@pytest.fixture
def custodian() -> CustodianSimulator:
    return CustodianSimulator()


async def certify(session, asset, custodian, application=None):
    return await underlying.certify(
        session, underlying_asset_id=asset.id, application=application, custodian=custodian, actor="officer",
        settings=SETTINGS,
    )


async def backed_application(session, custodian, *, market_value: int, ratio: Decimal = RATIO):
    issuer = await make_issuer(session)
    asset = await make_underlying_asset(session, issuer=issuer, reference=kept(custodian, market_value=market_value))
    application = await make_application(
        session, issuer=issuer, units=UNITS, nominal=NOMINAL, underlying_asset_id=asset.id, coverage_ratio=ratio
    )
    return asset, application


async def certification_count(session, asset) -> int:
    statement = select(func.count()).select_from(Certification).where(Certification.underlying_asset_id == asset.id)
    return (await session.execute(statement)).scalar_one()


# --- underlying assets ------------------------------------------------------------------------------------


async def test_an_issuers_asset_is_registered_once_per_custodian_reference_req_27(session):
    issuer, other = await make_issuer(session), await make_issuer(session)
    reference = new_reference()

    asset = await make_underlying_asset(session, issuer=issuer, reference=reference)
    with pytest.raises(errors.UnderlyingAssetAlreadyRegistered):
        await make_underlying_asset(session, issuer=other, reference=reference)

    assert [a.id for a in await underlying.list_underlying_assets(session, issuer_party_id=issuer.id, limit=10)] == [asset.id]
    assert await underlying.list_underlying_assets(session, issuer_party_id=other.id, limit=10) == []
    with pytest.raises(errors.UnderlyingAssetNotFound):
        await underlying.get_underlying_asset(session, asset.id, visible_to=other.id)


async def test_only_an_onboarded_issuer_registers_an_asset(session):
    with pytest.raises(errors.IssuerNotFound):
        await underlying.register_underlying_asset(
            session, issuer_party_id=uuid.uuid4(), kind="goods", description="wheat", custodian=CUSTODIAN,
            custodian_reference=new_reference(), quantity=1, unit="t", actor="test",
        )


# --- certification --------------------------------------------------------------------------------------


def test_the_required_value_is_the_volume_at_the_ratio_rounded_up_to_the_tiyn_req_29():
    terms = Application(units=3, nominal=333, coverage_ratio=Decimal("1.0001"))

    assert underlying.required_value(terms) == 1_000  # 999 x 1.0001 = 999.0999, rounded up


async def test_a_clear_asset_worth_the_volume_at_the_ratio_passes_req_28_req_29(session, custodian):
    asset, application = await backed_application(session, custodian, market_value=REQUIRED)

    certification = await certify(session, asset, custodian, application)

    assert certification.passed and certification.findings == []
    assert (certification.exists, certification.legal_status, certification.encumbered) == (True, "clear", False)
    assert (certification.market_value, certification.required_value) == (REQUIRED, REQUIRED)
    [record] = custodian.requests
    assert certification.source == f"{CUSTODIAN}:{record.statement.statement_id}"
    assert certification.officer == "officer" and certification.application_id == application.id
    latest = await underlying.latest_certification(session, underlying_asset_id=asset.id, application_id=application.id)
    assert latest.id == certification.id


async def test_a_value_one_tiyn_short_fails_and_says_by_how_much_req_29(session, custodian):
    asset, application = await backed_application(session, custodian, market_value=REQUIRED - 1)

    certification = await certify(session, asset, custodian, application)

    assert not certification.passed
    assert certification.findings == [
        "the market value 1,249,999.99 KZT is 0.01 KZT short of the 1,250,000.00 KZT required at coverage ratio 1.25"
    ]


async def test_without_an_application_only_the_asset_itself_is_certified_req_28(session, custodian):
    issuer = await make_issuer(session)
    asset = await make_underlying_asset(session, issuer=issuer, reference=kept(custodian, market_value=1))

    certification = await certify(session, asset, custodian)

    assert certification.passed and certification.required_value is None and certification.application_id is None
    assert await underlying.latest_certification(session, underlying_asset_id=asset.id, application_id=None) == certification


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        (lambda c, r: c.remove(CUSTODIAN, r), "keeps no asset under reference"),
        (lambda c, r: c.dispute(CUSTODIAN, r), "legal status as disputed"),
        (lambda c, r: c.dispute(CUSTODIAN, r, status="unclear"), "legal status as unclear"),
        (lambda c, r: c.encumber(CUSTODIAN, r, "pledged to a bank under agreement 77/2026"),
         "encumbered: pledged to a bank under agreement 77/2026"),
        (lambda c, r: c.revalue(CUSTODIAN, r, market_value=REQUIRED, valued_on=local_today(SETTINGS) - timedelta(days=31)),
         "more than 30 days ago"),
        (lambda c, r: c.withdraw_valuation(CUSTODIAN, r), "states no market value"),
    ],
    ids=["does-not-exist", "disputed", "unclear", "encumbered", "stale-valuation", "no-valuation"],
)
async def test_each_failed_check_is_a_finding_and_the_certification_is_still_recorded_req_28(
    session, custodian, change, finding
):
    asset, application = await backed_application(session, custodian, market_value=REQUIRED)
    change(custodian, asset.custodian_reference)

    certification = await certify(session, asset, custodian, application)

    assert not certification.passed
    [reason] = certification.findings
    assert finding in reason
    assert await certification_count(session, asset) == 1


async def test_every_failed_check_is_named_at_once(session, custodian):
    asset, application = await backed_application(session, custodian, market_value=REQUIRED // 2)
    custodian.dispute(CUSTODIAN, asset.custodian_reference)
    custodian.encumber(CUSTODIAN, asset.custodian_reference, "arrested by court order 2-11/2026")

    certification = await certify(session, asset, custodian, application)

    assert len(certification.findings) == 3
    assert certification.encumbrances == "arrested by court order 2-11/2026"


async def test_a_down_custodian_certifies_nothing_req_28(session, custodian):
    asset, application = await backed_application(session, custodian, market_value=REQUIRED)
    custodian.down = True

    with pytest.raises(ExternalPartyUnavailable):
        await certify(session, asset, custodian, application)
    assert await certification_count(session, asset) == 0


async def test_an_application_backed_by_another_asset_is_refused(session, custodian):
    asset, _ = await backed_application(session, custodian, market_value=REQUIRED)
    _, other_application = await backed_application(session, custodian, market_value=REQUIRED)

    with pytest.raises(errors.CertificationApplicationMismatch):
        await certify(session, asset, custodian, other_application)
    assert await certification_count(session, asset) == 0 and custodian.requests == []


async def test_the_latest_certification_for_the_application_is_the_newest(session, custodian):
    asset, application = await backed_application(session, custodian, market_value=REQUIRED - 1)
    first = await certify(session, asset, custodian, application)
    custodian.revalue(CUSTODIAN, asset.custodian_reference, market_value=REQUIRED)
    first.obtained_at -= timedelta(minutes=1)  # certified a minute earlier
    await session.flush()

    cured = await certify(session, asset, custodian, application)

    latest = await underlying.latest_certification(session, underlying_asset_id=asset.id, application_id=application.id)
    assert latest.id == cured.id and cured.passed and not first.passed
