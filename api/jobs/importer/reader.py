"""Reading import files as tables of cells, streamed: CSV (UTF-8 with or without BOM, GB18030
detected or chosen) and XLSX (one sheet per kind). A table yields (row number, cells)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import zipfile
from typing import Iterator, NamedTuple

from .columns import kind_of_name

SNIFF_BYTES = 1 << 20  # read to tell UTF-8 from GB18030
HASH_BLOCK = 1 << 20  # read at a time for the file's sha256
ENCODINGS = ("utf-8", "gb18030")


class ImportFileError(Exception):
    def __init__(self, file: str, row: int, column: int, code: str, message: str):
        super().__init__(f"{file}:{row}:{column}: {code}: {message}")
        self.file, self.row, self.column, self.code, self.message = file, row, column, code, message


class Table(NamedTuple):
    file: str  # what errors name: the file, or file[sheet] for a workbook
    kind: str | None
    open_rows: object  # () -> iterator of (row number, [cell, ...]); the header is row 1


class Source(NamedTuple):
    """One uploaded or named file: its name (which says its kind, or the sheets do) and its bytes' opener."""

    name: str
    open: object  # () -> binary file object
    encoding: str | None = None  # None: detect (UTF-8, else GB18030)
    kind: str | None = None  # None: from the name


def file_sha256(source: Source) -> str:
    h = hashlib.sha256()
    with source.open() as fh:
        for block in iter(lambda: fh.read(HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def tables(source: Source) -> list[Table]:
    if source.name.lower().endswith((".xlsx", ".xlsm")):
        return _workbook_tables(source)
    kind = source.kind or kind_of_name(source.name)
    encoding = source.encoding or _detect_encoding(source)
    return [Table(source.name, kind, lambda: _csv_rows(source, encoding))]


def _detect_encoding(source: Source) -> str:
    with source.open() as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(source.name, 1, 1, "E_ENCODING", "the file is UTF-16; save it as UTF-8 or GB18030 CSV")
    if b"\x00" in head:
        raise ImportFileError(
            source.name,
            head[: head.index(b"\x00")].count(b"\n") + 1,
            1,
            "E_ENCODING",
            "the file holds NUL bytes: it is not a CSV text file",
        )
    for encoding in ENCODINGS:
        try:
            # a multi-byte character cut at the end of the sample is not an error
            codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < SNIFF_BYTES)
            return encoding
        except UnicodeDecodeError:
            continue
    raise ImportFileError(source.name, 1, 1, "E_ENCODING", "the file is neither UTF-8 nor GB18030")


def _csv_rows(source: Source, encoding: str) -> Iterator[tuple[int, list]]:
    with source.open() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
        reader = csv.reader(text)
        try:
            for cells in reader:
                yield reader.line_num, cells
        except UnicodeDecodeError:
            raise ImportFileError(
                source.name, reader.line_num + 1, 1, "E_ENCODING", f"a byte sequence that is not {encoding}"
            ) from None
        except csv.Error as exc:
            raise ImportFileError(source.name, reader.line_num, 1, "E_CSV", str(exc)) from None


def _open_workbook(source: Source, fh):
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # read_only: rows are parsed from the zip as iterated; the file object is read, not copied into memory
        return openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ImportFileError(source.name, 1, 1, "E_XLSX", f"not a readable XLSX workbook: {exc}") from None


def _workbook_tables(source: Source) -> list[Table]:
    with source.open() as fh:
        book = _open_workbook(source, fh)
        titles = [sheet.title for sheet in book.worksheets]
        book.close()
    out = []
    for title in titles:
        kind = kind_of_name(title)
        if kind is None and len(titles) > 1:
            continue  # a notes or instructions sheet
        out.append(
            Table(f"{source.name}[{title}]", kind or source.kind, lambda title=title: _sheet_rows(source, title))
        )
    return out


def _sheet_rows(source: Source, title: str) -> Iterator[tuple[int, list]]:
    """One sheet's rows, the workbook opened for them and closed after (nothing of it held between tables)."""
    with source.open() as fh:
        book = _open_workbook(source, fh)
        try:
            for n, row in enumerate(book[title].iter_rows(values_only=True), 1):
                yield n, [_cell(v) for v in row]
        finally:
            book.close()


def _cell(value):
    """A spreadsheet cell as import text: dates as ISO, numbers as the digits typed (shortest repr)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)
