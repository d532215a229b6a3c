"""The catalogue of registered emissions, and the investor's orders and trades.

Every signed-in role reads the catalogue: each emission's public terms as `GET /v1/emissions` shows them, the
last market data of its book, and its issuer's documents only where the API shows them to that caller (the
issuer its own, staff every issuer's; an issuer's information is otherwise confidential, REQ-20).

An investor enters an order, reads a preview of it, and confirms. The preview writes nothing: it shows what
the order will hold, as the order service computes it, against what the investor has available now. The
confirmation places the order through the same service as `POST /v1/orders` (it holds its money or units,
REQ-38, REQ-39, and matches the book at once); the preview's token names the order, so a confirmation sent
twice places one order. Investors cancel their own open orders and read their own trades; another party's
order is "not found". Refused forms come back with the reason beside the field and nothing placed.
"""

import json
import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet import i18n
from dfa.cabinet.i18n import gettext as _
from dfa.cabinet.i18n import parse_tiyn
from dfa.cabinet.pages import FormState, PageRoute, attempt, keep_security_event, page, page_of
from dfa.issuance.errors import IssuerNotFound
from dfa.issuance.models import Document
from dfa.issuance.service import applications, issuers
from dfa.ledger import service as ledger
from dfa.ledger.errors import AssetNotFound, InsufficientFunds
from dfa.ledger.models import Asset
from dfa.platform import service as idempotency
from dfa.platform.access import ALL_ROLES, Principal, Role, allow
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.errors import Category, DomainError, invariant
from dfa.platform.settings import Settings
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, INT_MAX
from dfa.platform.web import STATUS_OF_CATEGORY, AntiFraudCentreDep, SessionDep, SettingsDep
from dfa.settlement.errors import OrderInvalid, OrderNotFound, TradingSuspended
from dfa.settlement.models import Order, Trade
from dfa.settlement.service import instructions, orders
from dfa.settlement.service.accounts import MONEY

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Investor = Annotated[Principal, Depends(allow(Role.INVESTOR))]
RegistrationNumberPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN)]
After = Annotated[int | None, Query(ge=0, le=INT_MAX)]  # an emission's asset id
Before = Annotated[int | None, Query(ge=1, le=BIGINT_MAX)]
OrderStatus = Literal["open", "filled", "cancelled", "expired"]
Field = Annotated[str, Form(max_length=200)]
Prefill = Annotated[str, Query(max_length=200)]

SIDES = ("buy", "sell")
TIMES_IN_FORCE = ("gtc", "day")
# Orders placed from a preview get an id derived from the party and the preview's token.
ORDER_FORM_TOKENS = uuid.UUID("6a0f3c52-1d7e-4b8a-9f26-73c4e5d1b0a9")
# The field a refusal of the order service belongs beside; any other is the order's as a whole.
FIELD_OF_REFUSAL = {
    InsufficientFunds.type: "quantity",
    TradingSuspended.type: "base",
    OrderInvalid.type: "price",
}


def _party_of(principal: Principal) -> uuid.UUID:
    invariant(principal.party_id is not None, "an investor acts for a party")
    return principal.party_id


# --- the catalogue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """A registered emission as the catalogue shows it: its public terms, shaped as `GET /v1/emissions` shapes
    them, and its book's market data."""

    terms: applications.EmissionTerms
    book: orders.MarketData

    @property
    def units_outstanding(self) -> int:
        emission = self.terms.emission
        return emission.units - emission.cancelled_units - emission.platform_units

    @property
    def redemption_price(self) -> int:
        return self.terms.application.redemption_price or self.terms.application.nominal


async def _listing(session: AsyncSession, terms: applications.EmissionTerms, *, levels: int, trades: int) -> Listing:
    book = await orders.market_data(session, base=terms.emission.registration_number, levels=levels, trades=trades)
    return Listing(terms, book)


async def _documents(
    session: AsyncSession, principal: Principal, terms: applications.EmissionTerms, *, limit: int
) -> list[Document] | None:
    """The issuer's documents as `GET /v1/issuers/{id}/documents` lists them to this caller, or None when it
    shows this caller none: they are confidential to the issuer and the operator's staff (REQ-20)."""
    try:
        return await issuers.list_documents(
            session, issuer_party_id=terms.emission.issuer_party_id, limit=limit, visible_to=principal.owner_filter()
        )
    except IssuerNotFound:
        return None


@router.get("/catalogue")
async def catalogue(
    request: Request, principal: Anyone, session: SessionDep, settings: SettingsDep, after: After = None
) -> HTMLResponse:
    """Registered emissions in the order they were registered, a page at a time, each with whether it trades."""
    limit = settings.page_size(None)
    found = await applications.list_emission_terms(session, after=after, limit=limit + 1)
    shown, later = page_of(found, limit, lambda terms: terms.emission.asset_id)
    listings = [await _listing(session, terms, levels=1, trades=1) for terms in shown]
    return page(request, "trading/catalogue.html", principal=principal, listings=listings, after=after, later=later)


@router.get("/catalogue/{registration_number}")
async def emission_page(
    request: Request, registration_number: RegistrationNumberPath, principal: Anyone, session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """One emission's public terms in full, its book's depth and last trades, and the issuer's documents where the
    caller may read them; an investor also gets links to buy or sell it."""
    terms = await applications.emission_terms(session, registration_number)
    return page(
        request, "trading/emission.html", principal=principal,
        listing=await _listing(session, terms, levels=10, trades=20),
        documents=await _documents(session, principal, terms, limit=settings.page_size(None)),
        may_trade=Role.INVESTOR in principal.roles,
    )


# --- entering an order -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnteredOrder:
    """An order form as the investor filled it in, field by field, to fill the form in again."""

    side: str = "buy"
    base: str = ""
    quote: str = MONEY
    price: str = ""
    quantity: str = ""
    time_in_force: str = "gtc"


@dataclass(frozen=True)
class OrderPreview:
    """An order as it would be placed now: its terms, its value and the operator's fee on it, what it holds
    (computed by the order service) and what the investor has available of what it holds."""

    side: str
    base: Asset
    quote: Asset
    price: int
    quantity: int
    time_in_force: str
    value: int
    fee: int
    held: Asset  # what the order holds: the emission's units for a sell, what it pays with for a buy
    hold: int
    available: int
    book: orders.MarketData

    @property
    def priced_in_money(self) -> bool:
        return self.quote.kind == "money"


class OrderRefused(Exception):
    """An order refused at one of its form's fields, with the reason in the visitor's language."""

    def __init__(self, field: str, reason: str, status_code: int = STATUS_OF_CATEGORY[Category.INVALID]) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.status_code = status_code


def _choice(text: str, choices: tuple[str, ...], *, field: str, reason: str) -> str:
    if text not in choices:
        raise OrderRefused(field, reason)
    return text


def _code(text: str, *, field: str, reason: str) -> str:
    """An asset code as typed: spaces around it and lower case forgiven."""
    code = text.strip().upper()
    if not re.fullmatch(ASSET_CODE_PATTERN, code):
        raise OrderRefused(field, reason)
    return code


def _whole(text: str) -> int | None:
    """A positive whole number in ASCII digits (spaces between groups allowed) that fits a bigint, else None."""
    digits = "".join(text.split())
    if not (digits.isascii() and digits.isdigit()):
        return None
    number = int(digits)
    return number if 0 < number <= BIGINT_MAX else None


def _amount(amount: int, asset: Asset) -> str:
    """An amount of an asset in the visitor's language: money in tenge, an emission's units with its code."""
    return i18n.kzt(amount) if asset.kind == "money" else f"{i18n.units(amount)} {asset.code}"


async def _assets(session: AsyncSession, base_code: str, quote_code: str) -> tuple[Asset, Asset]:
    """The emission an order buys or sells and what it is priced in; refused beside the field naming nothing."""
    try:
        base, quote = await ledger.get_assets(session, [base_code, quote_code])
    except AssetNotFound as missing:
        code = missing.context["code"]
        raise OrderRefused("base" if code == base_code else "quote",
                           _("Nothing is registered under %(code)s.") % {"code": code}) from missing
    return base, quote


async def _book(session: AsyncSession, base: Asset, quote: Asset) -> orders.MarketData:
    """The book the order joins, as the order service reads it; a book the service has no place for is refused."""
    try:
        return await orders.market_data(session, base=base.code, quote=quote.code, levels=1, trades=0)
    except OrderInvalid as invalid:
        if base.id == quote.id:
            itself = _("An emission is exchanged for money or for another emission, not for itself.")
            raise OrderRefused("quote", itself) from invalid
        raise OrderRefused("base", _("%(code)s is not an emission: orders buy and sell units of an emission.")
                           % {"code": base.code}) from invalid


async def _require_tradable(session: AsyncSession, base: Asset, quote: Asset) -> None:
    try:
        await instructions.require_tradable(session, [base, quote])
    except TradingSuspended as suspended:
        field = "base" if base.id in suspended.context["assets"] else "quote"
        raise OrderRefused(field, _(suspended.title), STATUS_OF_CATEGORY[suspended.category]) from suspended


def _price(text: str, quote: Asset) -> int:
    """The price per unit as typed: tenge read in the visitor's language, or whole units of the other emission."""
    if quote.kind == "money":
        price = parse_tiyn(text)
        if price is None:
            raise OrderRefused("price", _("Enter the price per unit in tenge, to the tiyn at most."))
        return price
    price = _whole(text)
    if price is None:
        raise OrderRefused("price", _("Enter the price as a whole number of units of %(code)s.") % {"code": quote.code})
    return price


async def _preview(
    session: AsyncSession, principal: Principal, settings: Settings, *, side: str, base: Asset, quote: Asset, price: int,
    quantity: int, time_in_force: str,
) -> OrderPreview:
    """The order as it would be placed now; refused when its book does not trade or it would hold more than the
    investor has available."""
    book = await _book(session, base, quote)
    await _require_tradable(session, base, quote)
    value = price * quantity
    held = base if side == "sell" else quote
    account = await ledger.find_account(session, owner_party_id=_party_of(principal), asset_id=held.id, kind="available")
    preview = OrderPreview(
        side=side, base=base, quote=quote, price=price, quantity=quantity, time_in_force=time_in_force, value=value,
        fee=instructions.fee_of(value, settings=settings) if quote.kind == "money" else 0, held=held,
        hold=orders.hold_amount(side=side, price=price, quantity=quantity, quote=quote, settings=settings),
        available=account.balance if account is not None else 0, book=book,
    )
    if preview.hold > preview.available:
        raise OrderRefused("quantity", _("This order holds %(needed)s; you have %(available)s available.") % {
            "needed": _amount(preview.hold, preview.held), "available": _amount(preview.available, preview.held),
        })
    return preview


async def _preview_entered(
    session: AsyncSession, principal: Principal, settings: Settings, entered: EnteredOrder
) -> OrderPreview:
    """Read the order form as the investor filled it in, field by field, and preview the order."""
    side = _choice(entered.side, SIDES, field="side", reason=_("Choose whether to buy or sell."))
    base_code = _code(entered.base, field="base", reason=_("Enter the emission's registration number."))
    quote_code = _code(entered.quote or MONEY, field="quote",
                       reason=_("Enter KZT or another emission's registration number."))
    base, quote = await _assets(session, base_code, quote_code)
    price = _price(entered.price, quote)
    quantity = _whole(entered.quantity)
    if quantity is None:
        raise OrderRefused("quantity", _("Enter the quantity as a whole number of units."))
    time_in_force = _choice(entered.time_in_force, TIMES_IN_FORCE, field="time_in_force",
                            reason=_("Choose how long the order stays on the book."))
    return await _preview(
        session, principal, settings, side=side, base=base, quote=quote, price=price, quantity=quantity,
        time_in_force=time_in_force,
    )


# --- the orders page ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRow:
    """An order as the orders page lists it: its assets' codes, whether its price is money, and for an open order
    what it still holds (units of the emission for a sell, the money or units it pays with for a buy)."""

    order: Order
    base: str
    quote: str
    priced_in_money: bool
    held: int | None

    @property
    def held_in_money(self) -> bool:
        return self.order.side == "buy" and self.priced_in_money

    @property
    def held_code(self) -> str:
        return self.base if self.order.side == "sell" else self.quote


async def _money_codes(session: AsyncSession, codes: set[str]) -> set[str]:
    """Those of these asset codes that are money: prices in them are tiyn, not units of an emission."""
    if not codes:
        return set()
    return {asset.code for asset in await ledger.get_assets(session, sorted(codes)) if asset.kind == "money"}


async def _still_held(session: AsyncSession, order: Order) -> int | None:
    """What an open order still holds: its hold less what trades took and what was released."""
    if order.status != "open":
        return None
    hold = await ledger.get_hold(session, order.hold_id)
    return hold.amount - hold.posted_amount - hold.released_amount


async def _order_rows(session: AsyncSession, found: list[Order]) -> list[OrderRow]:
    codes = await ledger.asset_codes(session, (a for o in found for a in (o.base_asset_id, o.quote_asset_id)))
    money = await _money_codes(session, {codes[o.quote_asset_id] for o in found})
    return [
        OrderRow(o, codes[o.base_asset_id], codes[o.quote_asset_id], codes[o.quote_asset_id] in money,
                 await _still_held(session, o))
        for o in found
    ]


async def _orders_page(
    request: Request, session: AsyncSession, *, principal: Principal, entered: EnteredOrder,
    order_status: OrderStatus = "open", before: int | None = None, refused: FormState | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    limit = request.app.state.settings.page_size(None)
    found = await orders.list_orders(
        session, party_id=principal.owner_filter(), status=order_status, before_seq=before, limit=limit + 1
    )
    shown, older = page_of(found, limit, lambda order: order.seq)
    return page(
        request, "trading/orders.html", principal=principal, status_code=status_code, entered=entered,
        refused=refused, rows=await _order_rows(session, shown), order_status=order_status, before=before,
        older=older,
    )


@router.get("/orders")
async def orders_page(
    request: Request, principal: Investor, session: SessionDep,
    order_status: Annotated[OrderStatus, Query(alias="status")] = "open", before: Before = None,
    side: Prefill = "buy", base: Prefill = "", quote: Prefill = MONEY, price: Prefill = "", quantity: Prefill = "",
    time_in_force: Prefill = "gtc",
) -> HTMLResponse:
    """The order form (filled in from the address, as the catalogue's buy and sell links and the preview's
    Change button fill it) and the investor's orders of one status, newest first, a page at a time."""
    entered = EnteredOrder(side, base, quote, price, quantity, time_in_force)
    return await _orders_page(
        request, session, principal=principal, entered=entered, order_status=order_status, before=before
    )


@router.post("/orders/preview")
async def preview_order(
    request: Request, principal: Investor, session: SessionDep, settings: SettingsDep, side: Field = "",
    base: Field = "", quote: Field = "", price: Field = "", quantity: Field = "", time_in_force: Field = "",
) -> HTMLResponse:
    """What the entered order will buy or sell and hold, against what is available now; writes nothing. Its
    confirmation carries a token generated here, which names the order it places."""
    entered = EnteredOrder(side, base, quote, price, quantity, time_in_force)
    try:
        preview = await _preview_entered(session, principal, settings, entered)
    except OrderRefused as refused:
        return await _orders_page(
            request, session, principal=principal, entered=entered, status_code=refused.status_code,
            refused=FormState(refused.field, getattr(entered, refused.field, ""), refused.reason),
        )
    return page(
        request, "trading/preview.html", principal=principal, preview=preview, entered=entered, token=uuid.uuid4()
    )


# --- placing and cancelling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmedOrder:
    """A preview's confirmation: the order's terms as the preview read them (the price in tiyn, or in units of
    the other emission) and the preview's token."""

    side: str
    base: str
    quote: str
    price: int
    quantity: int
    time_in_force: str
    token: uuid.UUID

    @property
    def idempotency_key(self) -> str:
        return f"order-form:{self.token}"

    @property
    def fingerprint(self) -> bytes:
        terms = [self.side, self.base, self.quote, self.price, self.quantity, self.time_in_force]
        return idempotency.request_fingerprint(method="POST", path="/orders", query="", body=json.dumps(terms).encode())

    def order_id(self, party_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(ORDER_FORM_TOKENS, f"{party_id}:{self.token}")

    def entered(self) -> EnteredOrder:
        """The order form filled in again with these terms, the price as the visitor writes it."""
        price = i18n.tenge(self.price) if self.quote == MONEY else str(self.price)
        return EnteredOrder(self.side, self.base, self.quote, price, str(self.quantity), self.time_in_force)


def _confirmed(side: str, base: str, quote: str, price: str, quantity: str, time_in_force: str, token: str
               ) -> ConfirmedOrder:
    """Read a confirmation as its preview wrote it; one that was not is refused as unreadable."""
    unreadable = OrderRefused("order", _("The order could not be read; enter it again."))
    whole_price, whole_quantity = _whole(price), _whole(quantity)
    if side not in SIDES or time_in_force not in TIMES_IN_FORCE or whole_price is None or whole_quantity is None:
        raise unreadable
    try:
        parsed_token = uuid.UUID(token)
    except ValueError:
        raise unreadable from None
    return ConfirmedOrder(
        side=side, base=_code(base, field="order", reason=unreadable.reason),
        quote=_code(quote, field="order", reason=unreadable.reason), price=whole_price, quantity=whole_quantity,
        time_in_force=time_in_force, token=parsed_token,
    )


async def _placed_before(session: AsyncSession, order_id: uuid.UUID, party_id: uuid.UUID) -> bool:
    try:
        await orders.get_order(session, order_id, visible_to=party_id)
    except OrderNotFound:
        return False
    return True


async def _place_once(
    session: AsyncSession, principal: Principal, settings: Settings, centre: AntiFraudCentre,
    confirmed: ConfirmedOrder,
) -> uuid.UUID:
    """Place the confirmed order, unless its preview's token placed it already: a confirmation sent twice (a
    double click, a reload) waits for the first and answers with its order. Returns the order's id."""
    party_id = _party_of(principal)
    order_id = confirmed.order_id(party_id)
    replayed = await idempotency.claim_idempotency_key(
        session, principal=principal.key, key=confirmed.idempotency_key, request_hash=confirmed.fingerprint
    )
    if replayed is not None or await _placed_before(session, order_id, party_id):
        return order_id
    base, quote = await _assets(session, confirmed.base, confirmed.quote)
    await _preview(
        session, principal, settings, side=confirmed.side, base=base, quote=quote, price=confirmed.price,
        quantity=confirmed.quantity, time_in_force=confirmed.time_in_force,
    )
    await orders.place(
        session, order_id=order_id, party_id=party_id, base=confirmed.base, quote=confirmed.quote,
        side=confirmed.side, price=confirmed.price, quantity=confirmed.quantity,
        time_in_force=confirmed.time_in_force, actor=principal.login, centre=centre, settings=settings,
    )
    await idempotency.store_response(
        session, principal=principal.key, key=confirmed.idempotency_key,
        response=idempotency.StoredResponse(status.HTTP_303_SEE_OTHER, "text/html", b""),
    )
    return order_id


@router.post("/orders")
async def place_order(
    request: Request, principal: Investor, session: SessionDep, settings: SettingsDep, centre: AntiFraudCentreDep,
    side: Field = "", base: Field = "", quote: Field = "", price: Field = "", quantity: Field = "",
    time_in_force: Field = "", order_token: Field = "",
) -> Response:
    """Place the previewed order as `POST /v1/orders` does and show it on the orders page: among the open orders,
    or among those of its status when it filled or closed at once. A refusal places nothing and shows the form
    again with the reason."""
    entered = EnteredOrder(side, base, quote, price, quantity, time_in_force)
    try:
        confirmed = _confirmed(side, base, quote, price, quantity, time_in_force, order_token)
        entered = confirmed.entered()
        async with session.begin_nested():
            order_id = await _place_once(session, principal, settings, centre, confirmed)
    except OrderRefused as refused:
        return await _orders_page(
            request, session, principal=principal, entered=entered, status_code=refused.status_code,
            refused=FormState(refused.field, getattr(entered, refused.field, ""), refused.reason),
        )
    except DomainError as refusal:
        if refusal.category is Category.NOT_FOUND:
            raise
        await keep_security_event(session, refusal)
        field = FIELD_OF_REFUSAL.get(refusal.type, "order")
        return await _orders_page(
            request, session, principal=principal, entered=entered, status_code=STATUS_OF_CATEGORY[refusal.category],
            refused=FormState(field, getattr(entered, field, ""), _(refusal.title)),
        )
    order = await orders.get_order(session, order_id)
    listed = "/orders" if order.status == "open" else f"/orders?status={order.status}"
    return RedirectResponse(f"{listed}#order-{order_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/orders/{order_id}/cancel")
async def cancel_order(request: Request, order_id: uuid.UUID, principal: Investor, session: SessionDep) -> Response:
    """Cancel one of the investor's open orders as `POST /v1/orders/{id}/cancellation` does, releasing what it
    still holds; another party's order is "not found"."""
    refusal = await attempt(
        session, lambda: orders.cancel(session, order_id=order_id, party_id=principal.owner_filter(), actor=principal.login)
    )
    if refusal is not None:
        return await _orders_page(
            request, session, principal=principal, entered=EnteredOrder(),
            refused=FormState(f"order-{order_id}", "", _(refusal.title)),
            status_code=STATUS_OF_CATEGORY[refusal.category],
        )
    return RedirectResponse(f"/orders?status=cancelled#order-{order_id}", status_code=status.HTTP_303_SEE_OTHER)


# --- trades ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeRow:
    """One of the investor's trades: the side they took and the fee they paid; nothing of the other side."""

    trade: Trade
    base: str
    quote: str
    priced_in_money: bool
    side: str

    @property
    def fee(self) -> int:
        return self.trade.buyer_fee if self.side == "buy" else self.trade.seller_fee


@router.get("/trades")
async def trades_page(
    request: Request, principal: Investor, session: SessionDep, settings: SettingsDep, before: Before = None
) -> HTMLResponse:
    """The investor's trades, newest first, a page at a time, as `GET /v1/trades` scopes them."""
    party = principal.owner_filter()
    limit = settings.page_size(None)
    found = await orders.list_trades(session, party_id=party, before_seq=before, limit=limit + 1)
    shown, older = page_of(found, limit, lambda row: row.Trade.seq)
    codes = await ledger.asset_codes(session, (a for r in shown for a in (r.Trade.base_asset_id, r.Trade.quote_asset_id)))
    money = await _money_codes(session, {codes[r.Trade.quote_asset_id] for r in shown})
    rows = [
        TradeRow(r.Trade, codes[r.Trade.base_asset_id], codes[r.Trade.quote_asset_id],
                 codes[r.Trade.quote_asset_id] in money, "buy" if r.buyer_party_id == party else "sell")
        for r in shown
    ]
    return page(request, "trading/trades.html", principal=principal, rows=rows, before=before, older=older)
