"""README's benchmark figures table: every row says which script of ``benchmarks/`` printed
its figures (with flags that script has), so a figure no script prints, or a baseline
taken from another benchmark, cannot slip back in unnoticed (issue 24, item 21)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
HEADER = "| benchmark | aigc-apps | baseline (same run) | target |"


def figure_rows(text: str) -> list[list[str]]:
    """The table's body rows, split into cells (the header and rule line left out)."""
    lines = text.split(HEADER, 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip()[1:-1].split("|")])
    return rows


def commands(cell: str) -> list[list[str]]:
    """The benchmark commands a cell quotes (code spans naming a ``.py`` file), as tokens."""
    spans = re.findall(r"`([^`]*)`", cell)
    return [span.split() for span in spans if re.search(r"\b[\w-]+\.py\b", span)]


def problems(row: list[str]) -> list[str]:
    """What is wrong with one row: no script named, a script that is not in benchmarks/,
    a flag the script does not define."""
    if len(row) != 4:
        return [f"has {len(row)} cells, not 4"]
    found = commands(row[0])
    if not found:
        return ["names no script of benchmarks/ in its first cell"]
    wrong = []
    for tokens in found:
        script = BENCH / Path(next(t for t in tokens if t.endswith(".py"))).name
        if not script.is_file():
            wrong.append(f"names {script.name}, which benchmarks/ does not have")
            continue
        source = script.read_text(encoding="utf-8")
        wrong += [f"passes {flag}, which {script.name} does not define"
                  for flag in tokens if flag.startswith("--") and f'"{flag}"' not in source]
    return wrong


def test_every_figures_row_names_a_benchmark_script_and_its_flags() -> None:
    rows = figure_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(rows) >= 20, "the figures table was not found under its header"
    bad = {row[0][:70]: problems(row) for row in rows if problems(row)}
    assert not bad, bad


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # the rows this rule was written against: a claim no script prints, and an
        # unscripted first cell
        ("| `aigc serve` ask | 29.6 ms | in-process 23 ms (Banking77 run) | met |",
         "names no script"),
        ("| batching (`serve_load.py --in-process`) | x4.7 | 3.7 | |", "does not define"),
        ("| FPB (`fpb_only.py`) | 0.8 | 0.7 | |", "does not have"),
    ],
)
def test_rows_without_a_script_are_caught(row: str, expected: str) -> None:
    (cells,) = figure_rows(f"{HEADER}\n| --- | --- | --- | --- |\n{row}\n")
    assert any(expected in p for p in problems(cells))


@pytest.fixture
def bench_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


def test_sentiment_sources_holds_fpb_to_the_same_runs_fpb_only_model(bench_path: None) -> None:
    sources = pytest.importorskip("sentiment_sources")
    assert "fpb" not in sources.TEST_TARGETS  # no figure copied from an earlier run
    app = {"test": {"fpb": {"accuracy": 0.80, "macro_f1": 0.79},
                    "tfns": {"accuracy": 0.90, "macro_f1": 0.86}}}
    out = {"app_model": app, "throughput": {"ingest_texts_per_s": 200.0},
           "fpb_only_model": {"test": {"accuracy": 0.81, "macro_f1": 0.78}}}
    met = sources.targets_met(out)
    assert met["fpb_test_accuracy"] == {"figure": 0.80, "target": 0.81, "met": False}
    assert met["fpb_test_macro_f1"]["met"] is True
    assert met["tfns_test_accuracy"]["met"] is True
    out["fpb_only_model"] = None  # --no-fpb-only: FPB is not judged, not judged by a guess
    assert sources.targets_met(out)["fpb_test_accuracy"]["met"] is None


def test_generation_batching_ratios_share_one_token_count(bench_path: None) -> None:
    batching = pytest.importorskip("generation_batching")
    raw = {"seconds": {"one_by_one": 40.0, "padded": 10.0, "batcher": 8.0}, "tokens": 400,
           "prompts": 2, "replies": {"one_by_one": ["a", "b"], "padded": ["a", "x"],
                                     "batcher": ["a", "b"]}}
    args = type("Args", (), {"model": "m", "max_tokens": 48, "rounds": 1, "threads": 2})()
    out = batching.figures(raw, args)
    assert out["tokens_per_s"] == {"one_by_one": 10.0, "padded": 40.0, "batcher": 50.0}
    assert (out["padded_vs_one_by_one"], out["batcher_vs_one_by_one"]) == (4.0, 5.0)
    assert out["batcher_vs_padded"] == 1.25
    assert out["replies_equal_to_one_by_one"] == {"padded": 1, "batcher": 2}
