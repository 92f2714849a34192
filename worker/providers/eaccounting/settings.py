"""eAccounting's settings: `LEDGERPUSH_EACCOUNTING_*`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from worker.settings import PartSettings, get_settings


class EAccountingSettings(PartSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERPUSH_EACCOUNTING_")

    api_url: str = "https://eaccountingapi.vismaonline.com/v2"
    identity_url: str = "https://identity.vismaonline.com"
    token_url: str | None = Field(
        default=None,
        description="Where workers reach the identity server's token endpoint when that "
        "differs from the address users' browsers use; unset: EACCOUNTING_IDENTITY_URL.",
    )
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    redirect_uri: str = "http://127.0.0.1:8000/connect/eaccounting/callback"
    rate_per_minute: int = Field(default=600, ge=1)
    rate_scope: Literal["company", "client"] = Field(
        default="company",
        description="What one 600-a-minute budget covers: each connected company, or the "
        "whole client application across all companies (the stricter reading).",
    )


def provider_settings() -> EAccountingSettings:
    return get_settings().part(EAccountingSettings)
