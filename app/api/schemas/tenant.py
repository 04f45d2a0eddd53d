"""The tenant's own settings (CONTRACT 11: allowed_origins)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.domain.origins import MAX_ORIGINS, normalise_origins

Origins = Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=MAX_ORIGINS),
                    AfterValidator(normalise_origins)]


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    timezone: str
    allowed_origins: list[str] = Field(description="TimeTracker web origins: browsers there may call the API with a "
                                                   "user token (CORS); when not empty, an OAuth return_url must be "
                                                   "on one of them")
    created_at: datetime


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"allowed_origins": ["https://tt.example.com"]}]})

    allowed_origins: Origins | None = Field(
        None, description="replaces the list; origins like https://tt.example.com (scheme, host, port; no path)")
