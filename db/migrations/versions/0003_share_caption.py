"""shares.caption, shares.columns, shares.spec_hash: a snapshot that stands alone

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('shares', schema=None) as batch_op:
        batch_op.add_column(sa.Column('caption', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('columns', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('spec_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('shares', schema=None) as batch_op:
        batch_op.drop_column('spec_hash')
        batch_op.drop_column('columns')
        batch_op.drop_column('caption')
