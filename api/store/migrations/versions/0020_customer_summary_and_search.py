"""customer summary (the last recorded decision's classification) and the indexed name search

Revision ID: 0020
Revises: 0018

customers.last_tier / last_reputation / last_stage / last_outstanding_minor / last_segments and the
customer_segments table are written with customers.last_* by every decision writer (api/service/decide.py),
so the console's customer list and GET /v1/customers filter and sort on indexed columns. Customers decided
before this migration get them at their next decision or sweep; last_stage starts from dunning_states.

The name search: an FTS5 trigram table kept by triggers on SQLite (external content: customers' rowid; a
VACUUM may renumber rowids, after which `INSERT INTO customer_search(customer_search) VALUES('rebuild')`),
a pg_trgm GIN index on PostgreSQL (api/service/customer_list.py).
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_tier', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_reputation', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_stage', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_outstanding_minor', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('last_segments', sa.JSON(), nullable=True))
    op.execute("UPDATE customers SET last_stage = (SELECT stage FROM dunning_states "
               "WHERE dunning_states.customer_id = customers.id) "
               "WHERE id IN (SELECT customer_id FROM dunning_states)")
    op.create_table('customer_segments',
                    sa.Column('segment', sa.String(length=128), nullable=False),
                    sa.Column('customer_id', sa.String(length=128), nullable=False),
                    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
                    sa.PrimaryKeyConstraint('segment', 'customer_id'))
    op.create_index('ix_customer_segments_customer', 'customer_segments', ['customer_id'], unique=False)
    # filter = value then id order (a keyset page is one index range); sorts by (column, id)
    op.create_index('ix_customers_last_tier', 'customers', ['last_tier', 'id'], unique=False)
    op.create_index('ix_customers_last_reputation', 'customers', ['last_reputation', 'id'], unique=False)
    op.create_index('ix_customers_last_stage', 'customers', ['last_stage', 'id'], unique=False)
    op.create_index('ix_customers_last_outstanding', 'customers', ['last_outstanding_minor', 'id'], unique=False)
    op.drop_index('ix_customers_name', table_name='customers')
    op.create_index('ix_customers_name', 'customers', ['name', 'id'], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.execute("CREATE VIRTUAL TABLE customer_search USING fts5(name, content='customers', "
                   "content_rowid='rowid', tokenize='trigram')")
        op.execute("CREATE TRIGGER customer_search_ai AFTER INSERT ON customers BEGIN "
                   "INSERT INTO customer_search(rowid, name) VALUES (new.rowid, new.name); END")
        op.execute("CREATE TRIGGER customer_search_ad AFTER DELETE ON customers BEGIN "
                   "INSERT INTO customer_search(customer_search, rowid, name) VALUES ('delete', old.rowid, old.name); "
                   "END")
        op.execute("CREATE TRIGGER customer_search_au AFTER UPDATE OF name ON customers BEGIN "
                   "INSERT INTO customer_search(customer_search, rowid, name) VALUES ('delete', old.rowid, old.name); "
                   "INSERT INTO customer_search(rowid, name) VALUES (new.rowid, new.name); END")
        op.execute("INSERT INTO customer_search(customer_search) VALUES ('rebuild')")
    elif bind.dialect.name == 'postgresql':
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_customers_name_trgm ON customers USING gin (name gin_trgm_ops)")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        for t in ('customer_search_ai', 'customer_search_ad', 'customer_search_au'):
            op.execute(f"DROP TRIGGER IF EXISTS {t}")
        op.execute("DROP TABLE IF EXISTS customer_search")
    elif bind.dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_customers_name_trgm")
    op.drop_index('ix_customers_name', table_name='customers')
    op.create_index('ix_customers_name', 'customers', ['name'], unique=False)
    for ix in ('ix_customers_last_outstanding', 'ix_customers_last_stage', 'ix_customers_last_reputation',
               'ix_customers_last_tier'):
        op.drop_index(ix, table_name='customers')
    op.drop_index('ix_customer_segments_customer', table_name='customer_segments')
    op.drop_table('customer_segments')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        for col in ('last_segments', 'last_outstanding_minor', 'last_stage', 'last_reputation', 'last_tier'):
            batch_op.drop_column(col)
