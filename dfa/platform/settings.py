"""All configuration, read once from the environment (and `.env`) into one object."""

from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://...). Without it an embedded PostgreSQL is started.",
    )
    data_dir: Path = Field(
        default=Path(".dfa-data"),
        description="Where the embedded PostgreSQL keeps its data; survives restarts.",
    )
    chain_rpc_url: str | None = Field(
        default=None,
        description="EVM JSON-RPC node for the on-chain mirror (CHAIN_RPC_URL); without it an in-process EVM "
        "is used, which starts empty at every start and is rebuilt from the ledger.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server listens on.")

    operator_name: str = Field(
        default="DFA Platform Operator JSC", description="The operator's legal name."
    )
    operator_bin: str = Field(
        default="240340000019", description="The operator's business identification number (BIN)."
    )
    operator_nbk_registration_number: str = Field(
        default="KZDFA0001",
        min_length=1,
        max_length=20,
        pattern=r"^[A-Z0-9][A-Z0-9._-]*$",
        description="Registration number assigned by the National Bank; prefixes every emission number (REQ-07, REQ-23).",
    )

    db_pool_size: PositiveInt = Field(default=10, description="Connections kept open per process.")
    db_pool_overflow: int = Field(default=10, ge=0, description="Extra connections allowed under load.")
    db_statement_timeout_ms: PositiveInt = Field(
        default=30_000, description="A statement running longer than this is cancelled."
    )

    page_size_default: PositiveInt = Field(default=50, description="Items per page unless asked otherwise.")
    page_size_max: PositiveInt = Field(default=500, description="Most items one page may carry.")
    request_body_max_bytes: PositiveInt = Field(
        default=1_048_576, description="Larger request bodies are refused with 413."
    )
    idempotency_retention_hours: PositiveInt = Field(
        default=72, description="How long a stored idempotent response can be replayed."
    )
    idempotency_purge_interval_s: PositiveInt = Field(
        default=3_600,
        description="Seconds between purges of expired records: idempotent responses, sessions, grants, rate windows.",
    )
    hold_expiry_sweep_limit: PositiveInt = Field(
        default=1_000, description="Most expired holds voided by one sweep."
    )

    hold_expiry_interval_s: PositiveInt = Field(
        default=5, description="Seconds between sweeps that release expired holds."
    )

    log_level: str = Field(default="INFO", description="Python logging level name.")
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses demo data and development conveniences (generated keys, printed logins).",
    )
    demo_data: bool = Field(default=True, description="Seed demo parties, assets, accounts and users at start.")

    # Identity and access (REQ-19, REQ-54)
    password_min_length: PositiveInt = Field(default=12, description="Shortest password accepted.")
    sign_in_max_failures: PositiveInt = Field(
        default=5, description="Consecutive failed sign-ins after which the user is locked out."
    )
    sign_in_lockout_s: PositiveInt = Field(default=900, description="How long a lockout lasts.")
    sign_in_attempts_per_minute: PositiveInt = Field(
        default=20, description="Sign-in attempts one client address may make per minute."
    )
    session_idle_timeout_s: PositiveInt = Field(
        default=1_800, description="A cabinet session unused this long ends."
    )
    session_absolute_timeout_s: PositiveInt = Field(
        default=43_200, description="A cabinet session ends this long after sign-in, used or not."
    )
    cabinet_default_language: Literal["kk", "ru", "en"] = Field(
        default="kk",
        description="The cabinet's language for a visitor who has not chosen one and whose browser asks for none "
        "of Kazakh, Russian and English.",
    )
    session_cookie_secure: bool = Field(
        default=True, description="Send the session cookie over HTTPS only (browsers treat localhost as secure)."
    )
    access_token_ttl_s: PositiveInt = Field(
        default=600, description="Lifetime of an OAuth2 client-credentials access token."
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="32-byte key (raw file) that seals secrets at rest (second-factor seeds) and keys CSRF "
        "tokens; generated into the data directory on first start in development. Required in production.",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs access tokens; in development it is generated "
        "into the data directory on first start. Required in production.",
    )
    recovery_ttl_s: PositiveInt = Field(
        default=900, description="How long a password-recovery grant lasts after the identity check."
    )

    # Custody key vault: the key-encryption key (KEK) that wraps every data key (REQ-42)
    custody_kek_provider: Literal["file", "env", "pkcs11"] = Field(
        default="file",
        description="Where the current key-encryption key comes from: a file (development only), the "
        "CUSTODY_KEK environment variable, or an AES key inside a PKCS#11 token (HSM).",
    )
    custody_kek_file: Path | None = Field(
        default=None,
        description="32-byte raw key file of the file provider; data_dir/keys/custody-kek by default, "
        "generated there (mode 0600) on first start in development. Refused in production.",
    )
    custody_kek: SecretStr | None = Field(
        default=None,
        description="Base64 of 32 random bytes: the key-encryption key of the env provider (CUSTODY_KEK).",
    )
    custody_kek_retired: list[SecretStr] = Field(
        default=[],
        description="Base64 keys of retired key-encryption keys, kept only to unwrap data keys until a "
        "rotation (`rewrap`) has moved them to the current key.",
    )
    custody_kek_retired_files: list[Path] = Field(
        default=[],
        description="Raw 32-byte key files of retired key-encryption keys, kept for the same purpose.",
    )
    custody_pkcs11_library: Path | None = Field(
        default=None, description="The PKCS#11 module (.so) of the HSM, for the pkcs11 provider."
    )
    custody_pkcs11_token_label: str | None = Field(
        default=None, description="Label of the PKCS#11 token that holds the key-encryption key."
    )
    custody_pkcs11_pin: SecretStr | None = Field(
        default=None, description="User PIN of the PKCS#11 token."
    )
    custody_pkcs11_key_label: str = Field(
        default="dfa-custody-kek",
        min_length=1,
        max_length=64,
        description="Label of the AES-256 key-encryption key inside the token (created once by "
        "`create_pkcs11_kek`).",
    )
    custody_pkcs11_retired_key_labels: list[str] = Field(
        default=[],
        description="Labels of retired key-encryption keys in the same token, kept until a rotation completes.",
    )

    # The chain that mirrors the ledger (custody)
    chain_mirror_enabled: bool = Field(
        default=True, description="Run the worker that mirrors ledger movements to the chain in this process."
    )
    chain_timeout_s: float = Field(default=5.0, gt=0, le=120, description="Timeout of one call to the chain node.")
    chain_confirmations: PositiveInt = Field(
        default=1, le=100, description="Blocks (the one that includes it counted) before a chain batch counts as final."
    )
    chain_batch_max_ops: PositiveInt = Field(
        default=200, le=256, description="Ledger movements mirrored by one chain transaction at most."
    )
    chain_max_batches_in_flight: PositiveInt = Field(
        default=32, le=1000, description="Chain transactions prepared but not yet confirmed, at most."
    )
    chain_mirror_interval_s: float = Field(
        default=0.2, gt=0, le=60, description="Pause between passes of the chain mirror when it has nothing to do."
    )
    chain_retry_base_s: float = Field(
        default=1.0, gt=0, le=600, description="First backoff after the chain reverts or refuses a batch; doubles per attempt."
    )
    chain_retry_max_s: float = Field(default=300.0, gt=0, le=3600, description="Longest backoff between attempts.")
    chain_resend_after_s: float = Field(
        default=30.0, gt=0, le=3600, description="A sent transaction with no receipt after this long is broadcast again."
    )

    # External parties (REQ-15, REQ-17, REQ-18)
    antifraud_url: str | None = Field(
        default=None, description="Anti-fraud centre API; without it the built-in simulator answers."
    )
    antifraud_token: SecretStr | None = Field(
        default=None, description="Bearer token the anti-fraud centre issued to the operator (REQ-17)."
    )
    antifraud_watch_list: Path | None = Field(
        default=None, description="Watch list (JSON) the anti-fraud simulator loads; the bundled demo list by default."
    )
    identification_centre_url: str | None = Field(
        default=None,
        description="Identification data exchange centre (biometrics) API; without it the simulator answers.",
    )
    identification_centre_token: SecretStr | None = Field(
        default=None, description="Bearer token the identification data exchange centre issued to the operator."
    )
    identification_centre_registry: Path | None = Field(
        default=None, description="Enrolled persons (JSON) the biometrics simulator loads; the bundled demo set by default."
    )
    external_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of one call to an external party."
    )
    bank_url: str | None = Field(
        default=None,
        description="API of the operator's bank (camt.053 statements, pain.001 payment orders); without it the "
        "built-in bank simulator answers.",
    )
    bank_token: SecretStr | None = Field(
        default=None, description="Bearer token the operator's bank issued to the operator."
    )
    operator_client_money_iban: str = Field(
        default="KZ14601KZT0000100001",
        pattern=r"^KZ[0-9]{2}[0-9]{3}[0-9A-Z]{13}$",
        description="IBAN (electronic form) of the account at the operator's bank where clients' money is kept "
        "apart from the operator's own; the default is a demo account of the simulator.",
    )
    operator_bank_bic: str = Field(
        default="HSBKKZKX",
        pattern=r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$",
        description="BIC (ISO 9362) of the bank that keeps the client-money account.",
    )
    bank_poll_interval_s: float = Field(
        default=300, ge=0, description="How often today's statement of the client-money account is fetched from "
        "the bank and imported (deposits credited); 0 turns the polling off."
    )
    withdrawal_submit_interval_s: float = Field(
        default=60, ge=0, description="How often requested withdrawals are sent to the bank as payment orders; "
        "0 turns the sending off."
    )

    # Settlement
    settlement_fee_bps: int = Field(
        default=10, ge=0, le=1_000,
        description="The operator's fee per trade, in basis points of the trade's money value, paid by the buyer "
        "and by the seller each (rounded down to the tiyn) into the operator's fee account.",
    )
    settlement_end_of_day_interval_s: float = Field(
        default=60, ge=0, description="How often the settlement pass runs: matched instructions due today settle, "
        "those not settled by the close of their settlement date fail, day orders expire, and the holds of what "
        "did not settle are released; 0 turns it off."
    )

    # Issuance
    security_protocol_submitted_on: date | None = Field(
        default=None,
        description="The day the cybersecurity test protocol was submitted to the National Bank; no emission is "
        "registered before 10 business days have passed since (REQ-60, REQ-22), nor while it is not recorded.",
    )
    issuance_document_max_bytes: PositiveInt = Field(
        default=10_485_760, description="Largest document an issuer may upload (bytes)."
    )
    certification_max_age_days: PositiveInt = Field(
        default=30, description="A certification of an underlying asset older than this many days is not relied "
        "on for registration; a fresh one is obtained from the custodian."
    )
    custodian_url: str | None = Field(
        default=None,
        description="API of the underlying-asset custodians' gateway; without it the built-in custodian simulator "
        "answers.",
    )
    custodian_token: SecretStr | None = Field(default=None, description="Bearer token for the custodians' gateway.")
    trading_platform_url: str | None = Field(
        default=None,
        description="API of the digital-asset trading platforms' gateway; without it the built-in trading-platform "
        "simulator answers.",
    )
    trading_platform_token: SecretStr | None = Field(
        default=None, description="Bearer token for the trading platforms' gateway."
    )
    issuance_job_interval_s: float = Field(
        default=60, ge=0, description="How often issuance's deadlines are looked at: overdue applications flagged "
        "to staff, placements whose window closed allocated, trading platforms' answers fetched and lapsed "
        "transfers released; 0 turns it off."
    )

    # Reconciliation
    reconciliation_schedule: str = Field(
        default="30 23 * * *",
        description="When the daily reconciliation runs, as a crontab line (minute hour day month weekday) in the "
        "operator's time zone; every calendar day at 23:30 by default (REQ-30: monitoring is daily). An empty "
        "value turns the schedule off (the run is then started by `dfa reconcile` or the API).",
    )
    reconciliation_catch_up_days: int = Field(
        default=7, ge=0, le=366,
        description="At start, days missed within this many past days are reconciled late (and flagged as "
        "late); older gaps stay visible as missing days.",
    )
    reconciliation_valuation_max_age_days: PositiveInt = Field(
        default=7, description="A custodian's valuation older than this many days is stale: a breach of its own "
        "kind, never a pass (REQ-30).",
    )
    reconciliation_lock_wait_s: PositiveInt = Field(
        default=600, description="How long a run waits for another instance's run to end before giving up."
    )
    reconciliation_statement_timeout_ms: PositiveInt = Field(
        default=1_800_000,
        description="The statement timeout of a run's reading of the books, which checks every journal entry in "
        "one statement (DB_STATEMENT_TIMEOUT_MS guards requests, not this).",
    )
    reconciliation_custodian_concurrency: PositiveInt = Field(
        default=16, le=256, description="Custodian statements asked for at once during a run."
    )
    reconciliation_block_scope: Literal["issuer", "all"] = Field(
        default="issuer",
        description="What a coverage breach blocks until a later run clears it: the issuer's new emission "
        "registrations (REQ-31 as written), or every issuer's.",
    )
    national_bank_url: str | None = Field(
        default=None,
        description="API through which notices reach the National Bank; without it the built-in simulator answers.",
    )
    national_bank_token: SecretStr | None = Field(default=None, description="Bearer token for the National Bank's API.")
    notice_delivery_interval_s: float = Field(
        default=30, ge=0, description="How often undelivered notices to the National Bank and custodians are sent "
        "again (each is also sent at once when written); 0 turns the retries off."
    )

    # Calendar
    timezone: str = Field(default="Asia/Almaty", description="Time zone of business dates and deadlines.")
    business_day_closes_at: time = Field(
        default=time(18, 0), description="Local time at which a business day's deadlines fall."
    )

    backup_dir: Path | None = Field(
        default=None, description="Where `dfa backup` writes dumps; data_dir/backups by default."
    )

    def public_view(self) -> dict[str, str]:
        """Every setting as text, with the database password hidden: what may be logged and recorded."""
        from sqlalchemy import make_url

        values = self.model_dump(mode="json")
        if self.database_url:
            values["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        return {name: str(value) for name, value in sorted(values.items())}

    def page_size(self, requested: int | None) -> int:
        """The page size to serve: what was asked for, within the configured maximum."""
        return min(requested or self.page_size_default, self.page_size_max)


@lru_cache
def get_settings() -> Settings:
    return Settings()
