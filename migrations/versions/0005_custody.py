"""Custody: the transactional outbox, the ledger's feed of DFA movements, the key vault, wallets,
token contracts and chain batches.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custody_chain_batches",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("ops", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("raw_transaction", sa.LargeBinary(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('deploy', 'ops')", name=op.f("ck_custody_chain_batches_kind")),
        sa.CheckConstraint(
            "status IN ('prepared', 'signed', 'sent', 'confirmed', 'superseded')",
            name=op.f("ck_custody_chain_batches_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_chain_batches")),
    )
    op.create_index(
        "ix_custody_chain_batches_open",
        "custody_chain_batches",
        ["chain_id", "nonce"],
        unique=False,
        postgresql_where=sa.text("status <> 'confirmed'"),
    )
    op.create_index(
        "uq_custody_chain_batches_nonce",
        "custody_chain_batches",
        ["chain_id", "sender", "nonce"],
        unique=True,
        postgresql_where=sa.text("status <> 'superseded'"),
    )
    op.create_index(
        "uq_custody_chain_batches_token_seq",
        "custody_chain_batches",
        ["chain_id", "asset_id", "seq"],
        unique=True,
        postgresql_where=sa.text("kind = 'ops' AND status <> 'superseded'"),
    )
    op.create_table(
        "custody_chain_senders",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("chain_id", "address", name=op.f("pk_custody_chain_senders")),
    )
    op.create_table(
        "custody_data_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kek_id", sa.String(length=100), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_data_keys")),
    )
    op.create_index("ix_custody_data_keys_kek_id", "custody_data_keys", ["kek_id"], unique=False)
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=50), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(
        "ix_outbox_messages_pending",
        "outbox_messages",
        ["topic", "id"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_table(
        "custody_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("data_key_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('mnemonic')", name=op.f("ck_custody_secrets_kind")),
        sa.ForeignKeyConstraint(
            ["data_key_id"],
            ["custody_data_keys.id"],
            name=op.f("fk_custody_secrets_data_key_id_custody_data_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_secrets")),
    )
    op.create_table(
        "custody_tokens",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("registration_number", sa.String(length=50), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("next_batch", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('deploying', 'deployed')", name=op.f("ck_custody_tokens_status")),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["ledger_assets.id"],
            name=op.f("fk_custody_tokens_asset_id_ledger_assets"),
        ),
        sa.PrimaryKeyConstraint("chain_id", "asset_id", name=op.f("pk_custody_tokens")),
    )
    op.create_index(
        "uq_custody_tokens_address",
        "custody_tokens",
        ["chain_id", "address"],
        unique=True,
    )
    op.create_table(
        "custody_wallets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("segment", sa.String(length=20), nullable=False),
        sa.Column("activity", sa.String(length=20), nullable=False),
        sa.Column("secret_id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("next_account", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "activity IN ('dfa_platform', 'trading_platform')",
            name=op.f("ck_custody_wallets_activity"),
        ),
        sa.CheckConstraint(
            "segment IN ('operator_own', 'client_money', 'client')",
            name=op.f("ck_custody_wallets_segment"),
        ),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["custody_secrets.id"],
            name=op.f("fk_custody_wallets_secret_id_custody_secrets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_wallets")),
    )
    op.create_index(
        "uq_custody_wallets_segment_activity",
        "custody_wallets",
        ["segment", "activity"],
        unique=True,
    )
    op.create_table(
        "custody_addresses",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("wallet_id", sa.Uuid(), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("account", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("address ~ '^0x[0-9a-fA-F]{40}$'", name=op.f("ck_custody_addresses_address")),
        sa.CheckConstraint(
            "purpose IN ('chain_operator', 'holdings', 'settlement', 'money')",
            name=op.f("ck_custody_addresses_purpose"),
        ),
        sa.ForeignKeyConstraint(
            ["party_id"],
            ["parties.id"],
            name=op.f("fk_custody_addresses_party_id_parties"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"],
            ["custody_wallets.id"],
            name=op.f("fk_custody_addresses_wallet_id_custody_wallets"),
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_custody_addresses")),
    )
    op.create_index("ix_custody_addresses_party_id", "custody_addresses", ["party_id"], unique=False)
    op.create_index(
        "uq_custody_addresses_account",
        "custody_addresses",
        ["wallet_id", "account"],
        unique=True,
    )
    op.create_index(
        "uq_custody_addresses_owner",
        "custody_addresses",
        ["wallet_id", "party_id", "purpose"],
        unique=True,
    )
    for statement in MOVEMENT_FEED_SQL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_transfers_dfa_movements ON ledger_transfers")
    op.execute("DROP FUNCTION ledger_publish_dfa_movements()")
    op.drop_index("uq_custody_addresses_owner", table_name="custody_addresses")
    op.drop_index("uq_custody_addresses_account", table_name="custody_addresses")
    op.drop_index("ix_custody_addresses_party_id", table_name="custody_addresses")
    op.drop_table("custody_addresses")
    op.drop_index("uq_custody_wallets_segment_activity", table_name="custody_wallets")
    op.drop_table("custody_wallets")
    op.drop_index("uq_custody_tokens_address", table_name="custody_tokens")
    op.drop_table("custody_tokens")
    op.drop_table("custody_secrets")
    op.drop_index(
        "ix_outbox_messages_pending",
        table_name="outbox_messages",
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.drop_table("outbox_messages")
    op.drop_index("ix_custody_data_keys_kek_id", table_name="custody_data_keys")
    op.drop_table("custody_data_keys")
    op.drop_table("custody_chain_senders")
    op.drop_index(
        "uq_custody_chain_batches_token_seq",
        table_name="custody_chain_batches",
        postgresql_where=sa.text("kind = 'ops' AND status <> 'superseded'"),
    )
    op.drop_index("uq_custody_chain_batches_nonce", table_name="custody_chain_batches")
    op.drop_index(
        "ix_custody_chain_batches_open",
        table_name="custody_chain_batches",
        postgresql_where=sa.text("status <> 'confirmed'"),
    )
    op.drop_table("custody_chain_batches")


# Every journal insert that changes who holds an emission's units (a mint out of or a burn into the
# issued account, a move between different holders or to and from settlement) writes an outbox
# message in the same statement, so no code path can change holdings without the chain hearing of it.
# Moves between one holder's available and held accounts change nothing on chain and are left out.
MOVEMENT_FEED_SQL = [
    """
    CREATE FUNCTION ledger_publish_dfa_movements() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO outbox_messages (topic, payload)
        SELECT 'ledger.dfa-movement',
               jsonb_build_object('transfer_id', t.id, 'asset_id', t.asset_id, 'amount', t.amount, 'code', t.code,
                                  'debit', jsonb_build_object('account_id', d.id, 'kind', d.kind,
                                                              'party_id', d.owner_party_id),
                                  'credit', jsonb_build_object('account_id', c.id, 'kind', c.kind,
                                                               'party_id', c.owner_party_id))
        -- The transition table holds the rows in insertion order: a batch's transfers in their order.
        FROM (SELECT *, row_number() OVER () AS ord FROM new_transfers) t
        JOIN ledger_assets a ON a.id = t.asset_id AND a.kind = 'dfa'
        JOIN ledger_accounts d ON d.id = t.debit_account_id
        JOIN ledger_accounts c ON c.id = t.credit_account_id
        WHERE NOT (d.owner_party_id = c.owner_party_id AND d.kind IN ('available', 'held')
                   AND c.kind IN ('available', 'held'))
        ORDER BY t.ord;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_transfers_dfa_movements AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_transfers FOR EACH STATEMENT EXECUTE FUNCTION ledger_publish_dfa_movements()
    """,
]
