"""console: a user's authority level (referrals), the book figures the sweep writes (overview), the
customer list's normalized search column

Revision ID: 0014
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authority', sa.String(length=32), nullable=True))
    op.create_table('sweep_figures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('sums', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sweep_figures_run', 'sweep_figures', ['run_id'], unique=False)
    op.create_table('book_snapshots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('policy_version', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_book_snapshots_as_of', 'book_snapshots', ['as_of', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_book_snapshots_as_of', table_name='book_snapshots')
    op.drop_table('book_snapshots')
    op.drop_index('ix_sweep_figures_run', table_name='sweep_figures')
    op.drop_table('sweep_figures')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('authority')
