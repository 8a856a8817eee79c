"""console users, and the indexes the console's customer list filters and sorts on

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    # the console's customer list (api/console/queries.py): filter by bucket / collector / stage, sort by name
    op.create_index('ix_customers_name', 'customers', ['name'], unique=False)
    op.create_index('ix_customers_last_bucket', 'customers', ['last_bucket', 'id'], unique=False)
    op.create_index('ix_customers_collector', 'customers', ['collector', 'id'], unique=False)
    op.create_index('ix_dunning_states_stage', 'dunning_states', ['stage', 'customer_id'], unique=False)


def downgrade():
    op.drop_index('ix_dunning_states_stage', table_name='dunning_states')
    op.drop_index('ix_customers_collector', table_name='customers')
    op.drop_index('ix_customers_last_bucket', table_name='customers')
    op.drop_index('ix_customers_name', table_name='customers')
    op.drop_table('users')
