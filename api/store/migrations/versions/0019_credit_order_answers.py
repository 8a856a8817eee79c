"""credit orders keep the answer a credit check gave when it held or referred the order, so a retry of
the same request (its answer lost) gets that answer back (issue 10)

Revision ID: 0019
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credit_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('answer', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('credit_orders', schema=None) as batch_op:
        batch_op.drop_column('answer')
        batch_op.drop_column('request_hash')
