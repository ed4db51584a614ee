"""Old module paths that keep working, with a warning, for one release after a move.

When a package splits a flat folder into sub-packages, code that imported a module by its
old path (``apps.support.handoff``) would break at once. A package declares its moves and
the old paths import the new modules' names, warning once per old path:

    moved_modules(__name__, {"handoff": "people.handoff"})

Only the old name is an alias (a module of its own that reads the new one); the new module
is the one that runs, so there is still one copy of every class and every piece of state.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Mapping, Sequence
from importlib import import_module
from types import ModuleType
from typing import Any


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str, moves: Mapping[str, str]) -> None:
        self.moves = {f"{package}.{old}": f"{package}.{new}" for old, new in moves.items()}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.moves:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a plain module, filled in by exec_module

    def exec_module(self, module: ModuleType) -> None:
        new_name = self.moves[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {new_name}; the old path goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        new = import_module(new_name)
        module.__dict__.update({k: v for k, v in vars(new).items() if not k.startswith("__")})

        def __getattr__(name: str) -> Any:  # what the new module defines later, or privately
            return getattr(new, name)

        module.__getattr__ = __getattr__  # type: ignore[method-assign]


def moved_modules(package: str, moves: Mapping[str, str]) -> None:
    """Let ``package.<old>`` import as ``package.<new>`` for each of ``moves`` (dotted,
    relative to ``package``), with a :class:`DeprecationWarning`."""
    sys.meta_path.append(_Alias(package, moves))


def old_module_names(package: str, old: str, new: str) -> Any:
    """A module ``__getattr__`` (PEP 562) for a package that took the place of a module of
    the same name: ``package.X`` still finds what the old module ``old`` defined, now in
    module ``new`` (relative to ``package``), with a :class:`DeprecationWarning`."""

    def __getattr__(name: str) -> Any:
        module = import_module(new, package)
        if name.startswith("__") or not hasattr(module, name):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} moved to {module.__name__}.{name}; the old path goes in the next "
            "release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(module, name)

    return __getattr__
