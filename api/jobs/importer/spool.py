"""What an import has to remember of every row, kept on disk, not in memory: a private temporary SQLite
database (sqlite3 opens one for the file name "": on disk, deleted when closed; its page cache is the
only memory it takes). Natural keys seen (duplicates, with the file and row of the first), primary
contacts per channel, the customers and invoices the import holds (references), the rejected rows
and their first error, the customers whose rows were written (decided afterwards). A book of any size
costs the same memory: chunks of rows go in and out with executemany / IN (...) reads."""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable, Iterator

CACHE_KIB = 8 * 1024  # the spool's page cache: its whole memory
IN_CHUNK = 500  # ids per IN (...) read (under SQLite's 999 variables of old builds)

_SCHEMA = (
    # kind + natural key → where it was first seen (file number, row)
    "CREATE TABLE seen (kind TEXT NOT NULL, key TEXT NOT NULL, file INTEGER NOT NULL, row INTEGER NOT NULL, "
    "PRIMARY KEY (kind, key)) WITHOUT ROWID",
    "CREATE TABLE primaries (key TEXT PRIMARY KEY, file INTEGER NOT NULL, row INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE customers (id TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE invoices (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE rejected (file INTEGER NOT NULL, row INTEGER NOT NULL, error TEXT NOT NULL, "
    "PRIMARY KEY (file, row)) WITHOUT ROWID",
    "CREATE TABLE touched (id TEXT PRIMARY KEY) WITHOUT ROWID",
)


def key_text(key) -> str:
    """A natural key as one text: an id as it is, a contact's (customer, name) as a JSON array (unambiguous)."""
    return key if isinstance(key, str) else json.dumps(list(key), ensure_ascii=False)


class Spool:
    def __init__(self):
        self.db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{CACHE_KIB}", "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        for ddl in _SCHEMA:
            self.db.execute(ddl)
        # one transaction for the spool's life: autocommit would make every row of an executemany its own
        # commit (a write of its pages to the file each); nothing here needs to survive the import
        self.db.execute("BEGIN")
        self._files: dict[str, int] = {}  # file (or file[sheet]) name → number (a few)
        self._names: list[str] = []
        self.rejected_rows = 0

    def close(self) -> None:
        self.db.close()

    def file_number(self, name: str) -> int:
        n = self._files.get(name)
        if n is None:
            n = self._files[name] = len(self._names)
            self._names.append(name)
        return n

    def _in(self, sql: str, values: list, params: tuple = ()) -> Iterator[tuple]:
        """Rows of `sql` (one `{}` for the IN list) over `values` in chunks."""
        for i in range(0, len(values), IN_CHUNK):
            part = values[i : i + IN_CHUNK]
            yield from self.db.execute(sql.format(",".join("?" * len(part))), (*params, *part))

    # -------------------------------------------------------------------- first occurrences
    def first_seen(self, table: str, kind: str | None, keys: list[tuple[str, int, int]]) -> list:
        """For each (key text, file number, row), in order: None for a key's first occurrence (remembered from
        now on), else (file name, row) of the first (seen before, or earlier in `keys`)."""
        where, params = ("kind = ? AND key", (kind,)) if kind is not None else ("key", ())
        before = {
            k: (self._names[f], r)
            for k, f, r in self._in(
                f"SELECT key, file, row FROM {table} WHERE {where} IN ({{}})", list({k for k, _, _ in keys}), params
            )
        }
        new: dict = {}
        out = []
        for k, f, r in keys:
            first = before.get(k)
            if first is None:
                if k in new:
                    first = (self._names[new[k][0]], new[k][1])
                else:
                    new[k] = (f, r)
            out.append(first)
        if new:
            cols = ("kind, " if kind is not None else "") + "key, file, row"
            self.db.executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * (len(params) + 3))})",
                ((*params, k, f, r) for k, (f, r) in new.items()),
            )
        return out

    # -------------------------------------------------------------------- what the import holds
    def hold(self, customers: list[str], invoices: list[tuple[str, str]]) -> None:
        if customers:
            self.db.executemany("INSERT OR IGNORE INTO customers (id) VALUES (?)", ((c,) for c in customers))
        if invoices:
            self.db.executemany("INSERT OR REPLACE INTO invoices (id, customer_id) VALUES (?, ?)", invoices)

    def held_customers(self, ids: Iterable[str]) -> set[str]:
        return {r[0] for r in self._in("SELECT id FROM customers WHERE id IN ({})", list(ids))}

    def held_invoices(self, ids: Iterable[str]) -> dict[str, str]:
        return dict(self._in("SELECT id, customer_id FROM invoices WHERE id IN ({})", list(ids)))

    # -------------------------------------------------------------------- rejected rows
    def reject(self, file: str, row: int, error: str) -> None:
        """A row's first error is the one the rejected CSV gives."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO rejected (file, row, error) VALUES (?, ?, ?)", (self.file_number(file), row, error)
        )
        self.rejected_rows += cur.rowcount

    def rejected(self) -> Iterator[tuple[str, int, str]]:
        """(file, row, first error), file by file in the order they were first named, rows in order."""
        for f, r, e in self.db.execute("SELECT file, row, error FROM rejected ORDER BY file, row"):
            yield self._names[f], r, e

    # -------------------------------------------------------------------- customers to decide
    def touch(self, ids: Iterable[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO touched (id) VALUES (?)", ((i,) for i in ids))

    def touched_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM touched").fetchone()[0]

    def touched_ids(self, page: int = 1000) -> Iterator[str]:
        """The touched customers in id order (a str sort: SQLite's BINARY collation is UTF-8 byte order, which
        is code point order), read a page at a time by key (no cursor held open across pages)."""
        after = ""
        while True:
            ids = [
                r[0] for r in self.db.execute("SELECT id FROM touched WHERE id > ? ORDER BY id LIMIT ?", (after, page))
            ]
            yield from ids
            if len(ids) < page:
                return
            after = ids[-1]
