"""The sentiment feed's reading rules on top of the core's one reader.

Files and live streams go through :class:`aigc_apps.rowparser.RowParser` line by line, so
a bad line (not UTF-8, a NUL, broken JSON, a stray quote) is one counted skip and never
costs the rest of the feed. What is particular to this app: feeds are read in pieces as
they arrive (files, pipes, files that grow; the core's :class:`LineSplitter` cuts them into
lines at every line ending), and how long a text may be.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from aigc_apps.errors import DataError
from aigc_apps.rowparser import (
    LineSplitter,
    Row,
    RowParser,
    looks_binary,
    parse_lines,
    sniff_format,
)

# A text over this many characters is cut (and flagged); longer inputs are almost always
# pasted documents or garbage and would only slow scoring (the model reads ~128 tokens).
MAX_TEXT_CHARS = 20_000

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CHUNK_BYTES = 1 << 16

# 0.1.0 names of the core's parser and row, kept for code that imported them from here.
LineParser = RowParser
RawRow = Row

__all__ = [
    "EXTENSIONS",
    "MAX_TEXT_CHARS",
    "LineParser",
    "LineSplitter",
    "RawRow",
    "Row",
    "RowParser",
    "parse_lines",
    "sniff_format",
    "stream_lines",
    "tail_file",
    "tail_stream",
]


def _reader(handle: IO[bytes]) -> Iterator[bytes]:
    """Pieces of ``handle`` as they come (``read1`` does not wait for a full buffer)."""
    read = getattr(handle, "read1", None) or handle.read
    while chunk := read(CHUNK_BYTES):
        yield chunk


def stream_lines(handle: IO[bytes], source: str) -> Iterator[bytes]:
    """Every line of a file or pipe read to its end; a binary input is a :class:`DataError`
    (judged on its first piece, as :func:`aigc_apps.data.read_file_bytes` judges a file)."""
    splitter = LineSplitter()
    first = True
    for chunk in _reader(handle):
        if first and looks_binary(chunk):
            raise DataError(f"{source}: looks like a binary file, not text")
        first = False
        yield from splitter.feed(chunk)
    yield from splitter.finish()


def tail_file(
    path: Path, stop: threading.Event, poll: float, idle_timeout: float | None, from_start: bool
) -> Iterator[bytes | None]:
    """Complete lines appended to ``path``; ``None`` whenever the file has nothing new."""
    while not path.exists():
        if stop.wait(poll):
            return
    handle = open(path, "rb")  # noqa: SIM115 - reopened on rotation below
    try:
        if not from_start:
            handle.seek(0, os.SEEK_END)
        splitter = LineSplitter()
        last_data = time.monotonic()
        while True:
            stopping = stop.is_set()
            chunk = handle.read(CHUNK_BYTES)
            if chunk:
                last_data = time.monotonic()
                yield from splitter.feed(chunk)
                continue
            try:
                rotated = path.stat().st_ino != os.fstat(handle.fileno()).st_ino or (
                    path.stat().st_size < handle.tell()
                )
            except FileNotFoundError:
                rotated = False
            if rotated:  # truncated or replaced: start over on the new file
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115
                splitter = LineSplitter()
                continue
            idle = idle_timeout is not None and time.monotonic() - last_data >= idle_timeout
            if stopping or idle:
                yield from splitter.finish()  # last line without a line ending
                return
            yield None
            stop.wait(poll)
    finally:
        handle.close()


def tail_stream(
    stream: IO[bytes], stop: threading.Event, poll: float, idle_timeout: float | None
) -> Iterator[bytes | None]:
    """Lines of a blocking stream via a reader thread, with ``None`` on quiet periods."""
    lines: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)

    def pump() -> None:
        splitter = LineSplitter()
        for chunk in _reader(stream):
            for line in splitter.feed(chunk):
                lines.put(line)
        for line in splitter.finish():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    last_data = time.monotonic()
    while not stop.is_set():
        try:
            item = lines.get(timeout=poll)
        except queue.Empty:
            if idle_timeout is not None and time.monotonic() - last_data >= idle_timeout:
                return
            yield None
            continue
        if item is None:
            return
        last_data = time.monotonic()
        yield item
