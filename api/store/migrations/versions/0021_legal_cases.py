"""legal cases: the case a litigation referral opens, with its own one-way status (issue 11)

Revision ID: 0021
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('legal_cases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('invoice_ids', sa.JSON(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=True),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_legal_cases_customer_id', 'legal_cases', ['customer_id'], unique=False)
    op.create_index('uq_legal_cases_open', 'legal_cases', ['customer_id'], unique=True,
                    sqlite_where=sa.text('closed_on IS NULL'), postgresql_where=sa.text('closed_on IS NULL'))


def downgrade():
    op.drop_index('uq_legal_cases_open', table_name='legal_cases')
    op.drop_index('ix_legal_cases_customer_id', table_name='legal_cases')
    op.drop_table('legal_cases')
