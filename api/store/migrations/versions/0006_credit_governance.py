"""credit governance: referrals, credit orders, credit holds, key holders and authority levels

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('credit_orders',
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('referral_id', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('order_id')
    )
    with op.batch_alter_table('credit_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_orders_customer_id'), ['customer_id'], unique=False)
    op.create_table('referrals',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('exposure_minor', sa.BigInteger(), nullable=False),
    sa.Column('over_limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('reserve', sa.Boolean(), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('closed_by', sa.String(length=128), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.Column('conditions', sa.JSON(), nullable=True),
    sa.Column('close_decision_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referrals_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referrals_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_referrals_status_created', ['status', 'created_at', 'id'], unique=False)
    op.create_table('credit_holds',
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_on', sa.Date(), nullable=False),
    sa.Column('until', sa.Date(), nullable=True),
    sa.Column('placed_by', sa.String(length=128), nullable=False),
    sa.Column('placed_at', sa.DateTime(), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('customer_id')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('authority', sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('authority')
        batch_op.drop_column('person')
    op.drop_table('credit_holds')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_status_created')
        batch_op.drop_index(batch_op.f('ix_referrals_order_id'))
        batch_op.drop_index(batch_op.f('ix_referrals_customer_id'))
    op.drop_table('referrals')
    with op.batch_alter_table('credit_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_orders_customer_id'))
    op.drop_table('credit_orders')
