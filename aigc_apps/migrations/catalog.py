"""Every store this installation knows: the core's model registry and each installed app's
(``aigc.schemas`` entry points), for ``aigc db upgrade`` and ``aigc serve``'s start-up check.

Apart from the runner: the registry is a store like any other, so it imports the runner's
:class:`~aigc_apps.migrations.StoreSchema`; listing it here, above both, keeps the runner
free of what it runs.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from aigc_apps.migrations.runner import StoreSchema
from aigc_apps.registry import SCHEMA as REGISTRY_SCHEMA

SCHEMAS_GROUP = "aigc.schemas"


def known_schemas() -> dict[str, StoreSchema]:
    """The registry's schema plus every installed app's (``aigc.schemas`` entry points)."""
    found = {REGISTRY_SCHEMA.app: REGISTRY_SCHEMA}
    for ep in sorted(entry_points(group=SCHEMAS_GROUP), key=lambda e: e.name):
        schema = ep.load()
        found[schema.app] = schema
    return found
