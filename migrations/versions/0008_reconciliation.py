"""Reconciliation: the daily job's runs, signed reports with each emission's coverage and holder-tree
root and leaves, breaches, compliance sign-offs and the notices sent about breaches. A report and what it
fixed are written once and never changed: a trigger refuses updates and deletes.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

WRITTEN_ONCE = (
    "reconciliation_reports", "reconciliation_coverage", "reconciliation_holder_trees",
    "reconciliation_holder_leaves", "reconciliation_sign_offs",
)

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reconciliation_holder_leaves',
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('owner_party_id', sa.Uuid(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('report_id', 'asset_id', 'account_id', name=op.f('pk_reconciliation_holder_leaves'))
    )
    op.create_table('reconciliation_runs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('forced', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=20), server_default='running', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('report_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("(outcome = 'running') = (finished_at IS NULL)", name=op.f('ck_reconciliation_runs_finished')),
    sa.CheckConstraint("outcome IN ('running', 'clean', 'breaches', 'failed', 'skipped')", name=op.f('ck_reconciliation_runs_outcome')),
    sa.CheckConstraint("trigger IN ('schedule', 'catch_up', 'command', 'api')", name=op.f('ck_reconciliation_runs_trigger')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_runs'))
    )
    op.create_index('ix_reconciliation_runs_day', 'reconciliation_runs', ['business_date', 'started_at'], unique=False)
    op.create_table('reconciliation_reports',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('emissions', sa.Integer(), nullable=False),
    sa.Column('breaches', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('content_sha256', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('signing_key_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['reconciliation_runs.id'], name=op.f('fk_reconciliation_reports_run_id_reconciliation_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_reports')),
    sa.UniqueConstraint('business_date', 'version', name=op.f('uq_reconciliation_reports_business_date_version'))
    )
    op.create_table('reconciliation_breaches',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='open', nullable=False),
    sa.Column('opened_report_id', sa.BigInteger(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_report_id', sa.BigInteger(), nullable=False),
    sa.Column('cleared_report_id', sa.BigInteger(), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=200), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledgement', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('shortfall', 'valuation_missing', 'valuation_stale', 'custodian_unavailable', 'asset_missing', 'asset_encumbered', 'asset_disputed', 'ledger_invariant', 'chain_mismatch', 'chain_unavailable', 'client_money_mismatch', 'bank_unavailable')", name=op.f('ck_reconciliation_breaches_kind')),
    sa.CheckConstraint("status IN ('open', 'cleared')", name=op.f('ck_reconciliation_breaches_status')),
    sa.ForeignKeyConstraint(['cleared_report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_breaches_cleared_report_id_reconciliation_reports'), deferrable=True, initially='DEFERRED'),
    sa.ForeignKeyConstraint(['last_report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_breaches_last_report_id_reconciliation_reports'), deferrable=True, initially='DEFERRED'),
    sa.ForeignKeyConstraint(['opened_report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_breaches_opened_report_id_reconciliation_reports'), deferrable=True, initially='DEFERRED'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_breaches'))
    )
    op.create_index('ix_reconciliation_breaches_issuer', 'reconciliation_breaches', ['issuer_party_id'], unique=False, postgresql_where=sa.text("status = 'open'"))
    op.create_index('uq_reconciliation_breaches_open', 'reconciliation_breaches', ['kind', 'asset_id'], unique=True, postgresql_where=sa.text("status = 'open'"))
    op.create_table('reconciliation_coverage',
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('outstanding_units', sa.BigInteger(), nullable=False),
    sa.Column('required_value', sa.BigInteger(), nullable=False),
    sa.Column('market_value', sa.BigInteger(), nullable=True),
    sa.Column('valued_on', sa.Date(), nullable=True),
    sa.CheckConstraint("status IN ('covered', 'shortfall', 'valuation_missing', 'valuation_stale', 'custodian_unavailable', 'asset_missing', 'asset_encumbered', 'asset_disputed')", name=op.f('ck_reconciliation_coverage_status')),
    sa.ForeignKeyConstraint(['report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_coverage_report_id_reconciliation_reports')),
    sa.PrimaryKeyConstraint('report_id', 'asset_id', name=op.f('pk_reconciliation_coverage'))
    )
    op.create_index('ix_reconciliation_coverage_asset', 'reconciliation_coverage', ['asset_id', 'business_date'], unique=False)
    op.create_table('reconciliation_holder_trees',
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('root_hash', sa.LargeBinary(), nullable=False),
    sa.Column('total_units', sa.BigInteger(), nullable=False),
    sa.Column('leaf_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_holder_trees_report_id_reconciliation_reports')),
    sa.PrimaryKeyConstraint('report_id', 'asset_id', name=op.f('pk_reconciliation_holder_trees'))
    )
    op.create_table('reconciliation_sign_offs',
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('signed_by', sa.String(length=200), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_sign_offs_report_id_reconciliation_reports')),
    sa.PrimaryKeyConstraint('report_id', name=op.f('pk_reconciliation_sign_offs'))
    )
    op.create_table('reconciliation_notices',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('breach_id', sa.BigInteger(), nullable=False),
    sa.Column('recipient', sa.String(length=20), nullable=False),
    sa.Column('custodian', sa.String(length=50), nullable=True),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('receipt_id', sa.String(length=100), nullable=True),
    sa.CheckConstraint("recipient IN ('national_bank', 'custodian')", name=op.f('ck_reconciliation_notices_recipient')),
    sa.ForeignKeyConstraint(['breach_id'], ['reconciliation_breaches.id'], name=op.f('fk_reconciliation_notices_breach_id_reconciliation_breaches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_notices')),
    sa.UniqueConstraint('breach_id', 'recipient', name=op.f('uq_reconciliation_notices_breach_id_recipient'))
    )
    op.execute(
        """
        CREATE FUNCTION reconciliation_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is written once and never changed', TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    for table in WRITTEN_ONCE:
        op.execute(
            f"CREATE TRIGGER {table}_written_once BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION reconciliation_refuse_change()"
        )


def downgrade() -> None:
    for table in WRITTEN_ONCE:
        op.execute(f"DROP TRIGGER {table}_written_once ON {table}")
    op.execute("DROP FUNCTION reconciliation_refuse_change()")
    op.drop_table('reconciliation_notices')
    op.drop_table('reconciliation_sign_offs')
    op.drop_table('reconciliation_holder_trees')
    op.drop_index('ix_reconciliation_coverage_asset', table_name='reconciliation_coverage')
    op.drop_table('reconciliation_coverage')
    op.drop_index('uq_reconciliation_breaches_open', table_name='reconciliation_breaches', postgresql_where=sa.text("status = 'open'"))
    op.drop_index('ix_reconciliation_breaches_issuer', table_name='reconciliation_breaches', postgresql_where=sa.text("status = 'open'"))
    op.drop_table('reconciliation_breaches')
    op.drop_table('reconciliation_reports')
    op.drop_index('ix_reconciliation_runs_day', table_name='reconciliation_runs')
    op.drop_table('reconciliation_runs')
    op.drop_table('reconciliation_holder_leaves')
