"""Jira Cloud sites and their 3LO connections

CONTRACT 12: an instance's `deployment` is datacenter (everything before) or cloud; a Cloud instance names its site
(`site_url`) and learns its `cloud_id` from the first connection. A connection to a Cloud site ends 365 days after
the consent (`expires_at`); its user is told a month before (`expiry_notified_at`).

The downgrade forgets what the old schema cannot hold: Cloud instances (with their connections and pending
authorizations).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('jira_instances', sa.Column('deployment', sa.String(length=20), server_default='datacenter',
                                              nullable=False))
    op.add_column('jira_instances', sa.Column('site_url', sa.String(length=2000), nullable=True))
    op.add_column('jira_instances', sa.Column('cloud_id', sa.String(length=100), nullable=True))
    op.add_column('jira_connections', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('jira_connections', sa.Column('expiry_notified_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM oauth_requests WHERE kind = '3lo'")
    op.execute("DELETE FROM jira_instances WHERE deployment <> 'datacenter'")
    op.drop_column('jira_connections', 'expiry_notified_at')
    op.drop_column('jira_connections', 'expires_at')
    op.drop_column('jira_instances', 'cloud_id')
    op.drop_column('jira_instances', 'site_url')
    op.drop_column('jira_instances', 'deployment')
