"""Atomic writes: a reader sees the old file or folder, or the new one, never half of one.

Everything the SDK and the apps save (adapters, merged models, converted models, indexes,
recommender models) goes through these two helpers, so a crash, a full disk or Ctrl-C
mid-save leaves the previous version in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aigc_apps.errors import AigcError


@contextmanager
def atomic_dir(
    out_dir: str | Path, *, replace: bool = True, mode: int | None = None
) -> Iterator[Path]:
    """Yield an empty folder beside ``out_dir`` that becomes ``out_dir`` if the block succeeds.

    ``replace=False`` keeps a folder that appeared meanwhile (a concurrent writer of the
    same content won the race) and discards this one; ``mode`` sets the folder's
    permissions (``mkdtemp`` makes it private). A failed write names the folder in an
    :class:`AigcError`; nothing is left behind.
    """
    out = Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as exc:
        raise AigcError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        if mode is not None:
            tmp.chmod(mode)
        yield tmp
        if out.exists() and not replace:
            return
        old = tmp.with_name(f"{tmp.name}.old")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise AigcError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that is renamed over it if the block succeeds.

    ``suffix`` keeps writers that append an extension (``numpy.savez``) writing where asked.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
        os.close(fd)
    except OSError as exc:
        raise AigcError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise AigcError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (text as UTF-8)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
