"""the outbox carries monthly statements (no action; one per customer per month) and requeued dead letters;
actions indexed by status (the outbox's enqueue and /healthz read the queued ones)

Revision ID: 0017
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries') as batch:
        batch.alter_column('action_id', existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column('statement_period', sa.String(length=7), nullable=True))
        batch.add_column(sa.Column('attempt_base', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('requeued_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('requeues', sa.Integer(), nullable=False, server_default='0'))
        batch.create_unique_constraint('uq_deliveries_statement', ['customer_id', 'statement_period'])
    op.create_index('ix_actions_status_due', 'actions', ['status', 'due_on'], unique=False)


def downgrade():
    op.drop_index('ix_actions_status_due', table_name='actions')
    op.execute("DELETE FROM deliveries WHERE action_id IS NULL")
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_constraint('uq_deliveries_statement', type_='unique')
        batch.drop_column('requeues')
        batch.drop_column('requeued_at')
        batch.drop_column('attempt_base')
        batch.drop_column('statement_period')
        batch.alter_column('action_id', existing_type=sa.Integer(), nullable=False)
