"""Foundation: parties, the idempotency store and the double-entry ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 09:57:22.384636
"""

import sqlalchemy as sa
from alembic import op


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_records',
    sa.Column('principal', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.LargeBinary(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('content_type', sa.Text(), nullable=True),
    sa.Column('response_body', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('principal', 'key', name=op.f('pk_idempotency_records'))
    )
    op.create_index(op.f('ix_idempotency_records_created_at'), 'idempotency_records', ['created_at'], unique=False)
    op.create_table('ledger_assets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=50), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('scale', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("code ~ '^[A-Z0-9][A-Z0-9._-]{0,49}$'", name=op.f('ck_ledger_assets_code')),
    sa.CheckConstraint("kind IN ('money', 'dfa')", name=op.f('ck_ledger_assets_kind')),
    sa.CheckConstraint('scale BETWEEN 0 AND 8', name=op.f('ck_ledger_assets_scale')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_assets')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_assets_code'))
    )
    op.create_table('ledger_batches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('request_hash', sa.LargeBinary(), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_batches'))
    )
    op.create_table('ledger_entries',
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('transfer_id', sa.Uuid(), nullable=False),
    sa.Column('counter_account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(), nullable=False),
    sa.Column('hash', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_entries_amount_nonzero')),
    sa.CheckConstraint('seq > 0', name=op.f('ck_ledger_entries_seq_positive')),
    sa.PrimaryKeyConstraint('account_id', 'seq', name=op.f('pk_ledger_entries'))
    )
    op.create_index('ix_ledger_entries_account_id_created_at', 'ledger_entries', ['account_id', 'created_at'], unique=False)
    op.create_table('ledger_transfers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('debit_account_id', sa.BigInteger(), nullable=False),
    sa.Column('credit_account_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=True),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('code', sa.Integer(), server_default='0', nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('transfer', 'hold', 'post', 'void', 'expire')", name=op.f('ck_ledger_transfers_kind')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_transfers_amount_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_ledger_transfers_distinct_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfers'))
    )
    op.create_index('ix_ledger_transfers_batch_id', 'ledger_transfers', ['batch_id'], unique=False, postgresql_where=sa.text('batch_id IS NOT NULL'))
    op.create_index('ix_ledger_transfers_hold_id', 'ledger_transfers', ['hold_id'], unique=False, postgresql_where=sa.text('hold_id IS NOT NULL'))
    op.create_table('parties',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('identifier', sa.String(length=12), nullable=False),
    sa.Column('resident', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('person', 'legal_entity')", name=op.f('ck_parties_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parties')),
    sa.UniqueConstraint('identifier', name=op.f('uq_parties_identifier'))
    )
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('owner_party_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('balance', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_hash', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("CASE WHEN kind IN ('issued', 'client_money', 'own_money') THEN balance <= 0 ELSE balance >= 0 END", name=op.f('ck_ledger_accounts_balance_sign')),
    sa.CheckConstraint("kind IN ('available', 'held', 'issued', 'client_money', 'own_money', 'settlement', 'fees')", name=op.f('ck_ledger_accounts_kind')),
    sa.CheckConstraint('version >= 0', name=op.f('ck_ledger_accounts_version')),
    sa.ForeignKeyConstraint(['asset_id'], ['ledger_assets.id'], name=op.f('fk_ledger_accounts_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['owner_party_id'], ['parties.id'], name=op.f('fk_ledger_accounts_owner_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts'))
    )
    op.create_index('ix_ledger_accounts_asset_kind', 'ledger_accounts', ['asset_id', 'kind'], unique=False)
    op.create_index('uq_ledger_accounts_holder', 'ledger_accounts', ['owner_party_id', 'asset_id', 'kind'], unique=True, postgresql_where=sa.text("kind IN ('available', 'held')"))
    op.create_index('uq_ledger_accounts_issued', 'ledger_accounts', ['asset_id'], unique=True, postgresql_where=sa.text("kind = 'issued'"))
    op.create_table('ledger_holds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('held_account_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('posted_amount', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('released_amount', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'pending') = (posted_amount + released_amount < amount)", name=op.f('ck_ledger_holds_closed_when_exhausted')),
    sa.CheckConstraint("status IN ('pending', 'posted', 'voided', 'expired')", name=op.f('ck_ledger_holds_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_holds_amount_positive')),
    sa.CheckConstraint('posted_amount >= 0 AND released_amount >= 0 AND posted_amount + released_amount <= amount', name=op.f('ck_ledger_holds_amounts')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_holds_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['held_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_holds_held_account_id_ledger_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_holds'))
    )
    op.create_index('ix_ledger_holds_account_id', 'ledger_holds', ['account_id'], unique=False)
    op.create_index('ix_ledger_holds_expiry', 'ledger_holds', ['expires_at'], unique=False, postgresql_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"))

    for statement in JOURNAL_SQL:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_JOURNAL_SQL:
        op.execute(statement)
    op.drop_index('ix_ledger_holds_expiry', table_name='ledger_holds', postgresql_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"))
    op.drop_index('ix_ledger_holds_account_id', table_name='ledger_holds')
    op.drop_table('ledger_holds')
    op.drop_index('uq_ledger_accounts_issued', table_name='ledger_accounts', postgresql_where=sa.text("kind = 'issued'"))
    op.drop_index('uq_ledger_accounts_holder', table_name='ledger_accounts', postgresql_where=sa.text("kind IN ('available', 'held')"))
    op.drop_index('ix_ledger_accounts_asset_kind', table_name='ledger_accounts')
    op.drop_table('ledger_accounts')
    op.drop_table('parties')
    op.drop_index('ix_ledger_transfers_hold_id', table_name='ledger_transfers', postgresql_where=sa.text('hold_id IS NOT NULL'))
    op.drop_index('ix_ledger_transfers_batch_id', table_name='ledger_transfers', postgresql_where=sa.text('batch_id IS NOT NULL'))
    op.drop_table('ledger_transfers')
    op.drop_index('ix_ledger_entries_account_id_created_at', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_table('ledger_batches')
    op.drop_table('ledger_assets')
    op.drop_index(op.f('ix_idempotency_records_created_at'), table_name='idempotency_records')
    op.drop_table('idempotency_records')


# The journal's rules live in the database so no code path can bypass them: entries and transfers
# are append-only, and a linked batch of transfers is applied by one set-based function. Each
# account has its own hash chain (entry hash = sha256(previous hash || canonical entry text)), so
# transfers on different accounts never wait for each other's hashes.
JOURNAL_SQL = [
    """
    CREATE FUNCTION ledger_genesis_hash(p_account_id bigint) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT sha256(convert_to('dfa-ledger-account|' || p_account_id, 'UTF8')) $$
    """,
    """
    CREATE FUNCTION ledger_entry_hash(
        p_prev bytea, p_account_id bigint, p_seq bigint, p_transfer_id uuid, p_counter_account_id bigint,
        p_amount bigint, p_balance_after bigint, p_created_at timestamptz) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT sha256(p_prev || convert_to(concat_ws('|', p_account_id, p_seq, p_transfer_id, p_counter_account_id,
           p_amount, p_balance_after, (extract(epoch FROM p_created_at) * 1000000)::bigint), 'UTF8')) $$
    """,
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'DL100';
    END $$
    """,
    "CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
    "CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
    """
    CREATE FUNCTION ledger_post_batch(
        p_ids uuid[], p_debits bigint[], p_credits bigint[], p_amounts bigint[], p_codes integer[],
        p_references text[], p_batch_id uuid, OUT created_at timestamptz, OUT asset_ids integer[])
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
        -- Stamped after the locks are held, so an account's entries are in time order as well as seq order.
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
            (id, debit_account_id, credit_account_id, asset_id, amount, kind, batch_id, code, reference, created_at)
        SELECT t.id, t.debit, t.credit, t.asset_id, t.amount, 'transfer', p_batch_id, coalesce(t.code, 0),
               t.reference, v_now
        FROM unnest(p_ids, p_debits, p_credits, asset_ids, p_amounts, p_codes, p_references)
            AS t (id, debit, credit, asset_id, amount, code, reference);

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
]

DROP_JOURNAL_SQL = [
    "DROP FUNCTION ledger_post_batch(uuid[], bigint[], bigint[], bigint[], integer[], text[], uuid)",
    "DROP TRIGGER ledger_entries_no_truncate ON ledger_entries",
    "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
    "DROP TRIGGER ledger_transfers_no_truncate ON ledger_transfers",
    "DROP TRIGGER ledger_transfers_append_only ON ledger_transfers",
    "DROP FUNCTION ledger_refuse_change()",
    "DROP FUNCTION ledger_entry_hash(bytea, bigint, bigint, uuid, bigint, bigint, bigint, timestamptz)",
    "DROP FUNCTION ledger_genesis_hash(bigint)",
]
