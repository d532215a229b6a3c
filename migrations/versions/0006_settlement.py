"""Settlement: money in and out through the bank, settlement instructions, the order book, trading
status; and the ledger's one-statement settlement of holds.

Revision ID: 0006
Revises: 0005
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('settlement_payment_runs',
    sa.Column('message_id', sa.String(length=35), nullable=False),
    sa.Column('document', sa.LargeBinary(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('total_tiyn', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('acceptance_id', sa.String(length=100), nullable=True),
    sa.Column('refusal_code', sa.String(length=100), nullable=True),
    sa.Column('refusal_reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('built', 'accepted', 'refused')", name=op.f('ck_settlement_payment_runs_status')),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_settlement_payment_runs'))
    )
    op.create_table('settlement_statement_imports',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('account_iban', sa.String(length=34), nullable=False),
    sa.Column('statement_id', sa.String(length=100), nullable=False),
    sa.Column('digest', sa.LargeBinary(), nullable=False),
    sa.Column('lines_total', sa.Integer(), nullable=False),
    sa.Column('lines_new', sa.Integer(), nullable=False),
    sa.Column('credited', sa.Integer(), nullable=False),
    sa.Column('unmatched', sa.Integer(), nullable=False),
    sa.Column('imported_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_statement_imports'))
    )
    op.create_table('settlement_bank_accounts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('iban', sa.String(length=34), nullable=False),
    sa.Column('holder_name', sa.String(length=140), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('verified_by', sa.String(length=200), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('unverified', 'verified', 'revoked')", name=op.f('ck_settlement_bank_accounts_status')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_settlement_bank_accounts_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_bank_accounts'))
    )
    op.create_index('uq_settlement_bank_accounts_party_iban', 'settlement_bank_accounts', ['party_id', 'iban'], unique=True)
    op.create_table('settlement_instructions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=True),
    sa.Column('terms_digest', sa.LargeBinary(), nullable=True),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('settlement_date', sa.Date(), nullable=False),
    sa.Column('first_party_id', sa.Uuid(), nullable=False),
    sa.Column('first_asset_id', sa.Integer(), nullable=False),
    sa.Column('first_amount', sa.BigInteger(), nullable=False),
    sa.Column('first_fee', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('first_hold_id', sa.Uuid(), nullable=True),
    sa.Column('second_party_id', sa.Uuid(), nullable=False),
    sa.Column('second_asset_id', sa.Integer(), nullable=False),
    sa.Column('second_amount', sa.BigInteger(), nullable=False),
    sa.Column('second_fee', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('second_hold_id', sa.Uuid(), nullable=True),
    sa.Column('failure_code', sa.String(length=50), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('resubmitted_from', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('dvp', 'dvd')", name=op.f('ck_settlement_instructions_kind')),
    sa.CheckConstraint("origin IN ('bilateral', 'order_book', 'placement', 'redemption')", name=op.f('ck_settlement_instructions_origin')),
    sa.CheckConstraint("status <> 'settled' OR (first_hold_id IS NOT NULL AND second_hold_id IS NOT NULL)", name=op.f('ck_settlement_instructions_prefunded')),
    sa.CheckConstraint("status IN ('pending', 'settled', 'failed', 'cancelled')", name=op.f('ck_settlement_instructions_status')),
    sa.CheckConstraint('first_amount > 0 AND second_amount > 0', name=op.f('ck_settlement_instructions_amounts_positive')),
    sa.CheckConstraint('first_asset_id <> second_asset_id', name=op.f('ck_settlement_instructions_distinct_assets')),
    sa.CheckConstraint('first_fee >= 0 AND second_fee >= 0', name=op.f('ck_settlement_instructions_fees')),
    sa.CheckConstraint('first_party_id <> second_party_id', name=op.f('ck_settlement_instructions_distinct_parties')),
    sa.CheckConstraint('settlement_date >= trade_date', name=op.f('ck_settlement_instructions_dates')),
    sa.ForeignKeyConstraint(['first_asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_instructions_first_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['first_party_id'], ['parties.id'], name=op.f('fk_settlement_instructions_first_party_id_parties')),
    sa.ForeignKeyConstraint(['resubmitted_from'], ['settlement_instructions.id'], name=op.f('fk_settlement_instructions_resubmitted_from_settlement_instructions')),
    sa.ForeignKeyConstraint(['second_asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_instructions_second_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['second_party_id'], ['parties.id'], name=op.f('fk_settlement_instructions_second_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_instructions'))
    )
    op.create_index('ix_settlement_instructions_first_party', 'settlement_instructions', ['first_party_id', 'created_at'], unique=False)
    op.create_index('ix_settlement_instructions_pending', 'settlement_instructions', ['settlement_date'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_settlement_instructions_second_party', 'settlement_instructions', ['second_party_id', 'created_at'], unique=False)
    op.create_index('uq_settlement_instructions_terms', 'settlement_instructions', ['terms_digest'], unique=True, postgresql_where=sa.text("status = 'pending' AND (first_hold_id IS NULL OR second_hold_id IS NULL)"))
    op.create_table('settlement_orders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('base_asset_id', sa.Integer(), nullable=False),
    sa.Column('quote_asset_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('filled_quantity', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('time_in_force', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('close_reason', sa.String(length=200), nullable=True),
    sa.Column('placed_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'filled') = (filled_quantity = quantity)", name=op.f('ck_settlement_orders_filled_status')),
    sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f('ck_settlement_orders_side')),
    sa.CheckConstraint("status IN ('open', 'filled', 'cancelled', 'expired')", name=op.f('ck_settlement_orders_status')),
    sa.CheckConstraint("time_in_force IN ('gtc', 'day')", name=op.f('ck_settlement_orders_time_in_force')),
    sa.CheckConstraint('base_asset_id <> quote_asset_id', name=op.f('ck_settlement_orders_distinct_assets')),
    sa.CheckConstraint('filled_quantity >= 0 AND filled_quantity <= quantity', name=op.f('ck_settlement_orders_filled')),
    sa.CheckConstraint('price > 0 AND quantity > 0', name=op.f('ck_settlement_orders_positive')),
    sa.ForeignKeyConstraint(['base_asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_orders_base_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_settlement_orders_party_id_parties')),
    sa.ForeignKeyConstraint(['quote_asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_orders_quote_asset_id_ledger_assets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_orders')),
    sa.UniqueConstraint('seq', name=op.f('uq_settlement_orders_seq'))
    )
    op.create_index('ix_settlement_orders_book', 'settlement_orders', ['base_asset_id', 'quote_asset_id', 'side', 'price', 'seq'], unique=False, postgresql_where=sa.text("status = 'open'"))
    op.create_index('ix_settlement_orders_day', 'settlement_orders', ['trade_date'], unique=False, postgresql_where=sa.text("status = 'open' AND time_in_force = 'day'"))
    op.create_index('ix_settlement_orders_party_id', 'settlement_orders', ['party_id', 'seq'], unique=False)
    op.create_table('settlement_payment_references',
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('reference', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_settlement_payment_references_party_id_parties')),
    sa.PrimaryKeyConstraint('party_id', name=op.f('pk_settlement_payment_references')),
    sa.UniqueConstraint('reference', name=op.f('uq_settlement_payment_references_reference'))
    )
    op.create_table('settlement_statement_lines',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('import_id', sa.BigInteger(), nullable=False),
    sa.Column('account_iban', sa.String(length=34), nullable=False),
    sa.Column('entry_reference', sa.String(length=100), nullable=False),
    sa.Column('amount_tiyn', sa.BigInteger(), nullable=False),
    sa.Column('credit', sa.Boolean(), nullable=False),
    sa.Column('booking_date', sa.Date(), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=True),
    sa.Column('payment_reference', sa.String(length=140), nullable=True),
    sa.Column('counterparty_name', sa.String(length=140), nullable=True),
    sa.Column('counterparty_iban', sa.String(length=34), nullable=True),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=True),
    sa.Column('transfer_id', sa.Uuid(), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('credited', 'unmatched', 'assigned', 'returned', 'withdrawal')", name=op.f('ck_settlement_statement_lines_status')),
    sa.CheckConstraint('amount_tiyn > 0', name=op.f('ck_settlement_statement_lines_amount_positive')),
    sa.ForeignKeyConstraint(['import_id'], ['settlement_statement_imports.id'], name=op.f('fk_settlement_statement_lines_import_id_settlement_statement_imports')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_settlement_statement_lines_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_statement_lines'))
    )
    op.create_index('ix_settlement_statement_lines_unmatched', 'settlement_statement_lines', ['id'], unique=False, postgresql_where=sa.text("status = 'unmatched'"))
    op.create_index('uq_settlement_statement_lines_entry', 'settlement_statement_lines', ['account_iban', 'entry_reference'], unique=True)
    op.create_table('settlement_trading_status',
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('suspended', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('changed_by', sa.String(length=200), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_trading_status_asset_id_ledger_assets')),
    sa.PrimaryKeyConstraint('asset_id', name=op.f('pk_settlement_trading_status'))
    )
    op.create_table('settlement_instruction_events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('instruction_id', sa.Uuid(), nullable=False),
    sa.Column('event', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("event IN ('submitted', 'matched', 'settled', 'failed', 'cancelled')", name=op.f('ck_settlement_instruction_events_event')),
    sa.ForeignKeyConstraint(['instruction_id'], ['settlement_instructions.id'], name=op.f('fk_settlement_instruction_events_instruction_id_settlement_instructions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_instruction_events'))
    )
    op.create_index('ix_settlement_instruction_events_instruction_id', 'settlement_instruction_events', ['instruction_id', 'id'], unique=False)
    op.create_table('settlement_trades',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('base_asset_id', sa.Integer(), nullable=False),
    sa.Column('quote_asset_id', sa.Integer(), nullable=False),
    sa.Column('buy_order_id', sa.Uuid(), nullable=False),
    sa.Column('sell_order_id', sa.Uuid(), nullable=False),
    sa.Column('aggressor', sa.String(length=4), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('buyer_fee', sa.BigInteger(), nullable=False),
    sa.Column('seller_fee', sa.BigInteger(), nullable=False),
    sa.Column('instruction_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('buyer_fee >= 0 AND seller_fee >= 0', name=op.f('ck_settlement_trades_fees')),
    sa.CheckConstraint('price > 0 AND quantity > 0 AND value > 0', name=op.f('ck_settlement_trades_positive')),
    sa.ForeignKeyConstraint(['base_asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_trades_base_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['buy_order_id'], ['settlement_orders.id'], name=op.f('fk_settlement_trades_buy_order_id_settlement_orders')),
    sa.ForeignKeyConstraint(['instruction_id'], ['settlement_instructions.id'], name=op.f('fk_settlement_trades_instruction_id_settlement_instructions')),
    sa.ForeignKeyConstraint(['quote_asset_id'], ['ledger_assets.id'], name=op.f('fk_settlement_trades_quote_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['sell_order_id'], ['settlement_orders.id'], name=op.f('fk_settlement_trades_sell_order_id_settlement_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_trades')),
    sa.UniqueConstraint('seq', name=op.f('uq_settlement_trades_seq'))
    )
    op.create_index('ix_settlement_trades_book', 'settlement_trades', ['base_asset_id', 'quote_asset_id', 'seq'], unique=False)
    op.create_index('ix_settlement_trades_buy_order_id', 'settlement_trades', ['buy_order_id'], unique=False)
    op.create_index('ix_settlement_trades_sell_order_id', 'settlement_trades', ['sell_order_id'], unique=False)
    op.create_table('settlement_withdrawals',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('bank_account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount_tiyn', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('message_id', sa.String(length=35), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'submitted', 'sent', 'refused', 'cancelled')", name=op.f('ck_settlement_withdrawals_status')),
    sa.CheckConstraint('amount_tiyn > 0', name=op.f('ck_settlement_withdrawals_amount_positive')),
    sa.ForeignKeyConstraint(['bank_account_id'], ['settlement_bank_accounts.id'], name=op.f('fk_settlement_withdrawals_bank_account_id_settlement_bank_accounts')),
    sa.ForeignKeyConstraint(['message_id'], ['settlement_payment_runs.message_id'], name=op.f('fk_settlement_withdrawals_message_id_settlement_payment_runs')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_settlement_withdrawals_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_withdrawals')),
    sa.UniqueConstraint('end_to_end_id', name=op.f('uq_settlement_withdrawals_end_to_end_id'))
    )
    op.create_index('ix_settlement_withdrawals_party_id', 'settlement_withdrawals', ['party_id'], unique=False)
    op.create_index('ix_settlement_withdrawals_requested', 'settlement_withdrawals', ['created_at'], unique=False, postgresql_where=sa.text("status = 'requested'"))


    for statement in SETTLE_HOLDS_SQL:
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION ledger_settle_holds(uuid, uuid[], bigint[], bigint[], text[], uuid[], uuid[], bigint[], "
        "bigint[], text[], uuid[], uuid[])"
    )
    op.execute(_original_post_batch())
    op.execute(
        "DROP FUNCTION ledger_post_transfers(uuid[], bigint[], bigint[], bigint[], text[], uuid[], integer[], text[], uuid)"
    )
    op.drop_index('ix_settlement_withdrawals_requested', table_name='settlement_withdrawals', postgresql_where=sa.text("status = 'requested'"))
    op.drop_index('ix_settlement_withdrawals_party_id', table_name='settlement_withdrawals')
    op.drop_table('settlement_withdrawals')
    op.drop_index('ix_settlement_trades_sell_order_id', table_name='settlement_trades')
    op.drop_index('ix_settlement_trades_buy_order_id', table_name='settlement_trades')
    op.drop_index('ix_settlement_trades_book', table_name='settlement_trades')
    op.drop_table('settlement_trades')
    op.drop_index('ix_settlement_instruction_events_instruction_id', table_name='settlement_instruction_events')
    op.drop_table('settlement_instruction_events')
    op.drop_table('settlement_trading_status')
    op.drop_index('uq_settlement_statement_lines_entry', table_name='settlement_statement_lines')
    op.drop_index('ix_settlement_statement_lines_unmatched', table_name='settlement_statement_lines', postgresql_where=sa.text("status = 'unmatched'"))
    op.drop_table('settlement_statement_lines')
    op.drop_table('settlement_payment_references')
    op.drop_index('ix_settlement_orders_party_id', table_name='settlement_orders')
    op.drop_index('ix_settlement_orders_day', table_name='settlement_orders', postgresql_where=sa.text("status = 'open' AND time_in_force = 'day'"))
    op.drop_index('ix_settlement_orders_book', table_name='settlement_orders', postgresql_where=sa.text("status = 'open'"))
    op.drop_table('settlement_orders')
    op.drop_index('uq_settlement_instructions_terms', table_name='settlement_instructions', postgresql_where=sa.text("status = 'pending' AND (first_hold_id IS NULL OR second_hold_id IS NULL)"))
    op.drop_index('ix_settlement_instructions_second_party', table_name='settlement_instructions')
    op.drop_index('ix_settlement_instructions_pending', table_name='settlement_instructions', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_settlement_instructions_first_party', table_name='settlement_instructions')
    op.drop_table('settlement_instructions')
    op.drop_index('uq_settlement_bank_accounts_party_iban', table_name='settlement_bank_accounts')
    op.drop_table('settlement_bank_accounts')
    op.drop_table('settlement_statement_imports')
    op.drop_table('settlement_payment_runs')


# Settlement moves many holds at once: a DvP posts the buyer's money hold to the seller and the fee
# account and the seller's unit hold to the buyer, and an order that matches on arrival places its
# own hold and posts it in the same breath. `ledger_post_transfers` is the journal function of
# 0001 with each transfer's kind and hold; `ledger_post_batch` keeps its signature on top of it.
# `ledger_settle_holds` places, posts and voids holds as one linked unit in one round trip: holds are
# locked first (ascending id), then every account (ascending id), the same order as everywhere else.
SETTLE_HOLDS_SQL = [
    """
    CREATE FUNCTION ledger_post_transfers(
        p_ids uuid[], p_debits bigint[], p_credits bigint[], p_amounts bigint[], p_kinds text[], p_hold_ids uuid[],
        p_codes integer[], p_references text[], p_batch_id uuid, OUT created_at timestamptz, OUT asset_ids integer[])
    LANGUAGE plpgsql AS $$
    -- Applies the transfers in order, all or none. Errors: DL001 unknown account or asset mismatch,
    -- DL002 a balance would cross its sign (intermediate balances included), DL003 a transfer id exists.
    DECLARE
        v_now timestamptz;
        v_bad record;
        r record;
        v_account bigint;
        v_hash bytea;
        e_account bigint[]; e_seq bigint[]; e_transfer uuid[]; e_counter bigint[]; e_amount bigint[];
        e_balance bigint[]; e_prev bytea[]; e_hash bytea[];
    BEGIN
        PERFORM 1 FROM ledger_accounts WHERE id = ANY (p_debits || p_credits) ORDER BY id FOR UPDATE;
        v_now := clock_timestamp();

        SELECT t.id INTO v_bad FROM ledger_transfers t WHERE t.id = ANY (p_ids) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'transfer exists' USING ERRCODE = 'DL003',
                DETAIL = json_build_object('transfer_id', v_bad.id)::text;
        END IF;

        SELECT t.id, t.debit, t.credit, d.id IS NOT NULL AS debit_found, c.id IS NOT NULL AS credit_found,
               d.asset_id AS debit_asset_id, c.asset_id AS credit_asset_id
        INTO v_bad
        FROM unnest(p_ids, p_debits, p_credits) WITH ORDINALITY AS t (id, debit, credit, ord)
        LEFT JOIN ledger_accounts d ON d.id = t.debit
        LEFT JOIN ledger_accounts c ON c.id = t.credit
        WHERE d.id IS NULL OR c.id IS NULL OR d.asset_id <> c.asset_id
        ORDER BY t.ord LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'account problem' USING ERRCODE = 'DL001', DETAIL = row_to_json(v_bad)::text;
        END IF;
        SELECT array_agg(a.asset_id ORDER BY t.ord) INTO asset_ids
        FROM unnest(p_debits) WITH ORDINALITY AS t (debit, ord) JOIN ledger_accounts a ON a.id = t.debit;

        FOR r IN
            WITH t AS (
                SELECT * FROM unnest(p_ids, p_debits, p_credits, p_amounts) WITH ORDINALITY
                    AS t (id, debit, credit, amount, ord)),
            legs AS (
                SELECT ord, 0 AS side, id, debit AS account_id, credit AS counter, -amount AS delta FROM t
                UNION ALL
                SELECT ord, 1, id, credit, debit, amount FROM t)
            SELECT l.account_id, l.id, l.counter, l.delta, a.kind, a.last_hash,
                   CAST(a.balance + sum(l.delta) OVER w AS bigint) AS balance_after,
                   a.version + row_number() OVER w AS seq
            FROM legs l JOIN ledger_accounts a ON a.id = l.account_id
            WINDOW w AS (PARTITION BY l.account_id ORDER BY l.ord, l.side)
            ORDER BY l.account_id, l.ord, l.side
        LOOP
            IF r.account_id IS DISTINCT FROM v_account THEN
                v_account := r.account_id;
                v_hash := coalesce(r.last_hash, ledger_genesis_hash(r.account_id));
            END IF;
            IF (CASE WHEN r.kind IN ('issued', 'client_money', 'own_money') THEN r.balance_after > 0
                     ELSE r.balance_after < 0 END) THEN
                RAISE EXCEPTION 'insufficient balance' USING ERRCODE = 'DL002',
                    DETAIL = json_build_object('transfer_id', r.id, 'account_id', r.account_id)::text;
            END IF;
            e_prev := e_prev || v_hash;
            v_hash := ledger_entry_hash(v_hash, r.account_id, r.seq, r.id, r.counter, r.delta, r.balance_after, v_now);
            e_account := e_account || r.account_id;
            e_seq := e_seq || r.seq;
            e_transfer := e_transfer || r.id;
            e_counter := e_counter || r.counter;
            e_amount := e_amount || r.delta;
            e_balance := e_balance || r.balance_after;
            e_hash := e_hash || v_hash;
        END LOOP;

        INSERT INTO ledger_transfers
            (id, debit_account_id, credit_account_id, asset_id, amount, kind, hold_id, batch_id, code, reference,
             created_at)
        SELECT t.id, t.debit, t.credit, t.asset_id, t.amount, t.kind, t.hold_id, p_batch_id, coalesce(t.code, 0),
               t.reference, v_now
        FROM unnest(p_ids, p_debits, p_credits, asset_ids, p_amounts, p_kinds, p_hold_ids, p_codes, p_references)
            AS t (id, debit, credit, asset_id, amount, kind, hold_id, code, reference);

        INSERT INTO ledger_entries
            (account_id, seq, transfer_id, counter_account_id, amount, balance_after, created_at, prev_hash, hash)
        SELECT u.account_id, u.seq, u.transfer_id, u.counter, u.amount, u.balance, v_now, u.prev, u.hash
        FROM unnest(e_account, e_seq, e_transfer, e_counter, e_amount, e_balance, e_prev, e_hash)
            AS u (account_id, seq, transfer_id, counter, amount, balance, prev, hash);

        UPDATE ledger_accounts a SET balance = x.balance, version = x.seq, last_hash = x.hash
        FROM (SELECT DISTINCT ON (u.account_id) u.account_id, u.seq, u.balance, u.hash
              FROM unnest(e_account, e_seq, e_balance, e_hash) AS u (account_id, seq, balance, hash)
              ORDER BY u.account_id, u.seq DESC) x
        WHERE a.id = x.account_id;
        created_at := v_now;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION ledger_post_batch(
        p_ids uuid[], p_debits bigint[], p_credits bigint[], p_amounts bigint[], p_codes integer[],
        p_references text[], p_batch_id uuid, OUT created_at timestamptz, OUT asset_ids integer[])
    LANGUAGE sql AS $$
        SELECT * FROM ledger_post_transfers(
            p_ids, p_debits, p_credits, p_amounts, array_fill('transfer'::text, ARRAY[cardinality(p_ids)]),
            array_fill(NULL::uuid, ARRAY[cardinality(p_ids)]), p_codes, p_references, p_batch_id)
    $$
    """,
    """
    CREATE FUNCTION ledger_settle_holds(
        p_batch_id uuid,
        p_place_ids uuid[], p_place_accounts bigint[], p_place_amounts bigint[], p_place_references text[],
        p_post_holds uuid[], p_post_ids uuid[], p_post_credits bigint[], p_post_amounts bigint[],
        p_post_references text[], p_void_holds uuid[], p_void_ids uuid[],
        OUT posted_at timestamptz)
    LANGUAGE plpgsql AS $$
    -- Places holds, then posts parts of holds (also of those placed here), then releases what remains of
    -- the voided ones, as one unit. Errors, besides those of ledger_post_transfers: DL004 a hold is not
    -- pending, DL005 posts exceed what remains of a hold, DL006 a hold has expired, DL007 no such hold,
    -- DL008 a hold placed on an account that is not an available one, DL009 a hold id exists.
    DECLARE
        v_bad record;
        v_now timestamptz := clock_timestamp();
        v_accounts bigint[];
        t_ids uuid[]; t_debits bigint[]; t_credits bigint[]; t_amounts bigint[]; t_kinds text[]; t_holds uuid[];
        t_references text[];
    BEGIN
        SELECT t.account_id, a.kind INTO v_bad
        FROM unnest(p_place_accounts) AS t (account_id)
        LEFT JOIN ledger_accounts a ON a.id = t.account_id
        WHERE a.kind IS DISTINCT FROM 'available' LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'hold on a non-available account' USING ERRCODE = 'DL008',
                DETAIL = row_to_json(v_bad)::text;
        END IF;
        -- Holds first, then every account the batch touches, each in ascending id order, before anything
        -- is written: inserting a hold takes a key-share lock on its accounts, which must not come first.
        PERFORM 1 FROM ledger_holds WHERE id = ANY (p_post_holds || p_void_holds) ORDER BY id FOR UPDATE;
        SELECT array_agg(u.id) INTO v_accounts FROM (
            SELECT unnest(p_place_accounts || p_post_credits)
            UNION
            SELECT h.id FROM ledger_accounts s
            JOIN ledger_accounts h ON h.owner_party_id = s.owner_party_id AND h.asset_id = s.asset_id AND h.kind = 'held'
            WHERE s.id = ANY (p_place_accounts)
            UNION
            SELECT unnest(ARRAY[x.account_id, x.held_account_id]) FROM ledger_holds x
            WHERE x.id = ANY (p_post_holds || p_void_holds)) AS u (id);
        PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_accounts) ORDER BY id FOR UPDATE;

        INSERT INTO ledger_holds (id, account_id, held_account_id, asset_id, amount, status, reference, created_at)
        SELECT t.id, a.id, h.id, a.asset_id, t.amount, 'pending', t.reference, v_now
        FROM unnest(p_place_ids, p_place_accounts, p_place_amounts, p_place_references)
            AS t (id, account_id, amount, reference)
        JOIN ledger_accounts a ON a.id = t.account_id
        JOIN ledger_accounts h ON h.owner_party_id = a.owner_party_id AND h.asset_id = a.asset_id AND h.kind = 'held'
        ON CONFLICT (id) DO NOTHING;
        IF (SELECT count(*) FROM ledger_holds WHERE id = ANY (p_place_ids) AND created_at = v_now)
           <> coalesce(cardinality(p_place_ids), 0) THEN
            RAISE EXCEPTION 'hold id exists' USING ERRCODE = 'DL009';
        END IF;

        SELECT t.hold_id INTO v_bad
        FROM unnest(p_post_holds || p_void_holds) AS t (hold_id)
        LEFT JOIN ledger_holds h ON h.id = t.hold_id WHERE h.id IS NULL LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'no such hold' USING ERRCODE = 'DL007', DETAIL = json_build_object('hold_id', v_bad.hold_id)::text;
        END IF;
        SELECT h.id AS hold_id, h.status INTO v_bad FROM ledger_holds h
        WHERE h.id = ANY (p_post_holds || p_void_holds) AND h.status <> 'pending' LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'hold not pending' USING ERRCODE = 'DL004', DETAIL = row_to_json(v_bad)::text;
        END IF;
        SELECT h.id AS hold_id, h.expires_at INTO v_bad FROM ledger_holds h
        WHERE h.id = ANY (p_post_holds) AND h.expires_at <= v_now LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'hold expired' USING ERRCODE = 'DL006', DETAIL = row_to_json(v_bad)::text;
        END IF;
        SELECT h.id AS hold_id, h.amount - h.posted_amount - h.released_amount AS remaining, p.asked INTO v_bad
        FROM (SELECT hold_id, sum(amount) AS asked FROM unnest(p_post_holds, p_post_amounts) AS t (hold_id, amount)
              GROUP BY hold_id) p
        JOIN ledger_holds h ON h.id = p.hold_id
        WHERE p.asked > h.amount - h.posted_amount - h.released_amount LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'hold exceeded' USING ERRCODE = 'DL005', DETAIL = row_to_json(v_bad)::text;
        END IF;

        WITH posted AS (
            SELECT hold_id, sum(amount) AS amount FROM unnest(p_post_holds, p_post_amounts) AS t (hold_id, amount)
            GROUP BY hold_id),
        moves AS (
            SELECT 0 AS phase, t.ord, t.id, t.account_id AS debit, h.held_account_id AS credit, t.amount,
                   'hold' AS kind, t.id AS hold_id, t.reference
            FROM unnest(p_place_ids, p_place_accounts, p_place_amounts, p_place_references) WITH ORDINALITY
                AS t (id, account_id, amount, reference, ord)
            JOIN ledger_holds h ON h.id = t.id
            UNION ALL
            SELECT 1, t.ord, t.id, h.held_account_id, t.credit, t.amount, 'post', t.hold_id, t.reference
            FROM unnest(p_post_holds, p_post_ids, p_post_credits, p_post_amounts, p_post_references) WITH ORDINALITY
                AS t (hold_id, id, credit, amount, reference, ord)
            JOIN ledger_holds h ON h.id = t.hold_id
            UNION ALL
            SELECT 2, t.ord, t.id, h.held_account_id, h.account_id,
                   h.amount - h.posted_amount - h.released_amount - coalesce(p.amount, 0), 'void', t.hold_id, NULL
            FROM unnest(p_void_holds, p_void_ids) WITH ORDINALITY AS t (hold_id, id, ord)
            JOIN ledger_holds h ON h.id = t.hold_id
            LEFT JOIN posted p ON p.hold_id = t.hold_id
            WHERE h.amount - h.posted_amount - h.released_amount - coalesce(p.amount, 0) > 0)
        SELECT array_agg(id ORDER BY phase, ord), array_agg(debit ORDER BY phase, ord),
               array_agg(credit ORDER BY phase, ord), array_agg(amount ORDER BY phase, ord),
               array_agg(kind ORDER BY phase, ord), array_agg(hold_id ORDER BY phase, ord),
               array_agg(reference ORDER BY phase, ord)
        INTO t_ids, t_debits, t_credits, t_amounts, t_kinds, t_holds, t_references
        FROM moves;

        SELECT p.created_at INTO posted_at FROM ledger_post_transfers(
            t_ids, t_debits, t_credits, t_amounts, t_kinds, t_holds,
            array_fill(0, ARRAY[coalesce(cardinality(t_ids), 0)]), t_references, p_batch_id) AS p;

        WITH posted AS (
            SELECT hold_id, sum(amount) AS amount FROM unnest(p_post_holds, p_post_amounts) AS t (hold_id, amount)
            GROUP BY hold_id),
        touched AS (
            SELECT h.id, coalesce(p.amount, 0) AS posted, h.id = ANY (p_void_holds) AS voided,
                   h.id = ANY (p_place_ids) AS placed
            FROM ledger_holds h LEFT JOIN posted p ON p.hold_id = h.id
            WHERE h.id = ANY (p_post_holds || p_void_holds || p_place_ids)),
        changed AS (
            SELECT h.id, h.posted_amount + t.posted AS posted_amount,
                   CASE WHEN t.voided THEN h.amount - h.posted_amount - t.posted ELSE h.released_amount END
                       AS released_amount,
                   t.placed
            FROM ledger_holds h JOIN touched t ON t.id = h.id)
        UPDATE ledger_holds h
        SET posted_amount = c.posted_amount, released_amount = c.released_amount,
            status = CASE WHEN c.posted_amount + c.released_amount < h.amount THEN 'pending'
                          WHEN c.released_amount > 0 THEN 'voided' ELSE 'posted' END,
            closed_at = CASE WHEN c.posted_amount + c.released_amount < h.amount THEN NULL ELSE posted_at END,
            created_at = CASE WHEN c.placed THEN posted_at ELSE h.created_at END
        FROM changed c WHERE h.id = c.id;
    END $$
    """,
]



def _original_post_batch() -> str:
    """ledger_post_batch as 0001 made it, before it went through ledger_post_transfers."""
    spec = importlib.util.spec_from_file_location("foundation", Path(__file__).with_name("0001_foundation.py"))
    foundation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(foundation)
    statement = next(s for s in foundation.JOURNAL_SQL if "FUNCTION ledger_post_batch" in s)
    return statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
