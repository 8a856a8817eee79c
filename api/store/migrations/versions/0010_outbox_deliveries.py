"""the outbox: one delivery per automated action, with its attempts, errors and provider id

Revision ID: 0010
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'deliveries',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('action_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.String(length=128), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('idempotency_key', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_code', sa.String(length=64), nullable=True),
        sa.Column('backend', sa.String(length=16), nullable=True),
        sa.Column('recipient', sa.String(length=256), nullable=True),
        sa.Column('document_hash', sa.String(length=64), nullable=True),
        sa.Column('provider_message_id', sa.String(length=256), nullable=True),
        sa.Column('worker', sa.String(length=64), nullable=True),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('decision_id', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['action_id'], ['actions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('action_id'),
    )
    op.create_index('ix_deliveries_customer_id', 'deliveries', ['customer_id'], unique=False)
    op.create_index('ix_deliveries_status_next', 'deliveries', ['status', 'next_attempt_at'], unique=False)


def downgrade():
    op.drop_index('ix_deliveries_status_next', table_name='deliveries')
    op.drop_index('ix_deliveries_customer_id', table_name='deliveries')
    op.drop_table('deliveries')
