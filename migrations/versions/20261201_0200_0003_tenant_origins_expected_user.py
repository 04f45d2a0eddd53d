"""tenant allowed_origins; the JIRA user an OAuth request expects

CONTRACT 11: a tenant lists its TimeTracker web origins (return_url must be on one of them when the list is
not empty), and `oauth/start` may name the JIRA account that is to approve.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('allowed_origins', postgresql.ARRAY(sa.String(length=300)),
                                       server_default='{}', nullable=False))
    op.add_column('oauth_requests', sa.Column('expected_jira_user', sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column('oauth_requests', 'expected_jira_user')
    op.drop_column('tenants', 'allowed_origins')
