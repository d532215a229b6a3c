"""A custodian may state no valuation of an asset it keeps: a certification records that as it was
stated (no value, no date) and cannot pass without one.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column('issuance_certifications', 'market_value', existing_type=sa.BigInteger(), nullable=True)
    op.alter_column('issuance_certifications', 'valued_on', existing_type=sa.Date(), nullable=True)
    op.create_check_constraint(
        op.f('ck_issuance_certifications_valuation'), 'issuance_certifications',
        '(market_value IS NULL) = (valued_on IS NULL) AND (market_value IS NOT NULL OR NOT passed)',
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_issuance_certifications_valuation'), 'issuance_certifications', type_='check')
    op.alter_column('issuance_certifications', 'valued_on', existing_type=sa.Date(), nullable=False)
    op.alter_column('issuance_certifications', 'market_value', existing_type=sa.BigInteger(), nullable=False)
