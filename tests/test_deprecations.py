"""Every deprecation README lists ("Deprecated for one release, with a warning: ...") warns.

The list is read from README itself, so a deprecation added there without a check here fails
``test_every_deprecation_readme_lists_is_checked``. Python spellings raise their warning
(``pytest.warns``: the suite ignores third-party ``DeprecationWarning``/``FutureWarning``
only, see ``filterwarnings`` in pyproject.toml); command-line spellings say so on stderr.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from aigc_apps.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_deprecations() -> set[str]:
    text = " ".join((ROOT / "README.md").read_text().split())
    start = text.index("Deprecated for one release, with a warning:")
    sentence = text[start:text.index(". ", start)]
    sentence = re.sub(r"\(now [^)]*\)", "", sentence)  # the new spellings
    return set(re.findall(r"`([^`]+)`", sentence))


def _stderr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with contextlib.suppress(SystemExit):
        main(argv)
    return " ".join(capsys.readouterr().err.split())


def adapters_command(capsys: pytest.CaptureFixture[str], _: pytest.MonkeyPatch) -> None:
    err = _stderr(["adapters", "list", "--json"], capsys)
    assert "deprecated" in err and "aigc models list" in err


def bare_models_command(capsys: pytest.CaptureFixture[str], _: pytest.MonkeyPatch) -> None:
    err = _stderr(["models", "--json"], capsys)
    assert "deprecated" in err and "aigc models bases" in err
    assert "deprecated" not in _stderr(["models", "bases", "--json"], capsys)


def adapter_registry(*_: object) -> None:
    from aigc_apps import AdapterRegistry, ModelRegistry

    with pytest.warns(DeprecationWarning, match="use aigc_apps.ModelRegistry"):
        registry = AdapterRegistry()
    assert isinstance(registry, ModelRegistry)
    registry.close()


def support_bot(*_: object) -> None:
    from apps.support import SupportBot, SupportService

    with pytest.warns(FutureWarning, match="use apps.support.SupportService"):
        bot = SupportBot()
    assert isinstance(bot, SupportService)
    bot.close()


def lora_config_names(*_: object) -> None:
    from aigc_apps import LoraTrainingConfig

    with pytest.warns(FutureWarning) as caught:
        config = LoraTrainingConfig(base="x", r=4, alpha=16, dropout=0.2)
    said = {str(w.message) for w in caught}
    assert said == {f"LoraTrainingConfig({old}=...) is deprecated; use {new}="
                    for old, new in (("r", "lora_r"), ("alpha", "lora_alpha"),
                                     ("dropout", "lora_dropout"))}
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (4, 16, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        LoraTrainingConfig(base="x", lora_r=4)


def sentiment_train_r(capsys: pytest.CaptureFixture[str], _: pytest.MonkeyPatch) -> None:
    # the option is read before the data: a missing file ends the command after the warning
    err = _stderr(["sentiment", "train", "--data", "no-such-file.csv", "--name", "old",
                   "--r", "4"], capsys)
    assert "--r is deprecated" in err and "use --lora-r" in err


def recommender_db_url(_: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigc_apps.settings import Settings

    monkeypatch.delenv("AIGC_RECOMMEND_DB_URL", raising=False)
    monkeypatch.setenv("AIGC_RECOMMENDER_DB_URL", "sqlite:////tmp/old-name.db")
    with pytest.warns(FutureWarning, match="use AIGC_RECOMMEND_DB_URL"):
        assert Settings.from_env().db_url("recommend") == "sqlite:////tmp/old-name.db"


CHECKS: dict[str, Callable[[pytest.CaptureFixture[str], pytest.MonkeyPatch], None]] = {
    "aigc adapters ...": adapters_command,
    "aigc models": bare_models_command,
    "AdapterRegistry": adapter_registry,
    "SupportBot": support_bot,
    "LoraTrainingConfig(r=, alpha=, dropout=)": lora_config_names,
    "aigc sentiment train --r": sentiment_train_r,
    "AIGC_RECOMMENDER_DB_URL": recommender_db_url,
}


def test_every_deprecation_readme_lists_is_checked() -> None:
    assert readme_deprecations() == set(CHECKS)


@pytest.mark.parametrize("spelling", sorted(CHECKS))
def test_the_deprecated_spelling_warns(
    spelling: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    CHECKS[spelling](capsys, monkeypatch)


def test_the_suite_hides_third_party_deprecations_only() -> None:
    """Under the suite's filters (pyproject.toml) a project module's DeprecationWarning or
    FutureWarning is shown, a third-party one is not."""
    for category in (DeprecationWarning, FutureWarning):
        with warnings.catch_warnings(record=True) as seen:  # the filters in force, kept
            for module in ("torch.nn.modules", "transformers.utils", "aigc_apps_fork",
                           "aigc_apps.cli", "apps.support.answers.bot", "tests.test_deprecations",
                           "test_deprecations"):
                warnings.warn_explicit(module, category, f"{module}.py", 1, module=module,
                                       registry={})
        assert [str(w.message) for w in seen] == [
            "aigc_apps.cli", "apps.support.answers.bot", "tests.test_deprecations",
            "test_deprecations"], category
