"""per-instance pushers: their claims on entries, and an index of each instance's due entries in their order

A worker pushes one JIRA instance's due entries in priority order (USER before BATCH, then oldest first),
selecting them by where their next push goes: where the worklog is (or may be), else where the entry is routed.
This partial index holds only due entries, keyed by exactly that expression. An entry taken by a pusher is
claimed (`claimed_by`, `claimed_until`) until its answer is recorded, so no other pusher takes it meanwhile.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('entries', sa.Column('claimed_by', sa.String(length=80), nullable=True))
    op.add_column('entries', sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_entries_push_due', 'entries',
                    [sa.text('coalesce(worklog_instance_id, instance_id)'), 'priority', 'due_at'], unique=False,
                    postgresql_where=sa.text('due_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_entries_push_due', table_name='entries', postgresql_where=sa.text('due_at IS NOT NULL'))
    op.drop_column('entries', 'claimed_until')
    op.drop_column('entries', 'claimed_by')
