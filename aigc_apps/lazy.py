"""Laziness in two places: package exports and service attributes.

**Exports.** ``from pkg import Name`` loads the module that defines it on first use.

Packages re-export their public API from heavy modules (torch, scikit-learn, faiss); eager
imports in ``__init__`` would make ``import pkg`` and every ``aigc --help`` pay for all of
them. A package lists ``{name: module}`` and installs the returned hooks:

    __getattr__, __dir__ = lazy_exports(__name__, {"SupportBot": ".bot"})

**Attributes.** Services open databases and load models on first use, not in ``__init__``;
:class:`lazy` computes such an attribute once even when threads race to it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any, Generic, TypeVar, overload


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package`` (PEP 562)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__

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
