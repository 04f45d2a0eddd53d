"""index one instance's backlog

Counting an instance's due entries (the admission cap's drain estimate, the queue gauges) walked every entry
the instance ever had through `ix_entries_instance_worklog`; this partial index holds only the due ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_entries_instance_due', 'entries', ['instance_id', 'due_at'], unique=False,
                    postgresql_where=sa.text('due_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_entries_instance_due', table_name='entries', postgresql_where=sa.text('due_at IS NOT NULL'))
