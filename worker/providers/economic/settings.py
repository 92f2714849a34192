"""e-conomic's settings: `LEDGERPUSH_ECONOMIC_*`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from worker.settings import PartSettings, get_settings


class EconomicSettings(PartSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERPUSH_ECONOMIC_")

    api_url: str = "https://restapi.e-conomic.com"
    install_url: str = "https://secure.e-conomic.com/secure/api1/requestaccess.aspx"
    app_secret_token: SecretStr = SecretStr("")
    app_public_token: str = ""
    redirect_uri: str = "http://127.0.0.1:8000/connect/economic/callback"
    calls_per_day: int = Field(default=50_000, ge=1)


def provider_settings() -> EconomicSettings:
    return get_settings().part(EconomicSettings)
