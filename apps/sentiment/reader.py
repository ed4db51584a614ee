"""Line-oriented CSV/JSONL parsing that survives bad lines, for files and live streams.

Each raw line is decoded on its own, so one non-UTF-8 line is a counted skip instead of a
failed file; CSV records whose quoted fields span lines are reassembled before parsing. The
same :class:`LineParser` serves batch reads and ``--follow`` tails.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aigc_apps.data import Skip
from aigc_apps.errors import DataError

# A text over this many characters is cut (and flagged); longer inputs are almost always
# pasted documents or garbage and would only slow scoring (the model reads ~128 tokens).
MAX_TEXT_CHARS = 20_000
# A single line larger than this is dropped before JSON/CSV parsing, to bound memory.
MAX_LINE_BYTES = 4 << 20

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class RawRow:
    line: int
    data: dict[str, Any]


def sniff_format(first_line: str) -> str:
    """Guess ``jsonl`` or ``csv`` from a stream's first non-empty line."""
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


class LineParser:
    """Feed raw byte lines (without the newline); get rows or skips back.

    ``fmt`` may be ``None`` to sniff it from the first non-empty line.
    """

    def __init__(self, fmt: str | None = None, source: str = "<input>") -> None:
        if fmt not in (None, "csv", "tsv", "jsonl"):
            raise DataError(f"{source}: unknown format {fmt!r} for ingest (use csv, tsv or jsonl)")
        self.fmt = fmt
        self.source = source
        self.header: list[str] | None = None
        self._pending: list[str] = []
        self._pending_line = 0
        self.line_no = 0

    def feed(self, raw: bytes) -> Iterator[RawRow | Skip]:
        self.line_no += 1
        if len(raw) > MAX_LINE_BYTES:
            yield Skip(self.line_no, f"line longer than {MAX_LINE_BYTES >> 20} MB")
            return
        try:
            line = raw.decode("utf-8-sig" if self.line_no == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self._pending = []  # a broken line also ends any CSV record it was part of
            yield Skip(self.line_no, "text is not valid UTF-8")
            return
        if self.fmt is None:
            if not line.strip():
                return
            self.fmt = sniff_format(line)
        if self.fmt == "jsonl":
            yield from self._json(line)
        else:
            yield from self._csv(line)

    def _json(self, line: str) -> Iterator[RawRow | Skip]:
        if not line.strip():
            return
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skip(self.line_no, f"invalid JSON ({exc.msg})")
            return
        if not isinstance(obj, dict):
            yield Skip(self.line_no, "not a JSON object")
            return
        yield RawRow(self.line_no, obj)

    def _csv(self, line: str) -> Iterator[RawRow | Skip]:
        if not self._pending:
            if not line.strip():
                return
            self._pending_line = self.line_no
        self._pending.append(line)
        joined = "\n".join(self._pending)
        if joined.count('"') % 2:  # inside a quoted field: wait for the closing quote
            return
        self._pending = []
        delimiter = "\t" if self.fmt == "tsv" else ","
        try:
            cells = next(csv.reader([joined], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration) as exc:
            yield Skip(self._pending_line, f"malformed CSV ({exc})")
            return
        if self.header is None:
            self.header = [c.strip() for c in cells]
            return
        if len(cells) > len(self.header):
            yield Skip(self._pending_line, "more cells than header columns")
            return
        yield RawRow(self._pending_line, dict(zip(self.header, cells, strict=False)))

    def finish(self) -> Iterator[Skip]:
        """End of input: a CSV record still open (unclosed quote) is reported."""
        if self._pending:
            self._pending = []
            yield Skip(self._pending_line, "unterminated quoted CSV field at end of input")


def parse_lines(lines: Iterable[bytes], fmt: str | None = None, source: str = "<input>"
                ) -> Iterator[RawRow | Skip]:
    parser = LineParser(fmt, source)
    for raw in lines:
        yield from parser.feed(raw.rstrip(b"\n"))
    yield from parser.finish()
