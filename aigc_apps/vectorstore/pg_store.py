"""Vectors in PostgreSQL with pgvector: one index that every API worker and machine shares.

One table per collection (``aigc_vec_<collection>``): ``vector(dim)`` is a typed column, so
each collection may use its own encoder dimension, its HNSW index holds only its own rows
(a filter on a shared table would cut into HNSW's candidate list and lose results), and
dropping a collection for a rebuild is one statement. Filter columns (app, kind, source)
are plain text columns used in SQL ``WHERE``.

Writes given a ``session`` join the caller's transaction: the embeddings change, or not,
together with the rows they describe. Collections below ``approx_threshold`` vectors are
searched exactly (a sequential scan), like :class:`~aigc_apps.index.VectorIndex`, so small
knowledge bases give the same results on either backend; larger ones use the HNSW index
(cosine distance, ``SET LOCAL hnsw.ef_search``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from aigc_apps.errors import AigcError, DataError

from .base import (
    FILTER_COLUMNS,
    PgVectorMissingError,
    check_collection,
    check_filters,
    check_ids,
    check_k,
    check_pairs,
    check_vectors,
)

if TYPE_CHECKING:
    from aigc_apps.store import Database

TABLE_PREFIX = "aigc_vec_"
BULK_ROWS = 10000  # a load this large into an empty table builds the HNSW graph afterwards
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)


def vector_literal(vec: np.ndarray) -> str:
    """pgvector's text form; float32 values print exactly (shortest round trip)."""
    return "[" + ",".join(repr(float(v)) for v in vec.tolist()) + "]"


def _first_line(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", None) or exc).strip()
    return msg.splitlines()[0] if msg else type(exc).__name__


def ensure_extension(db: Database) -> None:
    """``CREATE EXTENSION IF NOT EXISTS vector``; :class:`PgVectorMissingError` if the server
    has no pgvector or this user may not create it."""
    if db.engine.dialect.name != "postgresql":
        raise AigcError(
            f"the pgvector backend needs a PostgreSQL database, not {db.engine.dialect.name} "
            "(set AIGC_VECTOR_BACKEND=faiss)"
        )
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        return
    except DBAPIError as exc:
        reason = _first_line(exc)
    with db.engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first():
            return  # another worker created it at the same moment
        available = conn.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        ).first()
        major = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    if available:
        raise PgVectorMissingError(
            f"pgvector is installed on the server but this database has no vector extension "
            f"and this user cannot create it ({reason}): have an administrator run "
            "CREATE EXTENSION vector"
        )
    raise PgVectorMissingError(
        f"CREATE EXTENSION vector needs pgvector on the server: apt install "
        f"postgresql-{major}-pgvector, or a managed PostgreSQL with pgvector ({reason})"
    )


class PgVectorStore:
    """A collection of vectors in one PostgreSQL table with an HNSW (cosine) index.

    ``tag`` (e.g. ``"minilm-l6|384"``) records which encoder made the vectors; opening the
    collection with another tag or ``dim`` is a :class:`DataError` (see :meth:`drop`).
    ``approx_threshold``: from this many vectors on, search uses HNSW; 0 always does.
    ``replace=True``: the caller rebuilds the collection, so a table built for another
    encoder or dimension is dropped and created again instead of raising (one for the same
    encoder is kept, for the caller to clear and refill in one transaction). ``created``:
    whether this call created the table.
    """

    def __init__(
        self,
        db: Database,
        collection: str,
        dim: int,
        *,
        ef_search: int = 64,
        hnsw_m: int = 16,
        ef_construction: int = 64,
        approx_threshold: int = 0,
        tag: str | None = None,
        replace: bool = False,
    ) -> None:
        if dim <= 0 or dim > 2000:
            raise DataError(f"dim must be between 1 and 2000 for an HNSW index, got {dim}")
        self.db = db
        self.collection = check_collection(collection)
        self.table = TABLE_PREFIX + collection
        self.dim = int(dim)
        self.ef_search = int(ef_search)
        self.hnsw_m = int(hnsw_m)
        self.ef_construction = int(ef_construction)
        self.approx_threshold = int(approx_threshold)
        self.tag = tag
        ensure_extension(db)
        self.created = False
        try:
            self._ensure_table()
        except DataError:
            if not replace:
                raise
            self.drop()
            self._ensure_table()

    def __repr__(self) -> str:
        return f"PgVectorStore({self.table!r}, dim={self.dim})"

    # -- schema -------------------------------------------------------------------------
    def _stored_shape(self, s: Session) -> tuple[int, str | None] | None:
        row = s.execute(
            text(
                "SELECT a.atttypmod, obj_description(c.oid, 'pg_class') FROM pg_class c "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding' "
                "WHERE c.oid = to_regclass(:t)"
            ),
            {"t": self.table},
        ).first()
        return None if row is None else (int(row[0]), row[1])

    def _ensure_table(self) -> None:
        """Create the table and its indexes if absent; check an existing one's dim and tag."""
        t = self.table
        with self.db.session() as s:
            # concurrent workers opening the same collection create it once
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": t})
            shape = self._stored_shape(s)
            if shape is None:
                cols = ", ".join(f"{c} text" for c in FILTER_COLUMNS)
                s.execute(
                    text(
                        f"CREATE TABLE {t} (id bigint PRIMARY KEY, "
                        f"embedding vector({self.dim}) NOT NULL, {cols})"
                    )
                )
                if self.tag is not None:
                    s.execute(text(f"COMMENT ON TABLE {t} IS {_quote(self.tag)}"))
                self._index_filters(s)
                self._create_hnsw(s)
                self.created = True
                return
            self._index_filters(s)
        stored_dim, stored_tag = shape
        if stored_dim != self.dim:
            raise DataError(
                f"vector table {t} holds {stored_dim}-dimensional vectors (built by "
                f"{stored_tag or 'another encoder'}), expected {self.dim}: rebuild it "
                "(PgVectorStore.drop) for the new encoder"
            )
        if self.tag is not None and stored_tag is not None and stored_tag != self.tag:
            raise DataError(
                f"vector table {t} was built by encoder {stored_tag}, not {self.tag}: rebuild "
                "it (PgVectorStore.drop) for the new encoder"
            )

    def _index_filters(self, s: Session) -> None:
        """A btree index per filter column (what a filtered exact re-run in :meth:`search`
        reads), added to tables made before they existed."""
        defs = s.scalars(text("SELECT indexdef FROM pg_indexes WHERE tablename = :t "
                              "AND schemaname = current_schema()"), {"t": self.table}).all()
        for c in FILTER_COLUMNS:
            if not any(d.endswith(f"btree ({c})") for d in defs):
                s.execute(text(f"CREATE INDEX {self.table[:50]}_{c} ON {self.table} ({c})"))

    def _create_hnsw(self, s: Session) -> None:
        s.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {self.table}_hnsw ON {self.table} USING hnsw "
                f"(embedding vector_cosine_ops) WITH (m = {self.hnsw_m}, "
                f"ef_construction = {self.ef_construction})"
            )
        )

    def drop(self) -> None:
        """Drop the collection's table (all its vectors), e.g. before another encoder rebuilds
        it; the store is unusable until constructed again."""
        with self.db.session() as s:
            s.execute(text(f"DROP TABLE IF EXISTS {self.table}"))

    def retag(self, tag: str | None, *, session: Session | None = None) -> None:
        """Record which encoder made the vectors (after a rebuild)."""
        self.tag = tag
        with self._session(session) as s:
            s.execute(text(f"COMMENT ON TABLE {self.table} IS {_quote(tag)}"))

    @contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.db.session() as s:
                yield s

    # -- mutation -----------------------------------------------------------------------
    def add(
        self,
        ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        *,
        session: Session | None = None,
        **filters: str,
    ) -> None:
        """Insert or replace ``ids`` (in ``session``'s transaction when given)."""
        id_arr, vecs = check_pairs(ids, vectors, self.dim)
        values = check_filters(filters)
        if not len(id_arr):
            return
        with self._session(session) as s:
            bulk = len(id_arr) >= BULK_ROWS and self._count(s, 1) == 0
            if bulk:  # building the graph once after the load is much faster than row by row
                s.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
                s.execute(text(f"DROP INDEX IF EXISTS {self.table}_hnsw"))
            s.execute(
                text(
                    "CREATE TEMP TABLE IF NOT EXISTS aigc_vec_load "
                    "(id bigint, embedding vector) ON COMMIT DROP"
                )
            )
            s.execute(text("TRUNCATE aigc_vec_load"))
            self._load(s, id_arr, vecs)
            cols = ", ".join(FILTER_COLUMNS)
            params = ", ".join(f":{c}" for c in FILTER_COLUMNS)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ("embedding", *FILTER_COLUMNS))
            s.execute(
                text(
                    f"INSERT INTO {self.table} (id, embedding, {cols}) "
                    f"SELECT id, embedding, {params} FROM aigc_vec_load "
                    f"ON CONFLICT (id) DO UPDATE SET {updates}"
                ),
                {c: values.get(c) for c in FILTER_COLUMNS},
            )
            s.execute(text("DROP TABLE aigc_vec_load"))
            if bulk:
                self._create_hnsw(s)
                s.execute(text(f"ANALYZE {self.table}"))  # the planner's view of the load

    def _load(self, s: Session, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Fill the temporary load table: binary COPY on psycopg 3, INSERTs otherwise."""
        raw: Any = s.connection().connection.driver_connection
        if type(raw).__module__.startswith("psycopg.") and hasattr(raw, "cursor"):
            row = np.dtype(
                [
                    ("nf", ">i2"),
                    ("l1", ">i4"),
                    ("id", ">i8"),
                    ("l2", ">i4"),
                    ("dim", ">i2"),
                    ("unused", ">i2"),
                    ("vec", ">f4", (self.dim,)),
                ]
            )
            buf = np.zeros(len(ids), dtype=row)
            buf["nf"], buf["l1"], buf["id"] = 2, 8, ids
            buf["l2"], buf["dim"], buf["vec"] = 4 + 4 * self.dim, self.dim, vecs
            with (
                raw.cursor() as cur,
                cur.copy("COPY aigc_vec_load (id, embedding) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(_COPY_HEADER + buf.tobytes() + struct.pack(">h", -1))
            return
        s.execute(
            text("INSERT INTO aigc_vec_load (id, embedding) VALUES (:id, CAST(:v AS vector))"),
            [{"id": int(i), "v": vector_literal(v)} for i, v in zip(ids, vecs, strict=True)],
        )

    def remove(self, ids: Sequence[int] | np.ndarray, *, session: Session | None = None) -> int:
        id_arr = check_ids(ids)
        if not len(id_arr):
            return 0
        with self._session(session) as s:
            result = s.execute(
                text(f"DELETE FROM {self.table} WHERE id = ANY(:ids)"),
                {"ids": [int(i) for i in np.unique(id_arr)]},
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def clear(self, *, session: Session | None = None) -> None:
        with self._session(session) as s:
            s.execute(text(f"DELETE FROM {self.table}"))

    def flush(self) -> None:
        """Nothing to do: every write is committed with its transaction."""

    # -- queries ------------------------------------------------------------------------
    def _count(self, s: Session, limit: int | None = None) -> int:
        if limit is None:
            return int(s.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one())
        return int(
            s.execute(
                text(f"SELECT count(*) FROM (SELECT 1 FROM {self.table} LIMIT :n) s"),
                {"n": limit},
            ).scalar_one()
        )

    def search(
        self, queries: np.ndarray, k: int, *, where: Mapping[str, str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors per query by cosine similarity, best first.

        Returns ``(scores, ids)`` shaped ``[n, k]``; missing results have id -1 and score
        ``-inf``. ``where`` filters on the filter columns in SQL. HNSW filters only the
        candidates its graph search finds (``ef_search`` of them), so a rare value can come
        back short; such a query is run again exactly, on the rows that match the filter
        (through the filter columns' indexes), so a filtered search returns ``k`` whenever
        ``k`` rows match.
        """
        k = check_k(k)
        q = check_vectors(queries, self.dim, "queries")
        conds = check_filters(where)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        if not len(q):
            return scores, ids
        clause = " AND ".join(f"{c} = :f_{c}" for c in conds)
        distance = "(embedding <=> CAST(:q AS vector))"
        head = (f"SELECT id, 1 - {distance} FROM {self.table} "
                f"{'WHERE ' + clause if clause else ''} ORDER BY {distance}")
        sql = text(f"{head} LIMIT :k")
        exact_sql = text(f"{head} + 0 LIMIT :k")  # an order the HNSW index cannot serve
        params: dict[str, Any] = {f"f_{c}": v for c, v in conds.items()}
        with self.db.session() as s:
            exact = self.approx_threshold > 0 and (
                self._count(s, self.approx_threshold) < self.approx_threshold
            )
            if exact:  # small collection: an exact scan, as the FAISS backend does
                s.execute(text("SET LOCAL enable_indexscan = off"))
            else:
                s.execute(text(f"SET LOCAL hnsw.ef_search = {min(max(self.ef_search, k), 1000)}"))
            for row, vec in enumerate(q):
                args = {**params, "q": vector_literal(vec), "k": k}
                found = s.execute(sql, args).all()
                if len(found) < k and conds and not exact:
                    found = s.execute(exact_sql, args).all()
                for col, (i, sc) in enumerate(found):
                    ids[row, col], scores[row, col] = i, sc
        return scores, ids

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        id_arr = check_ids(ids)
        with self.db.session() as s:
            rows = s.execute(
                text(f"SELECT id, embedding::text FROM {self.table} WHERE id = ANY(:ids)"),
                {"ids": [int(i) for i in id_arr]},
            ).all()
        found = {int(i): v for i, v in rows}
        missing = [i for i in id_arr.tolist() if i not in found]
        if missing:
            raise KeyError(f"ids not in {self.table}: {missing[:5]}")
        out = np.zeros((len(id_arr), self.dim), dtype=np.float32)
        for row, i in enumerate(id_arr.tolist()):
            out[row] = np.array(found[i][1:-1].split(","), dtype=np.float32)
        return out

    def ids(self) -> np.ndarray:
        with self.db.session() as s:
            got = s.scalars(text(f"SELECT id FROM {self.table} ORDER BY id")).all()
        return np.asarray(got, dtype=np.int64)

    def __len__(self) -> int:
        with self.db.session() as s:
            return self._count(s)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, (int, np.integer)):
            return False
        with self.db.session() as s:
            return (
                s.execute(
                    text(f"SELECT 1 FROM {self.table} WHERE id = :i"), {"i": int(item)}
                ).first()
                is not None
            )


def _quote(value: str | None) -> str:
    """A SQL string literal (COMMENT ON takes no bind parameters)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"
