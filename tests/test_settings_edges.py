"""Settings are read once, at the edge (the ``aigc`` root command, ``create_app``, an SDK
object's constructor), and what the edge was given wins over the environment below it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from aigc_apps.cli import app, mount_apps
from aigc_apps.errors import AigcError
from aigc_apps.models import MODEL_ALIASES, available_models
from aigc_apps.registry import ModelRegistry
from aigc_apps.serve.app import create_app
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.deps import app_service
from aigc_apps.settings import Settings
from apps.recommender.cli import app as recommend_app
from apps.support.service import SupportService


def sqlite(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


@pytest.fixture
def env_reads(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Every :meth:`Settings.from_env` call of the test, what it returned."""
    reads: list[Settings] = []
    real = Settings.from_env.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Settings]) -> Settings:
        reads.append(real(cls))
        return reads[-1]

    monkeypatch.setattr(Settings, "from_env", classmethod(counted))
    return reads


@pytest.mark.parametrize("args", [
    ["db", "current", "--json"],
    ["models", "list", "--json"],
    ["recommend", "status", "--json"],
])
def test_one_command_line_reads_the_environment_once(
    args: list[str], env_reads: list[Settings]
) -> None:
    mount_apps(app)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(env_reads) == 1


def test_finetune_trains_on_the_settings_the_root_command_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_reads: list[Settings]
) -> None:
    from aigc_apps.finetune.trainer import LoraTrainer

    trained_on: list[Settings] = []

    def fit(self: LoraTrainer, *args: object, **kwargs: object) -> None:
        trained_on.append(self.settings)
        raise AigcError("stopped before training")

    monkeypatch.setattr(LoraTrainer, "fit", fit)
    data = tmp_path / "sft.jsonl"
    data.write_text('{"prompt": "hi", "response": "hello"}\n')
    result = CliRunner().invoke(app, ["finetune", "--data", str(data), "--out", str(tmp_path)])
    assert isinstance(result.exception, AigcError)
    assert len(env_reads) == 1 and trained_on == [env_reads[0]]
    assert trained_on[0] is env_reads[0]


def test_an_app_run_on_its_own_reads_the_environment_once(env_reads: list[Settings]) -> None:
    result = CliRunner().invoke(recommend_app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert len(env_reads) == 1


def test_the_cli_uses_the_settings_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_reads: list[Settings]
) -> None:
    monkeypatch.setenv("AIGC_SUPPORT_DB_URL", sqlite(tmp_path / "from-env.db"))
    mine = Settings(home=tmp_path / "mine")
    mount_apps(app)
    runner = CliRunner()
    args = ["db", "current", "--app", "support", "--json"]

    given = runner.invoke(app, args, obj=mine)
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)[0]["url"] == sqlite(tmp_path / "mine" / "support.db")
    status = runner.invoke(app, ["recommend", "status", "--json"], obj=mine)
    assert status.exit_code == 0, status.output
    assert (tmp_path / "mine" / "recommender.db").is_file()
    assert (tmp_path / "mine" / "registry.db").is_file()
    assert env_reads == []

    from_env = runner.invoke(app, args)
    assert json.loads(from_env.stdout)[0]["url"] == sqlite(tmp_path / "from-env.db")
    assert len(env_reads) == 1


def test_create_app_hands_its_settings_to_every_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_reads: list[Settings]
) -> None:
    monkeypatch.setenv("AIGC_SUPPORT_DB_URL", sqlite(tmp_path / "from-env.db"))
    mine = Settings(home=tmp_path / "mine")
    served = create_app(ServeConfig(), settings=mine)
    assert served.state.settings is mine
    assert served.state.tokens.settings is mine
    assert served.state.catalog is None or served.state.catalog.settings is mine
    request = SimpleNamespace(app=served)
    support = app_service(request, "support", SupportService.from_settings)  # type: ignore[arg-type]
    assert support.settings is mine
    assert support.store_url() == sqlite(tmp_path / "mine" / "support.db")
    assert app_service(request, "support", SupportService.from_settings) is support  # type: ignore[arg-type]
    assert env_reads == []

    create_app(ServeConfig())  # the edge resolves the environment itself, once
    assert len(env_reads) == 1


def test_sdk_objects_pass_their_settings_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_reads: list[Settings]
) -> None:
    mine = Settings(home=tmp_path / "mine", models_cache=tmp_path / "my-models")
    registry = ModelRegistry(settings=mine)
    assert registry.settings is mine
    registry.list()  # opens the store
    assert (tmp_path / "mine" / "registry.db").is_file()
    registry.close()
    gguf = next(name for name, alias in MODEL_ALIASES.items() if alias.gguf)
    info = next(i for i in available_models(mine) if i.name == gguf)
    assert str(tmp_path / "my-models" / gguf) in f"{info.location} {info.hint}"
    assert env_reads == []

    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "later"))
    from_env = ModelRegistry()  # read when made, not when first used
    assert len(env_reads) == 1 and from_env.settings is env_reads[0]
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "even-later"))
    from_env.list()
    assert (tmp_path / "later" / "registry.db").is_file()
    from_env.close()
