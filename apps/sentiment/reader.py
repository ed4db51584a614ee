"""The sentiment feed's reading rules on top of the core's one reader.

Files and live streams go through :class:`aigc_apps.rowparser.RowParser` line by line, so
a bad line (not UTF-8, a NUL, broken JSON, a stray quote) is one counted skip and never
costs the rest of the feed. What is particular to this app is only how long a text may be.
"""

from __future__ import annotations

from aigc_apps.rowparser import Row, RowParser, parse_lines, sniff_format

# A text over this many characters is cut (and flagged); longer inputs are almost always
# pasted documents or garbage and would only slow scoring (the model reads ~128 tokens).
MAX_TEXT_CHARS = 20_000

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# 0.1.0 names of the core's parser and row, kept for code that imported them from here.
LineParser = RowParser
RawRow = Row

__all__ = [
    "EXTENSIONS",
    "MAX_TEXT_CHARS",
    "LineParser",
    "RawRow",
    "Row",
    "RowParser",
    "parse_lines",
    "sniff_format",
]
