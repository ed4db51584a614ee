"""How :class:`~apps.support.service.SupportService` hands its public API to its parts.

The service is composed of parts (the knowledge, the answer desk, the conversation
records), each built on first use; what callers see stays one object. Instead of a
hand-written forwarding method per name, the service names the part that owns each one:

    ingest = delegate("knowledge", Knowledge.ingest)  # service.ingest(...) -> knowledge's
    calibration: PartAttribute[Calibration] = PartAttribute("knowledge")

Type checkers see the part's signature and type; ``help`` shows the part's docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class delegate(Generic[P, R]):  # lower case, like property
    """A method of the owner that is its part's: read from the part named ``part`` when
    called, so a part rebuilt or patched is the one that answers."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.part, self.name = part, method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> delegate[P, R]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        method: Callable[P, R] = getattr(getattr(obj, self.part), self.name)
        return method


class PartAttribute(Generic[T]):
    """An attribute of the owner that is its part's, read and assigned there (assigning
    ``service.calibration`` sets the knowledge part's)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> PartAttribute[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: Any, value: T) -> None:
        setattr(getattr(obj, self.part), self.name, value)
