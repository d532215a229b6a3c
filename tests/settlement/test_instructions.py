"""Bilateral settlement instructions: both sides prefunded, matched on their terms, settled together
or not at all, failed at the close of their settlement day with their holds released, resubmitted."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from dfa.ledger import errors as ledger_errors
from dfa.platform.calendar.service import load_calendar
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.identity.errors import AntiFraudMatch, PartyNotIdentified
from dfa.settlement import errors
from dfa.settlement.service import instructions, orders
from dfa.settlement.service.instructions import Delivery
from tests.ledger.helpers import assert_ledger_verifies, refused

VALUE = 1_000_000  # 10 000.00 KZT for 100 units
FEE = VALUE * 10 // 10_000


async def _side(market, party, counterparty, deliver, receive, **terms):
    return await instructions.submit(
        market.session, party_id=party.id, counterparty_id=counterparty.id, deliver=deliver, receive=receive,
        reference=terms.pop("reference", "T-1"), actor="test", centre=market.centre, settings=market.settings, **terms,
    )


async def _dvp(market, seller, buyer, **terms):
    """Both sides of a DvP of 100 units for VALUE tiyn; returns (seller's submission, buyer's submission)."""
    units, money = Delivery(market.emission.code, 100), Delivery("KZT", VALUE)
    first = await _side(market, seller, buyer, units, money, **terms)
    second = await _side(market, buyer, seller, money, units, **terms)
    return first, second


async def _business_day_after(market, days: int = 1):
    calendar = await load_calendar(market.session, settings=market.settings)
    today = calendar.business_date_of(instructions._now())
    return calendar.add_business_days(today, days)


async def test_req38_a_bilateral_dvp_settles_when_the_second_side_matches(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)

    units, money = Delivery(market.emission.code, 100), Delivery("KZT", VALUE)
    first = await _side(market, seller, buyer, units, money)
    assert first.created and first.instruction.status == "pending"
    second = await _side(market, buyer, seller, money, units)

    assert not second.created and second.instruction.id == first.instruction.id
    assert second.instruction.status == "settled"
    assert (await market.balance(buyer, market.emission), await market.balance(seller, market.emission)) == (100, 0)
    assert await market.balance(buyer, market.kzt) == 0
    assert await market.balance(seller, market.kzt) == VALUE - FEE
    assert await market.fees() == 2 * FEE
    history = [e.event for e in await instructions.history(market.session, first.instruction.id)]
    assert history == ["submitted", "submitted", "matched", "settled"]
    await assert_ledger_verifies(market.session)


async def test_req38_the_first_side_is_held_while_it_waits(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    await _side(market, buyer, seller, Delivery("KZT", VALUE), Delivery(market.emission.code, 100))

    assert await market.balance(buyer, market.kzt, "held") == VALUE + FEE
    assert await market.balance(seller, market.emission, "held") == 0


async def test_sides_with_different_terms_do_not_match(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=2 * VALUE)
    await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))
    other = await _side(market, buyer, seller, Delivery("KZT", VALUE - 1), Delivery(market.emission.code, 100))

    assert other.created and other.instruction.status == "pending"
    assert await market.balance(buyer, market.emission) == 0


async def test_req38_atomicity_a_failure_between_the_legs_moves_nothing(market):
    """The first leg is written, then the ledger refuses the second: both legs roll back together."""
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))
    seller_cash = await market.balance(seller, market.kzt)
    await market.session.execute(text(
        "CREATE FUNCTION pg_temp.fail_money_leg() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'injected failure between the legs'; END $$"
    ))
    await market.session.execute(text(
        "CREATE TRIGGER fail_money_leg BEFORE INSERT ON ledger_entries FOR EACH ROW "
        f"WHEN (NEW.amount = {VALUE - FEE}) EXECUTE FUNCTION pg_temp.fail_money_leg()"
    ))

    with pytest.raises(Exception, match="injected failure"):
        async with market.session.begin_nested():
            await _side(market, buyer, seller, Delivery("KZT", VALUE), Delivery(market.emission.code, 100))

    await market.session.execute(text("DROP TRIGGER fail_money_leg ON ledger_entries"))
    assert await market.balance(seller, market.emission) == 0  # still held for the instruction
    assert await market.balance(seller, market.emission, "held") == 100
    assert await market.balance(buyer, market.emission) == 0
    assert await market.balance(buyer, market.kzt) == VALUE + FEE
    assert await market.balance(seller, market.kzt) == seller_cash
    assert await market.fees() == 0


async def test_req38_a_buyer_short_of_money_cannot_submit_and_nothing_is_held(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE)  # the fee is missing
    await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))

    async with refused(market.session, ledger_errors.InsufficientFunds):
        await _side(market, buyer, seller, Delivery("KZT", VALUE), Delivery(market.emission.code, 100))
    assert await market.balance(buyer, market.kzt) == VALUE


async def test_req39_a_bilateral_dvd_exchanges_two_emissions_at_once(market):
    other = await market.new_emission()
    alice = await market.investor(units=30)
    bob = await market.investor(units=70, asset=other)

    await _side(market, alice, bob, Delivery(market.emission.code, 30), Delivery(other.code, 70))
    done = await _side(market, bob, alice, Delivery(other.code, 70), Delivery(market.emission.code, 30))

    assert (done.instruction.kind, done.instruction.status) == ("dvd", "settled")
    assert (await market.balance(alice, other), await market.balance(bob, market.emission)) == (70, 30)
    assert await market.fees() == 0


async def test_req37_a_later_settlement_date_waits_and_settles_on_that_day(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    later = await _business_day_after(market)
    _, matched = await _dvp(market, seller, buyer, settlement_date=later)
    assert matched.instruction.status == "pending"

    early = await instructions.settle_due(market.session, centre=market.centre, settings=market.settings)
    calendar = await load_calendar(market.session, settings=market.settings)
    on_the_day = calendar.close_of(later) - timedelta(hours=1)
    settled = await instructions.settle_due(
        market.session, centre=market.centre, settings=market.settings, now=on_the_day
    )

    assert (early, settled) == (0, 1)
    assert await market.balance(buyer, market.emission) == 100


async def test_req37_an_unmatched_instruction_fails_at_the_close_and_releases_its_hold(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    waiting = await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))
    calendar = await load_calendar(market.session, settings=market.settings)
    after_close = calendar.close_of(waiting.instruction.settlement_date) + timedelta(minutes=1)

    failed = await instructions.fail_overdue(market.session, settings=market.settings, now=after_close)

    assert failed == 1
    instruction = await instructions.get_instruction(market.session, waiting.instruction.id)
    assert (instruction.status, instruction.failure_code) == ("failed", "not-settled-by-close")
    assert "second party's side was never submitted" in instruction.failure_reason
    assert await market.balance(seller, market.emission) == 100

    # A failed instruction stays visible and is resubmitted by both parties as a new one.
    again = await instructions.resubmit(
        market.session, instruction_id=instruction.id, party_id=seller.id, settlement_date=None, actor="t",
        centre=market.centre, settings=market.settings,
    )
    matched = await instructions.resubmit(
        market.session, instruction_id=instruction.id, party_id=buyer.id, settlement_date=None, actor="t",
        centre=market.centre, settings=market.settings,
    )
    assert matched.instruction.id == again.instruction.id != instruction.id
    assert (matched.instruction.status, matched.instruction.resubmitted_from) == ("settled", instruction.id)


async def test_req18_an_anti_fraud_hit_refuses_the_instruction(market):
    flagged = await market.investor(units=100, identifier=market.flagged)
    buyer = await market.investor(money=VALUE + FEE)
    async with refused(market.session, AntiFraudMatch):
        await _side(market, buyer, flagged, Delivery("KZT", VALUE), Delivery(market.emission.code, 100))
    assert await market.balance(buyer, market.kzt, "held") == 0


async def test_req18_the_anti_fraud_centre_down_refuses_the_instruction(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    market.centre.down = True
    async with refused(market.session, ExternalPartyUnavailable):
        await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))
    assert await market.balance(seller, market.emission, "held") == 0


async def test_req18_a_due_instruction_is_screened_again_and_waits_while_the_centre_is_down(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    later = await _business_day_after(market)
    await _dvp(market, seller, buyer, settlement_date=later)
    calendar = await load_calendar(market.session, settings=market.settings)
    on_the_day = calendar.close_of(later) - timedelta(hours=1)
    market.centre.down = True

    assert await instructions.settle_due(market.session, centre=market.centre, settings=market.settings, now=on_the_day) == 0
    market.centre.down = False
    assert await instructions.settle_due(market.session, centre=market.centre, settings=market.settings, now=on_the_day) == 1


async def test_req14_an_unidentified_counterparty_refuses_the_instruction(market):
    seller = await market.investor(units=100)
    stranger = await market.investor(identified=False)
    async with refused(market.session, PartyNotIdentified):
        await _side(market, seller, stranger, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))


async def test_suspension_refuses_instructions_and_fails_pending_ones(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=VALUE + FEE)
    waiting = await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))

    await orders.suspend(market.session, asset_code=market.emission.code, reason="shortfall", actor="compliance")

    instruction = await instructions.get_instruction(market.session, waiting.instruction.id)
    assert (instruction.status, instruction.failure_code) == ("failed", "trading-suspended")
    assert await market.balance(seller, market.emission) == 100
    async with refused(market.session, errors.TradingSuspended):
        await _side(market, buyer, seller, Delivery("KZT", VALUE), Delivery(market.emission.code, 100))


async def test_a_party_cancels_its_waiting_side_but_not_a_matched_instruction(market):
    seller = await market.investor(units=200)
    buyer = await market.investor(money=2 * (VALUE + FEE))
    waiting = await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))
    cancelled = await instructions.cancel(
        market.session, instruction_id=waiting.instruction.id, party_id=seller.id, actor="t", reason="typo"
    )
    assert cancelled.status == "cancelled" and await market.balance(seller, market.emission) == 200

    later = await _business_day_after(market)
    _, matched = await _dvp(market, seller, buyer, settlement_date=later, reference="T-2")
    async with refused(market.session, errors.InstructionNotChangeable):
        await instructions.cancel(
            market.session, instruction_id=matched.instruction.id, party_id=buyer.id, actor="t", reason="changed mind"
        )
    stranger = await market.investor()
    async with refused(market.session, errors.InstructionNotFound):
        await instructions.cancel(
            market.session, instruction_id=matched.instruction.id, party_id=stranger.id, actor="t", reason="x"
        )
    by_operator = await instructions.cancel(
        market.session, instruction_id=matched.instruction.id, party_id=None, actor="admin", reason="court order"
    )
    assert by_operator.status == "cancelled"
    assert await market.balance(buyer, market.kzt) == 2 * (VALUE + FEE)


async def test_submitting_the_same_side_twice_is_refused(market):
    seller = await market.investor(units=200)
    buyer = await market.investor()
    await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))
    async with refused(market.session, errors.InstructionAlreadySubmitted):
        await _side(market, seller, buyer, Delivery(market.emission.code, 100), Delivery("KZT", VALUE))


@pytest.mark.parametrize(
    "deliver, receive",
    [(("KZT", 5), ("KZT", 5)), (("EMISSION", 5), ("EMISSION", 5)), (("EMISSION", 0), ("KZT", 5))],
)
async def test_instruction_terms_are_checked(market, deliver, receive):
    seller = await market.investor(units=10)
    buyer = await market.investor()

    def delivery(spec):
        return Delivery(market.emission.code if spec[0] == "EMISSION" else spec[0], spec[1])

    async with refused(market.session, errors.InstructionTermsInvalid):
        await _side(market, seller, buyer, delivery(deliver), delivery(receive))


async def test_a_payment_that_with_the_fee_passes_the_largest_amount_is_refused_at_once(market):
    """10^17 tiyn is the most the ledger holds: a payment of that much leaves no room for the fee, so the first
    side is refused at once rather than the payer's side failing with a server error when it comes."""
    seller = await market.investor(units=10)
    buyer = await market.investor()

    async with refused(market.session, errors.InstructionTermsInvalid):
        await _side(market, seller, buyer, Delivery(market.emission.code, 5), Delivery("KZT", 10**17))
