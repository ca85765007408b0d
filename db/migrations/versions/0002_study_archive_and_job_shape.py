"""studies.archived; jobs.shape, filled in for existing jobs

Revision ID: 0002
Revises: 0001
"""
import json

import sqlalchemy as sa
from alembic import op

from backend.specs.base import shape_hash  # torch-free

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shape', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_shape'), ['shape'], unique=False)
    # Past runs are what estimates come from: give the existing jobs their shapes too.
    jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('spec_hash', sa.String),
                    sa.column('spec', sa.Text), sa.column('shape', sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.spec_hash, jobs.c.spec).order_by(jobs.c.id)).all()
    shapes: dict[str, str] = {}  # spec hash -> shape; a probe comes after the networks it names
    for _, spec_hash, spec in rows:
        shapes.setdefault(spec_hash, shape_hash(json.loads(spec), shapes))
    if rows:
        connection.execute(jobs.update().where(jobs.c.id == sa.bindparam("job"))
                           .values(shape=sa.bindparam("shape")),
                           [{"job": job_id, "shape": shapes[spec_hash]} for job_id, spec_hash, _ in rows])


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_shape'))
        batch_op.drop_column('shape')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('archived')
