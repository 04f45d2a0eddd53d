"""user tokens: per-tenant signing keys, per-user revocation generations; the changes feed knows its user

CONTRACT 14: the TimeTracker backend mints short-lived tokens scoped to one user for its frontend. They are
signed with a per-tenant secret (sealed like every other secret) and carry their user's revocation generation;
a user token reads the feed of its own entries only, so each feed record names the entry's user.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'user_token_keys',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('secret_enc', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_user_token_keys_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_token_keys')),
        sa.UniqueConstraint('tenant_id', 'version', name=op.f('uq_user_token_keys_tenant_id_version')),
    )
    op.create_table(
        'user_token_generations',
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('user', sa.String(length=200), nullable=False),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_user_token_generations_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tenant_id', 'user', name=op.f('pk_user_token_generations')),
    )
    op.add_column('changes', sa.Column('user', sa.String(length=200), nullable=True))
    # every record so far carries its entry's view, user included
    op.execute("UPDATE changes SET \"user\" = entry->>'user'")
    op.create_index('ix_changes_tenant_user_seq', 'changes', ['tenant_id', 'user', 'seq'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_changes_tenant_user_seq', table_name='changes')
    op.drop_column('changes', 'user')
    op.drop_table('user_token_generations')
    op.drop_table('user_token_keys')
