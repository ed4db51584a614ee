"""SupportService: a light constructor, models loaded once and shared, no global state per
request, and SupportBot still working (with a warning) for one release."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aigc_apps.embeddings import Encoder
from aigc_apps.registry import ModelRegistry
from apps.support import SupportBot, SupportService


@pytest.fixture
def encoder_loads(monkeypatch: pytest.MonkeyPatch, bow: Any) -> list[str]:
    """Names passed to Encoder.from_pretrained; each call returns a fresh test encoder."""
    loads: list[str] = []

    def from_pretrained(name: Any = None, **_: Any) -> Any:
        loads.append(str(name))
        time.sleep(0.05)  # long enough for racing threads to overlap
        return type(bow)()

    monkeypatch.setattr(Encoder, "from_pretrained", from_pretrained)
    return loads


def test_construction_does_no_io(tmp_path: Path, workspace: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'support.db'}"
    service = SupportService(url, encoder="no-such-encoder", llm="no-such-llm")
    assert not (tmp_path / "nowhere").exists() and not workspace.exists()
    service.desk, service.records  # noqa: B018 - building the parts opens nothing either
    loaded = {"db", "registry"} & set(service.__dict__)
    loaded |= {"kb", "calibration", "stored_settings"} & set(service.knowledge.__dict__)
    assert not loaded and not {"encoder", "generator"} & set(service.models.__dict__)
    assert not (tmp_path / "nowhere").exists() and not workspace.exists()
    SupportService()  # the workspace default: nothing is created either
    assert not workspace.exists()


def test_models_load_once_and_are_shared(
    db_url: str, kb_dir: Path, encoder_loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGC_ENCODER", "env-encoder")
    service = SupportService(db_url)
    service.ingest([kb_dir])
    first, second = service.ask("Where is my order?"), service.ask("Do you ship to Canada?")
    assert first.session_id != second.session_id
    assert encoder_loads == ["env-encoder"]  # AIGC_ENCODER, read when first needed, loaded once
    other = SupportService(db_url, encoder=service.encoder)
    assert other.ask("Where is my order?").intent == first.intent
    assert other.encoder is service.encoder and encoder_loads == ["env-encoder"]
    service.close()
    other.close()


def test_threads_racing_to_the_first_use_load_the_encoder_once(
    tmp_path: Path, encoder_loads: list[str]
) -> None:
    service = SupportService(f"sqlite:///{tmp_path / 's.db'}")
    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(service.encoder)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(encoder_loads) == 1 and all(e is seen[0] for e in seen)


def test_sessions_and_feedback_load_no_model(
    bot: SupportService, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = bot.ask("Where is my order?")

    def no_model(*_: Any, **__: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Encoder, "from_pretrained", no_model)
    service = SupportService(bot.db_url)
    assert service.turns(reply.session_id)[0]["intent"] == "order_status"
    assert service.feedback(reply.session_id, 1, good=True) > 0
    assert service.handoffs() == []
    service.close()


def test_asking_leaves_torch_threads_alone(
    bot: SupportService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def refuse(n: int) -> None:
        raise AssertionError(f"torch.set_num_threads({n}) called while answering")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    assert bot.ask("Where is my order?").path == "template"
    assert bot.ask("kayaks canoes paddleboards freight carrier delivery window").answer


def test_reload_models_switches_to_the_registry_active_encoder(
    tmp_path: Path, encoder_loads: list[str]
) -> None:
    service = SupportService(f"sqlite:///{tmp_path / 's.db'}", encoder="given")
    assert service.encoder_name == "given"
    tuned = tmp_path / "tuned-encoder"
    tuned.mkdir()
    registry = ModelRegistry()
    registry.register("support-tuned", tuned, app="support", role="encoder", base="minilm-l6")
    assert service.encoder_name == "given"  # an explicit choice wins until models reload
    service.reload_models("encoder")
    assert service.encoder_name == str(tuned) and service.models.encoder_entry is not None
    service.encoder  # noqa: B018
    assert encoder_loads == [str(tuned)]
    with pytest.raises(ValueError, match="unknown role"):
        service.reload_models("ranker")
    registry.close()
    service.close()


def test_support_bot_is_a_deprecated_support_service(
    db_url: str, kb_dir: Path, bow: Any
) -> None:
    with pytest.warns(FutureWarning, match="use apps.support.SupportService"):
        bot = SupportBot(db_url, encoder=bow)
    assert isinstance(bot, SupportService)
    bot.ingest([kb_dir])
    assert bot.ask("Where is my order?").intent == "order_status"
    bot.db.dispose()  # 0.1.0 code closed the bot this way


def test_from_settings_keeps_everything_in_that_workspace(
    tmp_path: Path, kb_dir: Path, bow: Any, workspace: Path
) -> None:
    from aigc_apps.settings import Settings

    home = tmp_path / "other-home"
    settings = Settings(home=home, default_encoder="from-settings", default_llm="llm-x")
    service = SupportService.from_settings(settings, encoder=bow)
    service.ingest([kb_dir])
    assert (home / "support.db").is_file()
    assert (home / "indexes" / "support" / service.index_dir.name / "questions.faiss").is_file()
    with SupportService.from_settings(settings) as defaults:
        assert (defaults.encoder_name, defaults.llm) == ("from-settings", "llm-x")
    assert not workspace.exists()  # the environment's workspace is untouched
    service.close()
