"""Requests and responses of the trading API: settlement instructions, orders, trades, market data."""

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, IsoDate, Text

Amount = Field(
    strict=True, ge=1, le=10**17, description="In the asset's smallest unit: tiyn for KZT, whole units of an emission."
)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- settlement instructions -------------------------------------------------------------------------


class Delivery(Request):
    asset: str = Field(pattern=ASSET_CODE_PATTERN, description="Asset code: KZT or an emission's code.")
    amount: int = Amount


class InstructionSubmit(Request):
    counterparty_id: uuid.UUID = Field(description="The party on the other side of the trade.")
    deliver: Delivery = Field(description="What you deliver (your money fee, for a DvP buyer, is held on top).")
    receive: Delivery = Field(description="What the counterparty delivers to you.")
    reference: Text = Field(
        min_length=1, max_length=100,
        description="The trade reference both parties quote; the two sides match on it and every other term.",
    )
    trade_date: IsoDate | None = Field(default=None, description="The day the trade was made; today by default.")
    settlement_date: IsoDate | None = Field(
        default=None,
        description="A business day, today or later (and not before the trade date); today by default (T+0).",
    )


class InstructionResubmit(Request):
    settlement_date: IsoDate | None = Field(default=None, description="The new settlement date; today by default.")


class Reason(Request):
    reason: Text = Field(min_length=1, max_length=500, description="Why; kept in the history.")


class Side(Response):
    party_id: uuid.UUID = Field(description="The party delivering this side.")
    asset: str = Field(description="What it delivers.")
    amount: int = Field(description="How much, in the asset's smallest unit.")
    fee: int = Field(description="The operator's fee this party pays, in tiyn (DvP only).")
    held: bool = Field(description="Whether the party has submitted its side: what it delivers is held.")


class InstructionOut(Response):
    id: uuid.UUID
    kind: str = Field(description="dvp (DFA against money) or dvd (DFA against DFA).")
    origin: str = Field(description="bilateral, order_book, placement or redemption.")
    status: str = Field(description="pending, settled, failed or cancelled.")
    reference: str | None = Field(description="The trade reference.")
    trade_date: date
    settlement_date: date
    first: Side = Field(description="The side delivering the DFA (in a DvP, the seller).")
    second: Side = Field(description="The side delivering money (DvP) or the other emission (DvD).")
    failure_code: str | None = Field(description="Why it failed or was cancelled, as a stable code.")
    failure_reason: str | None = Field(description="Why it failed or was cancelled, in words.")
    resubmitted_from: uuid.UUID | None = Field(description="The failed instruction this one resubmits.")
    created_at: datetime
    closed_at: datetime | None


class EventOut(Response):
    event: str = Field(description="submitted, matched, settled, failed or cancelled.")
    actor: str
    reason: str | None
    at: datetime


class InstructionDetail(InstructionOut):
    history: list[EventOut] = Field(description="Every step, oldest first.")


class EndOfDayOut(Response):
    settled: int = Field(description="Instructions settled on their settlement date.")
    failed: int = Field(description="Instructions failed at the close, their holds released.")
    expired: int = Field(description="Day orders expired, their holds released.")


# --- orders, trades, market data ------------------------------------------------------------------------


class OrderPlace(Request):
    base: str = Field(pattern=ASSET_CODE_PATTERN, description="The emission bought or sold.")
    quote: str = Field(
        default="KZT", pattern=ASSET_CODE_PATTERN,
        description="What it is paid in: KZT (settled DvP) or another emission's units (an exchange, settled DvD).",
    )
    side: Literal["buy", "sell"]
    price: int = Field(
        strict=True, ge=1, le=BIGINT_MAX, description="Limit price per unit, in the quote's smallest unit (tiyn)."
    )
    quantity: int = Field(strict=True, ge=1, le=BIGINT_MAX, description="Units of the base emission.")
    time_in_force: Literal["gtc", "day"] = Field(
        default="gtc", description="gtc: good till cancelled; day: expires at the close of the trade date."
    )


class OrderOut(Response):
    id: uuid.UUID
    base: str
    quote: str
    side: str
    price: int = Field(description="Limit price per unit, in the quote's smallest unit.")
    quantity: int
    filled_quantity: int
    remaining: int = Field(description="Units still open.")
    time_in_force: str
    status: str = Field(description="open, filled, cancelled or expired.")
    trade_date: date
    close_reason: str | None
    created_at: datetime
    closed_at: datetime | None


class TradeOut(Response):
    id: uuid.UUID
    base: str
    quote: str
    price: int = Field(description="Per unit, in the quote's smallest unit: the resting order's price.")
    quantity: int
    value: int = Field(description="price × quantity.")
    buyer_fee: int = Field(description="Operator's fee the buyer paid, in tiyn.")
    seller_fee: int = Field(description="Operator's fee the seller paid, in tiyn.")
    aggressor: str = Field(description="The side of the order that arrived and matched.")
    buy_order_id: uuid.UUID
    sell_order_id: uuid.UUID
    instruction_id: uuid.UUID = Field(description="The settled instruction of this trade.")
    created_at: datetime


class MyTradeOut(TradeOut):
    side: str | None = Field(description="Whether you bought or sold (staff listing every trade: none).")


class PlacedOut(Response):
    order: OrderOut
    trades: list[TradeOut] = Field(description="What the order traded on arrival, settled.")


class LevelOut(Response):
    price: int
    quantity: int = Field(description="Units open at this price.")
    orders: int


class MarketDataOut(Response):
    base: str
    quote: str
    suspended: bool = Field(description="Whether trading in the emission is suspended.")
    best_bid: int | None
    best_ask: int | None
    bids: list[LevelOut] = Field(description="Buy side, best (highest) price first.")
    asks: list[LevelOut] = Field(description="Sell side, best (lowest) price first.")
    last_trades: list[TradeOut] = Field(description="Newest first.")


class TradingStatusSet(Request):
    suspended: bool = Field(strict=True, description="true suspends trading (cancels open orders, fails pending instructions).")
    reason: Text = Field(min_length=1, max_length=500)


class TradingStatusOut(Response):
    asset: str
    suspended: bool
    reason: str | None
    orders_cancelled: int = 0
    instructions_failed: int = 0
