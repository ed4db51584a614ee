from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from aigc_apps.errors import DataError
from apps.support import SupportService, chunk_text, load_dialogues, load_document
from apps.support.store import Entry, Intent, Source


def db_ids(bot: SupportService, kinds: tuple[str, ...]) -> set[int]:
    with bot.db.session() as s:
        return set(s.scalars(select(Entry.id).where(Entry.kind.in_(kinds))))


def assert_in_step(bot: SupportService) -> None:
    assert set(bot.kb.questions.ids().tolist()) == db_ids(bot, ("example", "pair"))
    assert set(bot.kb.chunks.ids().tolist()) == db_ids(bot, ("chunk",))


def test_chunks_overlap_and_keep_section_titles() -> None:
    words = " ".join(f"w{i}" for i in range(250))
    chunks = chunk_text(f"# Guide\n\nIntro text.\n\n## Refunds\n\n{words}", "Guide", 100, 20)
    assert [c.section for c in chunks] == ["Guide", "Refunds", "Refunds", "Refunds"]
    second, third = chunks[1].text.split(), chunks[2].text.split()
    assert second[-20:] == third[:20]  # overlap
    assert all(len(c.text.split()) <= 100 for c in chunks)


def test_html_document_title_and_text(kb_dir: Path) -> None:
    items = load_document(kb_dir / "documents" / "warranty_and_repairs.html")
    assert items.title == "Warranty and Repairs"
    assert any(e.title == "Warranty and Repairs > Paid repairs" for e in items.entries)
    assert not any("<p>" in e.text for e in items.entries)


def test_dialogues_become_masked_pairs(kb_dir: Path) -> None:
    items = load_dialogues(kb_dir / "dialogues.jsonl")
    questions = [e.text for e in items.entries]
    assert any("[EMAIL]" in q for q in questions) and not any("@" in q for q in questions)
    assert "Can I use two promo codes on one order?" in questions
    assert len(items.skipped) == 1 and items.skipped[0].row == 6  # agent-only dialogue


def test_ingest_is_idempotent_and_index_matches_db(
    bot: SupportService, kb_dir: Path, bow: Any
) -> None:
    stats = bot.stats()
    assert stats["examples"] == 133 and stats["intents_with_answer"] == 42
    assert stats["chunks"] > 10 and stats["pairs"] == 7
    assert_in_step(bot)
    again = bot.ingest([kb_dir])
    assert (again.entries_added, again.entries_removed, again.unchanged_sources) == (0, 0, 5)
    reopened = SupportService(bot.db.url, encoder=bow)
    assert len(reopened.kb.meta) == len(bot.kb.meta)
    assert_in_step(reopened)


def test_changed_document_replaces_its_chunks(bot: SupportService, kb_dir: Path) -> None:
    doc = kb_dir / "documents" / "shipping_policy.md"
    before = db_ids(bot, ("chunk",))
    doc.write_text(doc.read_text().replace("Reno, Nevada", "Sparks, Nevada"))
    report = bot.ingest([doc])
    assert report.replaced_sources == 1 and report.entries_removed == report.entries_added == 1
    with bot.db.session() as s:
        texts = s.scalars(select(Entry.text).where(Entry.kind == "chunk")).all()
    assert any("Sparks" in t for t in texts) and not any("Reno" in t for t in texts)
    assert len(db_ids(bot, ("chunk",)) & before) == len(before) - 1  # others kept their ids
    assert_in_step(bot)


def test_reindex_and_recovery_from_a_stale_index(bot: SupportService, bow: Any) -> None:
    n = len(bot.kb.meta)
    for f in bot.kb.index_dir.glob("*.faiss*"):
        f.unlink()
    reopened = SupportService(bot.db.url, encoder=bow)
    assert len(reopened.kb.questions) + len(reopened.kb.chunks) == n
    assert reopened.reindex() == n
    assert_in_step(reopened)


def test_failed_ingest_leaves_nothing_half_done(
    bot: SupportService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "extra.csv"
    extra.write_text("text,intent,answer\nDo you sell bikes?,bikes,No.\n")
    count = len(bot.kb.meta)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(bot.kb, "_add", boom)
    with pytest.raises(RuntimeError):
        bot.ingest([extra])
    monkeypatch.undo()
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Intent).where(Intent.name == "bikes")) == 0
        assert (
            s.scalar(select(func.count()).select_from(Source).where(Source.uri.like("%extra.csv")))
            == 0
        )
    assert len(bot.kb.meta) == count
    assert_in_step(bot)


def test_custom_columns_and_answerless_query_log(db_url: str, tmp_path: Path, bow: Any) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "query,category\nwhere is my card,card_arrival\ncard not here yet,card_arrival\n"
        ",card_arrival\nfreeze my card,freeze\n"
    )
    bot = SupportService(db_url, encoder=bow)
    report = bot.ingest([log], text_col="query", intent_col="category")
    assert report.entries_added == 3 and len(report.skipped) == 1
    assert "empty 'query'" in report.skipped[0]
    assert bot.kb.answers == {"card_arrival": None, "freeze": None}
    bot.close()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.csv", "question,answer\nhi,hello\n", "missing column 'text'"),
        ("empty.md", "   \n", "empty"),
        ("t.jsonl", "", "empty"),
        ("t.xyz", "x", "no supported files"),
    ],
)
def test_bad_files_raise_one_line_errors(
    db_url: str, tmp_path: Path, name: str, content: str, message: str, bow: Any
) -> None:
    path = tmp_path / name
    path.write_text(content)
    bot = SupportService(db_url, encoder=bow)
    with pytest.raises(DataError, match=message) as err:
        bot.ingest([path])
    assert "\n" not in str(err.value)
    assert not bot.kb.meta
    bot.close()


def test_malformed_rows_are_counted_and_skipped(db_url: str, tmp_path: Path, bow: Any) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text('text,intent\nhello there,greet\nbad,row,extra\n"good bye",bye\n')
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "hi", "intent": "greet"}\n{not json\n{"text": "x"}\n')
    bot = SupportService(db_url, encoder=bow)
    report = bot.ingest([csv_file, jsonl])
    assert report.entries_added == 3
    assert len(report.skipped) == 3
    assert any("invalid JSON" in s for s in report.skipped)
    bot.close()


def test_unusable_file_in_a_folder_is_a_counted_skip(db_url: str, tmp_path: Path, bow: Any) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "empty.md").write_text("  \n")
    (folder / "faq.csv").write_text("question\nhi\n")  # no 'text' column
    bot = SupportService(db_url, encoder=bow)
    with pytest.raises(DataError, match=r"no usable files: .*empty\.md: file is empty"):
        bot.ingest([folder])
    assert not bot.kb.meta
    (folder / "hours.md").write_text("# Hours\n\nWe are open 9 to 5 on weekdays.\n")
    report = bot.ingest([folder])
    assert report.added_sources == 1 and report.entries_added == 1
    assert len(report.skipped) == 2 and all("(file skipped)" in s for s in report.skipped)
    assert any("missing column 'text'" in s for s in report.skipped)
    assert_in_step(bot)
    bot.close()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 32


@pytest.mark.parametrize("name", ["manual.txt", "policy.md", "page.html"])
def test_a_binary_file_named_as_a_document_is_refused(
    db_url: str, tmp_path: Path, name: str, bow: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10 item 4: a PNG renamed .txt was ingested as 58 garbage chunks, exit 0."""
    from aigc_apps.cli import main

    path = tmp_path / name
    path.write_bytes(PNG)
    bot = SupportService(db_url, encoder=bow)
    with pytest.raises(DataError, match=f"{name}: looks like a binary file, not text") as err:
        bot.ingest([path])
    assert "\n" not in str(err.value) and not bot.kb.meta
    bot.close()
    with pytest.raises(SystemExit) as exited:
        main(["support", "ingest", str(path), "--db", db_url])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exited.value.code == 1 and len(lines) == 1 and "binary" in lines[0]


def test_a_binary_file_in_a_folder_is_a_counted_skip(
    db_url: str, tmp_path: Path, bow: Any
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "hours.md").write_text("# Hours\n\nWe are open 9 to 5 on weekdays.\n")
    (folder / "scan.txt").write_bytes(PNG)
    (folder / "bundle.html").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    bot = SupportService(db_url, encoder=bow)
    report = bot.ingest([folder])
    assert report.added_sources == 1 and report.entries_added == 1
    assert sorted(report.skipped) == [
        f"{folder / 'bundle.html'}: looks like a binary file, not text (file skipped)",
        f"{folder / 'scan.txt'}: looks like a binary file, not text (file skipped)",
    ]
    assert [m.text for m in bot.kb.meta.values()] == ["We are open 9 to 5 on weekdays."]
    bot.close()


def test_a_document_with_bare_cr_line_endings_keeps_its_sections(tmp_path: Path) -> None:
    path = tmp_path / "mac.md"
    path.write_bytes(b"# Guide\r\rIntro text.\r\r## Refunds\r\rMoney back in 5 days.\r")
    items = load_document(path)
    assert [e.title for e in items.entries] == ["Guide", "Guide > Refunds"]
    assert [e.text for e in items.entries] == ["Intro text.", "Money back in 5 days."]
