"""Line-by-line parsing of CSV, TSV and JSONL under :mod:`aigc_apps.data`'s one policy.

:class:`LineSplitter` cuts bytes that arrive in pieces (a pipe, a growing file) into lines
at ``\n``, ``\r\n`` or a bare ``\r``; :func:`split_lines` does the same for a whole file.

Each raw line is decoded on its own (bad bytes spoil their row only), and a CSV record is
complete unless it ends inside a quoted field, so a live stream and a file parse alike.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aigc_apps.errors import DataError


@dataclass(frozen=True)
class Skip:
    """A row left out, with its 1-based line/row number and the reason."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


# Largest CSV field or JSON line read; bounds memory on garbage input (one row, not the file).
MAX_FIELD_CHARS = 16 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")
# the csv module's own limit (128 KB) would drop long texts that apps truncate instead
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Row:
    """One parsed row and the line it starts on."""

    line: int
    data: dict[str, Any]


def sniff_format(first_line: str) -> str:
    """Guess ``jsonl`` or ``csv`` from a stream's first non-empty line."""
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (bytes that are not UTF-8, read as lone
    surrogates, or a JSON ``"\\ud800"`` escape), or None."""
    return "text is not valid UTF-8" if _SURROGATE.search(value) else None


def clean_text(value: str) -> str:
    """``value`` without NUL characters, which PostgreSQL cannot store and no text needs."""
    return value.replace("\x00", "") if "\x00" in value else value


def _open_quote(record: str, delimiter: str) -> bool:
    """Whether ``record`` ends inside a quoted CSV field (so the next line continues it).

    A quote opens a field only right after a delimiter or at the start; inside a quoted
    field ``""`` is a literal quote. This is what Python's ``csv`` module does.
    """
    inside, at_start, i = False, True, 0
    while i < len(record):
        ch = record[i]
        if inside:
            if ch == '"':
                if record[i + 1 : i + 2] == '"':
                    i += 1
                else:
                    inside = False
        elif ch == '"' and at_start:
            inside = True
        at_start = not inside and ch in (delimiter, "\n")
        i += 1
    return inside


class RowParser:
    """Feed raw byte lines (without their line ending); get :class:`Row` or :class:`Skip`.

    ``fmt`` is ``csv``, ``tsv``, ``jsonl`` or None to sniff it from the first non-empty line.
    ``required`` columns are checked on the header (a missing one is a :class:`DataError`)
    and on each row (an empty one is a skip).
    """

    def __init__(
        self, fmt: str | None = None, source: str = "<input>", required: Sequence[str] = ()
    ) -> None:
        if fmt not in (None, "csv", "tsv", "jsonl"):
            raise DataError(f"{source}: unknown format {fmt!r} (use csv, tsv or jsonl)")
        self.fmt = fmt
        self.source = source
        self.required = list(required)
        self.header: list[str] | None = None
        self.line_no = 0
        self._pending: list[str] = []
        self._pending_line = 0
        self._pending_chars = 0
        self._bad_pending: str | None = None

    def feed(self, raw: bytes) -> Iterator[Row | Skip]:
        self.line_no += 1
        line = raw.decode("utf-8-sig" if self.line_no == 1 else "utf-8", "surrogateescape")
        if self.fmt is None:
            if not line.strip():
                return
            self.fmt = sniff_format(line)
        if self.fmt == "jsonl":
            yield from self._json(line)
        else:
            yield from self._csv(line)

    def finish(self) -> Iterator[Skip]:
        """End of input: a CSV record still open (an unclosed quote) is one skip."""
        if self._pending:
            self._pending = []
            yield Skip(self._pending_line, "unterminated quoted CSV field at end of input")

    def _row(self, line: int, data: dict[str, Any]) -> Row | Skip:
        for key, value in data.items():
            if isinstance(key, str) and text_problem(key):
                return Skip(line, "a column name is not valid UTF-8")
            if isinstance(value, str) and text_problem(value):
                return Skip(line, f"{key!r} is not valid UTF-8")
        data = {
            clean_text(k) if isinstance(k, str) else k: clean_text(v) if isinstance(v, str) else v
            for k, v in data.items()
        }
        empty = [c for c in self.required if data.get(c) is None or str(data[c]).strip() == ""]
        if empty:
            return Skip(line, f"empty {empty[0]!r}")
        return Row(line, data)

    def _json(self, line: str) -> Iterator[Row | Skip]:
        if not line.strip():
            return
        if len(line) > MAX_FIELD_CHARS:
            yield Skip(self.line_no, f"line longer than {MAX_FIELD_CHARS >> 20}M characters")
            return
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skip(self.line_no, f"invalid JSON ({exc.msg})")
            return
        if not isinstance(obj, dict):
            yield Skip(self.line_no, "not a JSON object")
            return
        yield self._row(self.line_no, obj)

    def _csv(self, line: str) -> Iterator[Row | Skip]:
        if not self._pending:
            if not line.strip():
                return
            self._pending_line, self._pending_chars = self.line_no, 0
        self._pending.append(line)
        self._pending_chars += len(line)
        delimiter = "\t" if self.fmt == "tsv" else ","
        record = "\n".join(self._pending)
        if self._pending_chars <= MAX_FIELD_CHARS and _open_quote(record, delimiter):
            return  # a quoted field goes on to the next line
        self._pending = []
        if self._pending_chars > MAX_FIELD_CHARS:
            too_long = f"record longer than {MAX_FIELD_CHARS >> 20}M characters"
            yield Skip(self._pending_line, too_long)
            return
        try:
            cells = next(csv.reader([record], delimiter=delimiter))
        except (csv.Error, StopIteration) as exc:
            yield Skip(self._pending_line, f"malformed CSV ({exc})")
            return
        if self.header is None:
            self._set_header(cells)
            return
        if len(cells) > len(self.header):
            yield Skip(self._pending_line, "more cells than header columns")
            return
        yield self._row(self._pending_line, dict(zip(self.header, cells, strict=False)))

    def _set_header(self, cells: list[str]) -> None:
        header = [c.strip() for c in cells]
        if any(text_problem(c) for c in header):
            raise DataError(f"{self.source}: the header row is not valid UTF-8 text")
        missing = [c for c in self.required if c not in header]
        if missing:
            found = ", ".join(h for h in header if h) or "none"
            raise DataError(f"{self.source}: missing column {missing[0]!r} (found: {found})")
        self.header = header


def parse_lines(
    lines: Iterable[bytes],
    fmt: str | None = None,
    source: str = "<input>",
    required: Sequence[str] = (),
) -> Iterator[Row | Skip]:
    """Rows and skips of an iterable of raw lines (a file's, a pipe's)."""
    parser = RowParser(fmt, source, required)
    for raw in lines:
        yield from parser.feed(raw.rstrip(b"\r\n"))
    yield from parser.finish()


class LineSplitter:
    """Cuts bytes that arrive in pieces into lines (without their endings).

    A line is given out as soon as its ending arrives, so a live feed that ends its lines
    with a bare ``\\r`` is not held back; a ``\\r\\n`` split between two pieces is still one
    ending (the ``\\n`` that follows a ``\\r`` piece is dropped, not read as an empty line).
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the start of an unfinished line, never joined twice
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        if not chunk:
            return []
        *lines, rest = _LINE_END.split(chunk)
        if lines:
            lines[0] = b"".join([*self._pending, lines[0]])
            self._pending = []
        if rest:
            self._pending.append(rest)
        return lines

    def finish(self) -> list[bytes]:
        """The last line when the input did not end with a line ending."""
        rest = b"".join(self._pending)
        self._pending, self._after_cr = [], False
        return [rest] if rest else []


def split_lines(raw: bytes) -> list[bytes]:
    """Lines of a whole file, whatever its line endings (``\\n``, ``\\r\\n``, bare ``\\r``)."""
    lines = _LINE_END.split(raw)
    return lines[:-1] if lines and lines[-1] == b"" else lines


_MAGIC = (b"\x89PNG", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"\x7fELF", b"GIF8", b"\xff\xd8\xff")
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"


def looks_binary(raw: bytes) -> bool:
    """Whether a file is an image, archive, PDF or executable rather than text.

    Judged on the first 8 KB: a known file signature, or more than 5% control bytes. A
    stray NUL (removed), or a text saved as Latin-1 (its rows skipped and counted), is not a
    reason to refuse the whole file.
    """
    head = raw[:8192]
    if not head or head.startswith(_MAGIC):
        return bool(head)
    control = sum(head.count(bytes([b])) for b in _CONTROL)
    return control > 0.05 * len(head)
