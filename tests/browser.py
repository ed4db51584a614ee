"""Shared by the browser tests: Debian's Chromium through Playwright, the ``aigc`` CLI.

Debian's Chromium (``/usr/bin/chromium``, never a downloaded browser) driven by Playwright.
Without either a browser test skips, saying why, unless ``AIGC_REQUIRE_BROWSER=1`` (set by
``.ci/run``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.serve.conftest import serve_env
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def need_browser() -> None:
    """Skip (or fail under AIGC_REQUIRE_BROWSER=1) when the browser or Playwright is missing."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not installed (scripts/install-browser.sh installs Debian's chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright not installed (pip install -e '.[dev]')"
    if reason is not None:
        unavailable("browser", reason)


def launch(pw: Any) -> Any:
    """Headless Debian Chromium (Playwright's ``executable_path``: nothing downloaded)."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def aigc(home: Path, *args: str) -> str:
    """Run the ``aigc`` CLI on workspace ``home`` as a user would; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "aigc_apps.cli", *args], env=serve_env(home),
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"aigc {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def keep_screenshot(shot: Path, name: str) -> None:
    """With ``AIGC_UPDATE_SCREENSHOTS=1``, ``shot`` replaces the README's ``docs/img/<name>``."""
    if os.environ.get("AIGC_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "img" / name)
