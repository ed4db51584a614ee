"""Vector stores: one API over FAISS (files under ``AIGC_HOME``, one index per process) and
pgvector (a table in the app's PostgreSQL database, shared by every worker and machine).

``AIGC_VECTOR_BACKEND`` picks the backend for the apps (:func:`open_vector_store`): ``faiss``
by default, ``pgvector`` when the app's database is PostgreSQL with the ``vector`` extension.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .base import FILTER_COLUMNS, PgVectorMissingError, VectorStore
from .faiss_store import FaissStore
from .pg_store import PgVectorStore

if TYPE_CHECKING:
    from aigc_apps.settings import Settings
    from aigc_apps.store import Database

__all__ = [
    "FILTER_COLUMNS",
    "FaissStore",
    "PgVectorMissingError",
    "PgVectorStore",
    "VectorStore",
    "open_vector_store",
]

# The apps search exactly below this many vectors on both backends (VectorIndex's default).
APPROX_THRESHOLD = 20000


def open_vector_store(
    db: Database,
    collection: str,
    dim: int,
    backend: str | None = None,
    *,
    path: str | Path | None = None,
    tag: str | None = None,
    approx_threshold: int = APPROX_THRESHOLD,
    replace: bool = False,
    settings: Settings | None = None,
) -> VectorStore:
    """The store for ``collection`` of ``db``'s app on ``settings``' backend (default: the
    environment's settings).

    FAISS keeps it in ``path`` (default ``<AIGC_HOME>/indexes/vectors/<db>/<collection>.faiss``);
    pgvector in the table ``aigc_vec_<collection>`` of ``db``. ``replace``: the caller
    rebuilds the collection (see the stores).
    """
    from aigc_apps.settings import get_settings

    settings = settings or get_settings()
    backend = settings.check_vector_backend(db.url, backend)
    if backend == "pgvector":
        return PgVectorStore(
            db, collection, dim, approx_threshold=approx_threshold, tag=tag, replace=replace
        )
    if path is None:
        key = hashlib.sha256(db.url.encode()).hexdigest()[:12]
        path = settings.indexes_dir / "vectors" / key / f"{collection}.faiss"
    return FaissStore(dim, path, approx_threshold=approx_threshold, tag=tag, replace=replace)
