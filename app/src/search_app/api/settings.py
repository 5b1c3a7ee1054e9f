"""The API's settings: the app's, plus where the API listens, its token and the origins CORS allows.

A class of its own so that the UI's process does not read (or need) them.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from search_app.settings import AppSettings


class ApiSettings(AppSettings):
    api_host: str = Field("0.0.0.0", min_length=1, description="Address the HTTP API listens on.")  # noqa: S104
    api_port: int = Field(8502, ge=1, le=65535, description="Port the HTTP API listens on.")
    api_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token every API request must carry; empty: none asked (the proxy's password "
        "still guards it under the public profile). No default: set your own, 24 characters or more.",
    )
    api_cors_origins: str = Field(
        "", description="Comma-separated origins a browser may call the API from; empty: no CORS headers."
    )

    @field_validator("api_token")
    @classmethod
    def _strong_token(cls, token: SecretStr) -> SecretStr:
        value = token.get_secret_value()
        if value and (len(value) < 24 or value != value.strip()):
            raise ValueError("API_TOKEN must be 24 characters or more, without spaces around it (or empty)")
        return token

    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.api_cors_origins.split(",") if origin.strip()]
