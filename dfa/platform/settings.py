"""All configuration, read once from the environment (and `.env`) into one object."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, PositiveInt
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
        description="EVM JSON-RPC node for the on-chain mirror; without it an in-process EVM is used.",
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
        default=3_600, description="Seconds between purges of expired idempotency records."
    )
    hold_expiry_sweep_limit: PositiveInt = Field(
        default=1_000, description="Most expired holds voided by one sweep."
    )

    hold_expiry_interval_s: PositiveInt = Field(
        default=5, description="Seconds between sweeps that release expired holds."
    )

    log_level: str = Field(default="INFO", description="Python logging level name.")
    demo_data: bool = Field(default=True, description="Seed demo parties, assets and accounts at start.")


    def page_size(self, requested: int | None) -> int:
        """The page size to serve: what was asked for, within the configured maximum."""
        return min(requested or self.page_size_default, self.page_size_max)


@lru_cache
def get_settings() -> Settings:
    return Settings()
