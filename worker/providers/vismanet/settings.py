"""Visma.net ERP's settings: `LEDGERPUSH_VISMANET_*`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from worker.settings import PartSettings, get_settings


class VismaNetSettings(PartSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERPUSH_VISMANET_")

    api_url: str = Field(
        default="https://api.finance.visma.net",
        description="Visma.net ERP service API base (paths /v1/..., /v2/... below it).",
    )
    identity_url: str = "https://connect.visma.com"
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    rate_per_hour: int = Field(
        default=15_000,
        ge=1,
        description="Calls an hour per company and client before ledgerpush waits; Visma "
        "publishes no number any more (15,000 was the 2021 production limit) and its "
        "X-RateLimit-* headers are honoured as well.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret of the Developer Portal webhook subscription that signs "
        "Visma.net notifications (x-vwd-signature-v1); several, comma-separated, while a "
        "rotated secret overlaps the old one. Empty: notifications are refused.",
    )


def provider_settings() -> VismaNetSettings:
    return get_settings().part(VismaNetSettings)
