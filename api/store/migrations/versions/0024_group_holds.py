"""group holds: a customer group on credit hold, inherited by every member (issue 12)

Revision ID: 0024
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('group_holds',
    sa.Column('group_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_on', sa.Date(), nullable=False),
    sa.Column('until', sa.Date(), nullable=True),
    sa.Column('placed_by', sa.String(length=128), nullable=False),
    sa.Column('placed_at', sa.DateTime(), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['customer_groups.id'], ),
    sa.PrimaryKeyConstraint('group_id')
    )


def downgrade():
    op.drop_table('group_holds')
