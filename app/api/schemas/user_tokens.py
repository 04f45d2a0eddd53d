"""User tokens and who the caller is (CONTRACT 14)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import UserName
from app.services.user_tokens import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS


class UserTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"user": "jdoe", "ttl_seconds": 900}]})

    user: UserName = Field(description="the TimeTracker user the token acts for")
    ttl_seconds: int = Field(DEFAULT_TTL_SECONDS, ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS,
                             description="how long the token is valid")


class UserTokenOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`; acts for `user` only")
    user: str
    expires_at: datetime


class InstanceRef(BaseModel):
    id: uuid.UUID
    name: str


class TenantRef(BaseModel):
    id: uuid.UUID
    name: str
    timezone: str


class MeOut(BaseModel):
    kind: Literal["api_key", "user_token"] = Field(description="which credential the request carried")
    user: str | None = Field(description="the user a user token acts for; null for the API key (every user)")
    expires_at: datetime | None = Field(description="when the user token expires; null for the API key")
    tenant: TenantRef
    jira_instances: list[InstanceRef] = Field(
        description="the tenant's JIRA instances a user can connect to (`oauth/start`)")
