"""``aigc tokens`` and ``aigc serve``'s refusal, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from aigc_apps.cli import main
from aigc_apps.serve.app import create_app
from aigc_apps.serve.config import ServeConfig

Serve = Callable[[object], str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_token_once_list_hides_it_revoke_refuses_it(
    capsys: pytest.CaptureFixture[str], live_server: Serve
) -> None:
    url = live_server(create_app(ServeConfig(auth_cache_s=0)))
    code, out, err = run(capsys, "tokens", "create", "--name", "shop", "--scope", "recommend",
                         "--scope", "generate")
    assert code == 0 and "not shown again" in err
    token = out.strip()
    assert token.startswith("aigc_") and "\n" not in token  # stdout is the token alone

    code, out, _ = run(capsys, "tokens", "create", "--name", "ops", "--scope", "admin", "--json")
    created = json.loads(out)
    assert code == 0 and created["name"] == "ops" and created["token"].startswith("aigc_")

    code, listed, _ = run(capsys, "tokens", "list")
    assert code == 0 and "shop" in listed and "ops" in listed
    code, listed_json, _ = run(capsys, "tokens", "list", "--json")
    rows = json.loads(listed_json)
    assert [r["name"] for r in rows] == ["shop", "ops"]
    assert rows[0]["scopes"] == ["recommend", "generate"] and rows[0]["active"] is True
    for text in (listed, listed_json):
        assert token not in text and created["token"] not in text
        assert token[5:20] not in text

    as_shop = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/v1/models", headers=as_shop, timeout=30).status_code == 200
    code, out, _ = run(capsys, "tokens", "revoke", "shop")
    assert code == 0 and "revoked" in out
    refused = httpx.get(f"{url}/v1/models", headers=as_shop, timeout=30)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    code, listed_json, _ = run(capsys, "tokens", "list", "--json")
    assert [r["active"] for r in json.loads(listed_json)] == [False, True]


def test_bad_token_commands_fail_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tokens", "create", "--name", "x", "--scope", "root")
    assert code == 1 and "unknown scope 'root'" in err and not out
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "tokens", "revoke", "nobody")
    assert code == 1 and "no token named 'nobody'" in err
    run(capsys, "tokens", "create", "--name", "x", "--scope", "admin")
    code, out, err = run(capsys, "tokens", "create", "--name", "x", "--scope", "admin")
    assert code == 1 and "exists" in err and not out
    code, _, err = run(capsys, "tokens", "create", "--name", "y")
    assert code == 2 and "--scope" in err  # typer: a required option


def test_serve_refuses_a_public_address_without_a_token(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code, _, err = run(capsys, "serve", "--host", "0.0.0.0", "--port", "1")
    assert code == 1
    assert "refusing to listen on 0.0.0.0 with no API token" in err
    assert "--insecure-no-auth" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "serve", "--engine", "turbo")
    assert code == 1 and "unknown engine 'turbo'" in err
