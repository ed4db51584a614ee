"""The README's Python examples must keep working: run them as a user would."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_readme_examples_run(
    tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = python_blocks()
    assert len(blocks) == 3, "README shows fine-tune/generate, retrieval and a service"
    (tmp_path / "data").symlink_to(ROOT / "data")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict[str, object] = {}
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "train_loss" in out or "eval_loss" in out
    assert (tmp_path / "adapters" / "northwind-faq" / "adapter_config.json").exists()
    ids = namespace["ids"]
    assert int(ids[0][0]) == 10  # type: ignore[index]  # "money back" -> refund policy
    reply = namespace["reply"]
    # "How long do I have to return a jacket?" is the return policy (it once got the warranty
    # template, because "Is my jacket under warranty?" is a warranty example)
    assert (reply.path, reply.intent) == ("template", "return_policy")  # type: ignore[attr-defined]
    assert "30 days" in reply.answer  # type: ignore[attr-defined]
    assert (workspace / "support.db").exists()  # the service used the workspace
