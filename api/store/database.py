"""Connections: the engine per backend (SQLite write queue, PostgreSQL idle pings), sessions,
migrations, and the dialect-specific INSERT … ON CONFLICT DO NOTHING."""
from __future__ import annotations

import fcntl
import os
import time

from sqlalchemy import bindparam, create_engine, event, exc
from sqlalchemy import insert as insert_statement
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.orm import sessionmaker


def make_engine(url: str):
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _):
            dbapi_conn.isolation_level = None          # we issue BEGIN ourselves (IMMEDIATE for writes)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # WAL + NORMAL: a commit no longer waits for fdatasync (the WAL is synced at checkpoints).
            # The database stays consistent, but an OS crash or power loss (not a process crash) can
            # lose the last transactions committed before it.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        write_queue = _WriteQueue(engine.url.database)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # writers take the write lock up front (no lost updates); read-only work (read_tx) uses
            # a deferred BEGIN so, with WAL, it never waits for a writer
            if conn.get_execution_options().get("creditctl_readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                write_queue.enter(conn.connection)
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        event.listen(engine, "checkin", write_queue.leave)
        event.listen(engine, "close", write_queue.close)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


class _WriteQueue:
    """Writers of one SQLite file wait for each other on an flock of "<file>-writelock" before
    BEGIN IMMEDIATE. A writer that finds SQLite's lock taken would otherwise sleep in SQLite's busy
    handler (1, 2, 5, … up to 100 ms, retrying blind): under load that leaves the lock idle between
    writers and makes waits unfair (p99 in the hundreds of ms). A blocked flock wakes as soon as the
    holder lets go. Each pooled connection has its own descriptor (so threads queue too); the lock is
    released when the connection goes back to the pool, after its COMMIT or ROLLBACK, and by the
    kernel if the process dies. In-memory databases need none."""

    def __init__(self, database: str | None):
        self.path = f"{database}-writelock" if database and database != ":memory:" else None

    def enter(self, conn) -> None:
        if self.path is None:
            return
        info = conn.info
        if "writelock_fd" not in info:
            info["writelock_fd"] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not info.get("writelock_held"):
            fcntl.flock(info["writelock_fd"], fcntl.LOCK_EX)
            info["writelock_held"] = True

    @staticmethod
    def leave(dbapi_conn, record) -> None:
        if record.info.pop("writelock_held", False):
            fcntl.flock(record.info["writelock_fd"], fcntl.LOCK_UN)

    @staticmethod
    def close(dbapi_conn, record) -> None:
        fd = record.info.pop("writelock_fd", None)
        record.info.pop("writelock_held", None)
        if fd is not None:
            os.close(fd)                       # also releases the flock


PING_IDLE_SECONDS = 10.0


def _ping_idle_connections(engine) -> None:
    """pool_pre_ping costs a round trip on every checkout. Ping only a connection that sat in the pool
    for PING_IDLE_SECONDS: under load none has, and one dropped while idle (server restart, idle
    timeout) is replaced before a request uses it. A connection dropped in the last few seconds fails
    the one request that uses it; SQLAlchemy then invalidates the rest of the worker's pool."""
    @event.listens_for(engine, "checkin")
    def _idle_since(dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, proxy):
        idle_since = record.info.get("idle_since")        # None: a new connection
        if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(str(error)) from error       # the pool connects anew


def insert_ignoring_duplicates(session, model, values=None):
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (both supported backends have it).
    Without `values`, the statement to execute with a list of rows (executemany: compiled once)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(model).on_conflict_do_nothing()
    return stmt if values is None else stmt.values(values)


_UPSERTS: dict = {}


def upsert_statement(session, table, keys: tuple[str, ...], columns: tuple[str, ...]):
    """INSERT … ON CONFLICT (keys) DO UPDATE SET columns = the new row's, in the session's dialect, built
    once per (dialect, table, keys, columns): execute with one row's values (keys and columns)."""
    name = session.get_bind().dialect.name
    stmt = _UPSERTS.get((name, table.name, keys, columns))
    if stmt is None:
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        base = insert(table).values({c: bindparam(c, type_=table.c[c].type) for c in (*keys, *columns)})
        stmt = base.on_conflict_do_update(index_elements=list(keys), set_={c: base.excluded[c] for c in columns})
        _UPSERTS[(name, table.name, keys, columns)] = stmt
    return stmt


def insert_row(table):
    """INSERT of one row with every column a named bind parameter (what write() may send with others)."""
    return insert_statement(table).values({c.name: bindparam(c.name, type_=c.type) for c in table.columns})


# ------------------------------------------------------------------ writes sent together (PostgreSQL)
_WRITES = "creditctl.writes"          # session.info: the writes collected since collect_writes()
_TOGETHER: dict = {}


def collect_writes(session) -> None:
    """From now until send_writes(), write() collects instead of executing (PostgreSQL only: SQLite runs
    each at once, as it would). For writes that nothing before send_writes() reads back."""
    if session.get_bind().dialect.name == "postgresql":
        session.info[_WRITES] = []


def write(session, stmt, params: dict) -> None:
    """Execute a Core DML statement with one row's parameters, or collect it (collect_writes). A statement
    collected has only named bind parameters (insert_row, upsert_statement, update(...).values(bindparam))."""
    pending = session.info.get(_WRITES)
    if pending is None:
        session.connection().execute(stmt, params)
    else:
        pending.append((stmt, params))


def send_writes(session) -> None:
    """The collected writes in ONE statement: WITH w0 AS (first), w1 AS (second), … last. PostgreSQL runs
    every data-modifying WITH part once, on one snapshot, so the writes must not depend on each other
    (different rows; none reads another's change). Built once per sequence of statements."""
    pending = session.info.pop(_WRITES, None)
    if not pending:
        return
    if len(pending) == 1:
        session.connection().execute(*pending[0])
        return
    key = tuple(id(stmt) for stmt, _ in pending)
    together = _TOGETHER.get(key)
    if together is None:
        stmts = [_renamed(stmt, f"w{i}_") for i, (stmt, _) in enumerate(pending)]
        together = stmts[-1].add_cte(*(st.cte(f"w{i}") for i, st in enumerate(stmts[:-1])))
        _TOGETHER[key] = together, [stmt for stmt, _ in pending]        # the statements kept: ids stay theirs
        together = _TOGETHER[key]
    session.connection().execute(together[0], {f"w{i}_{k}": v for i, (_, params) in enumerate(pending)
                                                for k, v in params.items()})


def _renamed(stmt, prefix: str):
    """stmt with each bind parameter's name prefixed (the parts of one statement need distinct names)."""
    def rename(element):
        if isinstance(element, BindParameter) and not element.unique:      # a literal's own (anonymous) stays
            return bindparam(prefix + element.key, type_=element.type, expanding=element.expanding)
        return None
    return visitors.replacement_traverse(stmt, {}, rename)


def make_sessionmaker(engine):
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine) -> None:
    """Bring the schema to the latest alembic revision."""
    from alembic import command
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(__file__), "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
