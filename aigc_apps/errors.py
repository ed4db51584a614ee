"""Errors a user can act on.

Everything raised as :class:`AigcError` is printed by the CLI as one line (no traceback)
and exits non-zero, so messages must name the file, row, column or model at fault.
"""

from __future__ import annotations


class AigcError(Exception):
    """Base class for errors caused by input or environment, not by a bug."""


class DataError(AigcError):
    """A data file is missing, empty, malformed or lacks a needed column."""


class ModelNotFoundError(AigcError):
    """A base model cannot be found locally and cannot be downloaded."""


class CorruptModelError(DataError):
    """A bundled model's files fail their checksum or cannot be unpacked: the model is there
    but damaged (or tampered with), so the fix is reinstalling it, not installing it."""


class CorruptDatabaseError(AigcError):
    """A SQLite file is damaged (not a database, or pages of garbage): no command can repair
    it, so the one line names the file and says to restore a backup or move it away."""


class AdapterError(AigcError):
    """An adapter folder is missing, corrupt or does not match its base model."""


class NotFoundError(AigcError):
    """A named thing (session, item, adapter, topic...) does not exist."""


class ConflictError(AigcError):
    """The thing exists but its state forbids the change (another agent holds the
    conversation, it is resolved...); ``code`` names the case for API clients."""

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code
