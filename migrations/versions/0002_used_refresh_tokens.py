"""used refresh tokens: each refresh token is good for one refresh

Revision ID: 0002_used_refresh_tokens
Revises: 0001
Create Date: 2026-11-29 10:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002_used_refresh_tokens'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('used_refresh_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_used_refresh_tokens'))
    )
    with op.batch_alter_table('used_refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_used_refresh_tokens_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('used_refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_used_refresh_tokens_expires_at'))

    op.drop_table('used_refresh_tokens')
