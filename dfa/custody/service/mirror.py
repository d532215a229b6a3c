"""The EVM mirror of the ledger: every change to an emission's holdings reaches its token contract.

The ledger writes an outbox message for each DFA movement in the transaction that makes it (a
trigger on the journal). The mirror moves them on in four steps, each its own transaction, so a
crash between any two leaves a state the next pass continues from:

1. prepare: claim pending messages in order, turn them into ops, cut them into batches per token,
   give each batch the token's next batch number and the sender's next nonce, and mark the
   messages delivered — all in one transaction, so each message lands in exactly one batch;
2. sign: sign each prepared batch and keep its bytes (a crash before keeping them signs again;
   nothing was broadcast yet);
3. send: broadcast the kept bytes (again after a crash: the node dedupes by hash);
4. confirm: read receipts; a batch is confirmed with enough blocks on top of it.

The contract refuses a batch whose number is not its next one, so no batch is ever applied twice,
even if this database were restored from an old backup. Nonces are assigned in the database under
the sender's row lock and every assigned nonce is broadcast, so none is skipped. A batch the chain
reverted is superseded by the same ops under a new nonce after a backoff. When the node is down,
nothing here blocks the ledger: messages wait in the outbox and the chain catches up later.
"""

import asyncio
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody import repository
from dfa.custody.chain import Chain, ChainRefusal
from dfa.custody.contract import (
    BURN,
    FORCED_MOVE,
    MAX_OPS,
    MINT,
    MOVE,
    PAUSE,
    UNPAUSE,
    created_address,
)
from dfa.custody.errors import TokenNotFound
from dfa.custody.models import ChainBatch, Token
from dfa.custody.service import wallets
from dfa.custody.service.signing import Signer, SigningPurpose
from dfa.custody.vault import Vault
from dfa.ledger import service as ledger
from dfa.platform import faults
from dfa.platform import service as platform
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import invariant
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)

TOPIC = "ledger.dfa-movement"
# A ledger transfer with this code is a move ordered by a court or made on recovery: the contract
# lets it through a pause.
FORCED_MOVE_CODE = 9001
DEPLOY_GAS = 1_500_000
BATCH_BASE_GAS = 60_000
OP_GAS = 50_000
ZERO_REF = "00" * 32


def _ref(transfer_id: str | None) -> str:
    """The op's reference: the ledger transfer id, left-aligned in 32 bytes."""
    if transfer_id is None:
        return ZERO_REF
    return uuid.UUID(transfer_id).hex + "00" * 16


@dataclass
class Pass:
    """What one pass of the mirror did."""

    prepared: int = 0
    signed: int = 0
    sent: int = 0
    confirmed: int = 0
    superseded: int = 0

    @property
    def work(self) -> int:
        return self.prepared + self.signed + self.sent + self.confirmed + self.superseded


@dataclass
class _Context:
    """What a prepare step needs again and again in one transaction, and the counters it advances
    (written back with one statement each, never through the ORM's change tracking)."""

    next_nonce: int
    operator_party_id: uuid.UUID
    addresses: dict[tuple[str, str], str | None] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    next_batch: dict[int, int] = field(default_factory=dict)


class Mirror:
    def __init__(self, *, database: Database, chain: Chain, vault: Vault, signer: Signer, settings: Settings) -> None:
        self.database = database
        self.chain = chain
        self.vault = vault
        self.signer = signer
        self.settings = settings
        self._chain_id: int | None = None
        self._sender: str | None = None
        self._ready = False
        self._genesis: str | None = None
        # A pass of the mirror's loop and a reconciliation's comparison take turns: both start the mirror, derive
        # addresses and read the sender, and a comparison's snapshot would fail on rows a pass changed meanwhile.
        self._turn = asyncio.Lock()
        # Addresses of ledger accounts (by owner and kind) already committed; an address never changes.
        self._addresses: dict[tuple[str, str], str | None] = {}

    # --- start ---------------------------------------------------------------------------------

    async def _start(self) -> None:
        """Know the chain and the sender; a chain that restarted empty (a development node) is
        rebuilt from the ledger, also when that happens while the mirror runs. Raises ChainUnavailable."""
        genesis = await self.chain.genesis_hash()
        if self._ready and genesis == self._genesis:
            return
        self._chain_id = await self.chain.chain_id()
        self._genesis = genesis
        async with self.database.unit_of_work() as session:
            operator = await wallets.chain_operator(session, self.vault, settings=self.settings)
        self._sender = operator.address
        await self.chain.ensure_gas(self._sender)
        async with self.database.unit_of_work() as session:
            # One snapshot for the sender check and a possible rebuild: the holdings minted and the
            # movements marked delivered must be of the same instant.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            sender = await repository.lock_sender(session, chain_id=self._chain_id, address=self._sender)
            if sender is not None and sender.genesis_hash != genesis:
                log.warning("chain %s was reset (new genesis): rebuilding the mirror from the ledger", self._chain_id)
                await repository.supersede_chain(session, chain_id=self._chain_id)
                await audit.record(
                    session,
                    kind="custody.chain-reset",
                    actor="service:chain-mirror",
                    subject=str(self._chain_id),
                    details={"previous_genesis": sender.genesis_hash, "genesis": genesis},
                )
                sender = None
            if sender is None:
                await repository.insert_sender(
                    session,
                    values={
                        "chain_id": self._chain_id,
                        "address": self._sender,
                        "genesis_hash": genesis,
                        "next_nonce": await self.chain.nonce(self._sender),
                    },
                )
                await self._snapshot_holdings(session)
        self._ready = True

    async def _snapshot_holdings(self, session: AsyncSession) -> None:
        """Mint every emission's current holdings on a chain that has none of them yet; the
        movements already in the outbox are part of the snapshot and are marked delivered, a pause
        among them is applied after the mints."""
        paused: dict[int, bool] = {}
        while messages := await platform.claim_messages(session, topic=TOPIC, limit=1000):
            for message in messages:
                if "pause" in message.payload:
                    paused[int(message.payload["asset_id"])] = bool(message.payload["pause"])
            await platform.mark_delivered(session, messages=messages)
        context = await self._context(session)
        for asset_id in await ledger.dfa_asset_ids(session):
            ops = [
                [MINT, None, address, amount, ZERO_REF]
                for address, amount in (await self._holdings_by_address(session, context, asset_id)).items()
                if address is not None and amount > 0
            ]
            if paused.get(asset_id):
                ops.append([PAUSE, None, None, 0, ZERO_REF])
            if ops:
                await self._add_batches(session, context, asset_id, ops)
        await self._save_nonce(session, context)

    # --- prepare -------------------------------------------------------------------------------

    async def _context(self, session: AsyncSession) -> _Context:
        sender = await repository.lock_sender(session, chain_id=self._chain_id, address=self._sender)
        invariant(sender is not None, "the sender row exists once the mirror started")
        operator = await parties.ensure_operator_party(session, settings=self.settings)
        return _Context(next_nonce=sender.next_nonce, operator_party_id=operator.id, addresses=dict(self._addresses))

    async def _save_nonce(self, session: AsyncSession, context: _Context) -> None:
        await repository.set_sender(
            session, chain_id=self._chain_id, address=self._sender, values={"next_nonce": context.next_nonce}
        )

    def _take_nonce(self, context: _Context) -> int:
        nonce = context.next_nonce
        context.next_nonce += 1
        return nonce

    async def _token(self, session: AsyncSession, context: _Context, asset_id: int) -> Token:
        """The asset's token on this chain; its deployment is queued first if it has none."""
        token = context.tokens.get(asset_id) or await repository.get_token(
            session, chain_id=self._chain_id, asset_id=asset_id
        )
        if token is None:
            asset = await ledger.get_asset_by_id(session, asset_id)
            nonce = self._take_nonce(context)
            token = await repository.insert_token(
                session,
                values={
                    "chain_id": self._chain_id,
                    "asset_id": asset_id,
                    "registration_number": asset.code,
                    "address": created_address(self._sender, nonce),
                    "status": "deploying",
                },
            )
            await repository.insert_batch(
                session,
                values={
                    "chain_id": self._chain_id,
                    "sender": self._sender,
                    "nonce": nonce,
                    "asset_id": asset_id,
                    "kind": "deploy",
                    "ops": [asset.code, asset.name],
                    "status": "prepared",
                },
            )
        context.tokens[asset_id] = token
        return token

    async def _address(self, session: AsyncSession, context: _Context, side: dict[str, Any]) -> str | None:
        key = (side["party_id"], side["kind"])
        if key not in context.addresses:
            context.addresses[key] = await wallets.address_of_account(
                session,
                self.vault,
                party_id=uuid.UUID(side["party_id"]),
                kind=side["kind"],
                operator_party_id=context.operator_party_id,
            )
        return context.addresses[key]

    async def _op(self, session: AsyncSession, context: _Context, payload: dict[str, Any]) -> list[Any] | None:
        if "pause" in payload:
            return [PAUSE if payload["pause"] else UNPAUSE, None, None, 0, ZERO_REF]
        source = await self._address(session, context, payload["debit"])
        target = await self._address(session, context, payload["credit"])
        if source == target:  # the same address on chain (say, the operator's fees and holdings)
            return None
        if source is None:
            kind = MINT
        elif target is None:
            kind = BURN
        else:
            kind = FORCED_MOVE if payload.get("code") == FORCED_MOVE_CODE else MOVE
        return [kind, source, target, int(payload["amount"]), _ref(payload.get("transfer_id"))]

    async def _add_batches(self, session: AsyncSession, context: _Context, asset_id: int, ops: list[list[Any]]) -> int:
        token = await self._token(session, context, asset_id)
        seq = context.next_batch.get(asset_id, token.next_batch)
        size = min(self.settings.chain_batch_max_ops, MAX_OPS)
        count = 0
        for start in range(0, len(ops), size):
            await repository.insert_batch(
                session,
                values={
                    "chain_id": self._chain_id,
                    "sender": self._sender,
                    "nonce": self._take_nonce(context),
                    "asset_id": asset_id,
                    "kind": "ops",
                    "seq": seq,
                    "ops": ops[start : start + size],
                    "status": "prepared",
                },
            )
            seq += 1
            count += 1
        context.next_batch[asset_id] = seq
        await repository.update_token(session, chain_id=self._chain_id, asset_id=asset_id, values={"next_batch": seq})
        return count

    async def prepare(self) -> int:
        """Claim pending movements into new batches; returns how many batches it made."""
        async with self.database.unit_of_work() as session:
            in_flight = await repository.count_open_batches(session, chain_id=self._chain_id)
            room = self.settings.chain_max_batches_in_flight - in_flight
            if room <= 0:
                return 0
            limit = room * min(self.settings.chain_batch_max_ops, MAX_OPS)
            messages = await platform.claim_messages(session, topic=TOPIC, limit=limit)
            if not messages:
                return 0
            context = await self._context(session)
            ops_by_asset: dict[int, list[list[Any]]] = defaultdict(list)
            for message in messages:
                op = await self._op(session, context, message.payload)
                if op is not None:
                    ops_by_asset[int(message.payload["asset_id"])].append(op)
            made = 0
            for asset_id, ops in ops_by_asset.items():
                made += await self._add_batches(session, context, asset_id, ops)
            marks_late = faults.enabled(faults.MIRROR_MARKS_DELIVERED_LATE)
            if not marks_late:
                await platform.mark_delivered(session, messages=messages)
            await self._save_nonce(session, context)
        self._addresses.update(context.addresses)  # committed now
        faults.crash_point("mirror.after_prepare_commit")
        if marks_late:
            async with self.database.unit_of_work() as session:
                await platform.mark_delivered(session, messages=messages)
        return made

    # --- sign, send, confirm -------------------------------------------------------------------

    def _transaction(self, batch: ChainBatch, token_address: str) -> dict[str, Any]:
        if batch.kind == "deploy":
            registration_number, name = batch.ops
            data = self.chain.deployment_data(registration_number=registration_number, name=name)
            return {"data": data, "gas": DEPLOY_GAS}
        return {
            "to": token_address,
            "data": self.chain.batch_data(seq=batch.seq, ops=batch.ops),
            "gas": BATCH_BASE_GAS + OP_GAS * len(batch.ops),
        }

    async def sign(self) -> int:
        """Sign prepared batches in nonce order, each in a short transaction of its own: the
        signature's security event holds the log's head lock only for that moment."""
        async with self.database.read() as session:
            batches = await repository.batches_in_status(
                session, chain_id=self._chain_id, statuses=("prepared",), limit=self.settings.chain_max_batches_in_flight
            )
            tokens = {b.asset_id: await repository.get_token(session, chain_id=self._chain_id, asset_id=b.asset_id) for b in batches}
        if not batches:
            return 0
        gas_price = await self.chain.gas_price()
        now = datetime.now(UTC)
        signed_count = 0
        for batch in batches:
            if batch.next_attempt_at is not None and batch.next_attempt_at > now:
                break  # backing off; later nonces wait for this one anyway
            transaction = await asyncio.to_thread(self._transaction, batch, tokens[batch.asset_id].address)
            transaction |= {"nonce": batch.nonce, "chainId": self._chain_id, "gasPrice": gas_price, "value": 0}
            async with self.database.unit_of_work() as session:
                signed = await self.signer.sign_transaction(
                    session, address=self._sender, transaction=transaction, purpose=SigningPurpose.CHAIN_MIRROR
                )
                await repository.update_batch(
                    session,
                    batch_id=batch.id,
                    values={"status": "signed", "raw_transaction": signed.raw, "tx_hash": signed.tx_hash},
                )
            faults.crash_point("mirror.after_signing")
            signed_count += 1
        return signed_count

    async def send(self) -> int:
        """Broadcast signed batches in nonce order. Raises ChainUnavailable."""
        async with self.database.read() as session:
            batches = await repository.batches_in_status(
                session, chain_id=self._chain_id, statuses=("signed",), limit=self.settings.chain_max_batches_in_flight
            )
        sent = 0
        for batch in batches:
            try:
                await self.chain.send_raw(batch.raw_transaction)
            except ChainRefusal as refusal:
                # The node would not take it. If its nonce is still free (a fee it rejected, say)
                # the same work goes again under the same nonce, or a gap would stall every later
                # transaction; if something else used the nonce, under a new one.
                used = await self.chain.nonce(self._sender) > batch.nonce
                await self._supersede(batch, reason=f"refused by the node: {refusal}", reuse_nonce=not used)
                continue
            faults.crash_point("mirror.after_broadcast")
            async with self.database.unit_of_work() as session:
                await repository.update_batch(
                    session, batch_id=batch.id, values={"status": "sent", "sent_at": datetime.now(UTC)}
                )
            sent += 1
        return sent

    async def confirm(self) -> tuple[int, int]:
        """Track receipts; returns (confirmed, superseded). Raises ChainUnavailable."""
        async with self.database.read() as session:
            batches = await repository.batches_in_status(
                session, chain_id=self._chain_id, statuses=("sent",), limit=self.settings.chain_max_batches_in_flight
            )
        if not batches:
            return 0, 0
        head = await self.chain.block_number()
        confirmed = superseded = 0
        now = datetime.now(UTC)
        for batch in batches:
            receipt = await self.chain.receipt(batch.tx_hash)
            if receipt is None:
                if batch.sent_at is not None and now - batch.sent_at > timedelta(
                    seconds=self.settings.chain_resend_after_s
                ):
                    # The node lost it (a restart empties its pool): broadcast the same bytes again.
                    async with self.database.unit_of_work() as session:
                        await repository.update_batch(session, batch_id=batch.id, values={"status": "signed"})
                continue
            if head - receipt.block_number + 1 < self.settings.chain_confirmations:
                continue
            faults.crash_point("mirror.after_receipt")
            if receipt.succeeded or await self._applied_before(batch):
                await self._confirmed(batch, receipt.block_number)
                confirmed += 1
            else:
                await self._supersede(batch, reason="reverted by the chain")
                superseded += 1
        return confirmed, superseded

    async def _applied_before(self, batch: ChainBatch) -> bool:
        """A reverted batch whose number the token has already passed was applied by an earlier send."""
        if batch.kind != "ops":
            return False
        async with self.database.read() as session:
            token = await repository.get_token(session, chain_id=self._chain_id, asset_id=batch.asset_id)
        return await self.chain.next_batch(token.address) > batch.seq

    async def _confirmed(self, batch: ChainBatch, block_number: int) -> None:
        async with self.database.unit_of_work() as session:
            await repository.update_batch(
                session,
                batch_id=batch.id,
                values={"status": "confirmed", "block_number": block_number, "confirmed_at": datetime.now(UTC)},
            )
            if batch.kind == "deploy":
                await repository.update_token(
                    session, chain_id=self._chain_id, asset_id=batch.asset_id, values={"status": "deployed"}
                )

    async def _supersede(self, batch: ChainBatch, *, reason: str, reuse_nonce: bool = False) -> None:
        """Replace a batch the chain did not apply with the same work, after a backoff: under the same
        nonce when the chain never used it, else under a new one."""
        delay = min(self.settings.chain_retry_max_s, self.settings.chain_retry_base_s * 2**batch.attempts)
        async with self.database.unit_of_work() as session:
            context = await self._context(session)
            await repository.update_batch(
                session, batch_id=batch.id, values={"status": "superseded", "last_error": reason[:1000]}
            )
            if not reuse_nonce:
                context.next_nonce = max(context.next_nonce, await self.chain.nonce(self._sender))
            nonce = batch.nonce if reuse_nonce else self._take_nonce(context)
            values = {
                "chain_id": self._chain_id,
                "sender": self._sender,
                "nonce": nonce,
                "asset_id": batch.asset_id,
                "kind": batch.kind,
                "seq": batch.seq,
                "ops": batch.ops,
                "status": "prepared",
                "attempts": batch.attempts + 1,
                "last_error": reason[:1000],
                "next_attempt_at": datetime.now(UTC) + timedelta(seconds=delay),
            }
            await repository.insert_batch(session, values=values)
            if batch.kind == "deploy":
                await repository.update_token(
                    session,
                    chain_id=self._chain_id,
                    asset_id=batch.asset_id,
                    values={"address": created_address(self._sender, nonce)},
                )
            await self._save_nonce(session, context)
        log.warning("chain batch superseded", extra={"batch_id": batch.id, "reason": reason[:200]})

    async def run_once(self) -> Pass:
        """One pass of every step. Raises ChainUnavailable (the caller backs off)."""
        async with self._turn:
            await self._start()
            done = Pass()
            done.prepared = await self.prepare()
            done.signed = await self.sign()
            done.sent = await self.send()
            done.confirmed, done.superseded = await self.confirm()
        return done

    async def drain(self, *, max_passes: int = 1000) -> None:
        """Run passes until everything is confirmed (for tests, benchmarks and the handover)."""
        for _ in range(max_passes):
            if not (await self.run_once()).work:
                await asyncio.sleep(0.05)  # waiting for blocks or a backoff to pass
            async with self.database.read() as session:
                pending = await platform.pending_messages(session, topic=TOPIC, limit=1)
                open_batches = await repository.count_open_batches(session, chain_id=self._chain_id)
            if not pending and not open_batches:
                return
        raise TimeoutError("the mirror did not catch up")

    # --- comparison ----------------------------------------------------------------------------

    async def _holdings_by_address(
        self, session: AsyncSession, context: _Context, asset_id: int
    ) -> dict[str | None, int]:
        """The ledger's holdings of the asset, summed per chain address (None: the issued account)."""
        totals: dict[str | None, int] = defaultdict(int)
        for account in await ledger.positions(session, asset_id=asset_id):
            address = await self._address(
                session, context, {"party_id": str(account.owner_party_id), "kind": account.kind}
            )
            totals[address] += account.balance
        return totals

    async def compare(self, *, asset_id: int | None = None) -> list["EmissionComparison"]:
        """Per emission, the chain's total supply and each address's balance against the ledger's.

        The chain is read at one block and the ledger in one snapshot taken after it; what the
        ledger has done that the chain has not applied by that block (movements still in the
        outbox, batches the token has not reached) is taken out of the ledger side, so the answer
        is exact under load: any difference is a real one. Raises ChainUnavailable.
        """
        async with self._turn:
            await self._start()
            block = await self.chain.block_number()
            async with self.database.unit_of_work() as session:
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                context = await self._context(session)
                all_ids = await ledger.dfa_asset_ids(session)
                if asset_id is not None and asset_id not in all_ids:
                    raise TokenNotFound(f"asset {asset_id} is not an emission: it has no token contract")
                asset_ids = [asset_id] if asset_id is not None else all_ids
                pending = await self._pending_ops(session, context, asset_ids)
                results = []
                for current in asset_ids:
                    results.append(await self._compare_one(session, context, current, block, pending.get(current, [])))
            return results

    async def _pending_ops(
        self, session: AsyncSession, context: _Context, asset_ids: list[int]
    ) -> dict[int, list[list[Any]]]:
        wanted = set(asset_ids)
        ops: dict[int, list[list[Any]]] = defaultdict(list)
        after = None
        while messages := await platform.pending_messages(session, topic=TOPIC, limit=1000, after=after):
            for message in messages:
                asset = int(message.payload["asset_id"])
                if asset in wanted and (op := await self._op(session, context, message.payload)) is not None:
                    ops[asset].append(op)
            after = messages[-1].id
        return ops

    async def _compare_one(
        self, session: AsyncSession, context: _Context, asset_id: int, block: int, outbox_ops: list[list[Any]]
    ) -> "EmissionComparison":
        asset = await ledger.get_asset_by_id(session, asset_id)
        holdings = await self._holdings_by_address(session, context, asset_id)
        outstanding = -holdings.pop(None, 0)
        token = await repository.get_token(session, chain_id=self._chain_id, asset_id=asset_id)
        deployed = token is not None and await self.chain.has_code(token.address, block=block)
        chain_next = supply = 0
        paused = False
        chain_balances: dict[str, int] = {}
        holders = sorted(
            set(holdings) | set(await repository.addresses_used(session, chain_id=self._chain_id, asset_id=asset_id))
        )
        if deployed:
            chain_next, supply, paused, chain_balances = await self.chain.token_state(
                token.address, holders=holders, block=block
            )
        unapplied = outbox_ops + await repository.unconfirmed_ops(
            session, chain_id=self._chain_id, asset_id=asset_id, from_seq=chain_next
        )
        expected = dict(holdings)
        _take_back(expected, unapplied)
        expected_supply = sum(expected.values())
        differences = [
            HolderDifference(address, expected.get(address, 0), chain_balances.get(address, 0))
            for address in holders
            if expected.get(address, 0) != chain_balances.get(address, 0)
        ]
        return EmissionComparison(
            asset_id=asset_id,
            asset_code=asset.code,
            token_address=token.address if token else None,
            deployed=deployed,
            block=block,
            paused=paused,
            ledger_outstanding=outstanding,
            expected_supply=expected_supply,
            chain_supply=supply,
            unapplied_ops=len(unapplied),
            differences=differences,
        )


@dataclass(frozen=True)
class HolderDifference:
    address: str
    expected: int
    on_chain: int


@dataclass(frozen=True)
class EmissionComparison:
    """The ledger against the chain for one emission, at one block."""

    asset_id: int
    asset_code: str
    token_address: str | None
    deployed: bool
    block: int
    paused: bool
    ledger_outstanding: int
    expected_supply: int  # the ledger's outstanding units minus what the chain has yet to apply
    chain_supply: int
    unapplied_ops: int
    differences: list[HolderDifference]

    @property
    def in_sync(self) -> bool:
        return self.expected_supply == self.chain_supply and not self.differences


def _take_back(balances: dict[str, int], ops: list[list[Any]]) -> None:
    """Undo the effect of ops on per-address balances (ops the chain has not applied yet)."""
    for kind, source, target, amount, _ in ops:
        if kind in (PAUSE, UNPAUSE):
            continue
        if source is not None:
            balances[source] = balances.get(source, 0) + int(amount)
        if target is not None:
            balances[target] = balances.get(target, 0) - int(amount)


async def pause_emission(session: AsyncSession, *, asset_id: int, paused: bool) -> None:
    """Pause (or resume) the emission's token contract, in order with its mirrored movements."""
    await platform.enqueue(session, topic=TOPIC, payload={"asset_id": asset_id, "pause": paused})


async def list_tokens(session: AsyncSession, *, chain_id: int) -> list[Token]:
    return await repository.list_tokens(session, chain_id=chain_id)


@dataclass(frozen=True)
class MirrorStatus:
    chain: str
    pending_movements: int
    batches: dict[str, int]
    oldest_pending_at: datetime | None


async def status(session: AsyncSession, *, chain: Chain) -> MirrorStatus:
    """How far the chain is behind the ledger, from the database alone (works while the node is down)."""
    pending = await platform.pending_messages(session, topic=TOPIC, limit=1000)
    return MirrorStatus(
        chain=chain.name,
        pending_movements=len(pending),
        batches=await repository.count_batches_by_status(session),
        oldest_pending_at=pending[0].created_at if pending else None,
    )
