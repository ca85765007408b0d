"""initial schema

Revision ID: 0001
Revises: 
"""
import sqlalchemy as sa
from alembic import op

from db.schema import db_time  # the database clock, compiled per dialect


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shares',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('page', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.Double(), server_default=db_time(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('preset', sa.String(length=100), nullable=True),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('spec_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Double(), server_default=db_time(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_spec_hash'), ['spec_hash'], unique=False)

    op.create_table('workers',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('device', sa.String(length=100), nullable=False),
    sa.Column('versions', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.Double(), server_default=db_time(), nullable=False),
    sa.Column('last_seen_at', sa.Double(), server_default=db_time(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('spec_hash', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('lease_expires_at', sa.Double(), nullable=True),
    sa.Column('heartbeat_at', sa.Double(), nullable=True),
    sa.Column('progress', sa.Double(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('result_of', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.Double(), server_default=db_time(), nullable=False),
    sa.Column('started_at', sa.Double(), nullable=True),
    sa.Column('finished_at', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['result_of'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_claim', ['status', 'priority', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_spec_hash'), ['spec_hash'], unique=False)
        batch_op.create_index('ix_jobs_study_status', ['study_id', 'status'], unique=False)

    op.create_table('arrays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('dtype', sa.String(length=16), nullable=False),
    sa.Column('shape', sa.JSON(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('arrays', schema=None) as batch_op:
        batch_op.create_index('ix_arrays_job_name', ['job_id', 'name'], unique=True)

    op.create_table('artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index('ix_artifacts_job_kind', ['job_id', 'kind'], unique=False)

    op.create_table('job_dependencies',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('depends_on', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['depends_on'], ['jobs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'depends_on')
    )
    with op.batch_alter_table('job_dependencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_dependencies_depends_on'), ['depends_on'], unique=False)

    op.create_table('metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_job_key_step', ['job_id', 'key', 'step'], unique=False)

    op.create_table('results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('table', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index('ix_results_job_name', ['job_id', 'name'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_job_name')

    op.drop_table('results')
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_job_key_step')

    op.drop_table('metrics')
    with op.batch_alter_table('job_dependencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_dependencies_depends_on'))

    op.drop_table('job_dependencies')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_index('ix_artifacts_job_kind')

    op.drop_table('artifacts')
    with op.batch_alter_table('arrays', schema=None) as batch_op:
        batch_op.drop_index('ix_arrays_job_name')

    op.drop_table('arrays')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_study_status')
        batch_op.drop_index(batch_op.f('ix_jobs_spec_hash'))
        batch_op.drop_index('ix_jobs_claim')

    op.drop_table('jobs')
    op.drop_table('workers')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_spec_hash'))

    op.drop_table('studies')
    op.drop_table('shares')
