"""Reading user data files (CSV, JSONL, JSON) with errors that point at the row.

Real company exports are untidy. A file that cannot be read at all raises
:class:`~aigc_apps.errors.DataError`; individual bad rows are skipped, counted and reported
in :class:`ReadResult.skipped` so that a caller can decide whether the rest is usable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aigc_apps.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


@dataclass(frozen=True)
class Skip:
    """A row left out, with its 1-based line/row number and the reason."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


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


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: text is not valid UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def parse_rows(
    text: str, fmt: str, source: str = "<input>"
) -> tuple[list[tuple[int, Any]], list[Skip]]:
    """Split ``text`` into ``(row_number, row)`` pairs; undecodable rows become skips."""
    rows: list[tuple[int, Any]] = []
    skipped: list[Skip] = []
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
        if not reader.fieldnames:
            raise DataError(f"{source}: no header row")
        for row in reader:
            line = reader.line_num
            if None in row:  # more cells than header columns
                skipped.append(Skip(line, "more cells than header columns"))
                continue
            rows.append((line, {k: v for k, v in row.items() if k is not None}))
    elif fmt == "jsonl":
        for line_no, raw_line in enumerate(text.splitlines(), start=1):
            if not raw_line.strip():
                continue
            try:
                rows.append((line_no, json.loads(raw_line)))
            except json.JSONDecodeError as exc:
                skipped.append(Skip(line_no, f"invalid JSON ({exc.msg})"))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if not isinstance(data, list):
            raise DataError(f"{source}: expected a JSON list of records")
        rows = list(enumerate(data, start=1))
    return rows, skipped


def read_records(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    fmt: str | None = None,
) -> ReadResult:
    """Read a CSV/TSV/JSONL/JSON file into dicts.

    ``required`` columns must exist in the file (else :class:`DataError`, naming the column
    and the columns found) and be non-empty in each row (else that row is skipped).
    """
    path = Path(path)
    kind = detect_format(path, fmt)
    rows, skipped = parse_rows(_read_text(path), kind, str(path))
    result = ReadResult(path=path, skipped=skipped)
    if required and rows:
        if kind in ("csv", "tsv"):
            columns = set(rows[0][1].keys())
        else:
            columns = set().union(*(r.keys() for _, r in rows if isinstance(r, dict)))
        missing = [c for c in required if c not in columns]
        if missing:
            found = ", ".join(sorted(columns)) or "none"
            raise DataError(f"{path}: missing column {missing[0]!r} (found: {found})")
    for row_no, row in rows:
        if not isinstance(row, dict):
            result.skipped.append(Skip(row_no, "not a JSON object"))
            continue
        empty = [c for c in required if row.get(c) is None or str(row.get(c)).strip() == ""]
        if empty:
            result.skipped.append(Skip(row_no, f"empty {empty[0]!r}"))
            continue
        result.records.append(row)
    result.skipped.sort(key=lambda s: s.row)
    if not result.records:
        detail = f" ({result.skipped[0]})" if result.skipped else ""
        raise DataError(f"{path}: no usable rows{detail}")
    return result


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
