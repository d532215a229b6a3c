"""A small market for settlement tests: KZT, emissions, funded investors, the anti-fraud simulator."""

import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.ledger.models import Asset
from dfa.platform.adapters.antifraud import AntiFraudSimulator, WatchList, WatchListEntry
from dfa.platform.identity.models import Party
from dfa.settlement.service import accounts, orders
from tests.factories import SETTINGS, make_asset, make_party, new_identifier

def antifraud(*flagged: str) -> AntiFraudSimulator:
    """The anti-fraud centre's simulator, its watch list holding exactly these identifiers."""
    return AntiFraudSimulator(WatchList(WatchListEntry(i, "fraud-reports", "reported by a bank") for i in flagged))


@dataclass
class Market:
    session: AsyncSession
    kzt: Asset
    emission: Asset
    flagged: str = field(default_factory=new_identifier)  # an IIN the centre's watch list holds
    centre: AntiFraudSimulator = field(init=False)
    issued: dict = field(default_factory=dict)
    fees_at_open: int = 0
    settings = SETTINGS

    def __post_init__(self) -> None:
        self.centre = antifraud(self.flagged)

    async def investor(self, *, money: int = 0, units: int = 0, asset: Asset | None = None, **party) -> Party:
        """An identified investor funded with `money` tiyn and `units` of the emission (or `asset`)."""
        investor = await make_party(self.session, **party)
        if money:
            await self.fund(investor, self.kzt, money)
        if units:
            await self.fund(investor, asset or self.emission, units)
        return investor

    async def fund(self, party: Party, asset: Asset, amount: int) -> None:
        source = await accounts.operator_account(self.session, kind="client_money", settings=self.settings) \
            if asset.kind == "money" else await self._issued(asset)
        target = await accounts.holder_account(self.session, party_id=party.id, asset_code=asset.code, settings=self.settings)
        await ledger.post_transfer(self.session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, target.id, amount))

    async def _issued(self, asset: Asset):
        if asset.id not in self.issued:
            issuer = await make_party(self.session, kind="legal_entity", name="Issuer")
            self.issued[asset.id] = await ledger.open_account(
                self.session, owner_party_id=issuer.id, asset_code=asset.code, kind="issued", settings=self.settings
            )
        return self.issued[asset.id]

    async def new_emission(self) -> Asset:
        return await make_asset(self.session, kind="dfa")

    async def balance(self, party: Party, asset: Asset, kind: str = "available") -> int:
        found = await ledger.account_ids(self.session, keys=[(party.id, asset.id, kind)])
        if not found:
            return 0
        return (await ledger.get_account(self.session, next(iter(found.values())))).balance

    async def fees(self) -> int:
        """Fees earned since the market opened (the fee account is shared with committed tests)."""
        return await self._fee_balance() - self.fees_at_open

    async def _fee_balance(self) -> int:
        return (await accounts.operator_account(self.session, kind="fees", settings=self.settings)).balance

    async def order(self, party: Party, side: str, price: int, quantity: int, **options) -> orders.Placed:
        return await orders.place(
            self.session, order_id=uuid.uuid4(), party_id=party.id, base=options.pop("base", self.emission.code),
            side=side, price=price, quantity=quantity, actor="test", centre=self.centre, settings=self.settings,
            **options,
        )

    async def total(self, asset: Asset) -> int:
        """The sum of every balance of the asset: zero in a double-entry ledger."""
        return (await self.session.execute(
            text("SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE asset_id = :a"), {"a": asset.id}
        )).scalar_one()


async def make_market(session: AsyncSession) -> Market:
    await accounts.ensure_money(session, settings=SETTINGS)
    market = Market(session, await ledger.get_asset(session, "KZT"), await make_asset(session, kind="dfa"))
    market.fees_at_open = await market._fee_balance()
    return market
