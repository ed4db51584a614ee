"""The settings of one ``aigc`` command line, resolved once and shared by its commands.

The root callback reads the environment (:func:`~aigc_apps.settings.get_settings`) and keeps
the result on the root click context; every command, the core's and each mounted app's,
takes it from there with :func:`settings_from` and hands it to the services it opens. An
app's Typer app run on its own (tests, ``python -m``) has no root callback: the first
command to ask resolves the settings then, once, on that app's root context. A caller may
also give its own: ``CliRunner().invoke(app, args, obj=Settings(...))``.
"""

from __future__ import annotations

# typer >= 0.29 runs commands on its own copy of click: its context stack, not click's
from typer._click.core import Context
from typer._click.globals import get_current_context

from aigc_apps.settings import Settings, get_settings


def settings_from(ctx: Context | None = None) -> Settings:
    """The command line's settings: ``ctx``'s (default: the running command's) root
    context's, resolved there on first use; outside a command line, the environment."""
    ctx = ctx if ctx is not None else get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, Settings):
        return root.obj
    settings = get_settings()
    if root is not None:
        root.obj = settings
    return settings
