"""Schemathesis against the live server's own OpenAPI document, with a valid token.

A real ``aigc serve`` subprocess (tiny random models stand in for SmolLM2 and MiniLM, so
every route runs for real and quickly) answers a bounded number of generated requests per
operation; no answer may be a 5xx, and every answer must match the schema the document
declares for its status (errors included: they share one ``ErrorResponse`` model).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aigc_apps.serve.tokens import TokenStore

TINY_CHAT = "tiny-chat"


@pytest.fixture(scope="module")
def live_aigc(
    tmp_path_factory: pytest.TempPathFactory,
    serve_subprocess: Callable[..., AbstractContextManager[str]],
    tiny_llm_dir: Path,
    tiny_encoder_dir: Path,
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(base URL, admin token, served model names) of a server on its own workspace with
    tiny models."""
    home = tmp_path_factory.mktemp("schemathesis-home")
    store = TokenStore(f"sqlite:///{(home / 'registry.db').resolve()}")
    _, token = store.create("schemathesis", ["admin"])
    store.close()
    chat = home / TINY_CHAT
    chat.symlink_to(tiny_llm_dir, target_is_directory=True)  # served as model "tiny-chat"
    env = {"AIGC_LLM": str(chat), "AIGC_ENCODER": str(tiny_encoder_dir)}
    args = ["--max-tokens", "4", "--rate-limit", "0", "--timeout", "60"]
    served = {"chat": TINY_CHAT, "embedding": str(tiny_encoder_dir)}
    with serve_subprocess(args, home, env=env, log=home / "serve.log") as url:
        yield url, token, served


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _check_operation(operation: Any, mode: GenerationMode, live: tuple[str, str, dict],
                     examples: int) -> list[str]:
    """Run ``examples`` generated cases of one operation; the failures, one line each.

    Half of the bodies that name a ``model`` name one the server has (random names only
    reach the 404), so the success paths are generated too."""
    url, token, served = live
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode), real_model=st.booleans())
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any, real_model: bool) -> None:
        body = case.body
        if real_model and isinstance(body, dict) and isinstance(body.get("model"), str):
            body["model"] = served["embedding" if "embeddings" in operation.path else "chat"]
        try:
            case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                   checks=CHECKS, timeout=60)
        except AssertionError as exc:  # schemathesis' failures; keep going to see them all
            first = str(exc).strip().splitlines()
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): "
                            f"{' | '.join(first[:6])}")

    try:
        run()
    except Unsatisfiable:  # nothing invalid to send (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.path
    return failures


def test_api_conforms_to_its_own_schema(live_aigc: tuple[str, str, dict]) -> None:
    url = live_aigc[0]
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/healthz", "/readyz", "/v1/models", "/v1/chat/completions"} <= paths, paths
    failures: list[str] = []
    for operation in operations:
        failures += _check_operation(operation, GenerationMode.POSITIVE, live_aigc, 10)
        failures += _check_operation(operation, GenerationMode.NEGATIVE, live_aigc, 5)
    assert not failures, "\n".join(failures)
    # the cases really ran, success paths included
    answered = _requests(httpx.get(f"{url}/metrics", timeout=30).text)
    assert sum(answered.values()) >= 5 * len(operations), answered
    for route in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert answered.get((route, "200"), 0) > 0, (route, answered)


def _requests(metrics: str) -> dict[tuple[str, str], float]:
    """Requests answered, by (route template, status), from the Prometheus page."""
    found: dict[tuple[str, str], float] = {}
    for line in metrics.splitlines():
        if line.startswith("aigc_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
            key = (labels["route"], labels["status"])
            found[key] = found.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return found
