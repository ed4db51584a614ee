"""Client addresses behind a reverse proxy: ``X-Forwarded-For`` is believed only from the
proxies named in ``--forwarded-allow-ips``, and a request that came through a proxy is never
local, even when the proxy runs on the same machine.

The ``aigc serve`` tests run the real command, since what uvicorn does with the headers
before the app sees the request is part of what is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from aigc_apps.cli import main
from aigc_apps.errors import AigcError
from aigc_apps.serve.app import create_app
from aigc_apps.serve.config import ServeConfig
from aigc_apps.serve.tokens import TokenStore
from tests.serve.checks import assert_error

Spawn = Callable[..., AbstractContextManager[str]]


def _get(url: str, forwarded_for: str | None = None, token: str | None = None) -> httpx.Response:
    headers = {}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(url, headers=headers, timeout=30)


def _token(name: str, scope: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    main(["tokens", "create", "--name", name, "--scope", scope])
    return capsys.readouterr().out.strip()


def test_forwarded_for_from_loopback_is_ignored_without_the_option(
    spawn_server: Spawn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _token("ops", "admin", capsys)
    with spawn_server(["--rate-limit", "3"], log=tmp_path / "serve.log") as url:
        codes = [_get(f"{url}/v1/models", f"203.0.113.{n}").status_code for n in range(1, 5)]
        assert codes == [401, 401, 401, 429]  # one bucket: the socket's address


def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    spawn_server: Spawn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = _token("ops", "admin", capsys)
    args = ["--rate-limit", "3", "--forwarded-allow-ips", "127.0.0.1"]
    with spawn_server(args, log=tmp_path / "serve.log") as url:
        rotating = [_get(f"{url}/v1/models", f"203.0.113.{n}").status_code for n in range(1, 5)]
        assert rotating == [401] * 4  # each client its own bucket
        same = [_get(f"{url}/v1/models", "198.51.100.7").status_code for _ in range(4)]
        assert same == [401, 401, 401, 429]
        # nginx appends the address it saw: a client's own X-Forwarded-For changes nothing
        spoofed = _get(f"{url}/v1/models", "203.0.113.1, 198.51.100.7")
        assert spoofed.status_code == 429

        # through the proxy /metrics needs the admin token, whatever address is forwarded
        for client in ("192.0.2.10", "127.0.0.1"):
            assert_error(_get(f"{url}/metrics", client), 401, "authentication_error")
        assert _get(f"{url}/metrics", "192.0.2.11", admin).status_code == 200
        assert _get(f"{url}/metrics").status_code == 200  # a Prometheus beside the server


def test_the_option_also_comes_from_the_environment(
    spawn_server: Spawn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _token("ops", "admin", capsys)
    env = {"AIGC_FORWARDED_ALLOW_IPS": "127.0.0.0/8"}
    with spawn_server(["--rate-limit", "2"], env=env, log=tmp_path / "serve.log") as url:
        codes = [_get(f"{url}/v1/models", f"203.0.113.{n}").status_code for n in range(1, 4)]
        assert codes == [401] * 3


def _status(app: FastAPI, path: str, peer: str, headers: dict[str, str]) -> int:
    async def run() -> int:
        transport = httpx.ASGITransport(app=app, client=(peer, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            return (await c.get(path, headers=headers)).status_code

    return asyncio.run(run())


def test_a_proxied_request_is_not_local(token_store: TokenStore) -> None:
    token_store.create("ops", ["admin"])
    for trusted in (None, "127.0.0.1"):
        app = create_app(ServeConfig(auth_cache_s=0, forwarded_allow_ips=trusted),
                         tokens=token_store)
        assert _status(app, "/metrics", "127.0.0.1", {}) == 200
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            assert _status(app, "/metrics", "127.0.0.1", {header: "127.0.0.1"}) == 401, header


def test_a_loopback_server_without_tokens_is_open_to_local_clients_only(
    token_store: TokenStore,
) -> None:
    app = create_app(ServeConfig(auth_cache_s=0, forwarded_allow_ips="127.0.0.1"),
                     tokens=token_store)
    assert _status(app, "/v1/models", "127.0.0.1", {}) == 200
    proxied = _status(app, "/v1/models", "127.0.0.1", {"X-Forwarded-For": "203.0.113.1"})
    assert proxied == 401  # the proxy publishes the server: it is not open to the world
    open_app = create_app(ServeConfig(insecure_no_auth=True, forwarded_allow_ips="127.0.0.1"),
                          tokens=token_store)
    assert _status(open_app, "/v1/models", "127.0.0.1", {"X-Forwarded-For": "203.0.113.1"}) \
        == 200


def test_the_trusted_proxies_are_checked() -> None:
    from aigc_apps.serve.clients import TrustedProxies

    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8 ,::1")
    assert "127.0.0.1" in trusted and "10.2.3.4" in trusted and "::1" in trusted
    assert "11.0.0.1" not in trusted and "testclient" not in trusted and None not in trusted
    assert trusted.client("203.0.113.1, 10.0.0.5, 127.0.0.1") == "203.0.113.1"
    assert trusted.client("203.0.113.1, 198.51.100.7, 10.0.0.5") == "198.51.100.7"
    assert trusted.client("10.0.0.9, 10.0.0.5") == "10.0.0.9"  # all proxies: the first
    assert TrustedProxies("*").client("203.0.113.1, 198.51.100.7") == "203.0.113.1"
    assert "2001:db8::1" in TrustedProxies("*")
    for bad in ("127.0.0.1, nonsense", "10.0.0.0/33", ""):
        with pytest.raises(AigcError, match="forwarded_allow_ips"):
            ServeConfig(forwarded_allow_ips=bad).check()
    assert ServeConfig.from_json(ServeConfig(forwarded_allow_ips="127.0.0.1").to_json()
                                 ).forwarded_allow_ips == "127.0.0.1"  # reaches every worker
