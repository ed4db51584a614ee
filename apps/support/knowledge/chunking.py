"""Split policy documents (Markdown, TXT, HTML) into overlapping chunks that keep their title.

Chunks follow paragraph boundaries where possible and overlap by a few words, so an answer
that straddles two chunks is still retrievable from either; each chunk records the nearest
heading so a cited source reads "Returns policy > Refunds" rather than a byte offset.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from aigc_apps.data import clean_text, read_file_bytes

DOC_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text, the document title and the section heading."""

    text: str
    title: str
    section: str
    position: int


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, headings turned into Markdown ``#`` lines."""

    BLOCKS: ClassVar[set[str]] = {
        "p",
        "div",
        "li",
        "br",
        "tr",
        "section",
        "article",
        "ul",
        "ol",
        "table",
    }
    SKIP: ClassVar[set[str]] = {"script", "style", "head"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        if tag == "title":
            self._in_title = False
        if re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self._skip:
            self.parts.append(data)


def read_document(path: Path) -> tuple[str, str]:
    """``(title, text)`` of a document file; HTML is reduced to its visible text.

    A file that is not text (an image or archive renamed ``.txt``) is a one-line
    :class:`~aigc_apps.errors.DataError`, not garbage chunks; any line ending works.
    """
    data = read_file_bytes(path)  # missing, unreadable, empty or binary: DataError
    raw = clean_text(data.decode("utf-8-sig", errors="replace"))
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    title = ""
    if path.suffix.lower() in (".html", ".htm"):
        parser = _HTMLText()
        parser.feed(raw)
        raw, title = html.unescape("".join(parser.parts)), parser.title
    if not title:
        match = re.search(r"^#\s+(.+)$", raw, flags=re.MULTILINE)
        title = match.group(1).strip() if match else path.stem.replace("_", " ").replace("-", " ")
    return title, raw


def chunk_text(text: str, title: str, max_words: int = 120, overlap: int = 25) -> list[Chunk]:
    """Pack paragraphs into chunks of at most ``max_words``, overlapping by ``overlap`` words."""
    if overlap >= max_words:
        raise ValueError("overlap must be smaller than max_words")
    section = title
    pieces: list[tuple[str, list[str]]] = []  # (section, words) per paragraph
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        heading = re.match(r"^(#{1,6})\s+(.+?)\s*#*$", para.splitlines()[0])
        if heading:
            section = heading.group(2).strip()
            para = "\n".join(para.splitlines()[1:]).strip()
            if not para:
                continue
        words = para.split()
        for start in range(0, len(words), max_words - overlap):  # split very long paragraphs
            pieces.append((section, words[start : start + max_words]))
            if start + max_words >= len(words):
                break
    chunks: list[Chunk] = []
    current: list[str] = []
    current_section = title
    for sec, words in pieces:
        if current and (len(current) + len(words) > max_words or sec != current_section):
            chunks.append(Chunk(" ".join(current), title, current_section, len(chunks)))
            tail = current[-overlap:] if sec == current_section else []
            current = tail[: max(0, max_words - len(words))]
        if not current:
            current_section = sec
        current = current + words
    if current:
        chunks.append(Chunk(" ".join(current), title, current_section, len(chunks)))
    return chunks
