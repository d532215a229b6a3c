"""The security-event log: append-only, hash-chained.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# SHA-256 of "dfa security-event log genesis": the hash the first event chains onto.
GENESIS_HASH_HEX = "3f13056c493f0981683455d1c5aa31a7201b10ef348ef9dc19bc269ef0014d7d"


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("outcome IN ('success', 'failure', 'denied')", name=op.f("ck_security_events_outcome")),
        sa.CheckConstraint("seq > 0", name=op.f("ck_security_events_seq_positive")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_security_events")),
    )
    op.create_index("ix_security_events_kind_seq", "security_events", ["kind", "seq"])
    op.create_index("ix_security_events_actor_seq", "security_events", ["actor", "seq"])
    op.create_index("ix_security_events_subject_seq", "security_events", ["subject", "seq"])
    op.create_index("ix_security_events_occurred_at", "security_events", ["occurred_at"])
    op.create_table(
        "security_event_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_security_event_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_event_head")),
    )
    op.execute(f"INSERT INTO security_event_head (id, seq, hash) VALUES (1, 0, '\\x{GENESIS_HASH_HEX}'::bytea)")
    op.execute(
        """
        CREATE FUNCTION security_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the security-event log is append-only: % refused', TG_OP USING ERRCODE = 'DL100';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER security_events_append_only BEFORE UPDATE OR DELETE ON security_events "
        "FOR EACH ROW EXECUTE FUNCTION security_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER security_events_no_truncate BEFORE TRUNCATE ON security_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION security_events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER security_events_no_truncate ON security_events")
    op.execute("DROP TRIGGER security_events_append_only ON security_events")
    op.execute("DROP FUNCTION security_events_append_only()")
    op.drop_table("security_event_head")
    op.drop_table("security_events")
