"""A damaged index is an error naming `aigc support reindex` (never a silent rebuild), and
reindex repairs it; an index that does not exist yet, or that another encoder built, is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aigc_apps.index import VectorIndex
from apps.support import CorruptIndexError, RetrievalConfig, SupportService
from apps.support.store import get_setting


def reopen(bot: SupportService, encoder: Any, **kwargs: Any) -> SupportService:
    return SupportService(bot.db_url, encoder=encoder, index_dir=bot.kb.index_dir, **kwargs)


def test_garbage_in_an_index_file_names_reindex(bot: SupportService, bow: Any) -> None:
    (bot.kb.index_dir / "questions.faiss").write_bytes(b"this is not a FAISS index")
    service = reopen(bot, bow)
    with pytest.raises(CorruptIndexError, match=r"aigc support reindex") as exc:
        service.ask("Where is my order?")
    assert "\n" not in str(exc.value) and "questions.faiss" in str(exc.value)
    assert service.reindex() == len(bot.kb.meta)
    assert service.ask("Where is my order?").intent == "order_status"
    assert reopen(bot, bow).ask("Where is my order?").intent == "order_status"  # fixed on disk


def test_ids_that_disagree_with_the_database_name_reindex(bot: SupportService, bow: Any) -> None:
    path = bot.kb.index_dir / "questions.faiss"
    index = VectorIndex.load(path)
    index.remove(index.ids()[:3])  # as if the process died between commit and save
    index.save(path)
    with pytest.raises(CorruptIndexError, match=r"3 entries without a vector.*reindex"):
        reopen(bot, bow).ask("Where is my order?")


def test_a_missing_half_of_the_index_is_damage_not_a_first_use(
    bot: SupportService, bow: Any
) -> None:
    (bot.kb.index_dir / "chunks.faiss.json").unlink()
    with pytest.raises(CorruptIndexError, match=r"index file not found.*reindex"):
        reopen(bot, bow).stats()


def test_a_corrupt_intent_head_names_reindex_and_reindex_refits_it(
    bot: SupportService, bow: Any
) -> None:
    config = RetrievalConfig(head_weight=0.1, lexical_weight=0.03)
    bot.kb.config = config
    bot.kb.fit_head()
    (bot.kb.index_dir / "intent_head.npz").write_bytes(b"garbage")
    service = reopen(bot, bow, retrieval=config)
    with pytest.raises(CorruptIndexError, match=r"unreadable intent head.*reindex"):
        service.ask("Where is my order?")
    service.reindex()
    assert service.kb.head is not None and service.kb.lexical is not None
    assert reopen(bot, bow, retrieval=config).kb.head is not None


def test_first_use_and_a_new_encoder_build_the_index(bot: SupportService, bow: Any) -> None:
    n = len(bot.kb.meta)
    for f in bot.kb.index_dir.iterdir():  # a new machine: the database without its index
        f.unlink()
    assert len(reopen(bot, bow).kb.questions) + len(reopen(bot, bow).kb.chunks) == n

    class OtherEncoder(type(bow)):  # type: ignore[misc]
        name = "bow-other"

    other = reopen(bot, OtherEncoder())
    assert len(other.kb.questions) + len(other.kb.chunks) == n
    with other.db.session() as s:
        assert get_setting(s, "index_encoder") == "bow-other|256"


def test_cli_reports_a_damaged_index_in_one_line_and_reindex_fixes_it(
    db_url: str,
    kb_dir: Path,
    tiny_encoder_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aigc_apps.cli import main
    from apps.support.edges.cli import app

    monkeypatch.setenv("AIGC_ENCODER", str(tiny_encoder_dir))
    result = CliRunner().invoke(app, ["ingest", str(kb_dir), "--db", db_url])
    assert result.exit_code == 0, result.output
    service = SupportService(db_url)
    (service.index_dir / "chunks.faiss").write_bytes(b"\x00garbage")
    ask = ["support", "ask", "Where is my order?", "--db", db_url, "--json"]
    with pytest.raises(SystemExit) as exc:
        main(ask)
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines()]
    errors = [x for x in lines if x and not x.startswith("Loading weights")]  # transformers' bar
    assert exc.value.code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith("error:") and "chunks.faiss" in errors[0]
    assert "aigc support reindex" in errors[0]
    main(["support", "reindex", "--db", db_url])
    assert "reindexed" in capsys.readouterr().out
    main(ask)
    assert json.loads(capsys.readouterr().out)["session_id"]
