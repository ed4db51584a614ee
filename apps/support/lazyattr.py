"""A lazily computed attribute that is safe when threads race to its first read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class lazy(Generic[T]):  # lower case, like functools.cached_property
    """An attribute computed on first read, once even when threads race to it; assigning
    replaces it and ``del`` forgets it (the next read computes it again).

    The owner gives each instance a ``_lock`` (a ``threading.RLock``: loading one lazy
    attribute may read another).
    """

    def __init__(self, load: Callable[[Any], T]) -> None:
        self.load = load
        self.name = load.__name__
        self.__doc__ = load.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> lazy[T]:
        ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T:
        ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            with obj._lock:
                if self.name not in obj.__dict__:
                    obj.__dict__[self.name] = self.load(obj)
                return obj.__dict__[self.name]

    def __set__(self, obj: Any, value: T) -> None:
        obj.__dict__[self.name] = value

    def __delete__(self, obj: Any) -> None:
        obj.__dict__.pop(self.name, None)
