"""JIRA instances, users' connections (their JIRA credentials, sealed) and pending OAuth authorizations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models.base import Base, now_column, uuid_pk


class JiraInstanceRow(Base):
    __tablename__ = "jira_instances"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Data Center: the REST base (with its context path); Jira Cloud: the site's URL (the API is reached through
    # Atlassian's gateway, `<ATLASSIAN_API_URL>/ex/jira/<cloud_id>`)
    base_url: Mapped[str] = mapped_column(String(2000))
    # app.domain.auth.Deployment: datacenter | cloud
    deployment: Mapped[str] = mapped_column(String(20), default="datacenter", server_default="datacenter")
    # Jira Cloud: the site (`https://acme.atlassian.net`) and its id, learnt from the first connection's
    # accessible resources
    site_url: Mapped[str | None] = mapped_column(String(2000))
    cloud_id: Mapped[str | None] = mapped_column(String(100))
    # how users authenticate (app.domain.auth.AuthKind): oauth1 | oauth2 | pat | 3lo
    auth: Mapped[str] = mapped_column(String(10), default="oauth1", server_default="oauth1")
    consumer_key: Mapped[str] = mapped_column(String(200))
    rate_limit_per_second: Mapped[int] = mapped_column(Integer, default=10)
    project_keys: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    # OAuth 1.0a's key pair; none until the instance uses oauth1
    private_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    # OAuth 2.0's incoming "External application" link
    oauth2_client_id: Mapped[str | None] = mapped_column(String(200))
    oauth2_client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # reconciliation cursors (JIRA epoch milliseconds) for worklog/updated and worklog/deleted
    reconcile_updated_since: Mapped[int | None] = mapped_column(BigInteger)
    reconcile_deleted_since: Mapped[int | None] = mapped_column(BigInteger)
    reconciled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


class ConnectionRow(Base):
    __tablename__ = "jira_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "jira_instance_id", "user"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    jira_instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jira_instances.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(200))
    jira_username: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # connected | auth_required | denied
    # OAuth 1.0a access token, personal access token or OAuth 2.0 access token
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # OAuth 1.0a
    # OAuth 2.0: the refresh token, when the access token expires and when to renew it, and since when a renewal's
    # answer is missing (app.jira.token_refresh)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Jira Cloud: when the consent ends (365 days after it), and when the user was told it soon will
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expiry_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = now_column()


class OAuthRequestRow(Base):
    """An authorization between `oauth/start` and the callback: an OAuth 1.0a request token, or an OAuth 2.0 state
    (with its PKCE verifier on Data Center; Atlassian's 3LO takes none); single use, expires after 10 minutes."""

    __tablename__ = "oauth_requests"

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str] = mapped_column(String(10), default="oauth1", server_default="oauth1")  # oauth1 | oauth2 | 3lo
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    jira_instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jira_instances.id", ondelete="CASCADE"))
    user: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the request token or state: the value itself is a credential until the callback used it
    request_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    request_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # OAuth 1.0a
    request_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # OAuth 1.0a
    code_verifier_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # OAuth 2.0 (PKCE)
    return_url: Mapped[str | None] = mapped_column(String(2000))
    # the JIRA account that is to approve (CONTRACT 11); another one approving stores nothing
    expected_jira_user: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = now_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
