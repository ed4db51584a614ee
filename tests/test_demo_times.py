"""``aigc demo`` ends with each part's time and outcome (where a slow first run went)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rich.console import Console

from aigc_apps import demo


def _parts(names: dict[str, Callable[[Console], None]]) -> Callable[[], list]:
    return lambda: [(name, (lambda fn=fn: fn)) for name, fn in names.items()]


def test_the_demo_ends_with_a_table_of_part_times(monkeypatch: pytest.MonkeyPatch) -> None:
    def fine(console: Console) -> None:
        console.print("fine part ran")

    def broken(console: Console) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(demo, "demo_parts", _parts({"core": fine, "shop": broken, "x": fine}))
    console = Console(record=True, width=100)
    failures = demo.run_demo(console, skip=["x"])
    out = console.export_text()
    assert failures == ["shop"]
    table = out[out.index("demo parts"):]
    assert "core" in table and "ok" in table
    assert "shop" in table and "failed" in table
    assert "total" in table
    assert " x " not in table  # a skipped part is not timed
    assert out.index("fine part ran") < out.index("demo parts")


def test_no_table_when_no_part_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "demo_parts", _parts({"core": lambda c: None}))
    console = Console(record=True, width=100)
    assert demo.run_demo(console, only=["nothing"]) == []
    assert "demo parts" not in console.export_text()
