"""jobs.ix_jobs_claim in the claim's order (status, priority DESC, id); job_scores, one row of
scalar results per finished job, filled from the results already stored

Revision ID: 0005
Revises: 0004
"""
import json
from itertools import groupby

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BATCH = 5000  # jobs' scores written per INSERT while filling the table


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_claim')
        batch_op.create_index('ix_jobs_claim', ['status', sa.text('priority DESC'), 'id'], unique=False)
    scores = op.create_table(
        'job_scores',
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('scores', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id'),
    )
    # Every job with results gets its row, as db.outputs.scores_text writes it at completion.
    results = sa.table('results', sa.column('job_id', sa.Integer), sa.column('name', sa.String),
                       sa.column('value', sa.Float))
    rows = op.get_bind().execute(sa.select(results.c.job_id, results.c.name, results.c.value)
                                 .order_by(results.c.job_id, results.c.name)).all()
    batch = []
    for job_id, named in groupby(rows, key=lambda row: row[0]):
        values = {name: float(value) for _, name, value in named if value is not None}
        batch.append({'job_id': job_id, 'scores': json.dumps(values, separators=(',', ':'))})
        if len(batch) == BATCH:
            op.bulk_insert(scores, batch)
            batch = []
    if batch:
        op.bulk_insert(scores, batch)


def downgrade() -> None:
    op.drop_table('job_scores')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_claim')
        batch_op.create_index('ix_jobs_claim', ['status', 'priority', 'id'], unique=False)
