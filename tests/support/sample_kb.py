"""The sample knowledge base, ingested once per backend and copied into each test's store.

About two hundred tests start from a support store that holds ``data/support/kb``. Ingesting
it (the Alembic history on a new store, parsing, screening, embedding, the intent heads and
the leave-one-out calibration) cost each of them about half a second, so the session
ingests it once per backend (:class:`SampleKnowledge`) and every test gets a copy of what
that ingest wrote, which is what its own ingest would have written:

* the database: the SQLite file, or on PostgreSQL the rows of every table (and the sequences'
  positions) copied into the test's schema after its migrations ran;
* the sources' paths, rewritten to the folder the test names (its private ``kb_dir``), so that
  re-ingesting that folder finds every file unchanged and editing a file replaces its source;
* the knowledge generation and stored settings (rows of ``support_settings``);
* the FAISS files and intent heads, put where the test's service looks for them.

A test that needs the ingest itself to happen (its report, its timing, another vector
backend) calls ``ingest`` as before; with ``AIGC_VECTOR_BACKEND`` set to anything but FAISS
the copy is refused and the fixtures ingest.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from aigc_apps.settings import get_settings
from apps.support import SupportService
from tests.support.bow import KB, BowEncoder

if TYPE_CHECKING:
    from collections.abc import Iterator

# Where a store names the files it was ingested from.
PATH_COLUMNS = (("support_sources", "uri"), ("support_quarantine", "source_uri"))


class _Template:
    """One backend's ingested sample: its store, the folder it was read from, its index."""

    def __init__(self, url: str, kb_dir: Path, index_dir: Path) -> None:
        self.url, self.kb_dir, self.index_dir = url, kb_dir, index_dir
        self.schema: str | None = None  # PostgreSQL: the template's schema
        self.tables: list[str] = []  # PostgreSQL: in foreign-key order
        self.sequences: dict[str, tuple[int, bool]] = {}  # PostgreSQL: name -> (value, called)


class SampleKnowledge:
    """The session's ingested samples (built on first use per backend), copied into a test's
    new store by :meth:`ingest_into`."""

    def __init__(self, root: Path, llm_dir: Path, pg_url: str) -> None:
        self._root, self._llm_dir, self._pg_url = root, llm_dir, pg_url
        self._templates: dict[str, _Template] = {}
        self._schemas: list[str] = []  # PostgreSQL templates' schemas, dropped by close()

    def ingest_into(self, service: SupportService, kb_dir: Path = KB) -> None:
        """Leave ``service``'s store (new and not opened yet) as ``service.ingest([kb_dir])``
        of the sample knowledge base would: the same rows, files and loaded state."""
        if get_settings().vector_backend != "faiss":
            service.ingest([kb_dir])
            return
        if service.opened("db"):
            raise RuntimeError("the sample is copied into a store nobody has opened yet")
        url = service.store_url()
        backend = sa.engine.make_url(url).get_backend_name()
        template = self._template(backend)
        if backend == "sqlite":
            _copy_sqlite(template, url)
        else:
            _copy_postgres(template, url)
        _rewrite_paths(url, template.kb_dir, kb_dir)
        index_dir = service.knowledge.index_dir  # building the part opens nothing
        shutil.copytree(template.index_dir, index_dir, dirs_exist_ok=True)
        # What an ingest leaves loaded: the database, the index, the stored settings and
        # the calibration (recomputed by the ingest; here read back as it stored it).
        service.kb  # noqa: B018
        service.calibration  # noqa: B018

    def close(self) -> None:
        if not self._schemas:
            return
        admin = sa.create_engine(self._pg_url)
        try:
            with admin.begin() as conn:
                for schema in self._schemas:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            admin.dispose()

    def _template(self, backend: str) -> _Template:
        if backend not in self._templates:
            self._templates[backend] = self._build(backend)
        return self._templates[backend]

    def _build(self, backend: str) -> _Template:
        root = self._root / backend
        kb_dir = Path(shutil.copytree(KB, root / "kb")).resolve()
        schema = None
        if backend == "sqlite":
            url = f"sqlite:///{root / 'support.db'}"
        else:
            schema = f"tmpl_{uuid.uuid4().hex[:12]}"
            admin = sa.create_engine(self._pg_url)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            admin.dispose()
            self._schemas.append(schema)
            sep = "&" if "?" in self._pg_url else "?"
            url = f"{self._pg_url}{sep}options=-csearch_path%3D{schema}"
        template = _Template(url, kb_dir, root / "index")
        template.schema = schema
        with pytest.MonkeyPatch.context() as env:  # a workspace of its own
            env.setenv("AIGC_HOME", str(root / "home"))
            env.delenv("AIGC_VECTOR_BACKEND", raising=False)
            service = SupportService(
                url, encoder=BowEncoder(), llm=str(self._llm_dir), max_new_tokens=8,  # type: ignore[arg-type]
                index_dir=template.index_dir,
            )
            try:
                service.ingest([kb_dir])
            finally:
                service.close()
        if schema is not None:
            _describe_postgres(template, schema)
        return template


def _copy_sqlite(template: _Template, url: str) -> None:
    source = Path(sa.engine.make_url(template.url).database or "")
    target = Path(sa.engine.make_url(url).database or "")
    if target.exists():
        raise RuntimeError(f"{target} exists: the sample is copied into a new store only")
    if source.with_name(source.name + "-wal").exists():  # its service closed: none is left
        raise RuntimeError(f"{source}: a write-ahead log was left beside the template")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _describe_postgres(template: _Template, schema: str) -> None:
    """The template's tables in foreign-key order and its sequences' positions."""
    engine = sa.create_engine(template.url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine, schema=schema)
        template.tables = [t.name for t in meta.sorted_tables]
        with engine.connect() as conn:
            names = conn.execute(
                sa.text("SELECT sequence_name FROM information_schema.sequences "
                        "WHERE sequence_schema = :s"), {"s": schema},
            ).scalars().all()
            for name in names:
                value, called = conn.execute(
                    sa.text(f'SELECT last_value, is_called FROM "{schema}"."{name}"')
                ).one()
                template.sequences[name] = (int(value), bool(called))
    finally:
        engine.dispose()


def _copy_postgres(template: _Template, url: str) -> None:
    """Create the test's tables with its own migrations, then copy the template's rows and
    sequence positions into them in one transaction."""
    from apps.support.store import open_db

    open_db(url).dispose()  # the schema at head, as the service would create it
    target = _search_path_schema(url)
    source = template.schema
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(template.tables):
                conn.execute(sa.text(f'DELETE FROM "{target}"."{table}"'))
            for table in template.tables:
                conn.execute(sa.text(
                    f'INSERT INTO "{target}"."{table}" SELECT * FROM "{source}"."{table}"'
                ))
            for name, (value, called) in template.sequences.items():
                conn.execute(
                    sa.text("SELECT setval(CAST(:seq AS regclass), :value, :called)"),
                    {"seq": f'"{target}"."{name}"', "value": value, "called": called},
                )
    finally:
        engine.dispose()


def _search_path_schema(url: str) -> str:
    options = sa.engine.make_url(url).query.get("options", "")
    option = options if isinstance(options, str) else options[0]
    prefix = "-csearch_path="
    if not option.startswith(prefix):
        raise RuntimeError(f"{url}: a PostgreSQL test store names its schema in options")
    return option[len(prefix):].split(",")[0]


def _rewrite_paths(url: str, old: Path, new: Path) -> None:
    """Point the copied store's sources at ``new``, the folder the test ingests from."""
    old_prefix, new_prefix = str(old.resolve()), str(new.resolve())
    if old_prefix == new_prefix:
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table, column in PATH_COLUMNS:
                rows = conn.execute(sa.text(f"SELECT id, {column} FROM {table}")).all()
                for row_id, value in rows:
                    if value == old_prefix or value.startswith(old_prefix + os.sep):
                        conn.execute(
                            sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),
                            {"value": new_prefix + value[len(old_prefix):], "id": row_id},
                        )
    finally:
        engine.dispose()


def session_samples(
    tmp_path_factory: pytest.TempPathFactory, llm_dir: Path, pg_url: str
) -> Iterator[SampleKnowledge]:
    """The body of the session fixture (see ``tests/support/conftest.py``)."""
    samples = SampleKnowledge(tmp_path_factory.mktemp("sample-kb"), llm_dir, pg_url)
    try:
        yield samples
    finally:
        samples.close()
