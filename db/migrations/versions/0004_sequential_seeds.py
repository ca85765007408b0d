"""studies.seed_round, studies.seed_progress: sequential seeds

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seed_round', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('seed_progress', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('seed_progress')
        batch_op.drop_column('seed_round')
