"""Queries over every sealed (encrypted) column, for re-encryption under a new key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.db.models import ConnectionRow, JiraInstanceRow, OAuthRequestRow, Tenant, UserTokenKey


@dataclass(frozen=True)
class SealedColumn:
    """A column holding `SecretBox` envelopes, and the (table, column) its values are bound to."""

    model: type[Tenant] | type[JiraInstanceRow] | type[ConnectionRow] | type[OAuthRequestRow] | type[UserTokenKey]
    attribute: str
    table: str
    binding_column: str

    @property
    def label(self) -> str:
        return f"{self.table}.{self.binding_column}"

    def column(self) -> InstrumentedAttribute[bytes | None]:
        column: InstrumentedAttribute[bytes | None] = getattr(self.model, self.attribute)
        return column


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn(Tenant, "webhook_secret_enc", "tenants", "webhook_secret"),
    SealedColumn(JiraInstanceRow, "private_key_enc", "jira_instances", "private_key"),
    SealedColumn(JiraInstanceRow, "webhook_secret_enc", "jira_instances", "webhook_secret"),
    SealedColumn(JiraInstanceRow, "oauth2_client_secret_enc", "jira_instances", "oauth2_client_secret"),
    SealedColumn(ConnectionRow, "access_token_enc", "jira_connections", "access_token"),
    SealedColumn(ConnectionRow, "token_secret_enc", "jira_connections", "token_secret"),
    SealedColumn(ConnectionRow, "refresh_token_enc", "jira_connections", "refresh_token"),
    SealedColumn(OAuthRequestRow, "request_token_enc", "oauth_requests", "request_token"),
    SealedColumn(OAuthRequestRow, "request_secret_enc", "oauth_requests", "request_secret"),
    SealedColumn(OAuthRequestRow, "code_verifier_enc", "oauth_requests", "code_verifier"),
    SealedColumn(UserTokenKey, "secret_enc", "user_token_keys", "secret"),
)


async def sealed_batch(
    session: AsyncSession, sealed: SealedColumn, *, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, bytes]]:
    """The next `limit` (id, value) pairs with a value, in id order after `after` (keyset paging)."""
    column = sealed.column()
    stmt = select(sealed.model.id, column).where(column.is_not(None)).order_by(sealed.model.id).limit(limit)
    if after is not None:
        stmt = stmt.where(sealed.model.id > after)
    return [(row[0], bytes(row[1] or b"")) for row in (await session.execute(stmt)).all()]


async def replace_sealed(
    session: AsyncSession, sealed: SealedColumn, row_id: uuid.UUID, *, old: bytes, new: bytes
) -> bool:
    """Compare-and-set: write `new` only if the value is still `old` (a concurrent writer wins)."""
    column = sealed.column()
    result = await session.execute(
        update(sealed.model).where(sealed.model.id == row_id, column == old).values({sealed.attribute: new})
    )
    return bool(getattr(result, "rowcount", 0))
