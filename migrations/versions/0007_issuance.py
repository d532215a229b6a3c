"""Issuance: issuers, documents, underlying assets and certifications, emission applications and
registered emissions, placement, redemption, holder protections, trading suspensions, transfers to
trading platforms; and the never-reused serial of emission registration numbers.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Numbers drawn from a sequence are never handed out twice, also when the registration that drew
    # one rolls back (REQ-23).
    op.execute("CREATE SEQUENCE issuance_registration_serial")
    op.create_table('issuance_trading_platforms',
    sa.Column('code', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('nbk_registration_number', sa.String(length=50), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("code ~ '^[a-z0-9][a-z0-9-]{1,49}$'", name=op.f('ck_issuance_trading_platforms_code')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_issuance_trading_platforms'))
    )
    op.create_table('issuance_forced_transfers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('from_party_id', sa.Uuid(), nullable=False),
    sa.Column('to_party_id', sa.Uuid(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('basis', sa.String(length=20), nullable=False),
    sa.Column('order_reference', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('transfer_id', sa.Uuid(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("basis IN ('court_order', 'access_recovery')", name=op.f('ck_issuance_forced_transfers_basis')),
    sa.CheckConstraint('units > 0 AND from_party_id <> to_party_id', name=op.f('ck_issuance_forced_transfers_transfer')),
    sa.ForeignKeyConstraint(['asset_id'], ['ledger_assets.id'], name=op.f('fk_issuance_forced_transfers_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['from_party_id'], ['parties.id'], name=op.f('fk_issuance_forced_transfers_from_party_id_parties')),
    sa.ForeignKeyConstraint(['to_party_id'], ['parties.id'], name=op.f('fk_issuance_forced_transfers_to_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_forced_transfers'))
    )
    op.create_table('issuance_freezes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('basis', sa.String(length=20), nullable=False),
    sa.Column('order_reference', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('frozen_from', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('lifted_by', sa.String(length=200), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("basis IN ('court_order', 'authority_order', 'operator_decision')", name=op.f('ck_issuance_freezes_basis')),
    sa.CheckConstraint("status IN ('active', 'lifted')", name=op.f('ck_issuance_freezes_status')),
    sa.CheckConstraint('units > 0', name=op.f('ck_issuance_freezes_units')),
    sa.ForeignKeyConstraint(['asset_id'], ['ledger_assets.id'], name=op.f('fk_issuance_freezes_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['frozen_from'], ['issuance_freezes.id'], name=op.f('fk_issuance_freezes_frozen_from_issuance_freezes')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_issuance_freezes_party_id_parties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_freezes'))
    )
    op.create_index('ix_issuance_freezes_holder', 'issuance_freezes', ['asset_id', 'party_id'], unique=False, postgresql_where=sa.text("status = 'active'"))
    op.create_table('issuance_issuers',
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('legal_address', sa.String(length=500), nullable=False),
    sa.Column('contact_email', sa.String(length=320), nullable=False),
    sa.Column('custodian_consent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('custodian_consent_scope', sa.String(length=1000), nullable=False),
    sa.Column('personal_data_consent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('onboarded_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_issuance_issuers_party_id_parties')),
    sa.PrimaryKeyConstraint('party_id', name=op.f('pk_issuance_issuers'))
    )
    op.create_table('issuance_issuer_blocks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('opened_by', sa.String(length=200), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('lifted_by', sa.String(length=200), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("source IN ('reconciliation', 'operator_decision')", name=op.f('ck_issuance_issuer_blocks_source')),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_issuer_blocks_issuer_party_id_issuance_issuers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_issuer_blocks'))
    )
    op.create_index('uq_issuance_issuer_blocks_open', 'issuance_issuer_blocks', ['issuer_party_id', 'source', 'reference'], unique=True, postgresql_where=sa.text('lifted_at IS NULL'))
    op.create_table('issuance_representatives',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('iin', sa.String(length=12), nullable=False),
    sa.Column('position', sa.String(length=200), nullable=False),
    sa.Column('authority', sa.String(length=500), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('added_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_representatives_issuer_party_id_issuance_issuers')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_issuance_representatives_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_representatives'))
    )
    op.create_index('ix_issuance_representatives_issuer', 'issuance_representatives', ['issuer_party_id'], unique=False)
    op.create_table('issuance_underlying_assets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('custodian', sa.String(length=50), nullable=False),
    sa.Column('custodian_reference', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('goods', 'real_estate', 'precious_metals', 'receivables', 'intellectual_property', 'trademarks', 'money', 'securities', 'other')", name=op.f('ck_issuance_underlying_assets_kind')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_issuance_underlying_assets_quantity')),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_underlying_assets_issuer_party_id_issuance_issuers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_underlying_assets')),
    sa.UniqueConstraint('custodian', 'custodian_reference', name=op.f('uq_issuance_underlying_assets_custodian_custodian_reference'))
    )
    op.create_index('ix_issuance_underlying_assets_issuer', 'issuance_underlying_assets', ['issuer_party_id'], unique=False)
    op.create_table('issuance_applications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dfa_kind', sa.String(length=20), nullable=False),
    sa.Column('nominal', sa.BigInteger(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('placement_start', sa.Date(), nullable=False),
    sa.Column('placement_end', sa.Date(), nullable=False),
    sa.Column('placement_price', sa.BigInteger(), nullable=False),
    sa.Column('min_placement_units', sa.BigInteger(), nullable=True),
    sa.Column('maturity_date', sa.Date(), nullable=True),
    sa.Column('redemption_price', sa.BigInteger(), nullable=True),
    sa.Column('early_redemption_allowed', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('transfer_restrictions', sa.Text(), nullable=True),
    sa.Column('underlying_asset_id', sa.Uuid(), nullable=True),
    sa.Column('coverage_ratio', sa.Numeric(precision=8, scale=4), nullable=True),
    sa.Column('no_underlying_reason', sa.Text(), nullable=True),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('hearing_date', sa.Date(), nullable=True),
    sa.Column('objections', sa.Text(), nullable=True),
    sa.Column('overdue_flagged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("dfa_kind IN ('monetary_claim', 'property_right', 'commodity', 'participation', 'other')", name=op.f('ck_issuance_applications_dfa_kind')),
    sa.CheckConstraint("status IN ('submitted', 'in_review', 'preliminary_refusal', 'registered', 'refused', 'returned', 'withdrawn')", name=op.f('ck_issuance_applications_status')),
    sa.CheckConstraint('(underlying_asset_id IS NOT NULL AND coverage_ratio > 0 AND no_underlying_reason IS NULL) OR (underlying_asset_id IS NULL AND coverage_ratio IS NULL AND no_underlying_reason IS NOT NULL)', name=op.f('ck_issuance_applications_underlying')),
    sa.CheckConstraint('maturity_date IS NULL OR maturity_date > placement_end', name=op.f('ck_issuance_applications_maturity')),
    sa.CheckConstraint('min_placement_units IS NULL OR min_placement_units BETWEEN 1 AND units', name=op.f('ck_issuance_applications_min_units')),
    sa.CheckConstraint('nominal > 0 AND units > 0 AND placement_price > 0', name=op.f('ck_issuance_applications_positive')),
    sa.CheckConstraint('placement_end >= placement_start', name=op.f('ck_issuance_applications_placement_period')),
    sa.CheckConstraint('redemption_price IS NULL OR redemption_price > 0', name=op.f('ck_issuance_applications_redemption_price')),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_applications_issuer_party_id_issuance_issuers')),
    sa.ForeignKeyConstraint(['underlying_asset_id'], ['issuance_underlying_assets.id'], name=op.f('fk_issuance_applications_underlying_asset_id_issuance_underlying_assets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_applications'))
    )
    op.create_index('ix_issuance_applications_issuer', 'issuance_applications', ['issuer_party_id', 'submitted_at'], unique=False)
    op.create_index('ix_issuance_applications_open_deadline', 'issuance_applications', ['deadline'], unique=False, postgresql_where=sa.text("status IN ('submitted', 'in_review', 'preliminary_refusal')"))
    op.create_table('issuance_application_events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.Uuid(), nullable=False),
    sa.Column('step', sa.String(length=30), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('submitted', 'in_review', 'preliminary_refusal', 'registered', 'refused', 'returned', 'withdrawn')", name=op.f('ck_issuance_application_events_status')),
    sa.CheckConstraint("step IN ('submitted', 'accepted', 'returned', 'preliminary_refusal', 'objections', 'hearing', 'registered', 'refused', 'withdrawn', 'overdue')", name=op.f('ck_issuance_application_events_step')),
    sa.ForeignKeyConstraint(['application_id'], ['issuance_applications.id'], name=op.f('fk_issuance_application_events_application_id_issuance_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_application_events'))
    )
    op.create_index('ix_issuance_application_events_application', 'issuance_application_events', ['application_id', 'id'], unique=False)
    op.create_table('issuance_certifications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('underlying_asset_id', sa.Uuid(), nullable=False),
    sa.Column('application_id', sa.Uuid(), nullable=True),
    sa.Column('exists', sa.Boolean(), nullable=False),
    sa.Column('legal_status', sa.String(length=20), nullable=False),
    sa.Column('encumbered', sa.Boolean(), nullable=False),
    sa.Column('encumbrances', sa.Text(), nullable=True),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('market_value', sa.BigInteger(), nullable=False),
    sa.Column('valued_on', sa.Date(), nullable=False),
    sa.Column('required_value', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('obtained_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('officer', sa.String(length=200), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('findings', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.CheckConstraint("legal_status IN ('clear', 'disputed', 'unclear')", name=op.f('ck_issuance_certifications_legal_status')),
    sa.CheckConstraint('quantity >= 0 AND market_value >= 0', name=op.f('ck_issuance_certifications_amounts')),
    sa.ForeignKeyConstraint(['application_id'], ['issuance_applications.id'], name=op.f('fk_issuance_certifications_application_id_issuance_applications')),
    sa.ForeignKeyConstraint(['underlying_asset_id'], ['issuance_underlying_assets.id'], name=op.f('fk_issuance_certifications_underlying_asset_id_issuance_underlying_assets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_certifications'))
    )
    op.create_index('ix_issuance_certifications_asset', 'issuance_certifications', ['underlying_asset_id', 'obtained_at'], unique=False)
    op.create_table('issuance_documents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.LargeBinary(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('underlying_asset_id', sa.Uuid(), nullable=True),
    sa.Column('application_id', sa.Uuid(), nullable=True),
    sa.Column('uploaded_by', sa.String(length=200), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('charter', 'state_registration_certificate', 'issuer_decision', 'prospectus', 'power_of_attorney', 'financial_statements', 'trademark_register_extract', 'appellation_of_origin_extract', 'sale_contract', 'retail_sale_contract', 'contracting_contract', 'barter_contract', 'donation_contract', 'intellectual_work_contract', 'copyright_register_certificate', 'title_deed', 'warehouse_receipt', 'custody_statement', 'valuation_report', 'other')", name=op.f('ck_issuance_documents_kind')),
    sa.CheckConstraint('octet_length(sha256) = 32', name=op.f('ck_issuance_documents_sha256')),
    sa.CheckConstraint('size_bytes > 0 AND size_bytes = octet_length(content)', name=op.f('ck_issuance_documents_size')),
    sa.ForeignKeyConstraint(['application_id'], ['issuance_applications.id'], name=op.f('fk_issuance_documents_application_id_issuance_applications')),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_documents_issuer_party_id_issuance_issuers')),
    sa.ForeignKeyConstraint(['underlying_asset_id'], ['issuance_underlying_assets.id'], name=op.f('fk_issuance_documents_underlying_asset_id_issuance_underlying_assets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_documents'))
    )
    op.create_index('ix_issuance_documents_issuer', 'issuance_documents', ['issuer_party_id', 'uploaded_at'], unique=False)
    op.create_table('issuance_emissions',
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('registration_number', sa.String(length=50), nullable=False),
    sa.Column('application_id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('cancelled_units', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('platform_units', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('nominal', sa.BigInteger(), nullable=False),
    sa.Column('registered_by', sa.String(length=200), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('registered', 'placing', 'placed', 'not_placed', 'redeemed', 'defaulted')", name=op.f('ck_issuance_emissions_status')),
    sa.CheckConstraint('char_length(registration_number) <= 50', name=op.f('ck_issuance_emissions_registration_number_length')),
    sa.CheckConstraint('units > 0 AND cancelled_units >= 0 AND platform_units >= 0 AND cancelled_units + platform_units <= units', name=op.f('ck_issuance_emissions_volume')),
    sa.ForeignKeyConstraint(['application_id'], ['issuance_applications.id'], name=op.f('fk_issuance_emissions_application_id_issuance_applications')),
    sa.ForeignKeyConstraint(['asset_id'], ['ledger_assets.id'], name=op.f('fk_issuance_emissions_asset_id_ledger_assets')),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_emissions_issuer_party_id_issuance_issuers')),
    sa.PrimaryKeyConstraint('asset_id', name=op.f('pk_issuance_emissions')),
    sa.UniqueConstraint('application_id', name=op.f('uq_issuance_emissions_application_id')),
    sa.UniqueConstraint('registration_number', name=op.f('uq_issuance_emissions_registration_number'))
    )
    op.create_index('ix_issuance_emissions_issuer', 'issuance_emissions', ['issuer_party_id'], unique=False)
    op.create_table('issuance_placements',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('min_units', sa.BigInteger(), nullable=True),
    sa.Column('opens_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closes_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issuer_hold_id', sa.Uuid(), nullable=True),
    sa.Column('units_subscribed', sa.BigInteger(), nullable=True),
    sa.Column('units_allocated', sa.BigInteger(), nullable=True),
    sa.Column('units_cancelled', sa.BigInteger(), nullable=True),
    sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('closed_by', sa.String(length=200), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('open', 'allocated', 'failed', 'cancelled')", name=op.f('ck_issuance_placements_status')),
    sa.CheckConstraint('closes_at > opens_at', name=op.f('ck_issuance_placements_window')),
    sa.CheckConstraint('min_units IS NULL OR min_units BETWEEN 1 AND units', name=op.f('ck_issuance_placements_min_units')),
    sa.CheckConstraint('units > 0 AND price > 0', name=op.f('ck_issuance_placements_positive')),
    sa.ForeignKeyConstraint(['asset_id'], ['issuance_emissions.asset_id'], name=op.f('fk_issuance_placements_asset_id_issuance_emissions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_placements'))
    )
    op.create_index('uq_issuance_placements_open', 'issuance_placements', ['asset_id'], unique=True, postgresql_where=sa.text("status = 'open'"))
    op.create_table('issuance_platform_transfers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('platform_code', sa.String(length=50), nullable=False),
    sa.Column('holder_party_id', sa.Uuid(), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=True),
    sa.Column('encumbrance_check', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('platform_reference', sa.String(length=200), nullable=True),
    sa.Column('reasons', sa.Text(), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("direction IN ('out', 'in')", name=op.f('ck_issuance_platform_transfers_direction')),
    sa.CheckConstraint("status IN ('notified', 'confirmed', 'refused', 'lapsed')", name=op.f('ck_issuance_platform_transfers_status')),
    sa.CheckConstraint('units > 0', name=op.f('ck_issuance_platform_transfers_units')),
    sa.ForeignKeyConstraint(['asset_id'], ['issuance_emissions.asset_id'], name=op.f('fk_issuance_platform_transfers_asset_id_issuance_emissions')),
    sa.ForeignKeyConstraint(['holder_party_id'], ['parties.id'], name=op.f('fk_issuance_platform_transfers_holder_party_id_parties')),
    sa.ForeignKeyConstraint(['platform_code'], ['issuance_trading_platforms.code'], name=op.f('fk_issuance_platform_transfers_platform_code_issuance_trading_platforms')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_platform_transfers'))
    )
    op.create_index('ix_issuance_platform_transfers_asset', 'issuance_platform_transfers', ['asset_id', 'created_at'], unique=False)
    op.create_index('ix_issuance_platform_transfers_open', 'issuance_platform_transfers', ['deadline'], unique=False, postgresql_where=sa.text("status = 'notified'"))
    op.create_table('issuance_snapshots',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('record_date', sa.Date(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('total_units', sa.BigInteger(), nullable=False),
    sa.Column('holders', sa.Integer(), nullable=False),
    sa.Column('taken_by', sa.String(length=200), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['issuance_emissions.asset_id'], name=op.f('fk_issuance_snapshots_asset_id_issuance_emissions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_snapshots'))
    )
    op.create_index('ix_issuance_snapshots_asset', 'issuance_snapshots', ['asset_id', 'record_date'], unique=False)
    op.create_table('issuance_suspensions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer_party_id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=True),
    sa.Column('ground', sa.String(length=30), nullable=False),
    sa.Column('arrested_share', sa.Numeric(precision=5, scale=4), nullable=True),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('lifted_by', sa.String(length=200), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("(ground = 'operator_decision') = (asset_id IS NOT NULL)", name=op.f('ck_issuance_suspensions_scope')),
    sa.CheckConstraint("ground <> 'asset_arrest' OR arrested_share > 0.5", name=op.f('ck_issuance_suspensions_arrest_over_half')),
    sa.CheckConstraint("ground IN ('liquidation', 'reorganisation', 'compulsory_liquidation', 'bankruptcy', 'asset_arrest', 'operator_decision')", name=op.f('ck_issuance_suspensions_ground')),
    sa.ForeignKeyConstraint(['asset_id'], ['issuance_emissions.asset_id'], name=op.f('fk_issuance_suspensions_asset_id_issuance_emissions')),
    sa.ForeignKeyConstraint(['issuer_party_id'], ['issuance_issuers.party_id'], name=op.f('fk_issuance_suspensions_issuer_party_id_issuance_issuers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_suspensions'))
    )
    op.create_index('ix_issuance_suspensions_issuer', 'issuance_suspensions', ['issuer_party_id'], unique=False, postgresql_where=sa.text('lifted_at IS NULL'))
    op.create_table('issuance_platform_messages',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('transfer_id', sa.Uuid(), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("direction IN ('sent', 'received')", name=op.f('ck_issuance_platform_messages_direction')),
    sa.ForeignKeyConstraint(['transfer_id'], ['issuance_platform_transfers.id'], name=op.f('fk_issuance_platform_messages_transfer_id_issuance_platform_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_platform_messages'))
    )
    op.create_index('ix_issuance_platform_messages_transfer', 'issuance_platform_messages', ['transfer_id', 'id'], unique=False)
    op.create_table('issuance_redemptions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('amount_due', sa.BigInteger(), nullable=False),
    sa.Column('amount_available', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('maturity', 'early')", name=op.f('ck_issuance_redemptions_kind')),
    sa.CheckConstraint("status IN ('paid', 'defaulted')", name=op.f('ck_issuance_redemptions_status')),
    sa.CheckConstraint('price > 0 AND units >= 0 AND amount_due >= 0 AND amount_available >= 0', name=op.f('ck_issuance_redemptions_amounts')),
    sa.ForeignKeyConstraint(['asset_id'], ['issuance_emissions.asset_id'], name=op.f('fk_issuance_redemptions_asset_id_issuance_emissions')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['issuance_snapshots.id'], name=op.f('fk_issuance_redemptions_snapshot_id_issuance_snapshots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_redemptions'))
    )
    op.create_index('ix_issuance_redemptions_asset', 'issuance_redemptions', ['asset_id', 'created_at'], unique=False)
    op.create_table('issuance_snapshot_positions',
    sa.Column('snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('available', sa.BigInteger(), nullable=False),
    sa.Column('held', sa.BigInteger(), nullable=False),
    sa.Column('frozen', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('available >= 0 AND held >= 0 AND frozen BETWEEN 0 AND held', name=op.f('ck_issuance_snapshot_positions_units')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_issuance_snapshot_positions_party_id_parties')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['issuance_snapshots.id'], name=op.f('fk_issuance_snapshot_positions_snapshot_id_issuance_snapshots')),
    sa.PrimaryKeyConstraint('snapshot_id', 'party_id', name=op.f('pk_issuance_snapshot_positions'))
    )
    op.create_table('issuance_subscriptions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('allocated_units', sa.BigInteger(), nullable=True),
    sa.Column('instruction_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'allocated', 'released', 'cancelled')", name=op.f('ck_issuance_subscriptions_status')),
    sa.CheckConstraint('allocated_units IS NULL OR allocated_units BETWEEN 0 AND units', name=op.f('ck_issuance_subscriptions_allocated')),
    sa.CheckConstraint('units > 0 AND amount > 0', name=op.f('ck_issuance_subscriptions_positive')),
    sa.ForeignKeyConstraint(['instruction_id'], ['settlement_instructions.id'], name=op.f('fk_issuance_subscriptions_instruction_id_settlement_instructions')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_issuance_subscriptions_party_id_parties')),
    sa.ForeignKeyConstraint(['placement_id'], ['issuance_placements.id'], name=op.f('fk_issuance_subscriptions_placement_id_issuance_placements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_subscriptions')),
    sa.UniqueConstraint('seq', name=op.f('uq_issuance_subscriptions_seq'))
    )
    op.create_index('ix_issuance_subscriptions_party', 'issuance_subscriptions', ['party_id', 'created_at'], unique=False)
    op.create_index('uq_issuance_subscriptions_live', 'issuance_subscriptions', ['placement_id', 'party_id'], unique=True, postgresql_where=sa.text("status = 'pending'"))
    op.create_table('issuance_default_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('redemption_id', sa.Uuid(), nullable=False),
    sa.Column('amount_due', sa.BigInteger(), nullable=False),
    sa.Column('shortfall', sa.BigInteger(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('shortfall > 0', name=op.f('ck_issuance_default_events_shortfall')),
    sa.ForeignKeyConstraint(['asset_id'], ['issuance_emissions.asset_id'], name=op.f('fk_issuance_default_events_asset_id_issuance_emissions')),
    sa.ForeignKeyConstraint(['redemption_id'], ['issuance_redemptions.id'], name=op.f('fk_issuance_default_events_redemption_id_issuance_redemptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_default_events')),
    sa.UniqueConstraint('redemption_id', name=op.f('uq_issuance_default_events_redemption_id'))
    )
    op.create_table('issuance_redemption_payments',
    sa.Column('redemption_id', sa.Uuid(), nullable=False),
    sa.Column('party_id', sa.Uuid(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('frozen_units', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('transfer_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('units > 0 AND amount > 0 AND frozen_units BETWEEN 0 AND units', name=op.f('ck_issuance_redemption_payments_amounts')),
    sa.ForeignKeyConstraint(['party_id'], ['parties.id'], name=op.f('fk_issuance_redemption_payments_party_id_parties')),
    sa.ForeignKeyConstraint(['redemption_id'], ['issuance_redemptions.id'], name=op.f('fk_issuance_redemption_payments_redemption_id_issuance_redemptions')),
    sa.PrimaryKeyConstraint('redemption_id', 'party_id', name=op.f('pk_issuance_redemption_payments'))
    )


def downgrade() -> None:
    op.drop_table('issuance_redemption_payments')
    op.drop_table('issuance_default_events')
    op.drop_index('uq_issuance_subscriptions_live', table_name='issuance_subscriptions', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_issuance_subscriptions_party', table_name='issuance_subscriptions')
    op.drop_table('issuance_subscriptions')
    op.drop_table('issuance_snapshot_positions')
    op.drop_index('ix_issuance_redemptions_asset', table_name='issuance_redemptions')
    op.drop_table('issuance_redemptions')
    op.drop_index('ix_issuance_platform_messages_transfer', table_name='issuance_platform_messages')
    op.drop_table('issuance_platform_messages')
    op.drop_index('ix_issuance_suspensions_issuer', table_name='issuance_suspensions', postgresql_where=sa.text('lifted_at IS NULL'))
    op.drop_table('issuance_suspensions')
    op.drop_index('ix_issuance_snapshots_asset', table_name='issuance_snapshots')
    op.drop_table('issuance_snapshots')
    op.drop_index('ix_issuance_platform_transfers_open', table_name='issuance_platform_transfers', postgresql_where=sa.text("status = 'notified'"))
    op.drop_index('ix_issuance_platform_transfers_asset', table_name='issuance_platform_transfers')
    op.drop_table('issuance_platform_transfers')
    op.drop_index('uq_issuance_placements_open', table_name='issuance_placements', postgresql_where=sa.text("status = 'open'"))
    op.drop_table('issuance_placements')
    op.drop_index('ix_issuance_emissions_issuer', table_name='issuance_emissions')
    op.drop_table('issuance_emissions')
    op.drop_index('ix_issuance_documents_issuer', table_name='issuance_documents')
    op.drop_table('issuance_documents')
    op.drop_index('ix_issuance_certifications_asset', table_name='issuance_certifications')
    op.drop_table('issuance_certifications')
    op.drop_index('ix_issuance_application_events_application', table_name='issuance_application_events')
    op.drop_table('issuance_application_events')
    op.drop_index('ix_issuance_applications_open_deadline', table_name='issuance_applications', postgresql_where=sa.text("status IN ('submitted', 'in_review', 'preliminary_refusal')"))
    op.drop_index('ix_issuance_applications_issuer', table_name='issuance_applications')
    op.drop_table('issuance_applications')
    op.drop_index('ix_issuance_underlying_assets_issuer', table_name='issuance_underlying_assets')
    op.drop_table('issuance_underlying_assets')
    op.drop_index('ix_issuance_representatives_issuer', table_name='issuance_representatives')
    op.drop_table('issuance_representatives')
    op.drop_index('uq_issuance_issuer_blocks_open', table_name='issuance_issuer_blocks', postgresql_where=sa.text('lifted_at IS NULL'))
    op.drop_table('issuance_issuer_blocks')
    op.drop_table('issuance_issuers')
    op.drop_index('ix_issuance_freezes_holder', table_name='issuance_freezes', postgresql_where=sa.text("status = 'active'"))
    op.drop_table('issuance_freezes')
    op.drop_table('issuance_forced_transfers')
    op.drop_table('issuance_trading_platforms')
    op.execute("DROP SEQUENCE issuance_registration_serial")
