"""integrity: reservation owners and request hashes, action delivery, database marks

Revision ID: 0005
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('reservations', sa.Column('owner', sa.String(length=128), nullable=True))
    op.add_column('reservations', sa.Column('request_hash', sa.String(length=64), nullable=True))
    op.add_column('actions', sa.Column('delivered_at', sa.DateTime(), nullable=True))
    op.create_table('db_marks',
                    sa.Column('name', sa.String(length=64), nullable=False),
                    sa.Column('value', sa.String(length=256), nullable=False),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('name'))


def downgrade():
    op.drop_table('db_marks')
    with op.batch_alter_table('actions') as batch:
        batch.drop_column('delivered_at')
    with op.batch_alter_table('reservations') as batch:
        batch.drop_column('request_hash')
        batch.drop_column('owner')
