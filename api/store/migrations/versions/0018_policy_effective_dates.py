"""policy effective dates: the activation timeline (policy_activations) and the state row's timeline_seq

Revision ID: 0018
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('policy_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timeline_seq', sa.Integer(), server_default='0', nullable=False))
    op.create_table('policy_activations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=True),
    sa.Column('activated_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_by', sa.String(length=128), nullable=True),
    sa.Column('cancel_reason', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['version'], ['policy_versions.version'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_policy_activations_effective', 'policy_activations', ['effective_from', 'id'], unique=False)
    # the version live before effective dating is in force from the day it was activated (and, as the first
    # of the timeline, for every earlier day: there is no record of what came before)
    day = "date(activated_at)" if op.get_bind().dialect.name == "sqlite" else "CAST(activated_at AS DATE)"
    op.execute("INSERT INTO policy_activations (version, effective_from, created_at, created_by, reason, "
               f"activated_at) SELECT active_version, {day}, activated_at, activated_by, "
               "'in force before effective dating', activated_at FROM policy_state WHERE id = 1")


def downgrade():
    op.drop_index('ix_policy_activations_effective', table_name='policy_activations')
    op.drop_table('policy_activations')
    with op.batch_alter_table('policy_state', schema=None) as batch_op:
        batch_op.drop_column('timeline_seq')
