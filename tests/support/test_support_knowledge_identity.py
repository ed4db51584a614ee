"""An entry is its content, not its file's path (issue 10 item 3).

The same templates ingested again from a second folder used to double the knowledge base
(266 examples instead of 133): every leave-one-out match then found its own copy, the
threshold fell back to 0.500 "(one class only)" and every eval question was handed off.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from apps.support import Calibration, SupportService
from apps.support.edges.cli import app
from apps.support.knowledge.generation import set_setting
from apps.support.store import Entry

KB = Path(__file__).resolve().parents[2] / "data" / "support" / "kb"
EVAL = KB.parent / "eval.csv"
OOS = KB.parent / "oos_queries.txt"


def _eval_file(tmp_path: Path) -> Path:
    """The sample eval set plus the out-of-scope queries, labelled OOS."""
    rows = EVAL.read_text().splitlines()
    oos = [f'"{q}",OOS' for q in OOS.read_text().splitlines() if q.strip()]
    path = tmp_path / "eval_oos.csv"
    path.write_text("\n".join(rows + oos) + "\n")
    return path


def _decisions(bot: SupportService, labelled: Path) -> dict[str, Any]:
    report = bot.evaluate_file(labelled, oos_label="OOS").to_dict()
    return {k: v for k, v in report.items() if not k.startswith("latency")}


def _stored_rows(bot: SupportService) -> int:
    with bot.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Entry)) or 0)


def test_a_copied_knowledge_base_is_the_same_knowledge(
    db_url: str, tmp_path: Path, bow: Any
) -> None:
    labelled = _eval_file(tmp_path)
    bot = SupportService(db_url, encoder=bow, index_dir=tmp_path / "index")
    bot.ingest([KB])
    stats, calibration = bot.stats(), bot.calibration.to_dict()
    decisions = _decisions(bot, labelled)
    assert stats["examples"] == 133 and "one class only" not in bot.calibration.method
    assert decisions["false_handoff_rate"] < 0.5

    copy = Path(shutil.copytree(KB, tmp_path / "elsewhere" / "kb"))
    report = bot.ingest([copy])
    assert (report.added_sources, report.entries_added, report.entries_removed) == (5, 0, 0)
    assert bot.stats() == stats and bot.calibration.to_dict() == calibration
    assert _decisions(bot, labelled) == decisions

    reopened = SupportService(db_url, encoder=bow, index_dir=tmp_path / "index")
    assert reopened.stats()["entries"] == stats["entries"]
    assert reopened.reindex() == stats["entries"]
    assert _decisions(reopened, labelled) == decisions
    reopened.close()
    bot.close()


def test_a_copy_keeps_an_entry_that_its_original_drops(
    db_url: str, tmp_path: Path, bow: Any
) -> None:
    first = tmp_path / "a" / "faq.csv"
    first.parent.mkdir()
    first.write_text(
        "text,intent,answer\n"
        "Where is my order?,order_status,Track it online.\n"
        "Can I return boots?,returns,Within 30 days.\n"
    )
    copy = tmp_path / "b" / "faq.csv"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    bot = SupportService(db_url, encoder=bow, index_dir=tmp_path / "index")
    bot.ingest([first, copy])
    assert bot.stats()["entries"] == 2 and _stored_rows(bot) == 4  # each file keeps its rows
    first.write_text("text,intent,answer\nWhere is my order?,order_status,Track it online.\n")
    report = bot.ingest([first])
    assert (report.entries_added, report.entries_removed) == (0, 0)  # the copy still has it
    assert {m.text for m in bot.kb.meta.values()} == {"Where is my order?", "Can I return boots?"}
    returns = next(m for m in bot.kb.meta.values() if m.intent == "returns")
    assert returns.source == str(copy.resolve())  # cited from the file that has it
    copy.write_text(first.read_text())
    report = bot.ingest([copy])
    assert (report.entries_added, report.entries_removed) == (0, 1)
    assert [m.text for m in bot.kb.meta.values()] == ["Where is my order?"]
    assert set(bot.kb.questions.ids().tolist()) == set(bot.kb.meta)
    bot.close()


def test_dialogue_pairs_are_the_same_pairs_in_a_renamed_file(
    db_url: str, tmp_path: Path, bow: Any
) -> None:
    renamed = tmp_path / "old_chats.jsonl"
    shutil.copy(KB / "dialogues.jsonl", renamed)
    bot = SupportService(db_url, encoder=bow, index_dir=tmp_path / "index")
    bot.ingest([KB / "dialogues.jsonl"])
    pairs = bot.stats()["pairs"]
    assert bot.ingest([renamed]).entries_added == 0 and bot.stats()["pairs"] == pairs
    bot.close()


def test_an_index_that_still_holds_copies_loads_and_the_next_ingest_drops_them(
    db_url: str, tmp_path: Path, bow: Any
) -> None:
    """An older release indexed every row, copies included: that index is not corrupt."""
    bot = SupportService(db_url, encoder=bow, index_dir=tmp_path / "index")
    bot.ingest([KB / "templates.csv", Path(shutil.copy(KB / "templates.csv", tmp_path))])
    kb = bot.kb
    copies = sorted(kb.copies)
    assert len(copies) == 133
    kb.questions.add(copies, kb.encoder.encode([f"copy {i}" for i in copies]))
    kb._save()  # the layout 0.1.0 left on disk, and the calibration it fitted on it
    with bot.db.session() as s:
        set_setting(
            s,
            "calibration",
            Calibration(method="default slope, centred (one class only)").to_dict(),
        )
    bot.close()

    reopened = SupportService(db_url, encoder=bow, index_dir=tmp_path / "index")
    assert len(reopened.kb.questions) == 266 and len(reopened.kb.meta) == 133
    assert "one class only" in reopened.calibration.method
    assert all(
        i in reopened.kb.meta for i in reopened.decide("Where is my order?").ranking.neighbour_ids
    )
    report = reopened.ingest([KB / "templates.csv"])
    assert (report.unchanged_sources, report.entries_removed) == (1, 133)
    assert len(reopened.kb.questions) == 133
    assert "one class only" not in reopened.calibration.method  # recalibrated without copies
    reopened.close()




def test_cli_ingest_of_a_copied_folder_adds_nothing(
    env: None, db_url: str, kb_dir: Path, tmp_path: Path
) -> None:
    runner = CliRunner()

    def ingest(path: Path) -> dict[str, Any]:
        result = runner.invoke(
            app, ["ingest", str(path), "--db", db_url, "--json"], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    first = ingest(kb_dir)
    second = ingest(Path(shutil.copytree(kb_dir, tmp_path / "copy")))
    assert second["added_sources"] == 5 and second["entries_added"] == 0
    assert second["stats"] == first["stats"] and first["stats"]["examples"] == 133
