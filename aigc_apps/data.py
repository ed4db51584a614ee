"""Reading user data (CSV, TSV, JSONL, JSON files and streams) with one policy for every app.

Real company exports are untidy. A file that cannot be read at all (missing, a folder,
empty, binary, no header, a required column absent) raises
:class:`~aigc_apps.errors.DataError`; a bad row is skipped, counted and reported in
:class:`ReadResult.skipped` with its line number, and never takes other rows with it:

- bytes that are not UTF-8 or a lone surrogate spoil only their row (skipped); NUL
  characters, which PostgreSQL cannot store, are removed;
- lines may end in ``\n``, ``\r\n`` or a bare ``\r``;
- a CSV quote opens a quoted field only at the start of a field (``5" display`` is text),
  and quoted fields may span lines;
- a field may be as long as :data:`MAX_FIELD_CHARS`; apps truncate long texts themselves.

:class:`RowParser` applies this line by line, so a live stream (``--follow``) and a file
are read alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aigc_apps.errors import DataError
from aigc_apps.rowparser import (
    MAX_FIELD_CHARS,
    Row,
    RowParser,
    Skip,
    clean_text,
    looks_binary,
    parse_lines,
    sniff_format,
    split_lines,
    text_problem,
)

__all__ = [
    "MAX_FIELD_CHARS",
    "ReadResult",
    "Row",
    "RowParser",
    "Skip",
    "check_records",
    "clean_text",
    "content_hash",
    "detect_format",
    "file_hash",
    "looks_binary",
    "parse_lines",
    "parse_rows",
    "parse_timestamp",
    "read_file_bytes",
    "read_records",
    "sniff_format",
    "split_lines",
    "text_problem",
]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


@dataclass
class ReadResult:
    """Rows that passed validation plus the ones that were skipped."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.path}: {len(self.records)} rows read"
        if self.skipped:
            shown = "; ".join(str(s) for s in self.skipped[:3])
            more = f" (+{len(self.skipped) - 3} more)" if len(self.skipped) > 3 else ""
            text += f", {len(self.skipped)} skipped ({shown}{more})"
        return text


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in set(FORMATS.values()):
            raise DataError(f"{path}: unknown format {fmt!r} (use csv, tsv, jsonl or json)")
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"{path}: unknown format {path.suffix or '(no extension)'!r} "
            "(expected .csv, .tsv, .jsonl or .json)"
        )
    return found


def read_file_bytes(path: str | Path) -> bytes:
    """A data file's bytes, or a one-line :class:`DataError` (missing, a folder, unreadable,
    empty, binary). Feed them to :func:`parse_rows` to keep each row's line number."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    if looks_binary(raw):
        raise DataError(f"{path}: looks like a binary file, not text")
    return raw


def _read_json_document(raw: bytes, source: str) -> list[tuple[int, Any]]:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{source}: line {line}: text is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [data])
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a JSON list of records")
    return list(enumerate(data, start=1))


def check_records(
    records: Sequence[Any],
    required: Sequence[str] = (),
    source: str = "<records>",
    *,
    lines: Sequence[tuple[int, Any]] | None = None,
) -> ReadResult:
    """The row checks of :func:`read_records`, for records already in memory.

    ``lines`` gives each record's line number in its file (default: its position).
    """
    result = ReadResult(path=Path(source))
    dicts = [r for r in records if isinstance(r, dict)]
    columns = set().union(*(r.keys() for r in dicts)) if dicts else set()
    missing = [c for c in required if c not in columns]
    if dicts and missing:
        found = ", ".join(sorted(columns)) or "none"
        raise DataError(f"{source}: missing column {missing[0]!r} (found: {found})")
    checker = RowParser("jsonl", source, required)
    numbers = [n for n, _ in lines] if lines is not None else range(1, len(records) + 1)
    for row_no, row in zip(numbers, records, strict=True):
        if not isinstance(row, dict):
            result.skipped.append(Skip(row_no, "not a JSON object"))
            continue
        checked = checker._row(row_no, row)
        if isinstance(checked, Skip):
            result.skipped.append(checked)
        else:
            result.records.append(row)
    if not result.records:
        detail = f" ({result.skipped[0]})" if result.skipped else ""
        raise DataError(f"{source}: no usable rows{detail}")
    return result


def read_records(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    fmt: str | None = None,
) -> ReadResult:
    """Read a CSV/TSV/JSONL/JSON file into dicts under the module's one policy.

    ``required`` columns must exist in the file (else :class:`DataError`, naming the column
    and the columns found) and be non-empty in each row (else that row is skipped). A file
    with no usable row is a :class:`DataError`.
    """
    path = Path(path)
    kind = detect_format(path, fmt)
    raw = read_file_bytes(path)
    if kind == "json":
        rows = _read_json_document(raw, str(path))
        result = check_records([r for _, r in rows], required, str(path), lines=rows)
        result.path = path
        return result
    if kind == "jsonl":  # columns vary by row: check them over the whole file
        rows, skipped = parse_rows(raw, kind, str(path))
        result = check_records([r for _, r in rows], required, str(path), lines=rows)
        result.skipped = sorted(skipped + result.skipped, key=lambda s: s.row)
        result.path = path
        return result
    result = ReadResult(path=path)
    for item in parse_lines(split_lines(raw), kind, str(path), required):
        if isinstance(item, Row):
            result.records.append(item.data)
        else:
            result.skipped.append(item)
    if not result.records:
        detail = f" ({result.skipped[0]})" if result.skipped else ""
        raise DataError(f"{path}: no usable rows{detail}")
    return result


def parse_rows(
    text: str | bytes, fmt: str, source: str = "<input>"
) -> tuple[list[tuple[int, Any]], list[Skip]]:
    """``(line, row)`` pairs and skips of a whole text, with no column checks."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    if fmt == "json":
        return _read_json_document(raw, source), []
    rows: list[tuple[int, Any]] = []
    skipped: list[Skip] = []
    for item in parse_lines(split_lines(raw), fmt, source):
        if isinstance(item, Row):
            rows.append((item.line, item.data))
        else:
            skipped.append(item)
    return rows, skipped


def content_hash(parts: Iterable[str | bytes]) -> str:
    """Stable SHA-256 of several strings, used for idempotent ingest and data provenance."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_timestamp(value: object) -> datetime:
    """A timezone-aware time from epoch seconds, epoch milliseconds or ISO 8601.

    Exports mix all three; naive ISO times are taken as UTC and an explicit offset is kept.
    Raises ``ValueError`` (or ``OverflowError``/``OSError`` for absurd numbers) otherwise.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"timestamp {text[:40]!r} is neither epoch seconds nor ISO 8601"
                ) from None
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    if number != number or number < 0:
        raise ValueError(f"timestamp {value!r} is not a valid time")
    if number > 1e11:  # milliseconds
        number /= 1000.0
    return datetime.fromtimestamp(number, tz=timezone.utc)
