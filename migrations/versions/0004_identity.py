"""Identity and access: KYC on parties, biometric checks, users, sessions, API credentials.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLES = "ARRAY['investor', 'issuer', 'compliance_officer', 'operator_admin', 'auditor']::varchar[]"


def upgrade() -> None:
    op.add_column("parties", sa.Column("birth_date", sa.Date(), nullable=True))
    op.add_column("parties", sa.Column("sex", sa.String(length=6), nullable=True))
    op.add_column("parties", sa.Column("kyc_status", sa.String(length=20), server_default="pending", nullable=False))
    op.add_column("parties", sa.Column("kyc_level", sa.String(length=20), server_default="none", nullable=False))
    op.add_column("parties", sa.Column("identified_at", sa.DateTime(timezone=True), nullable=True))
    # A person's IIN encodes the birth date (digits 1-6) and century and sex (digit 7: 1-6).
    op.execute(
        """
        UPDATE parties SET
            birth_date = make_date(
                (CASE substr(identifier, 7, 1) WHEN '1' THEN 1800 WHEN '2' THEN 1800 WHEN '3' THEN 1900
                 WHEN '4' THEN 1900 ELSE 2000 END) + substr(identifier, 1, 2)::int,
                substr(identifier, 3, 2)::int, substr(identifier, 5, 2)::int),
            sex = CASE WHEN substr(identifier, 7, 1) IN ('1', '3', '5') THEN 'male' ELSE 'female' END
        WHERE kind = 'person' AND substr(identifier, 7, 1) BETWEEN '1' AND '6'
        """
    )
    # Parties registered before identification was tracked were registered by staff in person.
    op.execute("UPDATE parties SET kyc_status = 'identified', kyc_level = 'full', identified_at = now()")
    op.create_check_constraint(
        op.f("ck_parties_kyc_status"), "parties", "kyc_status IN ('pending', 'identified', 'rejected', 'suspended')"
    )
    op.create_check_constraint(op.f("ck_parties_kyc_level"), "parties", "kyc_level IN ('none', 'simplified', 'full')")
    op.create_check_constraint(op.f("ck_parties_sex"), "parties", "sex IS NULL OR sex IN ('male', 'female')")
    op.create_check_constraint(
        op.f("ck_parties_person_birth_date"), "parties", "kind = 'legal_entity' OR birth_date IS NOT NULL"
    )

    op.create_table(
        "biometric_checks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identifier", sa.String(length=12), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("centre_reference", sa.String(length=100), nullable=False),
        sa.Column("resident", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("purpose IN ('onboarding', 'identification', 'password_recovery')", name=op.f("ck_biometric_checks_purpose")),
        sa.CheckConstraint("outcome IN ('match', 'no_match', 'not_found')", name=op.f("ck_biometric_checks_outcome")),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name=op.f("fk_biometric_checks_party_id_parties")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_biometric_checks")),
    )
    op.create_index("ix_biometric_checks_identifier_checked_at", "biometric_checks", ["identifier", "checked_at"])
    op.create_table(
        "kyc_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("biometric_check_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'identified', 'rejected', 'suspended')", name=op.f("ck_kyc_events_status")),
        sa.CheckConstraint("level IN ('none', 'simplified', 'full')", name=op.f("ck_kyc_events_level")),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name=op.f("fk_kyc_events_party_id_parties")),
        sa.ForeignKeyConstraint(
            ["biometric_check_id"], ["biometric_checks.id"], name=op.f("fk_kyc_events_biometric_check_id_biometric_checks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kyc_events")),
    )
    op.create_index("ix_kyc_events_party_id_id", "kyc_events", ["party_id", "id"])
    op.execute(
        "INSERT INTO kyc_events (party_id, status, level, method, reason, actor) "
        "SELECT id, 'identified', 'full', 'in_person', 'registered before identification was tracked', 'system' "
        "FROM parties"
    )

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(length=30)), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=10), server_default="active", nullable=False),
        sa.Column("failed_sign_ins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f("ck_users_status")),
        sa.CheckConstraint(f"roles <@ {ROLES}", name=op.f("ck_users_roles")),
        sa.CheckConstraint("cardinality(roles) > 0", name=op.f("ck_users_has_role")),
        sa.CheckConstraint("login = lower(login)", name=op.f("ck_users_login_lower_case")),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name=op.f("fk_users_party_id_parties")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
    )
    op.create_index(op.f("ix_users_party_id"), "users", ["party_id"])
    op.create_table(
        "user_sessions",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("id", name=op.f("uq_user_sessions_id")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_table(
        "api_credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('oauth_client', 'api_key')", name=op.f("ck_api_credentials_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_credentials_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_credentials")),
        sa.UniqueConstraint("client_id", name=op.f("uq_api_credentials_client_id")),
    )
    op.create_index(op.f("ix_api_credentials_user_id"), "api_credentials", ["user_id"])
    op.create_table(
        "identity_grants",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("purpose IN ('password_recovery', 'totp_enrolment')", name=op.f("ck_identity_grants_purpose")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_identity_grants_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_identity_grants")),
    )
    op.create_index(op.f("ix_identity_grants_user_id"), "identity_grants", ["user_id"])
    op.create_table(
        "rate_counters",
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_rate_counters")),
    )
    op.create_index(op.f("ix_rate_counters_window_start"), "rate_counters", ["window_start"])


def downgrade() -> None:
    for table in ("rate_counters", "identity_grants", "api_credentials", "user_sessions", "users", "kyc_events", "biometric_checks"):
        op.drop_table(table)
    for constraint in ("person_birth_date", "sex", "kyc_level", "kyc_status"):
        op.drop_constraint(f"ck_parties_{constraint}", "parties")
    for column in ("identified_at", "kyc_level", "kyc_status", "sex", "birth_date"):
        op.drop_column("parties", column)
