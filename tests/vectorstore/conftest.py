from tests.pgvector import pgvector_server, pgvector_url

__all__ = ["pgvector_server", "pgvector_url"]
