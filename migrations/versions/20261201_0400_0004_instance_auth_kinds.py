"""instance auth kinds: OAuth 1.0a, OAuth 2.0, personal access tokens

CONTRACT 13: an instance's `auth` is oauth1 (the default), oauth2 (an incoming "External application" link: client
id and sealed secret) or pat; only oauth1 needs a key pair. A connection keeps an OAuth 2.0 refresh token (sealed)
and when its access token expires and is due for renewal; an authorization between start and callback is an
OAuth 1.0a request token or an OAuth 2.0 state with its sealed PKCE verifier.

The downgrade forgets what the old schema cannot hold: instances that are not oauth1 (with their connections) and
pending OAuth 2.0 authorizations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('jira_instances', sa.Column('auth', sa.String(length=10), server_default='oauth1', nullable=False))
    op.add_column('jira_instances', sa.Column('oauth2_client_id', sa.String(length=200), nullable=True))
    op.add_column('jira_instances', sa.Column('oauth2_client_secret_enc', sa.LargeBinary(), nullable=True))
    op.alter_column('jira_instances', 'private_key_enc', existing_type=sa.LargeBinary(), nullable=True)
    op.alter_column('jira_instances', 'public_key_pem', existing_type=sa.Text(), nullable=True)
    op.add_column('jira_connections', sa.Column('refresh_token_enc', sa.LargeBinary(), nullable=True))
    op.add_column('jira_connections', sa.Column('access_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('jira_connections', sa.Column('refresh_due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('jira_connections', sa.Column('refresh_started_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('oauth_requests', sa.Column('kind', sa.String(length=10), server_default='oauth1', nullable=False))
    op.add_column('oauth_requests', sa.Column('code_verifier_enc', sa.LargeBinary(), nullable=True))
    op.alter_column('oauth_requests', 'request_token_enc', existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM oauth_requests WHERE kind <> 'oauth1'")
    op.execute("DELETE FROM jira_instances WHERE auth <> 'oauth1' OR private_key_enc IS NULL")
    op.alter_column('oauth_requests', 'request_token_enc', existing_type=sa.LargeBinary(), nullable=False)
    op.drop_column('oauth_requests', 'code_verifier_enc')
    op.drop_column('oauth_requests', 'kind')
    op.drop_column('jira_connections', 'refresh_started_at')
    op.drop_column('jira_connections', 'refresh_due_at')
    op.drop_column('jira_connections', 'access_expires_at')
    op.drop_column('jira_connections', 'refresh_token_enc')
    op.alter_column('jira_instances', 'public_key_pem', existing_type=sa.Text(), nullable=False)
    op.alter_column('jira_instances', 'private_key_enc', existing_type=sa.LargeBinary(), nullable=False)
    op.drop_column('jira_instances', 'oauth2_client_secret_enc')
    op.drop_column('jira_instances', 'oauth2_client_id')
    op.drop_column('jira_instances', 'auth')
